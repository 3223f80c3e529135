// LifelineSocket as a stand-in for WebSocket, in headless Chromium against a real server-dev.
// Covers:
// - it is an EventTarget: real Event, MessageEvent and CloseEvent objects (with the package's
//   extra fields), dispatchEvent, any event type (an unknown one neither throws nor starts
//   anything), on… handlers run among the listeners;
// - the constants on the class and on instances, binaryType ("blob" by default, as on
//   WebSocket; "arraybuffer"; other values ignored), extensions, protocol, url, readyState;
// - the constructor takes (url, protocols?, options?) and (url, options); subprotocols given
//   twice are an ERR_INVALID_ARGUMENT; relative and http: URLs resolve against the page
//   (document.baseURI) as WebSocket resolves them;
// - 20,000 sends from an open listener (default options) are handed to the socket at once:
//   no ERR_QUEUE_FULL, counted in bufferedAmount, echoed in order behind what was queued
//   before the open; the queue's bounds still hold before the open, and an explicit
//   highWaterMark still queues (bounded) above it;
// - the rooms layer still offers lifeline.v1 after the page's subprotocols (kept in index.js)
//   from the next attempt on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { jsSuite, openJsPage, wsUrl } from "./support/js_page.mjs";

const suite = jsSuite(["--no-auth", "--test-endpoints"]);

const ws = (path) => wsUrl(suite.server, path);
const openPage = () => openJsPage(suite.browser, suite.site);

test("an EventTarget with WebSocket's events, constants and properties", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (url) => {
    const { LifelineSocket } = t;
    const ws = new LifelineSocket(url, { heartbeat: false });
    const out = {
      eventTarget: ws instanceof EventTarget,
      classConstants: [LifelineSocket.CONNECTING, LifelineSocket.OPEN, LifelineSocket.CLOSING, LifelineSocket.CLOSED],
      instanceConstants: [ws.CONNECTING, ws.OPEN, ws.CLOSING, ws.CLOSED],
      binaryType: ws.binaryType,
      extensions: ws.extensions,
      readyState: ws.readyState,
    };
    ws.binaryType = "text";
    out.ignored = ws.binaryType;
    const order = [];
    const events = {};
    ws.addEventListener("open", (e) => {
      order.push("listener 1");
      events.open = { isEvent: e instanceof Event, type: e.type, target: e.target === ws, protocol: e.protocol };
    });
    ws.onopen = () => order.push("onopen");
    ws.addEventListener("open", () => order.push("listener 2"));
    // Any other type, as EventTarget: no throw, and what the page dispatches arrives.
    let custom = 0;
    ws.addEventListener("no-such-type", () => custom++);
    out.dispatched = ws.dispatchEvent(new Event("no-such-type"));
    out.custom = custom;
    const messages = [];
    ws.addEventListener("message", (e) => messages.push(e));
    await new Promise((resolve) => ws.addEventListener("open", resolve, { once: true }));
    out.openState = [ws.readyState, ws.protocol, ws.extensions, ws.url === url];
    ws.send("text");
    ws.send(new Uint8Array([1, 2, 3]));
    await t.until(messages, (l) => l.length === 2);
    ws.binaryType = "arraybuffer";
    ws.send(new Uint8Array([4]));
    await t.until(messages, (l) => l.length === 3);
    const [text, blob, buffer] = messages;
    events.message = {
      isMessageEvent: text instanceof MessageEvent,
      target: text.target === ws,
      text: text.data,
      blob: blob.data instanceof Blob ? [...new Uint8Array(await blob.data.arrayBuffer())] : null,
      buffer: buffer.data instanceof ArrayBuffer ? [...new Uint8Array(buffer.data)] : null,
    };
    const closed = new Promise((resolve) => (ws.onclose = resolve));
    ws.close(1000, "bye");
    const close = await closed;
    events.close = { isCloseEvent: close instanceof CloseEvent, code: close.code, reason: close.reason, wasClean: close.wasClean };
    ws.dispose();
    return { out, order, events };
  }, ws("/echo"));
  const { out, order, events } = result;
  assert.equal(out.eventTarget, true);
  assert.deepEqual(out.classConstants, [0, 1, 2, 3]);
  assert.deepEqual(out.instanceConstants, [0, 1, 2, 3]);
  assert.equal(out.binaryType, "blob", "as on WebSocket");
  assert.equal(out.ignored, "blob", "an invalid binaryType is ignored");
  assert.equal(out.extensions, "");
  assert.equal(out.readyState, 0);
  assert.equal(out.dispatched, true);
  assert.equal(out.custom, 1);
  assert.deepEqual(out.openState, [1, "", "", true]);
  assert.deepEqual(order, ["listener 1", "onopen", "listener 2"], "the handler runs where it was set");
  assert.deepEqual(events.open, { isEvent: true, type: "open", target: true, protocol: "" });
  assert.deepEqual(events.message, { isMessageEvent: true, target: true, text: "text", blob: [1, 2, 3], buffer: [4] });
  assert.deepEqual(events.close, { isCloseEvent: true, code: 1000, reason: "bye", wasClean: true });
  await page.close();
  assert.deepEqual(errors, []);
});

