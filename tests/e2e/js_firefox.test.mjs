// The npm package's `ws-lifeline/shared` and `ws-lifeline/persist` entries in headless Firefox
// ESR (puppeteer-core over WebDriver BiDi, support/firefox.mjs), against a real server-dev and
// with the default options but the subprotocol; the Chromium suites are js_shared.test.mjs
// and js_outbox.test.mjs, whose cases these mirror. Covers:
// - shared, with Firefox's SharedWorker: three tabs of one browser context hold one
//   connection (server-dev's /api/health counts 1); each tab joins its own room and a shared
//   one and receives every message of its rooms exactly once, and nothing of the others';
//   `publish` resolves in the tab that called it, with its `ack` there only; a tab's leave
//   and `close()` release that tab only;
// - shared: closing the tab that made the worker, mid-traffic, loses no publish and the
//   socket stays (no new connection); closing every tab closes the socket (health counts 0);
// - shared: `send` from one tab and the socket's `message` events reach every tab; what cannot
//   cross to the worker (a URL provider, a function option), a bad URL and `share: false`
//   throw typed errors at once; a bad option value is an `error` event, and the tab closed;
// - shared without SharedWorker (deleted before the page's scripts run): a leader tab owns the
//   one connection; when it closes mid-traffic another tab leads within 2 s, every publish of
//   the others resolves and the room goes on; closing every tab closes the socket;
// - shared without SharedWorker, a lost ack: the server accepted a tab's publish but the
//   leader never heard its ack (nor another client's messages meanwhile); the leader closes,
//   the next one resends it under its id within 2 s, the server answers `duplicate: true`, a
//   plain socket in the room receives it once, and each tab receives it and the other client's
//   messages once, in order;
// - persist: 100 publishes made while server-dev is down survive a reload; server-dev starts
//   again on its port; a second member receives the 101 once, in order, and the reloaded page
//   hears `outboxDelivered` with the 100 ids the earlier page stored.
// Firefox runs at its defaults, so a background tab's timers fire at most once a second (a
// leader tab is one); the tests pace their publishes and polls from Node instead. Not
// mirrored: the crash cases (Firefox's WebDriver BiDi has no way to crash a tab's process).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { collectErrors, startServer, withoutNetworkNoise } from "./support/harness.mjs";
import { launchFirefox, sleep, waitInPage } from "./support/firefox.mjs";
import { serveJsPages, wsUrl } from "./support/js_page.mjs";
import { observer, startProxy, storedPublishes, until } from "./support/shared_tools.mjs";

// --no-auth: a shared socket takes no URL provider, and a ticket is good for one connection
// only. --allowed-origin: the pages' own server.
const serverArgs = (site) => ["--no-auth", "--allowed-origin", site.url];

let firefox;

before(async () => {
  firefox = await launchFirefox();
});

after(async () => {
  await firefox?.stop();
});

/** server-dev's `/api/health` of `server`: `{ connections, connections_opened, … }`. */
async function health(server) {
  const res = await fetch(new URL("/api/health", server.url));
  return res.json();
}

