// LifelineSocket from JavaScript, in headless Chromium, against a real server-dev.
// Covers:
// - open, echo (text and binary) and close, with WebSocket-like readyState, url, protocol;
//   addEventListener/removeEventListener, once, on… properties, event.target;
// - listener rules as on EventTarget: a listener is registered once per type, an object's
//   handleEvent is called with the object as `this`, an AbortSignal removes its listener, a
//   listener that throws is reported and the others still run;
// - a socket the page keeps no reference to is not garbage-collected while it has listeners
//   (as a browser keeps an open WebSocket with listeners), and is once it is disposed; one with
//   no listener either is collected, and its socket, listeners and timer are released;
// - reconnect after the server restarts on the same port, with messages sent while it was
//   down flushed in order after the reconnect;
// - messages sent before the first open flush in order;
// - the browser going offline and online (Playwright's network emulation) gives `offline` and
//   `online` events, and online retries at once instead of waiting out the backoff; a socket
//   made while offline tells its listeners so first;
// - a terminal close code (default rule and a custom isTerminalClose) is not retried;
// - an async URL provider is called per attempt; one that throws, rejects or returns no URL
//   gives an ERR_URL_PROVIDER error event and is asked again; an isTerminalClose that throws is
//   reported and the default rule decides;
// - typed errors: invalid URL, bad close code, too long reason, full queue, bad send argument;
//   a URL the browser's parser refuses is an ERR_INVALID_URL event that a listener added right
//   after the constructor still hears;
// - default options: a quiet server without lifeline.v1 keeps one connection past the
//   heartbeat's interval + timeout, while one that selected lifeline.v1 is cut with 4000;
// - heartbeat options: a custom ping (function or string) and isPong against /echo hide the
//   echoed pings and keep the connection, cut /silent with 4000; bad options are
//   ERR_INVALID_ARGUMENT; each pong is a `pong` event with its round trip, and `rtt` holds the
//   latest and the smoothed one;
// - after dispose(): no listener fires, no WebSocket is created and no frame is sent, every
//   method throws ERR_DISPOSED; free() and Symbol.dispose do the same.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { startServer, withoutNetworkNoise } from "./support/harness.mjs";
import { jsSuite, openJsPage, wsUrl } from "./support/js_page.mjs";

const FAST = { minDelay: 100, maxDelay: 400 };

const suite = jsSuite(["--test-endpoints", "--bench-endpoints"]);

const ws = (path) => wsUrl(suite.server, path);
const openPage = () => openJsPage(suite.browser, suite.site);

/** A loopback port with nothing listening on it. */
async function closedPort() {
  const probe = createServer();
  await new Promise((r) => probe.listen(0, "127.0.0.1", r));
  const { port } = probe.address();
  await new Promise((r) => probe.close(r));
  return port;
}