test("(url, protocols?, options?) and (url, options); relative and http: URLs resolve against the page", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async ([echo, serverHttp]) => {
    const { LifelineSocket } = t;
    const made = [];
    const realWebSocket = window.WebSocket;
    // Records what each attempt offers, then opens the real socket.
    window.WebSocket = class extends realWebSocket {
      constructor(url, protocols) {
        super(url, protocols);
        made.push({ url, protocols });
      }
    };
    const opened = (ws) => new Promise((resolve) => ws.addEventListener("open", () => resolve(ws.protocol), { once: true }));
    const a = new LifelineSocket(echo, "chat", { heartbeat: false });
    const b = new LifelineSocket(echo, ["x", "y"]);
    const c = new LifelineSocket(echo, { protocols: "z", heartbeat: false });
    const d = new LifelineSocket(echo, null, { heartbeat: false });
    const twice = t.thrown(() => new LifelineSocket(echo, "a", { protocols: "b" }));
    await Promise.all([a, b, c, d].map(opened));
    // Relative to the page, and to a <base> pointing at the server.
    const site = new LifelineSocket("/echo", { heartbeat: false });
    const siteUrl = site.url;
    site.dispose();
    const base = document.createElement("base");
    base.href = `${serverHttp}/nested/`;
    document.head.append(base);
    const relative = new LifelineSocket("../echo", { heartbeat: false });
    const http = new LifelineSocket(`${serverHttp}/echo`, { heartbeat: false });
    await Promise.all([relative, http].map(opened));
    const urls = [relative.url, http.url];
    base.remove();
    for (const ws of [a, b, c, d, relative, http]) ws.dispose();
    window.WebSocket = realWebSocket;
    return { made, twice, siteUrl, urls, origin: location.origin };
  }, [ws("/echo"), suite.server.url.replace(/\/$/, "")]);
  const echo = ws("/echo");
  assert.deepEqual(result.made.slice(0, 4), [
    { url: echo, protocols: ["chat"] },
    { url: echo, protocols: ["x", "y"] },
    { url: echo, protocols: ["z"] },
    { url: echo, protocols: [] },
  ]);
  assert.equal(result.twice?.code, "ERR_INVALID_ARGUMENT");
  assert.equal(result.siteUrl, `${result.origin.replace(/^http/, "ws")}/echo`);
  assert.deepEqual(result.urls, [echo, echo]);
  await page.close();
  assert.deepEqual(errors, []);
});

test("20,000 sends from an open listener go to the socket, in order behind the queue", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (url) => {
    const COUNT = 20_000;
    const ws = new t.LifelineSocket(url, { heartbeat: false, maxQueuedMessages: 2 });
    const early = [ws.send("queued 1"), ws.send("queued 2")];
    const full = t.thrown(() => ws.send("one too many"));
    let received = 0;
    let inOrder = true;
    const expected = (n) => (n < 2 ? `queued ${n + 1}` : `m${n - 2}`);
    const done = new Promise((resolve) => {
      ws.onmessage = (e) => {
        if (e.data !== expected(received)) inOrder = false;
        if (++received === COUNT + 2) resolve();
      };
    });
    const inOpen = {};
    ws.onopen = () => {
      try {
        const results = new Set();
        for (let n = 0; n < COUNT; n++) results.add(ws.send(`m${n}`));
        inOpen.results = [...results];
      } catch (e) {
        inOpen.error = { code: e.code, message: e.message };
      }
      inOpen.buffered = ws.bufferedAmount;
      inOpen.queued = ws.queuedMessages;
    };
    await done;
    ws.dispose();
    return { early, full: full?.code, inOpen, received, inOrder };
  }, ws("/echo"));
  assert.deepEqual(result.early, ["queued", "queued"]);
  assert.equal(result.full, "ERR_QUEUE_FULL", "the bounds hold while not open");
  assert.equal(result.inOpen.error, undefined);
  assert.deepEqual(result.inOpen.results, ["sent"]);
  assert.ok(result.inOpen.buffered > 0, "counted in bufferedAmount");
  assert.equal(result.inOpen.queued, 0);
  assert.equal(result.received, 20_002);
  assert.equal(result.inOrder, true);
  await page.close();
  assert.deepEqual(errors, []);
});

test("an explicit highWaterMark queues above it, within the queue's bounds", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (url) => {
    const ws = new t.LifelineSocket(url, { heartbeat: false, highWaterMark: 1000, maxQueuedMessages: 4 });
    await new Promise((resolve) => ws.addEventListener("open", resolve, { once: true }));
    const sent = [ws.send("x".repeat(2000))];
    for (let n = 0; n < 4; n++) sent.push(ws.send(`${n}`));
    const full = t.thrown(() => ws.send("more"));
    const echoed = [];
    await new Promise((resolve) => {
      ws.onmessage = (e) => echoed.push(e.data.length > 10 ? "long" : e.data) === 5 && resolve();
    });
    ws.dispose();
    return { sent, full: full?.code, echoed };
  }, ws("/echo"));
  assert.deepEqual(result.sent, ["sent", "queued", "queued", "queued", "queued"]);
  assert.equal(result.full, "ERR_QUEUE_FULL");
  assert.deepEqual(result.echoed, ["long", "0", "1", "2", "3"]);
  await page.close();
  assert.deepEqual(errors, []);
});

test("the rooms layer offers lifeline.v1 after the page's subprotocols from the next attempt on", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (url) => {
    const offered = [];
    const realWebSocket = window.WebSocket;
    window.WebSocket = class extends realWebSocket {
      constructor(url, protocols) {
        super(url, protocols);
        offered.push(protocols);
      }
    };
    const opens = [];
    const ws = new t.LifelineSocket(url, "other", { heartbeat: false });
    ws.addEventListener("open", () => opens.push(1));
    await t.until(opens, (l) => l.length === 1);
    ws.addEventListener("welcome", () => {});
    ws.reconnect();
    await t.until(opens, (l) => l.length === 2);
    ws.dispose();
    window.WebSocket = realWebSocket;
    return offered;
  }, ws("/echo"));
  assert.deepEqual(result, [["other"], ["other", "lifeline.v1"]]);
  await page.close();
  assert.deepEqual(errors, []);
});
