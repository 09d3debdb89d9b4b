// sigreload: what it draws on a page beyond reloading it, loaded by reload.js
// when first needed (most pages never need it): the runtime-error toast, on a
// page's first uncaught error or unhandled rejection; the editor links in a
// failed build's output; --follow's look at what changed.
//
// The toast: a notice in the bottom-left corner, in an open shadow root (the page's CSS
// neither styles it nor is styled by it): the message, file:line:column as
// the page's own URL path, the first frames of the stack. It never takes
// focus, never covers the middle of the page, keeps the last MOST errors
// with a count of all, closes on a click or Escape, and is gone after the
// next reload (it lives in the page's DOM only).
(() => {
  const status = window[Symbol.for("sigreload")];
  if (!status || status.toast) return;
  const MOST = 3, FRAMES = 3;
  let host = null, list = null, count = null, errors = [], total = 0;

  // "f@http://h/a.js:3:5" (Firefox, WebKit), "    at f (http://h/a.js:3:5)" (Chromium)
  const FRAME = /^\s*(?:at\s+)?(?:(.*?)\s*[@(])?\(?(\S+?):(\d+):(\d+)\)?\s*$/;
  const frames = (stack) => String(stack || "").split("\n").map((l) => FRAME.exec(l)).filter(Boolean)
    .map(([, name, url, line, column]) => ({ name: (name || "").replace(/^async\*?\s*/, ""), url, line: +line, column: +column }));
  // A URL as the page names it: its path on this origin ("index.html" for "/"), else whole.
  const shown = (url) => {
    try {
      const u = new URL(url, location.href);
      if (u.origin !== location.origin) return { text: u.href, path: null };
      const path = decodeURIComponent(u.pathname);
      return { text: (path.endsWith("/") ? `${path}index.html` : path).slice(1), path };
    } catch { return { text: String(url), path: null }; }
  };

  const STYLE = ":host{all:initial}"
    + ".box{position:fixed;left:12px;bottom:12px;z-index:2147483647;box-sizing:border-box;"
    + "max-width:min(36em,calc(100vw - 24px));max-height:40vh;overflow:auto;padding:8px 30px 8px 10px;"
    + "background:#2a0d0d;color:#fde2e2;border-left:4px solid #ef4444;border-radius:4px;"
    + "box-shadow:0 2px 10px #0009;font:12px/1.45 ui-monospace,Menlo,Consolas,monospace;cursor:default;"
    + "text-align:left;direction:ltr}"
    + ".close{position:absolute;top:2px;right:8px;font-size:18px;line-height:1;cursor:pointer;color:#fca5a5}"
    + ".count{color:#fca5a5;font-weight:bold;margin-bottom:2px}"
    + ".err+.err{border-top:1px solid #fff2;margin-top:6px;padding-top:6px}"
    + ".msg{white-space:pre-wrap;word-break:break-word;font-weight:bold}"
    + ".times{color:#fca5a5;font-weight:normal}"
    + ".at{color:#93c5fd}.at[data-path]{text-decoration:underline;cursor:pointer}"
    + ".frames{white-space:pre;opacity:.75;overflow:hidden;text-overflow:ellipsis}";

  const close = () => {
    if (host) host.remove();
    host = list = count = null;
    errors = []; total = 0;
    removeEventListener("keydown", escape, true);
  };
  const escape = (e) => { if (e.key === "Escape") close(); };

  const place = (where) => { // "file:line:column", a link to the editor where it can open it
    const at = document.createElement("span");
    at.className = "at";
    const { text, path } = shown(where.url);
    at.textContent = `${text}:${where.line}${where.column ? `:${where.column}` : ""}`;
    if (path !== null && status.open) {
      at.dataset.path = path;
      at.title = "open in your editor";
      at.onclick = (e) => { e.stopPropagation(); status.open(path, where.line, where.column); };
    }
    return at;
  };

  const draw = () => {
    list.textContent = "";
    count.textContent = total > 1 ? `${total} errors` : "";
    for (const err of errors) {
      const div = document.createElement("div");
      div.className = "err";
      const msg = document.createElement("div");
      msg.className = "msg";
      msg.textContent = err.message;
      if (err.times > 1) msg.append(Object.assign(document.createElement("span"), { className: "times", textContent: ` ×${err.times}` }));
      div.append(msg);
      if (err.at) div.append(place(err.at));
      const rest = err.frames.slice(0, FRAMES);
      if (rest.length) {
        const pre = document.createElement("div");
        pre.className = "frames";
        for (const f of rest) {
          const row = document.createElement("div");
          row.append(`  ${f.name || "(anonymous)"} `, place(f));
          pre.append(row);
        }
        div.append(pre);
      }
      list.append(div);
    }
  };

  const open = () => {
    host = document.createElement("sigreload-toast");
    const shadow = host.attachShadow({ mode: "open" });
    shadow.innerHTML = `<style>${STYLE}</style><div class="box" role="status" aria-live="polite">`
      + '<span class="close" title="close (Escape)" aria-label="close">\u00d7</span><div class="count"></div><div class="list"></div></div>';
    list = shadow.querySelector(".list");
    count = shadow.querySelector(".count");
    // Never takes focus: a press on it leaves the focus (and the caret) where it was.
    shadow.querySelector(".box").addEventListener("mousedown", (e) => e.preventDefault());
    shadow.querySelector(".box").addEventListener("click", close);
    addEventListener("keydown", escape, true);
    document.documentElement.append(host);
  };

  // One error: { message, url, line, column, stack } (url: where it was thrown, if known).
  status.toast = (e) => {
    const stack = frames(e.stack);
    const at = e.url ? { url: e.url, line: e.line || 0, column: e.column || 0 } : stack[0] || null;
    const key = `${e.message}\n${at ? `${at.url}:${at.line}:${at.column}` : ""}`;
    if (!host || !host.isConnected) { close(); open(); }
    total += 1;
    const same = errors.find((x) => x.key === key);
    if (same) same.times += 1;
    else errors = [{ key, message: e.message, at, frames: stack, times: 1 }, ...errors].slice(0, MOST);
    draw();
  };
  status.toastClose = close;

  // --follow: the first element that changed, by a hash of each element's tag,
  // attributes and own text in document order (the first FOLLOW_MOST), scrolled
  // into view unless the person scrolled (reload.js knows), and outlined a moment.
  const FOLLOW_MOST = 5000;
  const hash = (s) => { let h = 2166136261; for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619); return h >>> 0; };
  const elements = () => document.body ? [...document.body.getElementsByTagName("*")].slice(0, FOLLOW_MOST) : [];
  status.marks = () => elements().map((el) => hash(el.localName + [...el.attributes].map((a) => ` ${a.name}=${a.value}`).join("")
    + [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.data.trim()).join(" ")));
  status.firstChanged = (before) => {
    const now = status.marks();
    let i = 0;
    while (i < before.length && i < now.length && before[i] === now[i]) i++;
    return i < now.length ? elements()[i] : null;
  };
  status.showChanged = (el) => {
    if (!el) return;
    const r = el.getBoundingClientRect();
    if (!status.personScrolled && (r.top < 0 || r.bottom > innerHeight)) el.scrollIntoView({ block: "center" });
    const { outline, outlineOffset } = el.style;
    el.style.outline = "3px solid #f59e0b";
    el.style.outlineOffset = "2px";
    status.changed = { element: el, outline: el.style.outline }; // for tools and tests
    setTimeout(() => { el.style.outline = outline; el.style.outlineOffset = outlineOffset; }, 1500);
  };

  // A failed build's output (reload.js draws it): each file:line it names opens in the editor.
  const NAMED = /File "([^"]+)", line (\d+)|((?:\.{0,2}\/)?[\w@.-]+(?:\/[\w@.-]+)*\.[A-Za-z]\w*):(\d+)(?::(\d+))?/g;
  status.linkFiles = (pre) => {
    const text = pre.textContent;
    let at = 0;
    pre.textContent = "";
    for (const m of text.matchAll(NAMED)) {
      const link = Object.assign(document.createElement("span"), { className: "file", textContent: m[0], title: "open in your editor" });
      link.onclick = () => status.open(null, +(m[2] || m[4]), +(m[5] || 0), m[1] || m[3]);
      pre.append(text.slice(at, m.index), link);
      at = m.index + m[0].length;
    }
    pre.append(text.slice(at));
    pre.before(Object.assign(document.createElement("style"), { textContent: "pre span.file{position:static;inset:auto;"
      + "display:inline;padding:0;width:auto;height:auto;overflow:visible;background:none;color:#93c5fd;"
      + "text-decoration:underline;cursor:pointer}" }));
  };
})();