test("open, echo text and binary, close", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (url) => {
    const { ws, log } = t.recorded(url, { heartbeat: false });
    const before = { readyState: ws.readyState, state: ws.state };
    let onopen = 0;
    ws.onopen = () => onopen++;
    let once = 0;
    ws.addEventListener("open", () => once++, { once: true });
    await t.until(log, (l) => l.some((e) => e.type === "open"));
    const opened = { readyState: ws.readyState, state: ws.state, url: ws.url, protocol: ws.protocol };
    const sent = [ws.send("hello"), ws.send(new Uint8Array([1, 2, 3])), ws.send(new Uint8Array([9, 8]).buffer)];
    await t.until(log, (l) => l.filter((e) => e.type === "message").length === 3);
    let removed = 0;
    const counting = () => removed++;
    ws.addEventListener("message", counting);
    ws.removeEventListener("message", counting);
    ws.send("after remove");
    await t.until(log, (l) => l.filter((e) => e.type === "message").length === 4);
    ws.close(1000, "done");
    const closing = ws.readyState;
    await t.until(log, (l) => l.some((e) => e.type === "close"));
    await new Promise((r) => setTimeout(r, 300));
    const result = { before, opened, sent, closing, closed: ws.readyState, log, onopen, once, removed };
    ws.dispose();
    return result;
  }, ws("/echo"));
  assert.deepEqual(result.before, { readyState: 0, state: "connecting" });
  assert.equal(result.opened.readyState, 1);
  assert.equal(result.opened.state, "open");
  assert.equal(result.opened.url, ws("/echo"));
  assert.equal(result.opened.protocol, "");
  assert.deepEqual(result.sent, ["sent", "sent", "sent"]);
  const messages = result.log.filter((e) => e.type === "message").map((e) => e.data);
  assert.deepEqual(messages, ["hello", [1, 2, 3], [9, 8], "after remove"]);
  assert.equal(result.onopen, 1);
  assert.equal(result.once, 1);
  assert.equal(result.removed, 0);
  assert.equal(result.closing, 2);
  assert.equal(result.closed, 3);
  const close = result.log.find((e) => e.type === "close");
  assert.equal(close.code, 1000);
  assert.equal(close.wasClean, true);
  assert.ok(result.log.every((e) => e.sameTarget), "event.target is the socket");
  assert.ok(!result.log.some((e) => e.type === "reconnecting"), "a user close is not retried");
  const states = result.log.filter((e) => e.type === "statechange").map((e) => e.state);
  assert.deepEqual(states.slice(-2), ["closing", "closed"]);
  await page.close();
  assert.deepEqual(errors, []);
});

test("listeners follow EventTarget's rules: duplicates, handleEvent, signal, exceptions", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (url) => {
    const reported = [];
    const realReport = window.reportError;
    window.reportError = (e) => reported.push(String(e?.message ?? e));
    const ws = new t.LifelineSocket(url, { heartbeat: false });
    const calls = [];
    const twice = () => calls.push("twice");
    ws.addEventListener("message", twice);
    ws.addEventListener("message", twice);
    const handler = {
      name: "object",
      handleEvent(event) {
        calls.push(`${this.name}:${event.data}`);
      },
    };
    ws.addEventListener("message", handler);
    ws.addEventListener("message", () => {
      throw new Error("listener failed");
    });
    const controller = new AbortController();
    ws.addEventListener("message", () => calls.push("aborted"), { signal: controller.signal });
    const aborted = new AbortController();
    aborted.abort();
    ws.addEventListener("message", () => calls.push("pre-aborted"), { signal: aborted.signal });
    ws.onmessage = () => calls.push("onmessage");
    ws.onmessage = "not a function";
    const cleared = ws.onmessage;
    ws.onmessage = () => calls.push("onmessage");
    const last = new Promise((resolve) => ws.addEventListener("message", resolve, { once: true }));
    await new Promise((resolve) => ws.addEventListener("open", resolve, { once: true }));
    controller.abort();
    ws.send("one");
    await last;
    ws.dispose();
    window.reportError = realReport;
    return { calls, reported, cleared, handlerAfterDispose: ws.onmessage };
  }, ws("/echo"));
  assert.deepEqual(result.calls, ["twice", "object:one", "onmessage"]);
  assert.deepEqual(result.reported, ["listener failed"]);
  assert.equal(result.cleared, null, "a non-function handler clears the slot");
  assert.equal(result.handlerAfterDispose, null, "dispose releases the handlers");
  await page.close();
  assert.deepEqual(errors, []);
});