describe("shared entry in Firefox", () => {
  let server;
  let site;

  before(async () => {
    site = await serveJsPages();
    server = await startServer(serverArgs(site));
  });

  after(async () => {
    await server?.stop();
    await site?.close();
  });

  /** Waits until server-dev holds `count` live connections; returns its health then. */
  const connections = (count, ms) =>
    until(`${count} live connections`, async () => {
      const h = await health(server);
      return h.connections === count && h;
    }, ms);

  /** A new tab of `context` on the shared test page (pages/shared/index.html), its socket made
   * for `url` (by default the server's `/ws`) with `options` (by default the subprotocol) and
   * listening for room events unless `rooms` is false. Without `sharedWorker`, `SharedWorker`
   * is deleted before the page's scripts run. */
  async function openTab(
    context,
    { sharedWorker = true, url = wsUrl(server, "/ws"), options = { protocols: "lifeline.v1" }, rooms = true } = {},
  ) {
    const page = await context.newPage();
    const errors = collectErrors(page);
    if (!sharedWorker) await page.evaluateOnNewDocument(() => delete globalThis.SharedWorker);
    await page.goto(`${site.url}/shared/index.html`);
    await page.waitForSelector("body[data-ready]", { timeout: 20_000 });
    await page.evaluate(([url, options, rooms]) => connect(url, options, rooms), [url, options, rooms]);
    return { page, errors };
  }

  /** Joins `rooms` in `page`'s tab and waits for its `joined` event of each. */
  async function join(page, rooms) {
    await page.evaluate((rooms) => rooms.forEach((room) => s.join(room)), rooms);
    await waitInPage(page, (rooms) => rooms.every((room) => log.some((e) => e.type === "joined" && e.room === room)), rooms);
  }

  const roomMessages = (page) => page.evaluate(() => log.filter((e) => e.type === "roomMessage"));

  /** Waits until `page` has heard `count` room messages. */
  const heard = (page, count) =>
    waitInPage(page, (count) => log.filter((e) => e.type === "roomMessage").length >= count, count, 20_000);

  /**
   * Each of `tabs` publishes `count` messages `{ tab, n }` to `room`, one every 10 ms, paced
   * from here: Firefox holds a background tab's timers to one a second. Resolves with each
   * tab's outcomes (`settled`); never rejects before it is awaited.
   */
  function publishing(tabs, room, count) {
    const all = Promise.all(
      tabs.map(async ({ page }, at) => {
        await page.evaluate(() => (window.outcomes = []));
        for (let n = 0; n < count; n++) {
          await page.evaluate(([room, tab, n]) => void outcomes.push(settled(s.publish(room, { tab, n }))), [room, `tab${at}`, n]);
          await sleep(10);
        }
        return page.evaluate(() => Promise.all(outcomes));
      }),
    );
    all.catch(() => {});
    return all;
  }

  /** Each of `tabs` heard every publish of `publishing(tabs, …, count)` once, in order. */
  async function heardEachOnce(tabs, count) {
    for (const { page } of tabs) {
      await heard(page, tabs.length * count);
      // A little longer, so that a duplicate would have arrived.
      await sleep(300);
      const messages = await roomMessages(page);
      assert.equal(messages.length, tabs.length * count);
      for (const tab of tabs.map((_, at) => `tab${at}`)) {
        assert.deepEqual(
          messages.filter((m) => m.data.tab === tab).map((m) => m.data.n),
          Array.from({ length: count }, (_, n) => n),
          `${tab}'s messages, each once and in order`,
        );
      }
    }
  }

  test("one connection for three tabs; each tab receives its rooms' messages once", async () => {
    await connections(0);
    const context = await firefox.browser.createBrowserContext();
    const tabs = { a: await openTab(context), b: await openTab(context), c: await openTab(context) };
    const rooms = { a: ["room-a", "shared"], b: ["room-b", "shared"], c: ["room-c", "shared"] };
    try {
      for (const [name, { page }] of Object.entries(tabs)) await join(page, rooms[name]);
      await connections(1);
      assert.deepEqual(
        await tabs.a.page.evaluate(() => [typeof SharedWorker, typeof navigator.locks?.request]),
        ["function", "function"],
        "Firefox runs the SharedWorker hub",
      );

      const PER_ROOM = 10;
      const results = await Promise.all(
        Object.entries(tabs).map(([name, { page }]) =>
          page.evaluate(
            ([name, rooms, count]) =>
              Promise.all(
                rooms.flatMap((room) => Array.from({ length: count }, (_, n) => settled(s.publish(room, { tab: name, n })))),
              ),
            [name, rooms[name], PER_ROOM],
          ),
        ),
      );
      for (const [at, name] of Object.keys(tabs).entries()) {
        assert.deepEqual(results[at].filter((r) => !r.ok), [], `tab ${name}: every publish resolves`);
        const ids = results[at].map((r) => r.ok.id);
        assert.equal(new Set(ids).size, ids.length, `tab ${name}: one ack per publish`);
        const acks = await tabs[name].page.evaluate(() => log.filter((e) => e.type === "ack").map((e) => e.id));
        assert.deepEqual(acks.sort((x, y) => x - y), [...ids].sort((x, y) => x - y), `tab ${name}: its own acks only`);
      }

      // Each tab: its own room (10) and the shared room (3 tabs × 10).
      const expected = PER_ROOM + 3 * PER_ROOM;
      for (const [name, { page }] of Object.entries(tabs)) {
        await heard(page, expected);
        await sleep(300);
        const messages = await roomMessages(page);
        assert.equal(messages.length, expected, `tab ${name}: ${messages.length} room messages`);
        const seen = new Set(messages.map((m) => `${m.room}:${m.epoch}:${m.offset}`));
        assert.equal(seen.size, expected, `tab ${name}: no message twice`);
        assert.deepEqual(
          messages
            .filter((m) => m.room === rooms[name][0])
            .map((m) => m.data)
            .sort((x, y) => x.n - y.n),
          Array.from({ length: PER_ROOM }, (_, n) => ({ tab: name, n })),
          `tab ${name}: its own room`,
        );
        const shared = messages.filter((m) => m.room === "shared");
        for (const from of Object.keys(tabs)) {
          assert.equal(shared.filter((m) => m.data.tab === from).length, PER_ROOM, `tab ${name}: shared from ${from}`);
        }
        assert.ok(messages.every((m) => m.sameTarget), "e.target is the tab's socket");
      }
      assert.equal((await health(server)).connections, 1);

      // B's leave of the shared room does not take it from A and C.
      assert.deepEqual(await tabs.b.page.evaluate(() => [s.leave("shared"), s.leave("shared")]), [true, false]);
      await tabs.a.page.evaluate(() => s.publish("shared", { tab: "a", n: "after b left" }));
      await heard(tabs.c.page, expected + 1);
      await sleep(300);
      assert.equal((await roomMessages(tabs.b.page)).length, expected, "B hears nothing of a room it left");
      assert.equal((await roomMessages(tabs.a.page)).length, expected + 1);

      // close() of one tab releases that tab only.
      const closed = await tabs.c.page.evaluate(() => {
        s.close();
        return [s.readyState, log.at(-1).type, log.at(-1).code];
      });
      assert.deepEqual(closed, [3, "close", 1000]);
      assert.equal(await tabs.a.page.evaluate(() => s.readyState), 1);
      assert.equal((await health(server)).connections, 1);
    } finally {
      await context.close();
    }
    await connections(0);
    for (const { errors } of Object.values(tabs)) assert.deepEqual(errors, []);
  });

  test("closing the tab that made the worker mid-traffic loses nothing; the last tab closes the socket", async () => {
    await connections(0);
    const context = await firefox.browser.createBrowserContext();
    const maker = await openTab(context);
    await join(maker.page, ["traffic"]);
    const others = [await openTab(context), await openTab(context)];
    try {
      for (const { page } of others) await join(page, ["traffic"]);
      const before = await connections(1);

      const COUNT = 60;
      const published = publishing(others, "traffic", COUNT);
      await waitInPage(others[0].page, () => log.filter((e) => e.type === "ack").length >= 10);
      await maker.page.close();
      const results = await published;
      for (const result of results) assert.deepEqual(result.filter((r) => !r.ok), [], "every publish resolves");
      await heardEachOnce(others, COUNT);
      for (const { page } of others) {
        const drops = await page.evaluate(() => log.filter((e) => e.type === "close" || e.type === "reconnecting"));
        assert.deepEqual(drops, [], "the socket never dropped");
      }
      const now = await health(server);
      assert.equal(now.connections, 1);
      assert.equal(now.connections_opened, before.connections_opened, "no new connection was opened");

      for (const { page } of others) await page.close();
      await connections(0, 5_000);
    } finally {
      await context.close();
    }
    for (const { errors } of [maker, ...others]) assert.deepEqual(errors, []);
  });

  test("send and message reach every tab; typed errors for what cannot be shared", async () => {
    await connections(0);
    const context = await firefox.browser.createBrowserContext();
    // No subprotocol: no rooms, so the server's answer to a frame it cannot read is a `message`.
    const a = await openTab(context, { options: {}, rooms: false });
    const b = await openTab(context, { options: {}, rooms: false });
    try {
      for (const { page } of [a, b]) await waitInPage(page, () => s.readyState === 1);
      assert.equal(await a.page.evaluate(() => s.send("not json")), "sent");
      for (const { page } of [a, b]) {
        const message = await waitInPage(page, () => log.find((e) => e.type === "message")?.data);
        assert.equal(JSON.parse(message).code, "bad_json");
      }
      const errors = await a.page.evaluate((url) => {
        const code = (make) => {
          try {
            make();
            return "no error";
          } catch (e) {
            return `${e.name} ${e.code}`;
          }
        };
        return {
          provider: code(() => new LifelineSocket(() => url, { share: true })),
          functionOption: code(() => new LifelineSocket(url, { share: true, isTerminalClose: () => true })),
          badUrl: code(() => new LifelineSocket("ftp://127.0.0.1/ws", { share: true })),
          notShared: code(() => new LifelineSocket(url, { share: false })),
        };
      }, wsUrl(server, "/ws"));
      assert.deepEqual(errors, {
        provider: "LifelineError ERR_INVALID_ARGUMENT",
        functionOption: "LifelineError ERR_INVALID_ARGUMENT",
        badUrl: "LifelineError ERR_INVALID_URL",
        notShared: "LifelineError ERR_INVALID_ARGUMENT",
      });
      const refused = await a.page.evaluate(async (url) => {
        const ws = new LifelineSocket(url, { share: true, maxRetries: -1 });
        const error = await new Promise((resolve) => ws.addEventListener("error", (e) => resolve(e.error), { once: true }));
        return { code: error.code, name: error.name, readyState: ws.readyState };
      }, wsUrl(server, "/ws"));
      assert.deepEqual(refused, { code: "ERR_INVALID_ARGUMENT", name: "LifelineError", readyState: 3 });
    } finally {
      await context.close();
    }
    await connections(0);
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
  });

  test("without SharedWorker: one leader; it closes mid-traffic and another tab leads within 2 s", async (t) => {
    await connections(0);
    const context = await firefox.browser.createBrowserContext();
    // Firefox has SharedWorker: taking it away is the only way to run the fallback in it.
    const leader = await openTab(context, { sharedWorker: false });
    const others = [await openTab(context, { sharedWorker: false }), await openTab(context, { sharedWorker: false })];
    try {
      for (const { page } of [leader, ...others]) await join(page, ["lead"]);
      const before = await connections(1);
      assert.equal(await others[0].page.evaluate(() => typeof SharedWorker), "undefined");

      const COUNT = 40;
      const published = publishing(others, "lead", COUNT);
      await waitInPage(others[0].page, () => log.filter((e) => e.type === "ack").length >= 10);
      const opens = await others[0].page.evaluate(() => log.filter((e) => e.type === "open").length);
      const closedAt = Date.now();
      await leader.page.close();
      await waitInPage(others[0].page, (opens) => log.filter((e) => e.type === "open").length > opens, opens, 2_000);
      const takeover = Date.now() - closedAt;
      t.diagnostic(`a new leader's socket opened ${takeover} ms after the leader closed`);
      assert.ok(takeover < 2_000, `a new leader's socket opened after ${takeover} ms`);
      const results = await published;
      for (const result of results) assert.deepEqual(result.filter((r) => !r.ok), [], "every publish resolves");
      const now = await connections(1);
      assert.equal(now.connections_opened, before.connections_opened + 1, "the new leader opened one connection");

      // The room goes on under the new leader: each tab receives the other's next messages once.
      const counts = await Promise.all(others.map(({ page }) => roomMessages(page).then((l) => l.length)));
      await Promise.all(others.map(({ page }, at) => page.evaluate((tab) => s.publish("lead", { tab, n: "after" }), `tab${at}`)));
      for (const [at, { page }] of others.entries()) {
        await heard(page, counts[at] + 2);
        await sleep(300);
        const after = (await roomMessages(page)).slice(counts[at]).map((m) => m.data.tab).sort();
        assert.deepEqual(after, ["tab0", "tab1"]);
      }
      for (const { page } of others) await page.close();
      await connections(0, 5_000);
    } finally {
      await context.close();
    }
    for (const { errors } of [leader, ...others]) assert.deepEqual(errors, []);
  });

  test("without SharedWorker, a lost ack: the new leader resends under the same id, the server deduplicates it", async (t) => {
    await connections(0);
    // The proxy holds the server's answers to the leader's connection: the server accepts a
    // publish (a plain socket in the room receives it) and the leader never hears its ack, nor
    // the other client's messages meanwhile.
    const proxy = await startProxy(server);
    const context = await firefox.browser.createBrowserContext();
    const tab = { sharedWorker: false, url: wsUrl(proxy, "/ws") };
    const leader = await openTab(context, tab);
    const others = [await openTab(context, tab), await openTab(context, tab)];
    const [publisher] = others;
    let watcher;
    try {
      for (const { page } of [leader, ...others]) await join(page, ["relay"]);
      watcher = await observer(server, "relay", site.url);
      await connections(2);
      // Settled: the joins' and the welcome's snapshots are written.
      await sleep(300);
      assert.equal(proxy.hold(), 1, "the leader's connection is held");

      await publisher.page.evaluate(() => void (window.lost = settled(s.publish("relay", { lost: true }))));
      const accepted = await until("the server accepted the publish", () =>
        watcher.frames.find((f) => f.type === "message" && f.data?.lost),
      );
      const [stored] = await until("IndexedDB holds the publish", async () => {
        const held = (await storedPublishes(publisher.page)).filter((p) => p.data?.lost);
        return held.length && held;
      });
      assert.equal(stored.id, accepted.id, "stored under the id the server saw");
      for (let n = 0; n < 3; n++) watcher.send({ type: "publish", room: "relay", id: n + 1, data: { meanwhile: n } });
      await until("the observer's acks", () => watcher.frames.filter((f) => f.type === "ack").length === 3);
      await sleep(300);
      for (const { page } of [leader, ...others]) {
        assert.deepEqual(await roomMessages(page), [], "the held leader passed nothing on");
      }
      const beforeTakeover = (await health(server)).connections_opened;

      const closedAt = Date.now();
      await leader.page.close();
      const lost = await publisher.page.evaluate(() => window.lost);
      const settledAfter = Date.now() - closedAt;
      t.diagnostic(`the publish settled ${settledAfter} ms after the leader closed`);
      assert.ok(settledAfter < 2_000, `the publish settled ${settledAfter} ms after the leader closed`);
      assert.deepEqual(
        lost.ok && { id: lost.ok.id, duplicate: lost.ok.duplicate },
        { id: stored.id, duplicate: true },
        JSON.stringify(lost),
      );

      const expected = [{ lost: true }, { meanwhile: 0 }, { meanwhile: 1 }, { meanwhile: 2 }];
      for (const { page } of others) {
        await heard(page, expected.length);
        await sleep(300);
        const data = (await roomMessages(page)).map((m) => m.data);
        assert.deepEqual(data, expected, "each tab: the lost publish and the others' messages, once, in order");
      }
      const copies = watcher.frames.filter((f) => f.type === "message" && f.data?.lost);
      assert.equal(copies.length, 1, "the observer received the publish once");
      const now = await health(server);
      assert.equal(now.connections, 2);
      assert.equal(now.connections_opened, beforeTakeover + 1, "the new leader opened one connection");
    } finally {
      await watcher?.close();
      await context.close();
      await proxy.close();
    }
    await connections(0);
    for (const { errors } of others) assert.deepEqual(errors, []);
  });
});

