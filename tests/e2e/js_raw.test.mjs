// The raw resilient-socket build (`ws-lifeline/socket`, client-wasm/pkg/socket: no `rooms` feature, and an `index.js`
// whose room parts the build dropped), from JavaScript in headless Chromium, against a real
// server-dev. The full package's behaviour is covered by js_socket and js_rooms; this suite
// checks that the raw build is the same socket without protocol v1.
// Covers:
// - no room methods, and room event types taken as any unknown type (EventTarget semantics):
//   accepted, and never fired by the socket;
// - queued sends before open flush in order, text and binary echo, close(1000), then nothing
//   is held (liveResources all zeros after dispose);
// - the heartbeat against server-dev's `/ws` (pongs matched by the wasm and hidden from the
//   page, the connection kept) and against `/silent` (half-open: close 4000, reconnecting);
// - typed errors for a bad URL and a bad close code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { jsSuite, openJsPage, wsUrl } from "./support/js_page.mjs";

const suite = jsSuite(["--no-auth", "--test-endpoints"], "pkg/socket");

const ws = (path) => wsUrl(suite.server, path);
const openPage = () => openJsPage(suite.browser, suite.site);

test("the raw build has no protocol v1", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate((url) => {
    const { ws } = t.recorded(url, { heartbeat: false });
    const methods = ["join", "leave", "publish", "listRooms"].filter((m) => m in ws);
    // Not a type of this build: taken as any other type, as EventTarget takes it.
    let heard = 0;
    const refused = t.thrown(() => ws.addEventListener("roomMessage", () => heard++));
    ws.dispatchEvent(new Event("roomMessage"));
    ws.dispose();
    return { methods, refused, heard };
  }, ws("/echo"));
  assert.deepEqual(result.methods, []);
  assert.equal(result.refused, null);
  assert.equal(result.heard, 1, "only what the page dispatches itself");
  await page.close();
  assert.deepEqual(errors, []);
});

test("queued sends flush in order, text and binary echo, close, and dispose releases everything", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (url) => {
    const { ws, log } = t.recorded(url, { heartbeat: false });
    const sent = [ws.send("one"), ws.send(new Uint8Array([1, 2, 3])), ws.send("three")];
    await t.until(log, (l) => l.filter((e) => e.type === "message").length === 3);
    const opened = { readyState: ws.readyState, url: ws.url, live: t.liveResources() };
    ws.close(1000, "bye");
    await t.until(log, (l) => l.some((e) => e.type === "close"));
    const closed = { readyState: ws.readyState, state: ws.state };
    ws.dispose();
    return {
      sent,
      messages: log.filter((e) => e.type === "message").map((e) => e.data),
      close: log.find((e) => e.type === "close"),
      opened,
      closed,
      live: t.liveResources(),
    };
  }, ws("/echo"));
  assert.deepEqual(result.sent, ["queued", "queued", "queued"]);
  assert.deepEqual(result.messages, ["one", [1, 2, 3], "three"]);
  assert.equal(result.close.code, 1000);
  assert.equal(result.close.reason, "bye");
  assert.equal(result.opened.readyState, 1);
  assert.equal(result.opened.url, ws("/echo"));
  // One socket with its four listeners, plus online, offline and visibilitychange.
  assert.deepEqual(result.opened.live, { sockets: 1, listeners: 7, timers: 0, predicates: 0 });
  assert.deepEqual(result.closed, { readyState: 3, state: "closed" });
  assert.deepEqual(result.live, { sockets: 0, listeners: 0, timers: 0, predicates: 0 });
  await page.close();
  assert.deepEqual(errors, []);
});

test("the heartbeat keeps a server that answers and replaces one that went silent", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async ([alive, silent]) => {
    const heartbeat = { interval: 100, timeout: 400 };
    const answering = t.recorded(alive, { protocols: "lifeline.v1", heartbeat });
    const quiet = t.recorded(silent, { heartbeat, minDelay: 5_000, maxDelay: 5_000 });
    await t.until(quiet.log, (l) => l.some((e) => e.type === "reconnecting"), 5_000);
    await new Promise((r) => setTimeout(r, 1_000));
    const out = {
      answering: answering.log.map((e) => e.type),
      protocol: answering.ws.protocol,
      quiet: quiet.log.filter((e) => e.type === "close" || e.type === "reconnecting"),
    };
    answering.ws.dispose();
    quiet.ws.dispose();
    return out;
  }, [ws("/ws"), ws("/silent")]);
  assert.equal(result.protocol, "lifeline.v1");
  assert.ok(
    !result.answering.some((type) => type === "close" || type === "reconnecting" || type === "message"),
    `the answered heartbeat neither closed nor surfaced a pong: ${result.answering}`,
  );
  assert.equal(result.quiet[0].type, "close");
  assert.equal(result.quiet[0].code, 4000, "closed as half-open");
  assert.equal(result.quiet[1].type, "reconnecting");
  assert.equal(result.quiet[1].attempt, 1);
  await page.close();
  assert.deepEqual(errors, []);
});

test("a bad URL and a bad close code are typed errors", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate((url) => {
    const badUrl = t.thrown(() => new t.LifelineSocket("ftp://example.com/"));
    const { ws } = t.recorded(url, { heartbeat: false });
    const badCode = t.thrown(() => ws.close(1001));
    ws.dispose();
    return { badUrl, badCode, live: t.liveResources() };
  }, ws("/echo"));
  assert.equal(result.badUrl?.code, "ERR_INVALID_URL");
  assert.equal(result.badUrl.supplied, "ftp://example.com/");
  assert.equal(result.badCode?.code, "ERR_INVALID_CLOSE_CODE");
  assert.equal(result.badCode.closeCode, 1001);
  assert.deepEqual(result.live, { sockets: 0, listeners: 0, timers: 0, predicates: 0 });
  await page.close();
  assert.deepEqual(errors, []);
});