test("a socket with listeners and no other reference keeps delivering through garbage collections", async () => {
  const { page, errors } = await openPage();
  const cdp = await page.context().newCDPSession(page);
  const COUNT = 20_000;
  await page.evaluate(([url, count]) => {
    window.got = 0;
    // No variable keeps the socket: only its own listener refers to it.
    new t.LifelineSocket(url, { protocols: "lifeline.v1", heartbeat: false }).addEventListener(
      "message",
      function () {
        if (++window.got === count) this.dispose();
      },
    );
  }, [ws(`/bench/send?n=${COUNT}&bytes=100&batch=1`), COUNT]);
  const deadline = Date.now() + 30_000;
  let got = 0;
  while (got < COUNT && Date.now() < deadline) {
    await cdp.send("HeapProfiler.collectGarbage");
    await new Promise((r) => setTimeout(r, 50));
    got = await page.evaluate(() => window.got);
  }
  assert.equal(got, COUNT, "every message arrived although only the listener held the socket");
  const live = await page.evaluate(() => t.liveResources());
  assert.equal(live.sockets, 0, "the socket disposed itself");
  await page.close();
  assert.deepEqual(errors, []);
});

test("a socket with no listener and no reference is released when it is garbage-collected", async () => {
  const { page, errors } = await openPage();
  const cdp = await page.context().newCDPSession(page);
  const opened = await page.evaluate(async (url) => {
    // Nothing keeps the socket: no variable, no listener, no handler.
    new t.LifelineSocket(url, { heartbeat: { interval: 60_000, timeout: 60_000 } });
    const deadline = performance.now() + 5_000;
    while (t.liveResources().sockets === 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return t.liveResources();
  }, ws("/echo"));
  // One WebSocket with its four listeners, the window and document listeners, the heartbeat timer.
  assert.deepEqual(opened, { sockets: 1, listeners: 7, timers: 1, predicates: 0 });
  const deadline = Date.now() + 20_000;
  let live = opened;
  while (live.sockets + live.listeners + live.timers > 0 && Date.now() < deadline) {
    await cdp.send("HeapProfiler.collectGarbage");
    await new Promise((r) => setTimeout(r, 100));
    live = await page.evaluate(() => t.liveResources());
  }
  assert.deepEqual(live, { sockets: 0, listeners: 0, timers: 0, predicates: 0 });
  await page.close();
  assert.deepEqual(errors, []);
});

test("a URL the browser refuses is reported to listeners added right after the constructor", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async () => {
    // Passes the library's URL check, but the browser's URL parser refuses the host.
    const url = "ws://exa<mple.com/";
    const { ws, log } = t.recorded(url, { heartbeat: false, maxRetries: 0 });
    await t.until(log, (l) => l.some((e) => e.type === "giveup"));
    const out = { log: log.map((e) => [e.type, e.error?.code ?? e.state ?? null]), live: t.liveResources() };
    ws.dispose();
    return out;
  });
  assert.deepEqual(result.log, [
    ["error", "ERR_INVALID_URL"],
    ["statechange", "closed"],
    ["giveup", null],
  ]);
  assert.equal(result.live.sockets, 0, "no WebSocket was created");
  await page.close();
  assert.deepEqual(errors, []);
});

test("going offline and online reaches the socket; online retries at once instead of waiting", async () => {
  const { page, errors } = await openPage();
  await page.evaluate((url) => {
    // The server closes every connection with 4001 (not terminal); the next retry is a minute away.
    window.r = t.recorded(url, { heartbeat: false, minDelay: 60_000, maxDelay: 60_000 });
    for (const type of ["offline", "online"]) r.ws.addEventListener(type, (e) => r.log.push({ type: e.type, at: performance.now() }));
  }, ws("/close?code=4001"));
  await page.waitForFunction(() => r.log.some((e) => e.type === "reconnecting"));
  await page.context().setOffline(true);
  await page.waitForFunction(() => r.log.some((e) => e.type === "offline"));
  await page.context().setOffline(false);
  await page.waitForFunction(() => r.log.filter((e) => e.type === "open").length === 2, null, { timeout: 10_000 });
  const result = await page.evaluate(() => {
    r.ws.dispose();
    const online = r.log.find((e) => e.type === "online");
    const opens = r.log.filter((e) => e.type === "open");
    return { types: r.log.map((e) => e.type).filter((t) => t !== "statechange"), reopenedAfterMs: opens[1].at - online.at };
  });
  assert.deepEqual(result.types.slice(0, 6), ["open", "close", "reconnecting", "offline", "online", "open"]);
  assert.ok(result.reopenedAfterMs < 5_000, `reconnected ${result.reopenedAfterMs} ms after online, not after the minute of backoff`);
  await page.close();
  assert.deepEqual(errors, []);
});

