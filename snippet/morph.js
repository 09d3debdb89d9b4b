// sigreload: --morph, loaded by reload.js when the hello says --morph (most
// pages never need it): a change to the page's HTML applied in place. The new
// page is fetched and the open one morphed into it (idiomorph, loaded next:
// window.Idiomorph says both are here), its JavaScript state, typed input,
// focus and scroll kept. Its scripts do not run again: a changed script
// element, an error answer, no answer within WAIT_MS and a morph that throws
// reload instead (saying why in the console).
(() => {
  const WAIT_MS = 5000; // for the new page (the proxy waits for an app as long as it takes: a hung view)
  const status = window[Symbol.for("sigreload")], me = document.currentScript;
  if (!status || status.morph) return;
  // The page's scripts but sigreload's own, as the morph compares them.
  const own = (el) => /(^|\/)reload\.js(\?|$)|\/_sigreload\//.test(el.getAttribute("src") || "")
    || el.textContent.includes('Symbol.for("sigreload")');
  const scripts = (doc) => [...doc.querySelectorAll("script")].filter((el) => !own(el))
    .map((el) => el.hasAttribute("src") ? `src ${el.getAttribute("src")} ${el.type}` : `${el.type} ${el.textContent}`).join("\n");

  // What reload.js hands over (`page`): its state S (source: the page as
  // served, parsed; reloading; following), reload, say, markEdited, parse,
  // selectionOf, refocus and the proxy's "down" header's name.
  status.morph = async (page, why, paths) => {
    const { S } = page;
    S.reloading = true;
    let fallback = "";
    const abort = new AbortController(), timer = setTimeout(() => abort.abort(), WAIT_MS);
    try {
      page.markEdited(paths);
      const r = await fetch(location.href, { cache: "reload", headers: { Accept: "text/html" }, signal: abort.signal });
      if (!r.ok || r.headers.get(page.DOWN_HEADER)) fallback = `the new answer is ${r.status}`;
      const doc = fallback ? null : page.parse(await r.text());
      clearTimeout(timer);
      if (doc && scripts(doc) !== scripts(S.source)) fallback = "a script element changed";
      if (!fallback) {
        const before = S.source;
        const unchanged = (el) => el.id && before.getElementById(el.id) && doc.getElementById(el.id)
          && before.getElementById(el.id).outerHTML === doc.getElementById(el.id).outerHTML;
        const active = document.activeElement, focusId = active && active.id, range = active && page.selectionOf(active);
        const was = S.following && status.marks ? status.marks() : null, x = scrollX, y = scrollY;
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
        // (WebKit, 1 in 8: the page scrolled to the top while its parts were exchanged)
        if (!was && (scrollX !== x || scrollY !== y)) scrollTo(x, y);
        const again = active && active.isConnected ? active : focusId && document.getElementById(focusId);
        if (again && again !== document.body && document.activeElement !== again) page.refocus(again, range);
        S.source = doc;
        if (was) status.showChanged(status.firstChanged(was));
        page.say(`morphed (${why})`);
      }
    } catch (e) {
      fallback = abort.signal.aborted ? `the app did not answer within ${WAIT_MS / 1000} s` : `the morph failed: ${e}`;
    }
    clearTimeout(timer);
    S.reloading = false;
    if (fallback) { page.say(`reload instead of a morph: ${fallback}`); page.reload(why, paths); }
  };

  if (window.Idiomorph || !me || !me.dataset.idiomorph) return;
  const lib = document.createElement("script");
  lib.src = me.dataset.idiomorph;
  document.head.append(lib);
})();
