// Firefox for sigreload's tests: puppeteer-core over WebDriver BiDi, driving
// the Firefox at argv[2]. One JSON request a line on stdin ({id, op, ...}),
// one JSON answer a line on stdout ({id, value} or {id, error}).
import puppeteer from "puppeteer-core";
import readline from "node:readline";

const browser = await puppeteer.launch({
  browser: "firefox", executablePath: process.argv[2], headless: true, acceptInsecureCerts: true,
});
const tabs = new Map();
let last = 0;
const ops = {
  async open() { tabs.set(++last, await browser.newPage()); return last; },
  async goto({ tab, url }) { await tabs.get(tab).goto(url, { waitUntil: "load" }); },
  async evaluate({ tab, expr }) { return tabs.get(tab).evaluate(expr); },
  async close({ tab }) { await tabs.get(tab).close(); tabs.delete(tab); },
};
const say = (answer) => process.stdout.write(JSON.stringify(answer) + "\n");
say({ ready: (await browser.version()) });
for await (const line of readline.createInterface({ input: process.stdin })) {
  const { id, op, ...args } = JSON.parse(line);
  try { say({ id, value: (await ops[op](args)) ?? null }); } catch (e) { say({ id, error: String(e.message || e) }); }
}
await browser.close();