test("a socket made while the browser is offline tells its listeners, and connects once online", async () => {
  const { page, errors } = await openPage();
  await page.context().setOffline(true);
  await page.evaluate((url) => {
    window.r = t.recorded(url, { heartbeat: false, minDelay: 60_000, maxDelay: 60_000 });
    for (const type of ["offline", "online"]) r.ws.addEventListener(type, (e) => r.log.push({ type: e.type }));
  }, ws("/echo"));
  await page.waitForFunction(() => r.log.some((e) => e.type === "offline"));
  await page.context().setOffline(false);
  await page.waitForFunction(() => r.log.some((e) => e.type === "open"), null, { timeout: 10_000 });
  const types = await page.evaluate(() => {
    r.ws.dispose();
    return r.log.map((e) => e.type).filter((t) => t !== "statechange");
  });
  assert.equal(types[0], "offline", `the offline state is the first thing the listeners hear: ${types}`);
  assert.ok(types.indexOf("online") > 0, `then online: ${types}`);
  await page.close();
  // The machine still tries once while the browser says it is offline (navigator.onLine can be
  // wrong), and Chromium logs that attempt's failure.
  assert.deepEqual(withoutNetworkNoise(errors), []);
});

test("messages sent before the first open flush in order", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (url) => {
    const { ws, log } = t.recorded(url, { heartbeat: false });
    const sent = [];
    for (let i = 0; i < 50; i++) sent.push(ws.send(`m${i}`));
    const queued = ws.queuedMessages;
    await t.until(log, (l) => l.filter((e) => e.type === "message").length === 50);
    const drained = ws.queuedMessages;
    ws.dispose();
    return { sent, queued, drained, messages: log.filter((e) => e.type === "message").map((e) => e.data) };
  }, ws("/echo"));
  assert.ok(result.sent.every((s) => s === "queued"));
  assert.equal(result.queued, 50);
  assert.equal(result.drained, 0);
  assert.deepEqual(result.messages, Array.from({ length: 50 }, (_, i) => `m${i}`));
  await page.close();
  assert.deepEqual(errors, []);
});

test("reconnects after the server restarts on the same port; queued messages flush in order", async () => {
  const { page, errors } = await openPage();
  await page.evaluate(async (url) => {
    window.r = t.recorded(url, { minDelay: 100, maxDelay: 400, heartbeat: false });
    await t.until(r.log, (l) => l.some((e) => e.type === "open"));
  }, ws("/echo"));
  const port = suite.server.port;
  await suite.server.stop();
  await page.evaluate(() => t.until(r.log, (l) => l.some((e) => e.type === "reconnecting")));
  const queued = await page.evaluate(() => ["a", "b", "c"].map((m) => r.ws.send(m)));
  assert.deepEqual(queued, ["queued", "queued", "queued"]);
  suite.server = await startServer(["--test-endpoints"], { port });
  const result = await page.evaluate(async () => {
    await t.until(r.log, (l) => l.filter((e) => e.type === "open").length === 2, 15_000);
    await t.until(r.log, (l) => l.filter((e) => e.type === "message").length === 3);
    r.ws.dispose();
    return r.log;
  });
  const close = result.find((e) => e.type === "close");
  assert.notEqual(close.code, 1000);
  const reconnecting = result.filter((e) => e.type === "reconnecting");
  assert.ok(reconnecting.length >= 1);
  assert.equal(reconnecting[0].attempt, 1);
  assert.ok(reconnecting.every((e) => e.delay >= 0 && e.delay <= 400), JSON.stringify(reconnecting));
  assert.deepEqual(result.filter((e) => e.type === "message").map((e) => e.data), ["a", "b", "c"]);
  await page.close();
  // An attempt that meets the stopped server makes the browser log the refused socket itself.
  assert.deepEqual(withoutNetworkNoise(errors), []);
});

