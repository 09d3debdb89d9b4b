// The snippet's pure parts (snippet/reload.js loaded as Node loads a CommonJS
// file: it exports them and runs nothing), under Node's own test runner:
//   node --test tests/node/
// What they decide is what a page does; the page's side (DOM, socket,
// storage) is proven in real browsers (tests/test_browser.py and others).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const S = require("../../snippet/reload.js");

const page = (over = {}) => ({ ours: true, root: "R", morphing: false, path: "/", sheets: [], images: [],
  resources: [], ...over });
const steps = (m, p) => S.decide(m, page(p)).map((s) => s.do);

test("the wire table: UPPER_SNAKE keys, paths under the prefix", () => {
  for (const [key, value] of Object.entries(S.WIRE)) {
    assert.match(key, /^[A-Z][A-Z0-9_]*$/);
    assert.equal(typeof value, "string");
  }
  for (const key of ["OWN_SOCKET_PATH", "OWN_SNIPPET_PATH", "OWN_OVERLAY_PATH", "OWN_IDIOMORPH_PATH", "OWN_MORPH_PATH", "OWN_APP_PATH", "OWN_TOKEN_PATH", "OWN_OPEN_PATH"]) {
    assert.ok(S.WIRE[key].startsWith(S.WIRE.PREFIX), key);
  }
});

test("where from: pasted from the broadcaster, its host and port", () => {
  const w = S.whereFrom("http://127.0.0.1:5690/reload.js", "http://localhost:8000/a/", undefined);
  assert.deepEqual(w, { proxied: false, url: "ws://127.0.0.1:5690/sigreload",
    overlay: "http://127.0.0.1:5690/overlay.js", idiomorph: "http://127.0.0.1:5690/idiomorph.js",
    morph: "http://127.0.0.1:5690/morph.js" });
});

test("where from: inserted by sigreload's server, the page's own origin", () => {
  const w = S.whereFrom("https://dev.box:8443/_sigreload/reload.js", "https://dev.box:8443/x", undefined);
  assert.equal(w.proxied, true);
  assert.equal(w.url, "wss://dev.box:8443/_sigreload/socket");
  assert.equal(w.overlay, "/_sigreload/overlay.js");
});

test("where from: pasted inline, the page's host, data-port or 5678", () => {
  assert.equal(S.whereFrom(null, "http://example.test:3000/", undefined).url, "ws://example.test:5678/sigreload");
  assert.equal(S.whereFrom("", "http://example.test:3000/", "6000").url, "ws://example.test:6000/sigreload");
  assert.equal(S.whereFrom(null, "file:///home/a/page.html", undefined).url, "ws://127.0.0.1:5678/sigreload");
  // A script of the page's origin not under the prefix (the file, copied next to the page): not proxied.
  assert.equal(S.whereFrom("http://h:3000/js/reload.js", "http://h:3000/", undefined).url, "ws://h:5678/sigreload");
});

test("messages: JSON objects, anything else is its text as a type", () => {
  assert.deepEqual(S.parseMessage('{"type":"css","paths":["/a.css"]}'), { type: "css", paths: ["/a.css"] });
  assert.deepEqual(S.parseMessage("reload"), { type: "reload" });
  assert.deepEqual(S.parseMessage("null"), { type: "null" });
  assert.deepEqual(S.parseMessage("[1]"), { type: "[1]" });
});

