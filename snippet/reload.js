// sigreload: live reload. Paste this inside a script element, or include it with
// one line: a script element with src="http://127.0.0.1:5678/reload.js".
(() => {
  // Included twice (pasted, and inserted by a server): one copy runs. What
  // it holds says whether its socket is open (for tools and tests).
  const ONCE = Symbol.for("sigreload");
  if (window[ONCE]) return;
  const status = window[ONCE] = { connected: false };
  // Included from the broadcaster (another origin): talk to where it came from.
  // From /_sigreload/ on this page's origin (sigreload's proxy or file server,
  // maybe through a forwarded port): its socket is there.
  const me = document.currentScript, at = me && me.src ? new URL(me.src) : null;
  const proxied = Boolean(at && at.origin === location.origin && at.pathname.startsWith("/_sigreload/"));
  const src = at && at.origin !== location.origin ? at : null;
  const secure = (src || location).protocol === "https:";
  const host = (src ? src.hostname : location.hostname) || "127.0.0.1";
  const port = (me && me.dataset.port) || (src ? src.port : "") || "5678";
  const url = proxied ? `${secure ? "wss" : "ws"}://${location.host}/_sigreload/socket`
    : `${secure ? "wss" : "ws"}://${host}:${port}/sigreload`;
  const KEY = "sigreload", say = (m) => console.info(`sigreload: ${m}`);
  // Inserted first in <head>, the snippet runs before the rest of the page is
  // parsed: what looks at the page waits for it (and no longer than that:
  // "interactive" comes before deferred and module scripts run).
  const whenParsed = (f) => {
    if (document.readyState !== "loading") f();
    else document.addEventListener("readystatechange", f, { once: true });
  };
  const load = () => { try { return JSON.parse(sessionStorage.getItem(KEY)) || {}; } catch { return {}; } };
  const save = (s) => { try { sessionStorage.setItem(KEY, JSON.stringify(s)); } catch {} };
  let first = true, delay = 200, reloading = false, warned = false, overlay = null;

  // A full reload keeps the scroll position, and what the person was doing:
  // typed and chosen values, the focused field with its caret, open <details>,
  // the scroll of inner panels. Only after a reload sigreload caused (saved
  // just before it, used once), only where the same field still exists (same
  // id, or same name in the same form, same type); never passwords, files,
  // hidden or one-time fields, card fields (autocomplete="cc-..."), fields
  // named like a secret (pin, cvv, token, api_key... in name or id), or
  // autocomplete="off"; data-sigreload-keep="off" on an element (or <html>) opts it out.
  const OFF = '[data-sigreload-keep="off"]';
  const SKIPPED = /^(password|file|hidden|submit|button|reset|image)$/;
  // A password shown as text (a "show" button sets type=text) is still one:
  // every field that ever was type=password, or says it holds one, or a code.
  const SECRET = /(^|\s)(current-password|new-password|one-time-code|off|cc-[a-z-]+)(\s|$)/;
  // Names and ids as words ("cardPin", "card-cvv", "api_key"; not "shipping" or "secretary").
  const SECRET_NAME = /(^|[^a-z])(pin|cvv2?|cvc2?|csc|passphrase|secrets?|tokens?|api[-_ ]?keys?)([^a-z]|$)/;
  const words = (el) => `${el.name || ""} ${el.id || ""}`.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  const wasPassword = new WeakSet();
  const markPasswords = () => document.querySelectorAll('input[type="password"]').forEach((el) => wasPassword.add(el));
  try {
    new MutationObserver((records) => records.forEach((r) => {
      if (r.oldValue && r.oldValue.toLowerCase() === "password") wasPassword.add(r.target);
    })).observe(document, { subtree: true, attributes: true, attributeFilter: ["type"], attributeOldValue: true });
  } catch {}
  const kept = load().scroll;
  const keyOf = (el) => {
    if (el.id) return `#${el.id}`;
    const form = el.form || el.closest("form");
    const where = form ? (form.id ? `form#${form.id}` : `form${[...document.forms].indexOf(form)}`) : "";
    if (el.name) return `${where} ${el.localName}[name=${el.name}]${el.type === "radio" ? `=${el.value}` : ""}`;
    const same = [...document.querySelectorAll(el.localName)].filter((x) => !x.id && !x.name);
    return `${el.localName}@${same.indexOf(el)}`;
  };
  const kinds = (el) => el.isContentEditable && el.hasAttribute("contenteditable") ? "editable" : el.type || el.localName;
  const fields = () => [...document.querySelectorAll("input, textarea, select, [contenteditable]")].filter((el) => {
    const auto = (el.getAttribute("autocomplete") || (el.form && el.form.getAttribute("autocomplete")) || "").toLowerCase();
    return !el.closest(OFF) && !SKIPPED.test(el.type || "") && !SECRET.test(auto) && !wasPassword.has(el)
      && !/passw|passwd|pwd/i.test(`${el.name || ""} ${el.id || ""}`) && !SECRET_NAME.test(words(el))
      && (!el.isContentEditable || el.hasAttribute("contenteditable"));
  });
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
      let range = null;
      try { range = [active.selectionStart, active.selectionEnd, active.selectionDirection]; } catch {}
      state.focus = { key: keyOf(active), range };
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
    if (focus) {
      focus.focus({ preventScroll: true });
      const range = state.focus.range;
      try { if (range && range[0] !== null) focus.setSelectionRange(...range); } catch {} // not every type has a caret
    }
  };
  // Typed state comes back only from the same sigreload: once this page's
  // socket proved what the one that saved it proved (see trusted()).
  let keptState = null;
  if (kept && kept.url === location.href) {
    const s = load(); delete s.scroll; save(s);
    keptState = kept.state && kept.proof ? kept : null;
    addEventListener("load", () => scrollTo(kept.x, kept.y));
  }
  const giveBack = (proof) => {
    const k = keptState;
    keptState = null;
    if (!k || k.proof !== proof) return;
    if (document.readyState === "complete") restore(k.state);
    else addEventListener("load", () => restore(k.state));
  };

  // --follow (the hello says): a saved page that no tab shows opens in the
  // tab focused last (the broadcaster picks it: a "follow" message); after a
  // reload or morph sigreload caused, the first element that changed is
  // scrolled into view, unless the person scrolled meanwhile, and outlined
  // for a moment (overlay.js compares the page before and after).
  let following = false;
  status.personScrolled = false;
  const NAV_KEYS = /^(Page(Up|Down)|Arrow(Up|Down)|Home|End| )$/, scrolled = () => { status.personScrolled = true; };
  addEventListener("wheel", scrolled, { capture: true, passive: true });
  addEventListener("touchmove", scrolled, { capture: true, passive: true });
  addEventListener("keydown", (e) => { if (NAV_KEYS.test(e.key)) scrolled(); }, { capture: true, passive: true });
  const followMarks = () => { // the browser's own scroll restoration would come after ours: off once
    if (!following || !status.marks) return {};
    try { history.scrollRestoration = "manual"; } catch {}
    return { follow: { url: location.href, marks: status.marks() } };
  };
  const followed = load().follow;
  if (followed) {
    const s = load(); delete s.follow; save(s);
    if (followed.url === location.href) {
      addEventListener("load", () => withOverlay(() => {
        status.showChanged(status.firstChanged(followed.marks));
        // (after the browser's own restoration time: it reads the setting after load)
        setTimeout(() => { try { history.scrollRestoration = "auto"; } catch {} }, 1000);
      }));
    }
  }
  const goTo = (path) => { // a page no tab shows: this tab (one navigation per save)
    if (reloading || typeof path !== "string") return;
    let url;
    try { url = new URL(path.replace(/(^|\/)index\.html?$/, "$1"), location.origin); } catch { return; }
    if (url.origin !== location.origin) return; // "/\\host\\x", "//host": never another site
    reloading = true;
    save({ ...load(), reloaded: true });
    say(`following ${path}`);
    location.assign(url.href);
  };

  // Served by sigreload's own server? It marks every response no-cache (no
  // refetch needed) and names its folder, so changed paths map to this page:
  // Server-Timing: sigreload;desc=ID, read from this page's own navigation
  // entry (no request: an app runs its view once per page load). Browsers
  // show it to secure contexts only (loopback pages are); elsewhere a HEAD.
  let ours = false, root = null, settled = false, owed = null; // owed: a catch-up waiting to know the page
  const named = (id) => {
    ours = Boolean(id); root = id || null; settled = true; check();
    if (owed) { const go = owed; owed = null; go(); }
  };
  addEventListener("load", () => {
    const nav = performance.getEntriesByType("navigation")[0];
    if (window.isSecureContext && nav && nav.serverTiming) {
      const mark = nav.serverTiming.find((t) => t.name === "sigreload");
      named(mark ? mark.description : null);
    } else {
      fetch(location.href, { method: "HEAD", cache: "no-store" })
        .then((r) => named(/^sigreload/.test(r.headers.get("server") || "") && r.headers.get("x-sigreload-root")),
          () => named(null));
    }
  });

  // A broadcaster that no watcher signals (still so 2.5 s later: one that
  // starts with it finds it within a second), or whose watcher watches
  // another folder (an old sigreload left running, a pasted line naming
  // another port): say so in the console, once. A watcher that stops
  // (killed, or it could not leave a failed build's output) is said on the
  // page: edits no longer show.
  const STOPPED = "The watcher stopped: saving a file no longer reloads this page. "
    + "Start it again (sigreload, r or sigreload-watch).";
  let watched, told = false, stopped = false, later = null;
  const check = () => {
    if (watched) save({ ...load(), watcher: true });
    stopped = watched === null && Boolean(load().watcher);
    if (stopped || told || watched === undefined || (watched && !(ours && root))) return;
    if (watched === null) {
      clearTimeout(later);
      later = setTimeout(() => {
        if (watched !== null || told || stopped) return;
        told = true;
        say(`no watcher signals the broadcaster at ${url}: only a signal (kill -USR1, sigreload reload) `
          + "reloads this page. If sigreload runs with another --ws-port, this page's snippet names the wrong one.");
      }, 2500);
      return;
    }
    told = true;
    if (!watched.includes(root)) {
      say(`the broadcaster at ${url} watches another folder than this page's: your edits will not reload it. `
        + "An old sigreload still running? Stop it, or point this page's snippet at the right port.");
    }
  };

  // Fetch what the page loaded, bypassing the cache, so the reloaded page
  // shows every changed file whatever the server's cache headers say (not
  // what failed, like a missing favicon: a slow app answers that 404 slowly).
  const refetch = () => ours ? Promise.resolve() : Promise.all(performance.getEntriesByType("resource")
    .filter((r) => /^(script|link|css|img|image|other)$/.test(r.initiatorType) && !(r.responseStatus >= 400)
      && new URL(r.name).host === location.host && !/\/_sigreload\//.test(r.name))
    .map((r) => fetch(r.name, { cache: "reload" }).then((b) => b.blob()).catch(() => {})));

  // An app server may be restarting: fetch the page (fresh) until it answers
  // (not with the proxy's "down" page), so a reload never lands on a closed port.
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const answer = async (until) => {
    for (;;) {
      try { // an app that accepts but never answers (uvicorn after an import error): given up on, said
        const wait = Math.max(1000, Math.min(until - Date.now(), 10000));
        const r = await fetch(location.href, { cache: "reload", signal: AbortSignal.timeout && AbortSignal.timeout(wait) });
        if (!r.headers.get("x-sigreload-down")) return r;
      } catch {}
      if (Date.now() > until) return null;
      await sleep(100);
    }
  };

  // An edit the app may answer from a template cache for a while (Django's cached
  // loader): not code (it restarts the app), not a static file (served as it is).
  const ASSET = /\.(css|m?js|map|png|jpe?g|gif|svg|webp|avif|ico|woff2?|ttf|otf)$/i;
  const templates = (paths) => Boolean(paths && paths.length && !paths.some((p) => p.endsWith(".py"))
    && !paths.every((p) => ASSET.test(p)));

  const reload = (why, paths) => {
    if (reloading) return;
    reloading = true;
    say(`reload (${why})`);
    // Behind sigreload's proxy, after an edit that restarts nothing (a template):
    // the app may answer from its cache until its reloader's next tick (Django),
    // so the proxy asks again until the page is not the one it served before.
    if (proxied && !ours && templates(paths)) document.cookie = "sigreload-edit=1; path=/; max-age=10; samesite=strict";
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
      location.reload(true);
    };
    if (ours) return go();
    // Behind sigreload's proxy (it holds requests while the app restarts), or
    // from a file, the page needs no check; else it is checked while files are refetched.
    const check = !proxied && /^https?:$/.test(location.protocol);
    Promise.all([check && answer(Date.now() + 10000), Promise.race([refetch(), sleep(1000)])]).then(([r]) => {
      if (!check) return go();
      if (!r) { // the app is down: say so here, reload when it is back
        cover("pre", `sigreload: ${location.origin} does not answer (restarting, or stopped `
          + "by an error: see its terminal).\nThis page reloads by itself once it answers.");
        return answer(Infinity).then(go);
      }
      if (r.status >= 500) { // its error page would carry no snippet: show it here, as text
        reloading = false; // unless it says it is HTML: a text/plain error that reflects a query never runs
        const html = /^\s*text\/html\s*(;|$)/i.test(r.headers.get("content-type") || "");
        return r.text().then((t) => cover(html ? "iframe" : "pre", t), () => {});
      }
      go();
    }, go);
  };

  const fresh = (u) => { const x = new URL(u); x.searchParams.set("sigreload", Date.now()); return x.href; };

  // Swap stylesheets for fresh copies; an old one goes only once its new one loaded.
  const css = (links = document.querySelectorAll('link[rel~="stylesheet"][href]')) => {
    for (const old of links) {
      const next = old.cloneNode();
      next.href = fresh(old.href);
      next.onload = () => old.remove();
      next.onerror = () => next.remove();
      old.after(next);
    }
  };

  // What this page uses, as paths on its own origin, decides: stay, swap or reload.
  const pathOf = (u) => {
    try { const x = new URL(u, location.href); return x.origin === location.origin ? decodeURIComponent(x.pathname) : null; } catch { return null; }
  };
  const pagePaths = () => {
    const p = decodeURIComponent(location.pathname);
    return p.endsWith("/") ? [p, `${p}index.html`] : /\.[^/]*$/.test(p) ? [p] : [p, `${p}/index.html`, "/index.html"];
  };
  // --morph: a change to the page's HTML is applied in place (idiomorph, loaded
  // only then): the new page is fetched and the open one morphed into it, its
  // JavaScript state, typed input, focus and scroll kept. Its scripts do not
  // run again: a changed script element, an error answer, a morph that throws
  // and a page with data-sigreload-morph="off" reload instead.
  let morphing = false, source = null, served = null; // source: the page's HTML as served, parsed (the last morph's)
  whenParsed(() => { // the whole page, as before deferred and module scripts ran
    served = document.getElementsByTagName("*").length < 20000 ? document.documentElement.outerHTML : null;
  });
  const SCRIPTS = /\.(m?js|cjs|jsx?|tsx?)$/;
  const parse = (text) => new DOMParser().parseFromString(text, "text/html");
  const own = (el) => /(^|\/)reload\.js(\?|$)|\/_sigreload\//.test(el.getAttribute("src") || "")
    || el.textContent.includes('Symbol.for("sigreload")');
  const scripts = (doc) => [...doc.querySelectorAll("script")].filter((el) => !own(el))
    .map((el) => el.hasAttribute("src") ? `src ${el.getAttribute("src")} ${el.type}` : `${el.type} ${el.textContent}`).join("\n");
  const startMorphing = () => {
    if (morphing) return;
    morphing = true;
    if (!source) source = parse(served || document.documentElement.outerHTML); // as before deferred scripts ran
    if (window.Idiomorph) return;
    const lib = document.createElement("script");
    lib.src = proxied ? "/_sigreload/idiomorph.js" : `${secure ? "https" : "http"}://${host}:${port}/idiomorph.js`;
    document.head.append(lib);
  };
  const morph = async (why, paths) => {
    if (reloading) return;
    if (document.documentElement.matches('[data-sigreload-morph="off"]') || !window.Idiomorph) return reload(why, paths);
    reloading = true;
    let fallback = "";
    try {
      if (proxied && !ours && templates(paths)) document.cookie = "sigreload-edit=1; path=/; max-age=10; samesite=strict";
      const r = await fetch(location.href, { cache: "reload", headers: { Accept: "text/html" } });
      if (!r.ok || r.headers.get("x-sigreload-down")) fallback = `the new answer is ${r.status}`;
      const doc = fallback ? null : parse(await r.text());
      if (doc && scripts(doc) !== scripts(source)) fallback = "a script element changed";
      if (!fallback) {
        const before = source;
        const unchanged = (el) => el.id && before.getElementById(el.id) && doc.getElementById(el.id)
          && before.getElementById(el.id).outerHTML === doc.getElementById(el.id).outerHTML;
        const active = document.activeElement, focusId = active && active.id;
        let range = null;
        try { range = [active.selectionStart, active.selectionEnd, active.selectionDirection]; } catch {}
        const was = following && status.marks ? status.marks() : null;
        await Idiomorph.morph(document.documentElement, doc.documentElement, {
          head: { style: "merge" },
          restoreFocus: false, // below, without scrolling the field into view
          callbacks: {
            beforeNodeMorphed: (old) => !(old.nodeType === 1 && unchanged(old)), // a widget's container: left as it is
            beforeAttributeUpdated: (attr, el) => !(/^(value|checked|selected)$/.test(attr)
              && /^(input|textarea|option|select)$/.test(el.localName)), // what was typed stays
            beforeNodeRemoved: (node) => node.localName !== "sigreload-error" && node.localName !== "sigreload-notice",
          },
        });
        const again = active && active.isConnected ? active : focusId && document.getElementById(focusId);
        if (again && again !== document.body && document.activeElement !== again) {
          again.focus({ preventScroll: true });
          try { if (range && range[0] !== null) again.setSelectionRange(...range); } catch {}
        }
        source = doc;
        if (was) status.showChanged(status.firstChanged(was));
        say(`morphed (${why})`);
      }
    } catch (e) {
      fallback = `the morph failed: ${e}`;
    }
    reloading = false;
    if (fallback) { say(`reload instead of a morph: ${fallback}`); reload(why, paths); }
  };

  const update = (m) => {
    const html = m.paths && !m.paths.some((p) => SCRIPTS.test(p));
    if (!m.paths || !ours || m.root !== root) { // no paths, or a server it cannot map: everything
      if (m.type === "css") { say("stylesheets refreshed"); return css(); }
      if (morphing && html && !ours) return morph(m.paths.join(", "), m.paths); // behind the proxy: the app's new answer
      return reload(m.paths ? m.paths.join(", ") : "signal", m.paths);
    }
    const changed = new Set(m.paths), list = m.paths.join(", ");
    if (pagePaths().some((p) => changed.has(p))) {
      if (!morphing || !html) return reload(list);
      morph(list, m.paths);
      changed.forEach((p) => { if (pagePaths().includes(p)) changed.delete(p); });
      if (!changed.size) return;
    }
    const sheets = [...document.querySelectorAll('link[rel~="stylesheet"][href]')].filter((l) => changed.has(pathOf(l.href)));
    const images = [...document.images].filter((i) => changed.has(pathOf(i.currentSrc || i.src)));
    const handled = new Set([...sheets.map((l) => pathOf(l.href)), ...images.map((i) => pathOf(i.currentSrc || i.src))]);
    const other = performance.getEntriesByType("resource").map((r) => pathOf(r.name))
      .filter((p) => p && changed.has(p) && !handled.has(p));
    if (other.length) { // a script, a font, data, an @import-ed sheet
      if (!other.every((p) => p.endsWith(".css"))) return reload(other.join(", "));
      say(`stylesheets refreshed (${list})`);
      return css();
    }
    if (!sheets.length && !images.length) return say(`nothing here uses ${list}`);
    say(`swapped ${[...handled].join(", ")}`);
    css(sheets);
    for (const img of images) img.src = fresh(img.currentSrc || img.src);
  };

  // Drawn over the page: a failed build's output, the app's error page, "down".
  const cover = (tag, text) => {
    hideError();
    overlay = document.createElement("sigreload-error");
    const shadow = overlay.attachShadow({ mode: "open" });
    shadow.innerHTML = "<style>*{position:fixed;inset:0;z-index:2147483647;margin:0;padding:2em;border:0;"
      + "width:100%;height:100%;box-sizing:border-box;overflow:auto;background:rgba(25,0,0,.93);"
      + "color:#fdd;font:13px/1.4 monospace;white-space:pre-wrap}iframe{padding:0;background:#fff}</style>";
    const fill = document.createElement(tag);
    if (tag === "iframe") fill.setAttribute("sandbox", ""); // shown, never run: no script, its own origin
    fill[tag === "iframe" ? "srcdoc" : "textContent"] = text;
    shadow.append(fill);
    document.documentElement.append(overlay);
  };
  const showError = (text) => {
    cover("pre", `Build failed\n\n${text}`);
    say("build failed (shown on the page)");
    const shown = overlay; // the files it names open in the editor (overlay.js)
    if (status.open) withOverlay(() => { if (shown === overlay) status.linkFiles(shown.shadowRoot.querySelector("pre")); });
  };
  const hideError = () => { if (overlay) overlay.remove(); overlay = null; };

  // A good build's warning (its error lines): a notice in a corner, closed by a
  // click, and not shown again for the same text in this tab.
  let box = null;
  const notice = (text, said = "the build reported errors (shown on the page)") => {
    if (box) box.remove();
    box = null;
    if (!text || load().closed === text) return;
    box = document.createElement("sigreload-notice");
    const shadow = box.attachShadow({ mode: "open" });
    shadow.innerHTML = "<style>div{position:fixed;right:1em;bottom:1em;z-index:2147483647;max-width:min(60em,90vw);"
      + "max-height:40vh;overflow:auto;margin:0;padding:1em 2.5em 1em 1em;box-sizing:border-box;background:#3b3000;"
      + "color:#ffe9a0;font:12px/1.4 monospace;white-space:pre-wrap;box-shadow:0 2px 8px #0008}"
      + "button{position:absolute;top:.3em;right:.4em;border:0;background:none;color:inherit;font-size:18px;"
      + "cursor:pointer}</style><div><button title=\"close\" aria-label=\"close\">\u00d7</button><pre></pre></div>";
    shadow.querySelector("pre").textContent = text;
    shadow.querySelector("button").onclick = () => { save({ ...load(), closed: text }); box.remove(); box = null; };
    document.documentElement.append(box);
    say(said);
  };

  // The proxy's page for an app that does not answer: back to the app once it
  // does. The proxy says whether it is up (always a 200: a 502 a poll would be
  // a console line each time).
  const up = async () => {
    for (;;) {
      try { if ((await (await fetch("/_sigreload/app", { cache: "no-store" })).json()).up) return; } catch {}
      await sleep(250);
    }
  };
  whenParsed(() => {
    if (!document.querySelector('meta[name="sigreload-down"]')) return;
    reloading = true;
    (proxied ? up() : answer(Infinity)).then(() => location.reload());
  });

  // What the page missed: the hello recalls the last broadcasts (when it holds
  // them all). One sent before this document was asked for is replayed as if
  // it had come (nothing here uses it: nothing happens); a later one this
  // document already shows. The broadcaster's clock is ours plus `offset`.
  const asked = () => {
    const nav = performance.getEntriesByType("navigation")[0];
    return performance.timeOrigin + (nav ? nav.requestStart || nav.startTime : 0);
  };
  const catchUp = (m, since) => {
    const recent = (m.recent || []).filter((e) => e.generation > since);
    if (recent.length < m.generation - since) return reload("missed while disconnected");
    const offset = m.now - Date.now(); // less the hello's way here: errs towards a replay
    for (const e of recent) if (e.type !== "error" && asked() + offset <= e.at) update(e);
  };

  const onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch { m = { type: String(e.data) }; }
    const s = load(), known = s.boot === m.boot;
    // While it reloads, a broadcast stays unseen: the new page replays it unless it came after it.
    const kept = known && reloading && m.type !== "hello" ? s.generation : m.generation;
    save({ ...s, boot: m.boot, generation: kept });
    if (m.type === "hello") {
      forwarded = m.console !== false;
      following = m.follow === true;
      if (following) withOverlay(() => {}); // what compares the page before and after a reload
      toasting = m.overlay !== false;
      showToasts();
      if (m.morph) startMorphing();
      // Away (reloading, reconnecting) while the same run broadcast (a newer
      // generation): replay what concerns this page; or the broadcaster
      // restarted while this page was open: reload once.
      const missed = known ? m.generation > (s.generation || 0) : !first && Boolean(s.boot);
      first = false;
      if ("root" in m) { watched = m.root; check(); }
      if (missed && !known) return reload("missed while disconnected");
      if (missed) {
        const go = () => catchUp(m, s.generation || 0);
        if (settled) go(); else owed = go; // once loaded: what it uses, and whether paths map to it
      }
      if (m.error) showError(m.error);
      else if (stopped) notice(STOPPED, STOPPED);
      else notice(m.notice);
    } else if (m.type === "error") showError(m.text);
    else if (m.type === "follow") { hideError(); goTo(m.path); }
    else { hideError(); notice(m.notice); update(m); }
  };

  // Tell the watcher what this page uses (its own path, same-origin files it
  // loaded): polling, it looks at those first.
  const using = (ws) => {
    const paths = [location.pathname, ...performance.getEntriesByType("resource")
      .map((r) => new URL(r.name)).filter((u) => u.host === location.host && !u.pathname.startsWith("/_sigreload/"))
      .map((u) => u.pathname)];
    ws.send(JSON.stringify({ type: "using", paths: [...new Set(paths)].filter((p) => p.length < 200).slice(0, 16) }));
  };

  // The page's errors, for the terminal that runs sigreload (a phone has no
  // devtools): uncaught errors, unhandled rejections and console.error, from
  // when this script runs (after classic scripts above it in the page; before
  // deferred and module scripts), kept until the socket is open; at most
  // CONSOLE_MOST a second.
  const CONSOLE_MOST = 20, queued = [];
  let live = null, second = 0, inSecond = 0, forwarded = true; // the hello says whether it is wanted
  const text = (x) => {
    if (x instanceof Error) return x.stack && x.stack.includes(x.message) ? x.stack : `${x.name}: ${x.message}\n${x.stack || ""}`;
    if (typeof x === "string") return x;
    try { return JSON.stringify(x); } catch { return String(x); }
  };
  const tell = (kind, parts) => {
    if (!forwarded) return;
    const now = Math.floor(Date.now() / 1000);
    if (now !== second) { second = now; inSecond = 0; }
    if (++inSecond > CONSOLE_MOST) return;
    const m = JSON.stringify({ type: "console", kind, path: location.pathname.slice(0, 200),
      text: parts.map(text).join(" ").slice(0, 1000) });
    if (live && live.readyState === 1) live.send(m); else if (queued.length < CONSOLE_MOST) queued.push(m);
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

  // Runtime errors on the page (--no-overlay: the hello says overlay: false):
  // a toast in a corner, drawn by overlay.js, loaded on the first error only.
  // Errors before the hello wait for it (at most TOAST_MOST).
  const TOAST_MOST = 20, toasts = [];
  let toasting; // undefined until the hello says
  const waiting = [];
  const withOverlay = (f) => { // overlay.js, loaded once, when first needed
    if (status.toast) return f();
    if (waiting.push(f) > 1) return;
    const lib = document.createElement("script");
    lib.src = proxied ? "/_sigreload/overlay.js" : `${secure ? "https" : "http"}://${host}:${port}/overlay.js`;
    if (me && me.nonce) lib.nonce = me.nonce;
    lib.onload = () => waiting.splice(0).forEach((g) => { try { g(); } catch {} });
    document.documentElement.append(lib);
  };
  const showToasts = () => {
    if (toasting && toasts.length) withOverlay(() => toasts.splice(0).forEach((t) => { try { status.toast(t); } catch {} }));
  };
  const toast = (t) => {
    if (reloading || toasting === false || toasts.length >= TOAST_MOST) return;
    toasts.push(t);
    showToasts();
  };
  const described = (x) => x instanceof Error ? `${x.name}: ${x.message}` : text(x);
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
    status.open = (path, line, column, source) => fetch("/_sigreload/token", { cache: "no-store" }).then((r) => r.json())
      .then(({ token }) => fetch("/_sigreload/open", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token, path, line, column, source }) })).catch(() => {});
  }

  // What the status page (/_sigreload/) and --follow know of this page: its
  // URL and title once loaded, whether sigreload just reloaded it (the
  // broadcaster measures how long that took), when it last had the focus.
  const introduce = (ws) => {
    const s = load(), reloaded = Boolean(s.reloaded);
    if (reloaded) { delete s.reloaded; save(s); }
    ws.send(JSON.stringify({ type: "page", url: location.href.slice(0, 2000), title: document.title.slice(0, 300),
      generation: s.generation, reloaded, focused: document.hasFocus() }));
  };
  addEventListener("focus", () => { if (live && live.readyState === 1) live.send('{"type":"focus"}'); });

  // Who answers: a socket is acted on (and told anything) only once it
  // proved the same as the first one this tab trusted (sigreload/secret.py):
  // another server on the port once sigreload stopped (another user's) gets
  // nothing, and this page never reloads into it.
  const nonce = (load().trust || {}).nonce || [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  let foreignSaid = false;
  const trusted = (ws, proof) => {
    const known = load().trust;
    if (known && known.nonce === nonce ? proof !== known.proof : typeof proof !== "string") {
      if (!foreignSaid) say(`a server at ${url} that is not the sigreload this page came from answered: `
        + "it gets nothing from this page, which waits for its own");
      foreignSaid = true;
      keptState = null;
      ws.close();
      return false;
    }
    if (!known || known.nonce !== nonce) save({ ...load(), trust: { nonce, proof } });
    status.connected = true;
    delay = 200; warned = false; foreignSaid = false; live = ws; // a stranger's socket keeps the backoff growing
    queued.splice(0).forEach((m) => ws.send(m));
    const loaded = () => { using(ws); introduce(ws); };
    if (document.readyState === "complete") loaded(); else addEventListener("load", loaded);
    giveBack(proof);
    return true;
  };

  const connect = () => {
    const ws = new WebSocket(url);
    let proven = false, held = [];
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "challenge", nonce }));
    };
    ws.onmessage = (e) => {
      if (proven) return onmessage(e);
      let m = null;
      try { m = JSON.parse(e.data); } catch {}
      if (!m || m.type !== "proof") { if (held.length < 16) held.push(e); return; }
      proven = trusted(ws, m.proof);
      if (proven) held.splice(0).forEach(onmessage);
    };
    ws.onclose = () => {
      status.connected = false;
      if (live === ws) live = null;
      if (reloading) return;
      if (!warned && first) say(`cannot reach ${url}; retrying (is the broadcaster running?)`);
      warned = true;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 5000);
    };
  };
  connect();
})();