test("a terminal close code is not retried; a custom isTerminalClose is honoured", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async ([byDefault, custom, retried]) => {
    const wait = (ms) => new Promise((r) => setTimeout(r, ms));
    const a = t.recorded(byDefault, { minDelay: 50, maxDelay: 100, heartbeat: false });
    const b = t.recorded(custom, { minDelay: 50, maxDelay: 100, heartbeat: false, isTerminalClose: (c) => c === 4001 });
    const c = t.recorded(retried, { minDelay: 50, maxDelay: 100, heartbeat: false });
    await Promise.all([a, b, c].map((x) => t.until(x.log, (l) => l.some((e) => e.type === "close"))));
    await wait(800);
    const out = [a, b, c].map((x) => ({ state: x.ws.state, readyState: x.ws.readyState, log: x.log }));
    for (const x of [a, b, c]) x.ws.dispose();
    return out;
  }, [ws("/close?code=4401&reason=go%20away"), ws("/close?code=4001&reason=custom"), ws("/close?code=4001&reason=retry")]);
  const [byDefault, custom, retried] = result;
  for (const [name, r, code] of [["4401 (default rule)", byDefault, 4401], ["4001 (custom rule)", custom, 4001]]) {
    const close = r.log.find((e) => e.type === "close");
    assert.equal(close.code, code, name);
    assert.ok(!r.log.some((e) => e.type === "reconnecting"), `${name} is not retried`);
    assert.equal(r.state, "closed", name);
    assert.equal(r.readyState, 3, name);
  }
  assert.equal(byDefault.log.find((e) => e.type === "close").reason, "go away");
  assert.ok(retried.log.some((e) => e.type === "reconnecting"), "4001 is retried by default");
  await page.close();
  assert.deepEqual(errors, []);
});

test("an async URL provider is asked before every attempt", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (base) => {
    let calls = 0;
    const { ws, log } = t.recorded(async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 10));
      return new URL(`${base}/close?code=4001&reason=n${calls}`);
    }, { minDelay: 50, maxDelay: 100, heartbeat: false });
    await t.until(log, (l) => l.filter((e) => e.type === "close").length >= 2);
    ws.dispose();
    return { calls, reasons: log.filter((e) => e.type === "close").map((e) => e.reason) };
  }, ws(""));
  assert.ok(result.calls >= 2);
  assert.deepEqual(result.reasons.slice(0, 2), ["n1", "n2"]);
  await page.close();
  assert.deepEqual(errors, []);
});