test("backoff: 200 ms doubling, at most 5 s", () => {
  const seen = [S.FIRST_DELAY];
  while (seen.length < 8) seen.push(S.nextDelay(seen.at(-1)));
  assert.deepEqual(seen, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
});

test("paths: same origin only, decoded; a page's candidate files", () => {
  const base = "http://h:8000/docs/page.html";
  assert.equal(S.pathOf("../a%20b.css?v=1", base), "/a b.css");
  assert.equal(S.pathOf("http://other:8000/a.css", base), null);
  assert.equal(S.pathOf("http://[bad", base), null);
  assert.deepEqual(S.pagePaths("/docs/"), ["/docs/", "/docs/index.html"]);
  assert.deepEqual(S.pagePaths("/a.html"), ["/a.html"]);
  assert.deepEqual(S.pagePaths("/about"), ["/about", "/about/index.html", "/index.html"]);
});

test("templates: an edit an app may answer from its cache", () => {
  assert.equal(S.templates(["/t/page.html"]), true);
  assert.equal(S.templates(["/t/page.html", "/app.py"]), false);
  assert.equal(S.templates(["/s.css", "/a.js"]), false);
  assert.equal(S.templates([]), false);
  assert.equal(S.templates(undefined), false);
});

test("fresh: a cache-busting parameter, the rest kept", () => {
  assert.equal(S.fresh("http://h/a.css?x=1#f", 42), "http://h/a.css?x=1&sigreload=42#f");
  assert.equal(S.fresh("http://h/a.css?sigreload=1", 2), "http://h/a.css?sigreload=2");
});

test("follow: this origin's pages only, index.html as its folder", () => {
  const o = "http://h:8000";
  assert.equal(S.followUrl("/docs/index.html", o), "http://h:8000/docs/");
  assert.equal(S.followUrl("/b.html", o), "http://h:8000/b.html");
  assert.equal(S.followUrl("//evil.test/x", o), null);
  assert.equal(S.followUrl("/\\evil.test\\x", o), null);
  assert.equal(S.followUrl("https://evil.test/", o), null);
  assert.equal(S.followUrl(5, o), null);
});

test("decide: a signal, or paths from a server it cannot map, reloads", () => {
  assert.deepEqual(S.decide({ type: "reload" }, page()), [{ do: "reload", why: "signal", paths: undefined }]);
  assert.deepEqual(S.decide({ type: "reload", paths: ["/a.html"], root: "R" }, page({ ours: false })),
    [{ do: "reload", why: "/a.html", paths: ["/a.html"] }]);
  assert.deepEqual(steps({ type: "reload", paths: ["/a.html"], root: "other" }), ["reload"]);
});

test("decide: a notice with no paths (the app is down) changes nothing, on any page", () => {
  for (const over of [{}, { ours: false }]) {
    assert.deepEqual(steps({ type: "css", paths: [], root: "R", notice: "Your app does not answer" }, over), ["nothing"]);
    assert.deepEqual(steps({ type: "reload", paths: [], root: "X" }, over), ["nothing"]);
  }
  assert.deepEqual(steps({ type: "reload", root: "R" }), ["reload"]); // no paths at all: every file
});

test("decide: css without paths swaps every stylesheet", () => {
  assert.deepEqual(S.decide({ type: "css" }, page()), [{ do: "css", said: "stylesheets refreshed" }]);
  assert.deepEqual(steps({ type: "css", paths: ["/s.css"], root: "R" }, { ours: false }), ["css"]);
});

test("decide: the page's own file reloads, or morphs with --morph", () => {
  const m = { type: "reload", paths: ["/index.html"], root: "R" };
  assert.deepEqual(S.decide(m, page()), [{ do: "reload", why: "/index.html" }]);
  assert.deepEqual(S.decide(m, page({ morphing: true })), [{ do: "morph", why: "/index.html", paths: ["/index.html"] }]);
  // A script among the paths: never a morph.
  assert.deepEqual(steps({ ...m, paths: ["/index.html", "/app.js"] }, { morphing: true }), ["reload"]);
  // Behind the proxy (not ours), --morph: the app's new answer, morphed.
  assert.deepEqual(steps({ type: "reload", paths: ["/templates/x.html"] }, { ours: false, morphing: true }), ["morph"]);
  // The app's code (it restarted: a new process): reloaded, never morphed.
  assert.deepEqual(S.decide({ type: "reload", paths: ["/views.py"] }, page({ ours: false, morphing: true })),
    [{ do: "reload", why: "/views.py", paths: ["/views.py"] }]);
  assert.deepEqual(steps({ type: "reload", paths: ["/t/x.html", "/app.py"] }, { ours: false, morphing: true }), ["reload"]);
});

test("decide: a morph, then what else changed", () => {
  const m = { type: "reload", paths: ["/index.html", "/s.css"], root: "R" };
  assert.deepEqual(S.decide(m, page({ morphing: true, sheets: ["/s.css"] })), [
    { do: "morph", why: "/index.html, /s.css", paths: m.paths },
    { do: "swap", sheets: ["/s.css"], images: [], said: "swapped /s.css" }]);
});

test("decide: a stylesheet or image this page uses is swapped, alone", () => {
  const m = { type: "css", paths: ["/s.css", "/i.png", "/unused.css"], root: "R" };
  assert.deepEqual(S.decide(m, page({ sheets: ["/s.css", "/t.css"], images: ["/i.png"], resources: ["/s.css", "/i.png"] })),
    [{ do: "swap", sheets: ["/s.css"], images: ["/i.png"], said: "swapped /s.css, /i.png" }]);
});

test("decide: a script it loaded reloads; an @import-ed sheet refreshes all", () => {
  assert.deepEqual(S.decide({ type: "reload", paths: ["/app.js"], root: "R" }, page({ resources: ["/app.js"] })),
    [{ do: "reload", why: "/app.js" }]);
  assert.deepEqual(steps({ type: "css", paths: ["/base.css"], root: "R" }, { resources: ["/base.css"] }), ["css"]);
});

test("decide: nothing here uses it", () => {
  assert.deepEqual(S.decide({ type: "reload", paths: ["/other.html"], root: "R" }, page({ path: "/a.html" })),
    [{ do: "nothing", said: "nothing here uses /other.html" }]);
});

test("decide: an error is shown, a follow navigates, a hello is no event", () => {
  assert.deepEqual(S.decide({ type: "error", text: "boom" }, page()), [{ do: "error", text: "boom" }]);
  assert.deepEqual(S.decide({ type: "follow", path: "/b.html" }, page()), [{ do: "follow", path: "/b.html" }]);
  assert.deepEqual(S.decide({ type: "hello", generation: 3 }, page()), []);
});

test("generations: unseen while reloading, a hello always recorded", () => {
  const saved = { boot: "b", generation: 4 };
  assert.equal(S.recorded({ type: "reload", boot: "b", generation: 5 }, saved, true), 4);
  assert.equal(S.recorded({ type: "reload", boot: "b", generation: 5 }, saved, false), 5);
  assert.equal(S.recorded({ type: "hello", boot: "b", generation: 5 }, saved, true), 5);
  assert.equal(S.recorded({ type: "reload", boot: "c", generation: 1 }, saved, true), 1);
});

test("a hello: replay what the same run sent, reload after a restart, nothing on a first visit", () => {
  assert.equal(S.missedOnHello({ boot: "b", generation: 5 }, { boot: "b", generation: 4 }, false), "replay");
  assert.equal(S.missedOnHello({ boot: "b", generation: 4 }, { boot: "b", generation: 4 }, false), null);
  assert.equal(S.missedOnHello({ boot: "c", generation: 1 }, { boot: "b", generation: 4 }, false), "reload");
  assert.equal(S.missedOnHello({ boot: "c", generation: 1 }, { boot: "b", generation: 4 }, true), null);
  assert.equal(S.missedOnHello({ boot: "c", generation: 1 }, {}, false), null);
});

test("replay: what came once the page was asked for (it may not show it), all or reload", () => {
  const recent = [{ type: "reload", generation: 5, at: 1000 }, { type: "error", generation: 6, at: 1000 },
    { type: "css", generation: 7, at: 3000 }];
  const hello = { generation: 7, now: 10_000, recent };
  // Clocks agree (offset 0): the page was asked for at 2000; errors are never replayed.
  assert.deepEqual(S.toReplay(hello, 4, 2000, 10_000), [recent[2]]);
  // The broadcaster's clock 2 s behind: asked at 2000 is its 0.
  assert.deepEqual(S.toReplay(hello, 4, 2000, 12_000), [recent[0], recent[2]]);
  assert.equal(S.toReplay({ ...hello, recent: recent.slice(1) }, 4, 2000, 10_000), null);
  assert.deepEqual(S.toReplay(hello, 7, 2000, 10_000), []);
});

test("typed state: secrets are never kept", () => {
  const ok = (f) => S.keepable({ type: "text", autocomplete: "", name: "", id: "", wasPassword: false, ...f });
  assert.equal(ok({ name: "title" }), true);
  assert.equal(ok({ name: "shipping" }), true);
  assert.equal(ok({ id: "secretary" }), true);
  assert.equal(ok({ name: "passenger" }), true);
  assert.equal(ok({ name: "compass" }), true);
  for (const f of [{ type: "password" }, { type: "hidden" }, { type: "file" }, { wasPassword: true },
    { autocomplete: "one-time-code" }, { autocomplete: "OFF" }, { autocomplete: "cc-number" },
    { name: "cardPin" }, { id: "card-cvv" }, { name: "api_key" }, { name: "user_pwd" }, { name: "tokens" },
    // r36a4: kept and given back before
    { name: "pass" }, { name: "passcode" }, { name: "user_pw" }, { name: "senha" }, { name: "contrasena" },
    { name: "otp" }, { name: "mfa_code" }, { name: "motdepasse" }]) {
    assert.equal(ok(f), false, JSON.stringify(f));
  }
});

test("console: errors with their stack, values as JSON, at most so many a second", () => {
  const e = new TypeError("bad");
  assert.ok(S.asText(e).startsWith("TypeError: bad"));
  assert.equal(S.asText("x"), "x");
  assert.equal(S.asText({ a: 1 }), '{"a":1}');
  const cyclic = {}; cyclic.self = cyclic;
  assert.equal(S.asText(cyclic), "[object Object]");
  const allowed = S.perSecond(2);
  assert.deepEqual([allowed(1000), allowed(1500), allowed(1999), allowed(2000)], [true, true, false, true]);
});

test("asking a server that does not answer: 100 ms for a second, then 250 ms doubling to 5 s", () => {
  const delays = Array.from({ length: 18 }, (_, tries) => S.pollDelay(tries));
  assert.deepEqual(delays.slice(0, S.SLOWER), Array(S.SLOWER).fill(100));
  assert.deepEqual(delays.slice(S.SLOWER), [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
});
