// sigreload: live reload. Paste this inside a script element, or include it with
// one line: a script element with src="http://127.0.0.1:5678/reload.js".
//
// One file, read top to bottom: the wire's names; the pure parts (what a
// broadcast does to this page: decide(); where to connect; what the page
// missed), which Node's tests load (tests/node/); then the page's side, in
// sections that each use only what is above them, around one state object.
(() => {
  // The wire: every name this snippet shares with sigreload's Python side
  // (sigreload/contract/wire.py holds the same names; a test compares them).
  const WIRE = {
    PREFIX: "/_sigreload/", // sigreload's own URLs on a page's origin (its file server, its proxy)
    OWN_SOCKET_PATH: "/_sigreload/socket", // the broadcaster's socket, relayed there
    OWN_SNIPPET_PATH: "/_sigreload/reload.js",
    OWN_OVERLAY_PATH: "/_sigreload/overlay.js",
    OWN_IDIOMORPH_PATH: "/_sigreload/idiomorph.js",
    OWN_MORPH_PATH: "/_sigreload/morph.js",
    OWN_APP_PATH: "/_sigreload/app", // the proxy: whether the app answers ({"up": true})
    OWN_TOKEN_PATH: "/_sigreload/token",
    OWN_OPEN_PATH: "/_sigreload/open",
    SOCKET_PATH: "/sigreload", // the broadcaster's socket for sigreload's snippet (others get "reload" only)
    STATUS_SOCKET_PATH: "/sigreload/status", // the status page's socket (status.html)
    SNIPPET_PATH: "/reload.js", // on the broadcaster's port
    OVERLAY_PATH: "/overlay.js",
    IDIOMORPH_PATH: "/idiomorph.js",
    MORPH_PATH: "/morph.js",
    EDIT_COOKIE: "sigreload-edit", // a reload after an edit that restarts nothing (the proxy asks again)
    KEEP_ATTRIBUTE: "data-sigreload-keep", // ="off": typed state not kept
    APP_ATTRIBUTE: "data-sigreload-app", // on the tag an app's middleware inserted
    POSTED_ATTRIBUTE: "data-sigreload-posted", // on the tag in an answer to a POST (not GET/HEAD): reloaded by a GET
    MORPH_ATTRIBUTE: "data-sigreload-morph", // ="off": reloaded, never morphed
    DOWN_HEADER: "X-Sigreload-Down", // the proxy's page for an app that does not answer
    DOWN_META: "sigreload-down", // <meta name=...> on that page
    ROOT_HEADER: "X-Sigreload-Root", // sigreload's file server: the folder it serves
    TIMING_NAME: "sigreload", // Server-Timing: sigreload;desc=ROOT (the same, without a request)
    SERVER_NAME: "sigreload", // Server: sigreload/...
    FRESH_QUERY: "sigreload", // ?sigreload=TIME on a swapped stylesheet or image
    // Events: from the broadcaster, and from the page.
    HELLO: "hello", RELOAD: "reload", CSS: "css", ERROR: "error", FOLLOW: "follow", PROOF: "proof",
    CHALLENGE: "challenge", USING: "using", PAGE: "page", FOCUS: "focus", CONSOLE: "console",
  };

  // ---- The pure parts: data in, data out (no page, no clock of their own). ----

  // Where this snippet talks to: included from the broadcaster (another origin),
  // where it came from; from /_sigreload/ on the page's origin (sigreload's
  // proxy or file server, maybe through a forwarded port), there.
  const whereFrom = (scriptSrc, pageHref, dataPort) => {
    const page = new URL(pageHref), at = scriptSrc ? new URL(scriptSrc) : null;
    const proxied = Boolean(at && at.origin === page.origin && at.pathname.startsWith(WIRE.PREFIX));
    const src = at && at.origin !== page.origin ? at : null;
    const secure = (src || page).protocol === "https:";
    const host = (src ? src.hostname : page.hostname) || "127.0.0.1";
    const port = dataPort || (src ? src.port : "") || "5678";
    const ws = secure ? "wss" : "ws", base = `${secure ? "https" : "http"}://${host}:${port}`;
    return {
      proxied,
      url: proxied ? `${ws}://${page.host}${WIRE.OWN_SOCKET_PATH}` : `${ws}://${host}:${port}${WIRE.SOCKET_PATH}`,
      overlay: proxied ? WIRE.OWN_OVERLAY_PATH : base + WIRE.OVERLAY_PATH,
      idiomorph: proxied ? WIRE.OWN_IDIOMORPH_PATH : base + WIRE.IDIOMORPH_PATH,
      morph: proxied ? WIRE.OWN_MORPH_PATH : base + WIRE.MORPH_PATH,
    };
  };

  // A frame from the broadcaster: its JSON object, or the plain text as a type.
  const parseMessage = (data) => {
    try {
      const m = JSON.parse(data);
      if (m && typeof m === "object" && !Array.isArray(m)) return m;
    } catch {}
    return { type: String(data) };
  };

  // Reconnecting: 200 ms, doubling, at most 5 s.
  const FIRST_DELAY = 200, LAST_DELAY = 5000;
  const nextDelay = (delay) => Math.min(delay * 2, LAST_DELAY);
  // Asking a page's server until it answers (each failure is a line in the
  // browser's console): every 100 ms for the first second (a restart), then
  // 250 ms doubling, at most 5 s. SLOWER: the try after which it slows down.
  const SLOWER = 10;
  const pollDelay = (tries) => tries < SLOWER ? 100 : Math.min(250 * 2 ** (tries - SLOWER), LAST_DELAY);

  // A URL as a path on the page's origin (decoded), or null (another origin, not a URL).
  const pathOf = (u, base) => {
    try {
      const x = new URL(u, base);
      return x.origin === new URL(base).origin ? decodeURIComponent(x.pathname) : null;
    } catch { return null; }
  };
  // The file paths a page's own URL path may be served from.
  const pagePaths = (path) => path.endsWith("/") ? [path, `${path}index.html`]
    : /\.[^/]*$/.test(path) ? [path] : [path, `${path}/index.html`, "/index.html"];
  const SCRIPTS = /\.(m?js|cjs|jsx?|tsx?)$/;
  // Code of an app server (app_server.RESTARTS_ON): its edit restarts the app, so
  // --morph reloads (a new process: what the page's scripts hold, its open
  // streams and tokens, came from the old one; django-browser-reload and Vite reload too).
  const RESTARTS = /\.py$/;
  // An edit the app may answer from a template cache for a while (Django's cached
  // loader): not code (it restarts the app), not a static file (served as it is).
  const ASSET = /\.(css|m?js|map|png|jpe?g|gif|svg|webp|avif|ico|woff2?|ttf|otf)$/i;
  const templates = (paths) => Boolean(paths && paths.length && !paths.some((p) => p.endsWith(".py"))
    && !paths.every((p) => ASSET.test(p)));
  const fresh = (u, now) => { const x = new URL(u); x.searchParams.set(WIRE.FRESH_QUERY, now); return x.href; };
  // --follow: a saved page's path as a URL on this origin, or null ("/\\host\\x", "//host": never another site).
  const followUrl = (path, origin) => {
    if (typeof path !== "string") return null;
    try {
      const url = new URL(path.replace(/(^|\/)index\.html?$/, "$1"), origin);
      return url.origin === origin ? url.href : null;
    } catch { return null; }
  };

  // What a change does to this page, as a list of steps. `page` is what the page
  // is: { ours (served by sigreload's own server, whose root is `root`),
  // morphing (--morph), path (its URL path, decoded), sheets, images and
  // resources (the paths of its stylesheets, images and every same-origin file
  // it loaded) }. Steps: { do: "reload", why, paths }, { do: "css", said }
  // (every stylesheet), { do: "swap", sheets, images, said }, { do: "morph",
  // why, paths }, { do: "nothing", said }.
  const changes = (m, page) => {
    if (m.paths && !m.paths.length) return [{ do: "nothing", said: "" }]; // a notice alone (the app is down)
    const html = Boolean(m.paths) && !m.paths.some((p) => SCRIPTS.test(p) || RESTARTS.test(p));
    if (!m.paths || !page.ours || m.root !== page.root) { // no paths, or a server it cannot map: everything
      if (m.type === WIRE.CSS) return [{ do: "css", said: "stylesheets refreshed" }];
      if (page.morphing && html && !page.ours) return [{ do: "morph", why: m.paths.join(", "), paths: m.paths }]; // behind the proxy: the app's new answer
      return [{ do: "reload", why: m.paths ? m.paths.join(", ") : "signal", paths: m.paths }];
    }
    const changed = new Set(m.paths), list = m.paths.join(", "), steps = [], own = pagePaths(page.path);
    if (own.some((p) => changed.has(p))) {
      if (!page.morphing || !html) return [{ do: "reload", why: list }];
      steps.push({ do: "morph", why: list, paths: m.paths });
      own.forEach((p) => changed.delete(p));
      if (!changed.size) return steps;
    }
    const sheets = page.sheets.filter((p) => changed.has(p)), images = page.images.filter((p) => changed.has(p));
    const handled = new Set([...sheets, ...images]);
    const other = page.resources.filter((p) => p && changed.has(p) && !handled.has(p));
    if (other.length) { // a script, a font, data, an @import-ed sheet
      if (!other.every((p) => p.endsWith(".css"))) return [...steps, { do: "reload", why: other.join(", ") }];
      return [...steps, { do: "css", said: `stylesheets refreshed (${list})` }];
    }
    if (!sheets.length && !images.length) return [...steps, { do: "nothing", said: `nothing here uses ${list}` }];
    return [...steps, { do: "swap", sheets, images, said: `swapped ${[...handled].join(", ")}` }];
  };
  // What an event from the broadcaster does to this page (a hello is the
  // connection's, not an event: see hello()). Also { do: "error", text } (a
  // failed build, drawn over the page) and { do: "follow", path } (--follow:
  // this tab goes there).
  const decide = (m, page) => {
    if (m.type === WIRE.ERROR) return [{ do: "error", text: m.text }];
    if (m.type === WIRE.FOLLOW) return [{ do: "follow", path: m.path }];
    if (m.type === WIRE.HELLO || m.type === WIRE.PROOF) return [];
    return changes(m, page);
  };

  // The generation this tab records on a message: while it reloads, a
  // broadcast stays unseen (the new page replays it unless it came after it).
  const recorded = (m, saved, reloading) => saved.boot === m.boot && reloading && m.type !== WIRE.HELLO
    ? saved.generation : m.generation;
  // What a hello says this page missed while away (reloading, reconnecting):
  // null (nothing), "replay" (the same run broadcast: a newer generation) or
  // "reload" (the broadcaster restarted while this page was open).
  const missedOnHello = (m, saved, first) => {
    if (saved.boot === m.boot) return m.generation > (saved.generation || 0) ? "replay" : null;
    return !first && saved.boot ? "reload" : null;
  };
  // Of what the hello recalls, the events to replay: those sent once this
  // document was asked for (at `asked`, this page's clock; the broadcaster's
  // is `m.now` at `now`): it may not show them. Or null when the hello does
  // not hold them all (reload).
  const toReplay = (m, since, asked, now) => {
    const recent = (m.recent || []).filter((e) => e.generation > since);
    if (recent.length < m.generation - since) return null;
    const offset = m.now - now; // less the hello's way here: errs towards a replay
    return recent.filter((e) => e.type !== WIRE.ERROR && asked + offset <= e.at);
  };

  // Typed state kept across a reload: never passwords, files, hidden or
  // one-time fields, card fields (autocomplete="cc-..."), fields named like a
  // secret (pin, cvv, token, api_key... in name or id), or autocomplete="off".
  const SKIPPED = /^(password|file|hidden|submit|button|reset|image)$/;
  const SECRET = /(^|\s)(current-password|new-password|one-time-code|off|cc-[a-z-]+)(\s|$)/;
  // Names and ids as words ("cardPin", "card-cvv", "api_key"; not "shipping" or "secretary").
  const SECRET_NAME = new RegExp("(^|[^a-z])(pin|cvv2?|cvc2?|csc|pass(phrase|code|word)?|pw|otp|totp|mfa|2fa|secrets?|tokens?"
    + "|api[-_ ]?keys?|senha|contrase(n|\u00f1)a|kennwort|motdepasse|mot de passe)([^a-z]|$)");
  const words = (name, id) => `${name || ""} ${id || ""}`.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  const keepable = ({ type, autocomplete, name, id, wasPassword }) => !SKIPPED.test(type || "")
    && !SECRET.test((autocomplete || "").toLowerCase()) && !wasPassword
    && !/passw|passwd|pwd/i.test(`${name || ""} ${id || ""}`) && !SECRET_NAME.test(words(name, id));

  // A console argument as text, for the terminal.
  const asText = (x) => {
    if (x instanceof Error) return x.stack && x.stack.includes(x.message) ? x.stack : `${x.name}: ${x.message}\n${x.stack || ""}`;
    if (typeof x === "string") return x;
    try { return JSON.stringify(x); } catch { return String(x); }
  };
  // At most `most` a second: a function of the time (ms) that says whether one more may go.
  const perSecond = (most) => {
    let second = 0, count = 0;
    return (now) => {
      const s = Math.floor(now / 1000);
      if (s !== second) { second = s; count = 0; }
      return ++count <= most;
    };
  };

  if (typeof window === "undefined") { // Node (tests/node/): the pure parts, nothing run
    if (typeof module === "object") {
      module.exports = { WIRE, whereFrom, parseMessage, FIRST_DELAY, LAST_DELAY, nextDelay, pathOf, pagePaths, templates,
        fresh, followUrl, changes, decide, SLOWER, pollDelay, recorded, missedOnHello, toReplay, keepable, asText, perSecond };
    }
    return;
  }

  // ---- The page's side. ----

  // Included twice (pasted, and inserted by a server): one copy runs. What
  // it holds says whether its socket is open (for tools and tests).
  const ONCE = Symbol.for("sigreload");
  if (window[ONCE]) return;
  const status = window[ONCE] = { connected: false, personScrolled: false };
  const me = document.currentScript;
  const { proxied, url, overlay: overlayUrl, idiomorph: idiomorphUrl, morph: morphUrl } = whereFrom(me && me.src, location.href,
    me && me.dataset.port);
  const KEY = "sigreload", say = (m) => console.info(`sigreload: ${m}`);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const here = (u) => pathOf(u, location.href);
  // Inserted first in <head>, the snippet runs before the rest of the page is
  // parsed: what looks at the page waits for it (and no longer than that:
  // "interactive" comes before deferred and module scripts run).
  const whenParsed = (f) => {
    if (document.readyState !== "loading") f();
    else document.addEventListener("readystatechange", f, { once: true });
  };
  // What this tab remembers across reloads (sessionStorage).
  const load = () => { try { return JSON.parse(sessionStorage.getItem(KEY)) || {}; } catch { return {}; } };
  const save = (s) => { try { sessionStorage.setItem(KEY, JSON.stringify(s)); } catch {} };
  const take = (name) => { const s = load(), v = s[name]; if (v !== undefined) { delete s[name]; save(s); } return v; };
  // What the page's load need not wait for (its first look at sessionStorage,
  // the socket and what it brings): run in order, once, a task after the
  // page's load event (after every load listener), or a second after this
  // script ran for a page whose load is slow or never comes (an image that
  // hangs). A reload's time is the new page's load: this keeps it short.
  const later = [];
  let begun = false;
  const begin = () => {
    if (begun) return;
    begun = true;
    for (const f of later) { try { f(); } catch {} }
  };
  if (document.readyState === "complete") setTimeout(begin, 0);
  else { addEventListener("load", () => setTimeout(begin, 0), { once: true }); setTimeout(begin, 1000); }
  const whenLoaded = (f) => { if (document.readyState === "complete") f(); else addEventListener("load", f, { once: true }); };

  // The page's EventSources, closed when the app restarts: uvicorn's reloader
  // waits for open connections to close, so one left open would keep the old
  // app (and this page's check before reloading) waiting for good. Run first
  // in <head>, the snippet wraps EventSource (a subclass: same name, statics,
  // instanceof) to know them; weakly held, nothing else changed.
  const sources = new Set();
  if (typeof window.EventSource === "function" && typeof WeakRef === "function") {
    const Native = window.EventSource;
    window.EventSource = class EventSource extends Native {
      constructor(...args) {
        super(...args);
        for (const r of sources) if (!r.deref()) sources.delete(r);
        sources.add(new WeakRef(this));
      }
    };
  }
  const closeSources = () => { for (const r of sources) { const e = r.deref(); if (e) e.close(); } sources.clear(); };

  // Everything that changes while the page is open.
  const S = {
    first: true, // no hello yet
    delay: FIRST_DELAY, warned: false, foreignSaid: false, live: null, // the socket and its reconnection
    reloading: false, // this page is on its way out: nothing else happens
    ours: false, root: null, settled: false, owed: null, // served by sigreload's server (its root); owed: a catch-up waiting for that
    watched: undefined, told: false, stopped: false, later: null, // what the hello says the watcher watches
    following: false, morphing: false, source: null, served: null, // --follow, --morph (source: the page as served, parsed)
    forwarded: true, toasting: undefined, // the hello says whether errors go to the terminal, to a toast
    keptState: null, // typed state saved before the reload, given back once the socket proved itself
    cover: null, box: null, // what is drawn over the page: an error, a notice
    slowSaid: false, // that the page's server does not answer (asked less often)
  };

  // overlay.js (the toast, editor links, --follow's marks), loaded once, when
  // first needed, from the broadcaster's address only while its socket has
  // proved to be this page's sigreload: once sigreload stopped, another
  // user's server there would run its script in this page (r33a4).
  const waiting = [];
  let overlayAsked = false;
  const ours = () => proxied || Boolean(S.live && S.live.readyState === 1); // (S.live: a proven socket)
  const loadOverlay = () => {
    if (overlayAsked || !ours()) return;
    overlayAsked = true;
    const lib = document.createElement("script");
    lib.src = overlayUrl;
    if (me && me.nonce) lib.nonce = me.nonce;
    lib.onload = () => waiting.splice(0).forEach((g) => { try { g(); } catch {} });
    document.documentElement.append(lib);
  };
  const withOverlay = (f) => {
    if (status.toast) return f();
    if (waiting.length < 64) waiting.push(f);
    loadOverlay();
  };

  // ---- Keeping what the person was doing across a reload. ----
  // A full reload keeps the scroll position, and what the person was doing:
  // typed and chosen values, the focused field with its caret, open <details>,
  // the scroll of inner panels. Only after a reload sigreload caused (saved
  // just before it, used once), only where the same field still exists (same
  // id, or same name in the same form, same type); never a field keepable()
  // refuses; data-sigreload-keep="off" on an element (or <html>) opts it out.
  const OFF = `[${WIRE.KEEP_ATTRIBUTE}="off"]`;
  // A password shown as text (a "show" button sets type=text) is still one.
  // So is a field that takes a password's place (Vue's v-if, a keyed component):
  // its key (id, or name in its form) is remembered (r36a4).
  const wasPassword = new WeakSet(), passwordKeys = new Set();
  const isPassword = (el) => { wasPassword.add(el); try { passwordKeys.add(keyOf(el)); } catch {} };
  const markPasswords = () => document.querySelectorAll('input[type="password"]').forEach(isPassword);
  try {
    new MutationObserver((records) => records.forEach((r) => {
      if (r.oldValue && r.oldValue.toLowerCase() === "password") isPassword(r.target);
    })).observe(document, { subtree: true, attributes: true, attributeFilter: ["type"], attributeOldValue: true });
  } catch {}
  const keyOf = (el) => {
    if (el.id) return `#${el.id}`;
    const form = el.form || el.closest("form");
    const where = form ? (form.id ? `form#${form.id}` : `form${[...document.forms].indexOf(form)}`) : "";
    if (el.name) return `${where} ${el.localName}[name=${el.name}]${el.type === "radio" ? `=${el.value}` : ""}`;
    const same = [...document.querySelectorAll(el.localName)].filter((x) => !x.id && !x.name);
    return `${el.localName}@${same.indexOf(el)}`;
  };
  addEventListener("input", (e) => { if (e.target && e.target.type === "password") isPassword(e.target); }, true);
  whenParsed(markPasswords);
  const kinds = (el) => el.isContentEditable && el.hasAttribute("contenteditable") ? "editable" : el.type || el.localName;
  const fields = () => [...document.querySelectorAll("input, textarea, select, [contenteditable]")].filter((el) => {
    const autocomplete = el.getAttribute("autocomplete") || (el.form && el.form.getAttribute("autocomplete")) || "";
    const was = wasPassword.has(el) || passwordKeys.has(keyOf(el));
    return !el.closest(OFF) && keepable({ type: el.type, autocomplete, name: el.name, id: el.id, wasPassword: was })
      && (!el.isContentEditable || el.hasAttribute("contenteditable"));
  });
  // The focused field's caret, and back (not every type has one).
  const selectionOf = (el) => { try { return [el.selectionStart, el.selectionEnd, el.selectionDirection]; } catch { return null; } };
  const refocus = (el, range) => {
    el.focus({ preventScroll: true });
    try { if (range && range[0] !== null) el.setSelectionRange(...range); } catch {}
  };
  const capture = () => {
    if (document.documentElement.matches(OFF)) return null;
    markPasswords();
    const state = { url: location.href, fields: {}, details: {}, scrolls: {} };
    for (const el of fields()) {
      const kind = kinds(el), value = kind === "editable" ? el.innerHTML
        : el.localName === "select" ? [...el.options].filter((o) => o.selected).map((o) => o.value)
          : /^(checkbox|radio)$/.test(kind) ? el.checked : el.value;
      state.fields[keyOf(el)] = { kind, value };
    }
    const active = document.activeElement;
    if (active && active !== document.body && state.fields[keyOf(active)]) {
      state.focus = { key: keyOf(active), range: selectionOf(active) };
    }
    document.querySelectorAll("details").forEach((d, i) => { if (!d.closest(OFF)) state.details[d.id || i] = d.open; });
    for (const el of document.querySelectorAll("body *")) {
      if ((el.scrollTop || el.scrollLeft) && !el.closest(OFF)) state.scrolls[keyOf(el)] = [el.scrollLeft, el.scrollTop];
    }
    return state;
  };
  const setValue = (el, value) => { // as typing would: frameworks (React, Vue) see an input event
    const proto = Object.getPrototypeOf(el), setter = Object.getOwnPropertyDescriptor(proto, "value");
    if (setter && setter.set) setter.set.call(el, value); else el.value = value;
  };
  const restore = (state) => {
    if (document.documentElement.matches(OFF)) return;
    const byKey = new Map(fields().map((el) => [keyOf(el), el]));
    for (const [key, { kind, value }] of Object.entries(state.fields || {})) {
      const el = byKey.get(key);
      if (!el || kinds(el) !== kind) continue; // removed, renamed or another type now: as the page has it
      if (kind === "editable") { if (el.innerHTML !== value) el.innerHTML = value; continue; }
      if (el.localName === "select") [...el.options].forEach((o) => { o.selected = value.includes(o.value); });
      else if (/^(checkbox|radio)$/.test(kind)) el.checked = value;
      else if (el.value !== value) setValue(el, value);
      else continue;
      el.dispatchEvent(new Event("input", { bubbles: true }));
      el.dispatchEvent(new Event("change", { bubbles: true }));
    }
    document.querySelectorAll("details").forEach((d, i) => {
      const open = (state.details || {})[d.id || i];
      if (open !== undefined && !d.closest(OFF)) d.open = open;
    });
    const find = (key) => { // by id, as a field, or as the n-th such element without id or name
      if (key.startsWith("#")) return document.getElementById(key.slice(1));
      const nth = /^([\w-]+)@(\d+)$/.exec(key);
      if (!nth) return byKey.get(key);
      return [...document.querySelectorAll(nth[1])].filter((x) => !x.id && !x.name)[+nth[2]];
    };
    for (const [key, [x, y]] of Object.entries(state.scrolls || {})) {
      const el = find(key);
      if (el && !el.closest(OFF)) { el.scrollLeft = x; el.scrollTop = y; }
    }
    const focus = state.focus && byKey.get(state.focus.key);
    if (focus) refocus(focus, state.focus.range);
  };
  // Typed state comes back only from the same sigreload: once this page's
  // socket proved what the one that saved it proved (see trusted()).
  later.push(() => {
    const kept = load().scroll;
    if (!kept || kept.url !== location.href) return;
    take("scroll");
    S.keptState = kept.state && kept.proof ? kept : null;
    whenLoaded(() => scrollTo(kept.x, kept.y));
  });
  const giveBack = (proof) => {
    const k = S.keptState;
    S.keptState = null;
    if (!k || k.proof !== proof) return;
    if (document.readyState === "complete") restore(k.state);
    else addEventListener("load", () => restore(k.state));
  };

  // ---- --follow (the hello says) ----
  // A saved page that no tab shows opens in the tab focused last (the
  // broadcaster picks it: a "follow" message); after a reload or morph
  // sigreload caused, the first element that changed is scrolled into view,
  // unless the person scrolled meanwhile, and outlined for a moment (overlay.js
  // compares the page before and after).
  const NAV_KEYS = /^(Page(Up|Down)|Arrow(Up|Down)|Home|End| )$/, scrolled = () => { status.personScrolled = true; };
  addEventListener("wheel", scrolled, { capture: true, passive: true });
  addEventListener("touchmove", scrolled, { capture: true, passive: true });
  addEventListener("keydown", (e) => { if (NAV_KEYS.test(e.key)) scrolled(); }, { capture: true, passive: true });
  const followMarks = () => { // the browser's own scroll restoration would come after ours: off once
    if (!S.following || !status.marks) return {};
    try { history.scrollRestoration = "manual"; } catch {}
    return { follow: { url: location.href, marks: status.marks() } };
  };
  later.push(() => {
    const followed = take("follow");
    if (!followed || followed.url !== location.href) return;
    whenLoaded(() => withOverlay(() => {
      status.showChanged(status.firstChanged(followed.marks));
      // (after the browser's own restoration time: it reads the setting after load)
      setTimeout(() => { try { history.scrollRestoration = "auto"; } catch {} }, 1000);
    }));
  });
  const goTo = (path) => { // a page no tab shows: this tab (one navigation per save)
    const to = S.reloading ? null : followUrl(path, location.origin);
    if (!to) return;
    S.reloading = true;
    save({ ...load(), reloaded: true });
    say(`following ${path}`);
    location.assign(to);
  };

  // ---- Who serves this page, and what the watcher watches. ----
  // A broadcaster that no watcher signals (still so 2.5 s later: one that
  // starts with it finds it within a second), or whose watcher watches
  // another folder (an old sigreload left running, a pasted line naming
  // another port): say so in the console, once. A watcher that stops
  // (killed, or it could not leave a failed build's output) is said on the
  // page: edits no longer show.
  const STOPPED = "The watcher stopped: saving a file no longer reloads this page. "
    + "Start it again (sigreload, r or sigreload-watch).";
  const check = () => {
    if (S.watched) save({ ...load(), watcher: true });
    S.stopped = S.watched === null && Boolean(load().watcher);
    if (S.stopped || S.told || S.watched === undefined || (S.watched && !(S.ours && S.root))) return;
    if (S.watched === null) {
      clearTimeout(S.later);
      S.later = setTimeout(() => {
        if (S.watched !== null || S.told || S.stopped) return;
        S.told = true;
        say(`no watcher signals the broadcaster at ${url}: only a signal (kill -USR1, sigreload reload) `
          + "reloads this page. If sigreload runs with another --ws-port, this page's snippet names the wrong one.");
      }, 2500);
      return;
    }
    S.told = true;
    if (!S.watched.includes(S.root)) {
      say(`the broadcaster at ${url} watches another folder than this page's: your edits will not reload it. `
        + "An old sigreload still running? Stop it, or point this page's snippet at the right port.");
    }
  };
  // Served by sigreload's own server? It marks every response no-cache (no
  // refetch needed) and names its folder, so changed paths map to this page:
  // Server-Timing: sigreload;desc=ID, read from this page's own navigation
  // entry (no request: an app runs its view once per page load). Browsers
  // show it to secure contexts only (loopback pages are); elsewhere a HEAD.
  const named = (id) => {
    S.ours = Boolean(id); S.root = id || null; S.settled = true; check();
    if (S.owed) { const go = S.owed; S.owed = null; go(); }
  };
  later.push(() => whenLoaded(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    if (window.isSecureContext && nav && nav.serverTiming) {
      const mark = nav.serverTiming.find((t) => t.name === WIRE.TIMING_NAME);
      named(mark ? mark.description : null);
    } else {
      fetch(location.href, { method: "HEAD", cache: "no-store" }).then((r) => named(
        new RegExp(`^${WIRE.SERVER_NAME}`).test(r.headers.get("server") || "") && r.headers.get(WIRE.ROOT_HEADER)),
      () => named(null));
    }
  }));

  // ---- Drawn over the page: a failed build's output, the app's error page, "down"; a notice. ----
  const hideError = () => { if (S.cover) S.cover.remove(); S.cover = null; };
  const cover = (tag, text) => {
    hideError();
    S.cover = document.createElement("sigreload-error");
    const shadow = S.cover.attachShadow({ mode: "open" });
    shadow.innerHTML = "<style>*{position:fixed;inset:0;z-index:2147483647;margin:0;padding:2em;border:0;"
      + "width:100%;height:100%;box-sizing:border-box;overflow:auto;background:rgba(25,0,0,.93);"
      + "color:#fdd;font:13px/1.4 monospace;white-space:pre-wrap}iframe{padding:0;background:#fff}</style>";
    const fill = document.createElement(tag);
    if (tag === "iframe") fill.setAttribute("sandbox", ""); // shown, never run: no script, its own origin
    fill[tag === "iframe" ? "srcdoc" : "textContent"] = text;
    shadow.append(fill);
    document.documentElement.append(S.cover);
  };
  const showError = (text) => {
    cover("pre", `Build failed\n\n${text}`);
    say("build failed (shown on the page)");
    const shown = S.cover; // the files it names open in the editor (overlay.js)
    if (status.open) withOverlay(() => { if (shown === S.cover) status.linkFiles(shown.shadowRoot.querySelector("pre")); });
  };
  // A good build's warning (its error lines): a notice in a corner, closed by a
  // click, and not shown again for the same text in this tab.
  const notice = (text, said = `${String(text).split("\n")[0].slice(0, 200)} (shown on the page)`) => {
    if (S.box) S.box.remove();
    S.box = null;
    if (!text || load().closed === text) return;
    const box = S.box = document.createElement("sigreload-notice");
    const shadow = box.attachShadow({ mode: "open" });
    shadow.innerHTML = "<style>div{position:fixed;right:1em;bottom:1em;z-index:2147483647;max-width:min(60em,90vw);"
      + "max-height:40vh;overflow:auto;margin:0;padding:1em 2.5em 1em 1em;box-sizing:border-box;background:#3b3000;"
      + "color:#ffe9a0;font:12px/1.4 monospace;white-space:pre-wrap;box-shadow:0 2px 8px #0008}"
      + "button{position:absolute;top:.3em;right:.4em;border:0;background:none;color:inherit;font-size:18px;"
      + "cursor:pointer}pre{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}</style><div><button title=\"close\" aria-label=\"close\">\u00d7</button><pre></pre></div>";
    shadow.querySelector("pre").textContent = text;
    shadow.querySelector("button").onclick = () => { save({ ...load(), closed: text }); box.remove(); S.box = null; };
    document.documentElement.append(box);
    say(said);
  };

  // ---- Reloading. ----
  // Fetch what the page loaded, bypassing the cache, so the reloaded page
  // shows every changed file whatever the server's cache headers say (not
  // what failed, like a missing favicon: a slow app answers that 404 slowly).
  const refetch = () => S.ours ? Promise.resolve() : Promise.all(performance.getEntriesByType("resource")
    .filter((r) => /^(script|link|css|img|image|other)$/.test(r.initiatorType) && !(r.responseStatus >= 400)
      && new URL(r.name).host === location.host && !r.name.includes(WIRE.PREFIX))
    .map((r) => fetch(r.name, { cache: "reload" }).then((b) => b.blob()).catch(() => {})));
  // An app server may be restarting: fetch the page (fresh) until it answers
  // (not with the proxy's "down" page), so a reload never lands on a closed port.
  // Past the first second, less often, said once.
  const answer = async (until) => {
    for (let tries = 0; ; tries++) {
      try { // an app that accepts but never answers (uvicorn after an import error): given up on, said
        const wait = Math.max(1000, Math.min(until - Date.now(), 10000));
        const r = await fetch(location.href, { cache: "reload", signal: AbortSignal.timeout && AbortSignal.timeout(wait) });
        if (!r.headers.get(WIRE.DOWN_HEADER)) return r;
      } catch {}
      if (Date.now() > until) return null;
      if (tries === SLOWER && !S.slowSaid) {
        S.slowSaid = true;
        say(`${location.origin} does not answer: asking again less often (every ${LAST_DELAY / 1000} s at most)`);
      }
      await sleep(pollDelay(tries));
    }
  };
  // Behind sigreload's proxy, after an edit that restarts nothing (a template):
  // the app may answer from its cache until its reloader's next tick (Django),
  // so the proxy asks again until the page is not the one it served before.
  // An answer to a POST is reloaded by a plain GET, which carries no Cache-Control:
  // the cookie tells the middleware too (Django's cached loaders are reset then).
  const markEdited = (paths) => {
    if ((posted || (proxied && !S.ours)) && templates(paths)) document.cookie = `${WIRE.EDIT_COOKIE}=1; path=/; max-age=10; samesite=strict`;
  };
  // An answer to a POST: reloaded by a GET of its URL, never by reload(), which
  // would send the form again. The proxy and the middleware mark the tag; a
  // pasted snippet knows from the form this tab sent (to itself, not stopped).
  addEventListener("submit", (e) => {
    const b = e.submitter, form = e.target;
    const method = b && b.hasAttribute("formmethod") ? b.formMethod : form.method;
    const target = (b && b.getAttribute("formtarget")) || form.target || "_self";
    if (!e.defaultPrevented && method === "post" && target === "_self") save({ ...load(), posted: Date.now() });
  });
  let posted = Boolean(me && me.hasAttribute(WIRE.POSTED_ATTRIBUTE));
  later.push(() => { // (sessionStorage, after the page's load)
    const sent = take("posted");
    posted = posted || (typeof sent === "number" && Date.now() - sent < 60000);
  });
  const reload = (why, paths) => {
    if (S.reloading) return;
    S.reloading = true;
    say(`reload (${why})`);
    markEdited(paths);
    if (!S.ours) closeSources(); // the app may be restarting: let it
    // Firefox keeps a page's stylesheets and images across a reload, whatever
    // was refetched: its reload(true) bypasses the cache (others ignore it). It
    // also keeps Firefox from restoring fields itself (one-time codes, hidden
    // inputs): what comes back is what capture() kept, in every engine.
    const go = () => {
      let state = null;
      try { state = capture(); } catch {}
      const proof = (load().trust || {}).proof;
      save({ ...load(), scroll: { url: location.href, x: scrollX, y: scrollY, state: proof ? state : null, proof },
        reloaded: true, ...followMarks() });
      if (posted) location.replace(location.href.replace(/#.*$/, "")); // (a hash alone would not load)
      else location.reload(true);
    };
    if (S.ours) return go();
    // Behind sigreload's proxy (it holds requests while the app restarts), or
    // from a file, the page needs no check; else it is checked while files are refetched.
    const checked = !proxied && /^https?:$/.test(location.protocol);
    Promise.all([checked && answer(Date.now() + 10000), Promise.race([refetch(), sleep(1000)])]).then(([r]) => {
      if (!checked) return go();
      if (!r) { // the app is down: say so here, reload when it is back
        cover("pre", `sigreload: ${location.origin} does not answer (restarting, or stopped `
          + "by an error: see its terminal).\nThis page reloads by itself once it answers.");
        return answer(Infinity).then(go);
      }
      if (r.status >= 500) { // its error page would carry no snippet: show it here, as text
        S.reloading = false; // unless it says it is HTML: a text/plain error that reflects a query never runs
        const html = /^\s*text\/html\s*(;|$)/i.test(r.headers.get("content-type") || "");
        return r.text().then((t) => cover(html ? "iframe" : "pre", t), () => {});
      }
      go();
    }, go);
  };

  // ---- --morph: a change to the page's HTML applied in place (morph.js). ----
  // morph.js and idiomorph, loaded only then (window.Idiomorph: both are
  // here). A page with data-sigreload-morph="off", or before they are here: a reload.
  // The whole page, as before deferred and module scripts ran: copied unless
  // this tab's last hello said no --morph (not on every reload).
  // A small page is copied without asking: cheaper than this page's first
  // look at sessionStorage, which would delay its load (a reload's time).
  const SMALL = 64 << 10;
  whenParsed(() => {
    const nav = performance.getEntriesByType("navigation")[0], size = nav ? nav.decodedBodySize : 0;
    const s = size > 0 && size < SMALL ? { morph: true } : load();
    if (s.morph || !s.boot) S.served = document.getElementsByTagName("*").length < 20000 ? document.documentElement.outerHTML : null;
  });
  const parse = (text) => new DOMParser().parseFromString(text, "text/html");
  const startMorphing = () => {
    if (S.morphing) return;
    S.morphing = true;
    if (!S.source) S.source = parse(S.served || document.documentElement.outerHTML); // as before deferred scripts ran
    if (window.Idiomorph && status.morph) return;
    if (!ours()) return void (S.morphing = false); // (as the overlay)
    const lib = document.createElement("script");
    lib.src = morphUrl;
    if (me && me.nonce) lib.nonce = me.nonce; // a nonce-only Content-Security-Policy
    lib.dataset.idiomorph = idiomorphUrl; // loaded next, by morph.js
    document.head.append(lib);
  };
  const morph = (why, paths) => {
    if (S.reloading) return;
    if (document.documentElement.matches(`[${WIRE.MORPH_ATTRIBUTE}="off"]`) || !window.Idiomorph || !status.morph) {
      return reload(why, paths);
    }
    status.morph({ S, reload, say, markEdited, parse, selectionOf, refocus, DOWN_HEADER: WIRE.DOWN_HEADER }, why, paths);
  };

  // ---- What a change does here: decide(), then its steps. ----
  const sheetLinks = () => [...document.querySelectorAll('link[rel~="stylesheet"][href]')];
  const imageOf = (img) => here(img.currentSrc || img.src);
  const pageNow = () => ({
    ours: S.ours, root: S.root, morphing: S.morphing, path: decodeURIComponent(location.pathname),
    sheets: sheetLinks().map((l) => here(l.href)), images: [...document.images].map(imageOf),
    resources: performance.getEntriesByType("resource").map((r) => here(r.name)),
  });
  // Swap stylesheets for fresh copies; an old one goes only once its new one loaded.
  const css = (links = sheetLinks()) => {
    for (const old of links) {
      const next = old.cloneNode();
      next.href = fresh(old.href, Date.now());
      next.onload = () => old.remove();
      next.onerror = () => next.remove();
      old.after(next);
    }
  };
  const act = (steps) => {
    for (const step of steps) {
      if (step.do === "reload") reload(step.why, step.paths);
      else if (step.do === "morph") morph(step.why, step.paths);
      else if (step.do === "css") { say(step.said); css(); }
      else if (step.do === "swap") {
        say(step.said);
        css(sheetLinks().filter((l) => step.sheets.includes(here(l.href))));
        for (const img of [...document.images].filter((i) => step.images.includes(imageOf(i)))) {
          img.src = fresh(img.currentSrc || img.src, Date.now());
        }
      } else if (step.do === "nothing") { if (step.said) say(step.said); }
      else if (step.do === "error") showError(step.text);
      else if (step.do === "follow") { hideError(); goTo(step.path); }
    }
  };

  // ---- The proxy's page for an app that does not answer: back to the app once it does. ----
  // The proxy says whether it is up (always a 200: a 502 a poll would be a console line each time).
  const up = async () => {
    for (;;) {
      try { if ((await (await fetch(WIRE.OWN_APP_PATH, { cache: "no-store" })).json()).up) return; } catch {}
      await sleep(250);
    }
  };
  whenParsed(() => {
    if (!document.querySelector(`meta[name="${WIRE.DOWN_META}"]`)) return;
    S.reloading = true;
    (proxied ? up() : answer(Infinity)).then(() => posted ? location.replace(location.href.replace(/#.*$/, "")) : location.reload());
  });

  // ---- The page's errors, for the terminal that runs sigreload (a phone has no devtools). ----
  // Uncaught errors, unhandled rejections and console.error, from when this
  // script runs (after classic scripts above it in the page; before deferred
  // and module scripts), kept until the socket is open; at most CONSOLE_MOST a second.
  const CONSOLE_MOST = 20, queued = [], allowed = perSecond(CONSOLE_MOST);
  const tell = (kind, parts) => {
    if (!S.forwarded || !allowed(Date.now())) return;
    const m = JSON.stringify({ type: WIRE.CONSOLE, kind, path: location.pathname.slice(0, 200),
      text: parts.map(asText).join(" ").slice(0, 1000) });
    if (S.live && S.live.readyState === 1) S.live.send(m); else if (queued.length < CONSOLE_MOST) queued.push(m);
  };
  addEventListener("error", (e) => {
    if (e.error !== undefined || e.message) tell("error", [e.error || `${e.message} (${e.filename}:${e.lineno})`]);
  });
  addEventListener("unhandledrejection", (e) => tell("unhandled rejection", [e.reason]));
  const consoleError = console.error;
  console.error = function (...args) {
    try { tell("console.error", args); } catch {}
    return consoleError.apply(this, args);
  };

  // ---- Runtime errors on the page: a toast in a corner, drawn by overlay.js (--no-overlay: none). ----
  // Errors before the hello wait for it (at most TOAST_MOST).
  const TOAST_MOST = 20, toasts = [];
  const showToasts = () => {
    if (S.toasting && toasts.length) withOverlay(() => toasts.splice(0).forEach((t) => { try { status.toast(t); } catch {} }));
  };
  const toast = (t) => {
    if (S.reloading || S.toasting === false || toasts.length >= TOAST_MOST) return;
    toasts.push(t);
    showToasts();
  };
  const described = (x) => x instanceof Error ? `${x.name}: ${x.message}` : asText(x);
  addEventListener("error", (e) => {
    if (e.error === undefined && !e.message) return; // a resource that failed: not an error of the page
    const message = e.error instanceof Error ? described(e.error) : e.message || String(e.error);
    toast({ message, url: e.filename, line: e.lineno, column: e.colno, stack: e.error && e.error.stack });
  });
  addEventListener("unhandledrejection", (e) => {
    toast({ message: `Unhandled rejection: ${described(e.reason)}`, stack: e.reason && e.reason.stack });
  });
  // The editor: a file:line the toast names opens there (only pages of
  // sigreload's own server: it alone knows the file, and this run's token).
  if (proxied) {
    status.open = (path, line, column, source) => fetch(WIRE.OWN_TOKEN_PATH, { cache: "no-store" }).then((r) => r.json())
      .then(({ token }) => fetch(WIRE.OWN_OPEN_PATH, { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token, path, line, column, source }) })).catch(() => {});
  }

  // ---- Messages from the broadcaster. ----
  // What the page missed: the hello recalls the last broadcasts (when it holds
  // them all). One sent before this document was asked for is replayed as if
  // it had come (nothing here uses it: nothing happens); a later one this
  // document already shows.
  const asked = () => {
    const nav = performance.getEntriesByType("navigation")[0];
    return performance.timeOrigin + (nav ? nav.requestStart || nav.startTime : 0);
  };
  const catchUp = (m, since) => {
    const replay = toReplay(m, since, asked(), Date.now());
    if (!replay) return reload("missed while disconnected");
    for (const e of replay) act(changes(e, pageNow()));
  };
  const hello = (m, saved) => {
    S.forwarded = m.console !== false;
    S.following = m.follow === true;
    if (S.following) withOverlay(() => {}); // what compares the page before and after a reload
    S.toasting = m.overlay !== false;
    showToasts();
    if (Boolean(m.morph) !== Boolean(saved.morph)) save({ ...load(), morph: Boolean(m.morph) });
    if (m.morph) startMorphing(); else S.served = null; // (the copy, kept only for --morph)
    const missed = missedOnHello(m, saved, S.first);
    S.first = false;
    if ("root" in m) { S.watched = m.root; check(); }
    // A new broadcaster: an app's middleware looks for it once a second (presence.LOOK_EVERY),
    // and would answer this reload without the snippet, leaving the tab deaf: wait that long.
    const app = Boolean(me && me.hasAttribute(WIRE.APP_ATTRIBUTE));
    if (missed === "reload") return setTimeout(() => reload("missed while disconnected"), app ? 1100 : 0);
    if (missed === "replay") {
      const go = () => catchUp(m, saved.generation || 0);
      if (S.settled) go(); else S.owed = go; // once loaded: what it uses, and whether paths map to it
    }
    if (m.error) showError(m.error);
    else if (S.stopped) notice(STOPPED, STOPPED);
    else notice(m.notice);
  };
  const onmessage = (e) => {
    const m = parseMessage(e.data), s = load();
    save({ ...s, boot: m.boot, generation: recorded(m, s, S.reloading) });
    if (m.type === WIRE.HELLO) return hello(m, s);
    if (m.type !== WIRE.ERROR && m.type !== WIRE.FOLLOW) { hideError(); notice(m.notice); }
    if (m.notice && m.paths && !m.paths.length) closeSources(); // the app is down: let it restart
    act(decide(m, pageNow()));
  };

  // ---- The socket. ----
  // Tell the watcher what this page uses (its own path, same-origin files it
  // loaded): polling, it looks at those first.
  const using = (ws) => {
    const paths = [location.pathname, ...performance.getEntriesByType("resource")
      .map((r) => new URL(r.name)).filter((u) => u.host === location.host && !u.pathname.startsWith(WIRE.PREFIX))
      .map((u) => u.pathname)];
    ws.send(JSON.stringify({ type: WIRE.USING, paths: [...new Set(paths)].filter((p) => p.length < 200).slice(0, 16) }));
  };
  // What the status page (/_sigreload/) and --follow know of this page: its
  // URL and title once loaded, whether sigreload just reloaded it (the
  // broadcaster measures how long that took), when it last had the focus.
  const introduce = (ws) => {
    const s = load(), reloaded = Boolean(s.reloaded);
    if (reloaded) { delete s.reloaded; save(s); }
    ws.send(JSON.stringify({ type: WIRE.PAGE, url: location.href.slice(0, 2000), title: document.title.slice(0, 300),
      generation: s.generation, reloaded, focused: document.hasFocus() }));
  };
  addEventListener("focus", () => { if (S.live && S.live.readyState === 1) S.live.send(JSON.stringify({ type: WIRE.FOCUS })); });
  // Who answers: a socket is acted on (and told anything) only once it
  // proved the same as the first one this tab trusted (sigreload/secret.py):
  // another server on the port once sigreload stopped (another user's) gets
  // nothing, and this page never reloads into it.
  let madeNonce = null; // this tab's, made once (on the first connect: not before the page loaded)
  const tabNonce = () => madeNonce || (madeNonce = (load().trust || {}).nonce || [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0")).join(""));
  const trusted = (ws, proof) => {
    const known = load().trust, nonce = tabNonce();
    if (known && known.nonce === nonce ? proof !== known.proof : typeof proof !== "string") {
      if (!S.foreignSaid) say(`a server at ${url} that is not the sigreload this page came from answered: `
        + "it gets nothing from this page, which waits for its own");
      S.foreignSaid = true;
      S.keptState = null;
      ws.close();
      return false;
    }
    if (!known || known.nonce !== nonce) save({ ...load(), trust: { nonce, proof } });
    status.connected = true;
    S.delay = FIRST_DELAY; S.warned = false; S.foreignSaid = false; S.live = ws; // a stranger's socket keeps the backoff growing
    if (waiting.length) loadOverlay(); // an error before the socket proved itself
    queued.splice(0).forEach((m) => ws.send(m));
    const loaded = () => { using(ws); introduce(ws); };
    if (document.readyState === "complete") loaded(); else addEventListener("load", loaded);
    giveBack(proof);
    return true;
  };
  const connect = () => {
    const ws = new WebSocket(url);
    let proven = false;
    const held = [];
    ws.onopen = () => ws.send(JSON.stringify({ type: WIRE.CHALLENGE, nonce: tabNonce() }));
    ws.onmessage = (e) => {
      if (proven) return onmessage(e);
      let m = null;
      try { m = JSON.parse(e.data); } catch {}
      if (!m || m.type !== WIRE.PROOF) { if (held.length < 16) held.push(e); return; }
      proven = trusted(ws, m.proof);
      if (proven) held.splice(0).forEach(onmessage);
    };
    ws.onclose = () => {
      status.connected = false;
      if (S.live === ws) S.live = null;
      if (S.reloading) return;
      if (!S.warned && S.first) say(`cannot reach ${url}; retrying (is the broadcaster running?)`);
      S.warned = true;
      setTimeout(connect, S.delay);
      S.delay = nextDelay(S.delay);
    };
  };
  later.push(connect);
})();