test("a throwing isTerminalClose is reported and the default rule decides; URL provider failures are typed errors and retried", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async ([terminal, retried, base]) => {
    const reported = [];
    const realReport = window.reportError;
    window.reportError = (e) => reported.push(String(e?.message ?? e));
    const options = { minDelay: 50, maxDelay: 100, heartbeat: false };
    const failingRule = () => {
      throw new Error("rule failed");
    };
    const a = t.recorded(terminal, { ...options, isTerminalClose: failingRule });
    const b = t.recorded(retried, { ...options, isTerminalClose: failingRule });
    let calls = 0;
    const c = t.recorded(() => {
      calls++;
      if (calls === 1) throw new TypeError("no ticket");
      if (calls === 2) return Promise.reject(new Error("ticket service down"));
      if (calls === 3) return 42;
      return `${base}/close?code=4401&reason=finally`;
    }, options);
    await Promise.all([a, c].map((x) => t.until(x.log, (l) => l.some((e) => e.type === "close"))));
    await t.until(b.log, (l) => l.some((e) => e.type === "reconnecting"));
    window.reportError = realReport;
    const out = { reported, calls, a: a.log, b: b.log, c: c.log, aState: a.ws.state, cState: c.ws.state };
    for (const x of [a, b, c]) x.ws.dispose();
    return out;
  }, [ws("/close?code=4401&reason=x"), ws("/close?code=4001&reason=y"), ws("")]);
  assert.ok(!result.a.some((e) => e.type === "reconnecting"), "4401 is terminal by the default rule");
  assert.equal(result.aState, "closed");
  assert.ok(result.b.some((e) => e.type === "reconnecting"), "4001 is retried by the default rule");
  assert.ok(result.reported.length >= 2, `the rule's exceptions are reported: ${JSON.stringify(result.reported)}`);
  assert.ok(result.reported.every((m) => m === "rule failed"), JSON.stringify(result.reported));
  const failures = result.c.filter((e) => e.type === "error").map((e) => e.error);
  assert.deepEqual(failures.map((e) => e.code), ["ERR_URL_PROVIDER", "ERR_URL_PROVIDER", "ERR_URL_PROVIDER"]);
  assert.match(failures[0].message, /TypeError: no ticket/);
  assert.match(failures[1].message, /Error: ticket service down/);
  assert.match(failures[2].message, /neither a string nor a URL/);
  assert.equal(result.calls, 4);
  assert.equal(result.c.find((e) => e.type === "close").reason, "finally");
  assert.equal(result.cState, "closed");
  await page.close();
  assert.deepEqual(errors, []);
});

test("bad arguments throw typed LifelineErrors", async () => {
  const port = await closedPort();
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (unreachable) => {
    const out = {};
    out.url = t.thrown(() => new t.LifelineSocket("ftp://example.com/"));
    // "not a url" is a relative URL, resolved against the page as WebSocket resolves it.
    out.notUrl = t.thrown(() => new t.LifelineSocket("ws://"));
    out.options = t.thrown(() => new t.LifelineSocket(unreachable, { maxDelay: "soon" }));
    const ws = new t.LifelineSocket(unreachable, { maxQueuedMessages: 2, heartbeat: false, minDelay: 5000 });
    out.queue = [ws.send("1"), ws.send("2")];
    out.full = t.thrown(() => ws.send("3"));
    out.badData = t.thrown(() => ws.send({ not: "data" }));
    out.closeCode = t.thrown(() => ws.close(1005));
    out.reason = t.thrown(() => ws.close(1000, "x".repeat(124)));
    ws.close();
    out.afterClose = t.thrown(() => ws.send("4"));
    ws.dispose();
    out.disposed = t.thrown(() => ws.send("5"));
    return out;
  }, `ws://127.0.0.1:${port}/`);
  const lifeline = (e, code) => {
    assert.ok(e, `${code} was thrown`);
    assert.equal(e.name, "LifelineError");
    assert.equal(e.code, code);
    assert.ok(e.isLifeline && e.instanceofError, `${code} is an Error recognised by isLifelineError`);
    assert.ok(e.message.length > 0);
  };
  lifeline(result.url, "ERR_INVALID_URL");
  assert.equal(result.url.supplied, "ftp://example.com/");
  lifeline(result.notUrl, "ERR_INVALID_URL");
  lifeline(result.options, "ERR_INVALID_ARGUMENT");
  assert.deepEqual(result.queue, ["queued", "queued"]);
  lifeline(result.full, "ERR_QUEUE_FULL");
  assert.deepEqual(result.full.limit, { messages: 2 });
  lifeline(result.badData, "ERR_INVALID_ARGUMENT");
  lifeline(result.closeCode, "ERR_INVALID_CLOSE_CODE");
  assert.equal(result.closeCode.closeCode, 1005);
  lifeline(result.reason, "ERR_CLOSE_REASON_TOO_LONG");
  lifeline(result.afterClose, "ERR_CLOSED");
  lifeline(result.disposed, "ERR_DISPOSED");
  await page.close();
  assert.deepEqual(errors, []);
});

