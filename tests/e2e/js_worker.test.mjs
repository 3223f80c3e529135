// The npm package inside a dedicated module worker in headless Chromium (pages/worker/: the
// worker imports the entry itself, no `init()`), against a real server-dev, with the default
// options. Covers, for `ws-lifeline` and `ws-lifeline/socket` alike:
// - import and construct in a worker (no `window`, no `document`), connect, echo;
// - server-dev killed (SIGKILL) and started again on its port: close, reconnecting, open
//   again by itself; a send made while the server is gone is queued and echoed after the
//   reconnect;
// - dispose in the worker releases every socket, listener and timer (liveResources zeros).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { collectErrors, launchChromium, startServer, withoutNetworkNoise } from "./support/harness.mjs";
import { serveJsPages, wsUrl } from "./support/js_page.mjs";

const SERVER_ARGS = ["--no-auth", "--test-endpoints"];
const ENTRIES = [
  ["ws-lifeline", "/pkg/index.js"],
  ["ws-lifeline/socket", "/pkg/socket/index.js"],
];

let server;
let site;
let browser;

before(async () => {
  server = await startServer(SERVER_ARGS);
  site = await serveJsPages();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await site?.close();
});

/** Waits in `page` until the worker's reports satisfy `check` (a function source of `l`). */
function until(page, check, timeout = 20_000) {
  return page.waitForFunction(`(${check})(window.reports)`, undefined, { timeout, polling: 20 });
}

describe("a dedicated module worker", () => {
  for (const [name, entry] of ENTRIES) {
    test(`${name}: import, connect, receive, and reconnect after server-dev restarts`, async () => {
      const page = await browser.newPage();
      const errors = collectErrors(page);
      const query = new URLSearchParams({ entry, url: wsUrl(server, "/echo") });
      await page.goto(`${site.url}/worker/index.html?${query}`);
      const reports = () => page.evaluate(() => window.reports);
      const types = async () => (await reports()).map((r) => r.type);
      const messages = async () => (await reports()).filter((r) => r.type === "message").map((r) => r.data);
      try {
        await until(page, (l) => l.some((r) => r.type === "open"));
        const [started] = await reports();
        assert.deepEqual(started, {
          type: "started",
          window: "undefined",
          document: "undefined",
          scope: "DedicatedWorkerGlobalScope",
        });
        await page.evaluate(() => tell({ send: "before" }));
        await until(page, (l) => l.some((r) => r.type === "message"));

        process.kill(server.pid, "SIGKILL");
        await server.stop();
        await until(page, (l) => l.some((r) => r.type === "reconnecting"));
        await page.evaluate(() => tell({ send: "while away" }));
        await until(page, (l) => l.some((r) => r.type === "sent"));
        server = await startServer(SERVER_ARGS, { port: server.port });
        await until(page, (l) => l.filter((r) => r.type === "message").length === 2);

        assert.deepEqual(await messages(), ["before", "while away"]);
        const sent = (await reports()).filter((r) => r.type === "sent").map((r) => r.result);
        assert.deepEqual(sent, ["sent", "queued"], "handed to the open socket, then queued while away");
        const seen = await types();
        assert.equal(seen.filter((t) => t === "open").length, 2, `events: ${seen}`);
        assert.ok(seen.indexOf("close") < seen.lastIndexOf("open"), `events: ${seen}`);
        assert.ok(!seen.includes("workerError"), `events: ${seen}`);

        await page.evaluate(() => tell({ dispose: true }));
        await until(page, (l) => l.some((r) => r.type === "disposed"));
        const disposed = (await reports()).find((r) => r.type === "disposed");
        assert.deepEqual(disposed.live, { sockets: 0, listeners: 0, timers: 0, predicates: 0 });
      } finally {
        await page.evaluate(() => stopWorker()).catch(() => {});
        await page.close();
      }
      assert.deepEqual(withoutNetworkNoise(errors), []);
    });
  }
});
