// sigreload: live reload. Paste this inside a script element, or include it with
// one line: a script element with src="http://127.0.0.1:5678/reload.js".
(() => {
  // Included from the broadcaster (another origin): talk to where it came from.
  const me = document.currentScript, at = me && me.src ? new URL(me.src) : null;
  const src = at && at.origin !== location.origin ? at : null;
  const secure = (src || location).protocol === "https:";
  const host = (src ? src.hostname : location.hostname) || "127.0.0.1";
  const port = (me && me.dataset.port) || (src ? src.port : "") || "5678";
  const url = `${secure ? "wss" : "ws"}://${host}:${port}/sigreload`;
  const KEY = "sigreload", say = (m) => console.info(`sigreload: ${m}`);
  const load = () => { try { return JSON.parse(sessionStorage.getItem(KEY)) || {}; } catch { return {}; } };
  const save = (s) => { try { sessionStorage.setItem(KEY, JSON.stringify(s)); } catch {} };
  let first = true, delay = 200, reloading = false, warned = false;

  // A full reload keeps the scroll position.
  const kept = load().scroll;
  if (kept && kept.url === location.href) {
    const s = load(); delete s.scroll; save(s);
    addEventListener("load", () => scrollTo(kept.x, kept.y));
  }

  // Fetch what the page loaded, bypassing the cache, so the reloaded page
  // shows every changed file whatever the server's cache headers say.
  // sigreload's own server marks every response no-cache: no need there.
  let ours = false;
  addEventListener("load", () => fetch(location.href, { method: "HEAD", cache: "no-store" })
    .then((r) => { ours = /^sigreload/.test(r.headers.get("server") || ""); }, () => {}));
  const refetch = () => ours ? Promise.resolve() : Promise.all(performance.getEntriesByType("resource")
    .filter((r) => /^(script|link|css|img|image|other)$/.test(r.initiatorType)
      && new URL(r.name).host === location.host)
    .map((r) => fetch(r.name, { cache: "reload" }).then((b) => b.blob()).catch(() => {})));

  const reload = () => {
    if (reloading) return;
    reloading = true;
    save({ ...load(), scroll: { url: location.href, x: scrollX, y: scrollY } });
    say("reload");
    const go = () => location.reload();
    Promise.race([refetch(), new Promise((r) => setTimeout(r, 1000))]).then(go, go);
  };

  // Swap each stylesheet for a fresh copy; the old one goes only once the new one loaded.
  const css = () => {
    say("stylesheets refreshed");
    for (const old of document.querySelectorAll('link[rel~="stylesheet"][href]')) {
      const next = old.cloneNode(), u = new URL(old.href);
      u.searchParams.set("sigreload", Date.now());
      next.href = u;
      next.onload = () => old.remove();
      next.onerror = () => next.remove();
      old.after(next);
    }
  };

  const onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch { m = { type: String(e.data) }; }
    const s = load(), known = s.boot === m.boot;
    save({ ...s, boot: m.boot, generation: m.generation });
    if (m.type === "hello") {
      // Missed a reload while away (same run, newer generation), or the
      // broadcaster restarted while this page was open: reload once.
      const missed = known ? m.generation > (s.generation || 0) : !first && Boolean(s.boot);
      first = false;
      if (missed) reload();
    } else if (m.type === "css") css();
    else reload();
  };

  const connect = () => {
    const ws = new WebSocket(url);
    ws.onopen = () => { delay = 200; warned = false; };
    ws.onmessage = onmessage;
    ws.onclose = () => {
      if (reloading) return;
      if (!warned && first) say(`cannot reach ${url}; retrying (is the broadcaster running?)`);
      warned = true;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 5000);
    };
  };
  connect();
})();