test("after dispose() no listener fires and no network activity follows", async () => {
  const { page, errors } = await openPage();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  // Each with the browser's own timestamp: Node hears CDP events late on a loaded machine.
  // A new socket shows as its handshake request.
  const network = [];
  for (const event of ["webSocketFrameSent", "webSocketWillSendHandshakeRequest"]) {
    cdp.on(`Network.${event}`, (e) =>
      network.push({ event, socket: e.requestId, at: e.timestamp, payload: e.response?.payloadData }),
    );
  }
  // Open with a fast heartbeat (would send pings), and one waiting to reconnect (would connect).
  await page.evaluate(async ([echo, closing]) => {
    window.open1 = t.recorded(echo, { heartbeat: { interval: 100, timeout: 1000 }, ...{ minDelay: 100, maxDelay: 200 } });
    window.waiting = t.recorded(closing, { minDelay: 300, maxDelay: 300, heartbeat: false });
    window.fired = 0;
    for (const x of [open1, waiting]) {
      x.ws.onmessage = x.ws.onclose = x.ws.onstatechange = () => fired++;
    }
    await t.until(open1.log, (l) => l.some((e) => e.type === "open"));
    await t.until(waiting.log, (l) => l.some((e) => e.type === "reconnecting"));
    open1.ws.send("in flight");
    open1.ws.dispose();
    waiting.ws.dispose();
    window.lengths = [open1.log.length, waiting.log.length];
    window.fired = 0;
  }, [ws("/echo"), ws("/close?code=4001")]);
  await new Promise((r) => setTimeout(r, 1500));
  const after = await page.evaluate(() => ({
    lengths: [open1.log.length, waiting.log.length],
    before: lengths,
    fired,
    disposed: [open1.ws.disposed, waiting.ws.disposed],
    methods: ["send", "close", "reconnect", "addEventListener"].map((m) => t.thrown(() => open1.ws[m]("x"))),
    again: t.thrown(() => { open1.ws.dispose(); open1.ws.free(); open1.ws[Symbol.dispose](); }),
  }));
  assert.deepEqual(after.lengths, after.before, "no listener fired after dispose()");
  assert.equal(after.fired, 0, "no on… handler fired after dispose()");
  assert.deepEqual(after.disposed, [true, true]);
  for (const e of after.methods) assert.equal(e?.code, "ERR_DISPOSED");
  assert.equal(after.again, null, "dispose, free and Symbol.dispose are idempotent");
  // "in flight" went out in the task that called dispose(): what the browser did after it is
  // what followed dispose().
  const inFlight = network.find((n) => n.event === "webSocketFrameSent" && n.payload === "in flight");
  assert.ok(inFlight, "the frame sent just before dispose() was seen");
  const late = network.filter((n) => n.at > inFlight.at);
  assert.deepEqual(late, [], "no WebSocket created and no frame sent after dispose()");
  await page.close();
  assert.deepEqual(errors, []);
});

test("free() and Symbol.dispose release like dispose()", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (url) => {
    const a = t.recorded(url, { heartbeat: false });
    const b = t.recorded(url, { heartbeat: false });
    await Promise.all([a, b].map((x) => t.until(x.log, (l) => l.some((e) => e.type === "open"))));
    a.ws.free();
    b.ws[Symbol.dispose]();
    const lengths = [a.log.length, b.log.length];
    await new Promise((r) => setTimeout(r, 300));
    return { same: [a.log.length, b.log.length].every((n, i) => n === lengths[i]), disposed: [a.ws.disposed, b.ws.disposed] };
  }, ws("/echo"));
  assert.deepEqual(result, { same: true, disposed: [true, true] });
  await page.close();
  assert.deepEqual(errors, []);
});