describe("persist entry in Firefox", () => {
  const BURST = 100;
  let server;
  let site;

  before(async () => {
    // The test page (pages/index.html) with `/pkg/` from the persist entry's folder.
    site = await serveJsPages("pkg/persist");
    server = await startServer(serverArgs(site));
  });

  after(async () => {
    await server?.stop();
    await site?.close();
  });

  /** A new page of `context` on the test page, the package loaded (`window.t`). */
  async function openPage(context) {
    const page = await context.newPage();
    const errors = collectErrors(page);
    await page.goto(`${site.url}/index.html`);
    await page.waitForSelector("body[data-ready]", { timeout: 20_000 });
    return { page, errors };
  }

  /** In the page: the store's snapshot once `check(snapshot)` holds (polled, at most 10 s). */
  function storedWhen(page, store, check) {
    return page.evaluate(
      async ([store, check]) => {
        const { storedOutbox } = await import("/pkg/index.js");
        const holds = new Function("s", `return (${check})(s)`);
        const started = performance.now();
        for (;;) {
          const snapshot = await storedOutbox(store);
          if (snapshot && holds(snapshot)) return snapshot;
          if (performance.now() - started > 10_000) throw new Error(`store ${store}: ${JSON.stringify(snapshot)}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      },
      [store, check.toString()],
    );
  }

  test("100 publishes made while the server is down survive a reload and are delivered once", async () => {
    const context = await firefox.browser.createBrowserContext();
    try {
      const { page, errors } = await openPage(context);
      const annUrl = wsUrl(server, "/ws?name=ann");
      await page.evaluate(async (url) => {
        window.m = t.recorded(url, { protocols: "lifeline.v1", persist: "chat" });
        m.rooms = t.roomLog(m.ws).log;
        m.ws.join("outbox");
        await t.until(m.rooms, (l) => l.some((e) => e.type === "joined"));
      }, annUrl);
      const port = server.port;
      await server.stop();
      await page.evaluate(async (burst) => {
        await t.until(m.log, (l) => l.some((e) => e.type === "close"));
        for (let n = 1; n <= burst; n++) m.ws.publish("outbox", { n }).catch(() => {});
      }, BURST);
      const stored = await storedWhen(page, "chat", (s) => s.publishes.length === 100);
      const storedIds = stored.publishes.map((p) => p.id);
      assert.deepEqual(
        stored.publishes.map((p) => JSON.parse(p.data).n),
        Array.from({ length: BURST }, (_, i) => i + 1),
      );

      await page.reload();
      await page.waitForSelector("body[data-ready]", { timeout: 20_000 });
      // The restored socket waits (its URL provider holds) until the second member is in the room.
      await page.evaluate((url) => {
        window.hold = true;
        const provider = async () => {
          while (window.hold) await new Promise((r) => setTimeout(r, 20));
          return url;
        };
        window.m = t.recorded(provider, { protocols: "lifeline.v1", persist: "chat" });
        m.rooms = t.roomLog(m.ws).log;
        m.delivered = [];
        m.ws.on("outboxDelivered", (e) => m.delivered.push(...e.ids));
        // Made before the stored outbox has loaded: it goes out after the restored publishes.
        m.ws.join("outbox");
        m.last = t.settled(m.ws.publish("outbox", { n: 101 }));
      }, annUrl);
      server = await startServer(serverArgs(site), { port });
      const bob = await openPage(context);
      await bob.page.evaluate(async (url) => {
        window.m = t.recorded(url, { protocols: "lifeline.v1" });
        m.rooms = t.roomLog(m.ws).log;
        m.ws.join("outbox");
        await t.until(m.rooms, (l) => l.some((e) => e.type === "joined"));
      }, wsUrl(server, "/ws?name=bob"));
      await page.evaluate(() => (window.hold = false));

      const received = await bob.page.evaluate(async (total) => {
        await t.until(m.rooms, (l) => l.filter((e) => e.type === "roomMessage").length >= total, 20_000);
        return m.rooms.filter((e) => e.type === "roomMessage");
      }, BURST + 1);
      const ann = await page.evaluate(async (burst) => {
        await t.until(m.delivered, (d) => d.length >= burst, 10_000);
        return { delivered: m.delivered, last: await m.last, rooms: m.rooms };
      }, BURST);
      // Anything sent twice would have arrived by now, behind the 101st.
      await sleep(500);
      const after = await bob.page.evaluate(() => m.rooms.filter((e) => e.type === "roomMessage").length);

      assert.deepEqual(
        received.map((e) => e.data.n),
        Array.from({ length: BURST + 1 }, (_, i) => i + 1),
        "bob receives every publish once, in order, the restored ones first",
      );
      assert.equal(after, BURST + 1, "nothing arrives twice");
      assert.deepEqual(received.slice(0, BURST).map((e) => e.id), storedIds, "the restored publishes keep their ids");
      assert.deepEqual(ann.delivered, storedIds, "outboxDelivered names the earlier page's publishes");
      assert.ok(ann.last.ok, `the publish made while loading is acknowledged: ${JSON.stringify(ann.last)}`);
      assert.ok(!storedIds.includes(ann.last.ok.id), "a new id after the restored ones");
      assert.equal(ann.rooms.filter((e) => e.type === "publishFailed").length, 0);
      assert.equal(ann.rooms.filter((e) => e.type === "ack").length, BURST + 1);
      await storedWhen(page, "chat", (s) => s.publishes.length === 0);
      assert.deepEqual(withoutNetworkNoise(errors), []);
      assert.deepEqual(bob.errors, []);
    } finally {
      await context.close();
    }
  });
});