test("default options keep one connection to a quiet server; lifeline.v1 turns the heartbeat on", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async (silent) => {
    // Both at defaults (ping after 25 s, dead 10 s later): only the control, whose server
    // selected lifeline.v1, runs the heartbeat and is cut.
    const quiet = t.recorded(silent);
    const control = t.recorded(silent, { protocols: "lifeline.v1", minDelay: 60_000 });
    await t.until(control.log, (l) => l.some((e) => e.type === "close"), 40_000);
    await new Promise((r) => setTimeout(r, 1_000));
    const types = (log) => log.map((e) => e.type).filter((t) => t !== "statechange");
    const out = {
      quiet: types(quiet.log),
      quietState: quiet.ws.state,
      control: control.log.filter((e) => e.type === "close"),
      controlProtocol: control.log.find((e) => e.type === "open")?.protocol,
    };
    for (const r of [quiet, control]) r.ws.dispose();
    return out;
  }, ws("/silent"));
  assert.deepEqual(result.quiet, ["open"], "one connection, never closed");
  assert.equal(result.quietState, "open");
  assert.equal(result.controlProtocol, "lifeline.v1");
  assert.equal(result.control[0].code, 4000, "the v1 control was cut as half-open");
  await page.close();
  assert.deepEqual(errors, []);
});

test("a custom ping and isPong: echoed pings are pongs, a silent server is cut", async () => {
  const { page, errors } = await openPage();
  const result = await page.evaluate(async ([echo, silent]) => {
    const pings = [];
    const heartbeat = {
      interval: 150,
      timeout: 600,
      ping: (n) => {
        pings.push(n);
        return `hb:${n}`;
      },
      isPong: (data) => data.startsWith("hb:"),
    };
    const echoed = t.recorded(echo, { heartbeat });
    const before = echoed.ws.rtt;
    const pongs = [];
    echoed.ws.addEventListener("pong", (e) => pongs.push(e.rtt));
    const quiet = t.recorded(silent, { heartbeat: { ...heartbeat, ping: "hb" }, minDelay: 60_000 });
    await t.until(quiet.log, (l) => l.some((e) => e.type === "close"), 5_000);
    await new Promise((r) => setTimeout(r, 500));
    echoed.ws.send("hello");
    await t.until(echoed.log, (l) => l.some((e) => e.type === "message"));
    const bad = [
      { ping: 3 },
      { isPong: "pong" },
      { interval: 0 },
      { timeout: 0 },
    ].map((heartbeat) => {
      try {
        new t.LifelineSocket(echo, { heartbeat }).dispose();
        return "accepted";
      } catch (e) {
        return e.code;
      }
    });
    const out = {
      echoed: echoed.log.filter((e) => e.type !== "statechange").map((e) => (e.type === "message" ? `message ${e.data}` : e.type)),
      state: echoed.ws.state,
      pings: pings.length,
      before,
      pongs,
      rtt: echoed.ws.rtt,
      quiet: quiet.log.filter((e) => e.type === "close").map((e) => e.code),
      bad,
    };
    const held = t.liveResources().predicates;
    echoed.ws.dispose();
    quiet.ws.dispose();
    return { ...out, held, released: t.liveResources().predicates };
  }, [ws("/echo"), ws("/silent")]);
  assert.ok(result.pings >= 5, `pings sent: ${result.pings}`);
  assert.equal(result.before, undefined, "no rtt before the first pong");
  assert.ok(result.pongs.length >= 4 && result.pongs.every((ms) => ms >= 0 && ms < 600), `${result.pongs}`);
  assert.equal(result.rtt.last, result.pongs.at(-1));
  assert.ok(result.rtt.smoothed >= 0 && result.rtt.smoothed < 600);
  assert.deepEqual(result.echoed, ["open", "message hello"], "no pong reached `message`");
  assert.equal(result.state, "open");
  assert.deepEqual(result.quiet, [4000]);
  assert.deepEqual(result.bad, Array(4).fill("ERR_INVALID_ARGUMENT"));
  assert.deepEqual([result.held, result.released], [4, 0], "ping and isPong held per socket, then released");
  await page.close();
  assert.deepEqual(errors, []);
});
