// `ws-lifeline/shared` in headless Chromium: three tabs (pages of one browser context, so one
// origin and one SharedWorker) against a real server-dev, with the default options but the
// subprotocol. Covers:
// - three tabs hold one connection (server-dev's /api/health counts 1);
// - rooms reference-counted across tabs: each tab joins its own room and a shared one, and
//   receives every message of its rooms exactly once, and nothing of the others';
// - `publish` resolves in the tab that called it, with an `ack` event there and only there;
// - a tab that joins a room the socket already holds hears `joined`;
// - `close()` of one tab releases only that tab; the others keep the socket;
// - closing the tab that opened the socket, mid-traffic, loses nothing: the worker owns the
//   socket, which never reconnects, and every publish of the other tabs arrives once;
// - `send` from one tab, and the socket's `message` events reach every tab;
// - arguments that cannot cross to the worker (a function option, a URL provider without the
//   socket's name) and a bad URL throw typed errors at once; a bad option value is an `error`
//   event, and the tab closed;
// - a URL provider with one-time tickets (server-dev's logins on): the hub asks one tab for each
//   attempt's URL, a provider's error is an `error` event and the next attempt asks again, and
//   once that tab is closed the next tab is asked; the same with a leader tab instead of the
//   worker (the leader is the tab that closes, so the new leader's hub asks the others);
// - a tab that crashes (no `pagehide`, no `dispose`) is found by its Web Lock: the room only
//   it had joined is left, the others keep theirs and the socket;
// - a crash of the process that hosts the SharedWorker: the other tab starts a new worker,
//   attaches to it with its rooms, and publishes and receives again;
// - closing every tab closes the socket (health counts 0);
// - Vite builds an app that imports `ws-lifeline/shared` from the packed package (with
//   `worker.format: "es"`), and two tabs of the built app share one connection;
// - without SharedWorker, a leader tab owns the socket (one connection for three tabs); when
//   it closes mid-traffic another tab leads within 2 s, every publish of the others resolves
//   (resent to the new leader) and the rooms go on;
// - a lost ack across a takeover, both for a worker whose process crashed and for a leader
//   tab that closed: the server accepted a tab's publish but the hub never heard its ack (nor
//   the room messages another client published meanwhile); the next hub resends it under its
//   id, the server answers `duplicate: true`, which settles the tab's promise, a plain socket
//   in the room receives it once, and each tab receives it and the other client's messages
//   once, in order;
// - the same with a leader whose IndexedDB writes fail (a stand-in for ending between sending
//   a publish and storing it): the tab hands the next hub the publish's id, and it is resent
//   under that id although no store held it;
// - a store that lags behind what a tab heard (writes failing again): the next hub's replay
//   of those messages is dropped in the tab, which hears each message once;
// - a hub waits for its store's Web Lock while another holds it (no connection meanwhile).
// Unshared mode is the other js_*.test.mjs suites, unchanged.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { collectErrors, launchChromium, startServer } from "./support/harness.mjs";
import { serveJsPages, wsUrl } from "./support/js_page.mjs";
import { observer, startProxy, storedPublishes, until } from "./support/shared_tools.mjs";
import { serveStatic } from "./pages/serve.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// --no-auth: most tests give the URL itself, and a server-dev ticket is good for one
// connection only (the URL provider test runs a server with logins of its own).
// --allowed-origin: the pages' own server.
const SERVER_ARGS = ["--no-auth", "--allowed-origin"];

let server;
let site;
let browser;

before(async () => {
  site = await serveJsPages();
  server = await startServer([...SERVER_ARGS, site.url]);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await site?.close();
});

async function health() {
  const res = await fetch(new URL("/api/health", server.url));
  return res.json();
}

/** A new tab of `context` on the shared test page, its socket made for the server's `/ws`
 * (with `options`: by default the subprotocol) and listening for room events unless `rooms`
 * is false. */
async function openTab(context, options = { protocols: "lifeline.v1" }, rooms = true, url = wsUrl(server, "/ws")) {
  const page = await context.newPage();
  const errors = collectErrors(page);
  await page.goto(`${site.url}/shared/index.html`);
  await page.waitForSelector("body[data-ready]", { state: "attached", timeout: 20_000 });
  await page.evaluate(([url, options, rooms]) => connect(url, options, rooms), [url, options, rooms]);
  return { page, errors };
}

/** Joins `rooms` in `page`'s tab and waits for its `joined` event of each. */
async function join(page, rooms) {
  await page.evaluate((rooms) => rooms.forEach((room) => s.join(room)), rooms);
  await page.waitForFunction(
    (rooms) => rooms.every((room) => log.some((e) => e.type === "joined" && e.room === room)),
    rooms,
    { timeout: 15_000, polling: 20 },
  );
}

const roomMessages = (page) => page.evaluate(() => log.filter((e) => e.type === "roomMessage"));

/** Waits until `page` has heard `count` room messages. */
function heard(page, count) {
  return page.waitForFunction((count) => log.filter((e) => e.type === "roomMessage").length >= count, count, {
    timeout: 20_000,
    polling: 20,
  });
}

/**
 * The lost-ack case across a takeover, in `context`: three tabs in room "relay" through a
 * proxy, the first tab's hub owning the socket. The proxy holds the server's replies; a tab
 * publishes and the server accepts it (a plain socket in the room receives it), the hub
 * stores it, and another client publishes 3 messages. Then `end(firstTab)` ends the hub. The
 * next hub must resend the publish under its id (answered `duplicate: true`, which settles
 * the tab's promise), the plain socket must not receive it again, and each remaining tab must
 * receive it and the other client's messages once, in order; all within 2 s of the end (the
 * issue's takeover bound), reported as a diagnostic of test `t`. `unstored`: the hub (a leader
 * tab) cannot write IndexedDB from before the publish, so its store never holds it; the tab
 * hands the next hub its id, under which it must be resent all the same.
 */
async function lostAckTakeover(t, context, end, { unstored = false } = {}) {
  await until("no live connection", async () => (await health()).connections === 0);
  // The proxy: server-dev's `/test/cut?mode=silence` stops reading too, so the server would
  // never accept the publish; here it does, and only its answer is lost.
  const proxy = await startProxy(server);
  let watcher;
  const url = wsUrl(proxy, "/ws");
  const first = await openTab(context, undefined, true, url);
  const others = [await openTab(context, undefined, true, url), await openTab(context, undefined, true, url)];
  const [publisher] = others;
  try {
    for (const { page } of [first, ...others]) await join(page, ["relay"]);
    watcher = await observer(server, "relay", site.url);
    await until("the hub's and the observer's connections", async () => (await health()).connections === 2);
    // Settled: the joins' and the welcome's snapshots are written.
    await publisher.page.waitForTimeout(300);
    assert.equal(proxy.hold(), 1, "the hub's connection is held");
    if (unstored) {
      // A stand-in for a hub that ends between sending a publish and storing the snapshot
      // that holds it (a few milliseconds a real browser gives no way to hit): its writes fail.
      await first.page.evaluate(() => {
        IDBObjectStore.prototype.put = () => {
          throw new DOMException("writes held by the test", "UnknownError");
        };
      });
    }

    await publisher.page.evaluate(() => {
      window.lost = settled(s.publish("relay", { lost: true }));
    });
    const accepted = await until("the server accepted the publish", () =>
      watcher.frames.find((f) => f.type === "message" && f.data?.lost),
    );
    if (unstored) {
      await publisher.page.waitForTimeout(300);
      const held = (await storedPublishes(publisher.page)).filter((p) => p.data?.lost);
      assert.deepEqual(held, [], "the store never held the publish");
    } else {
      const [stored] = await until("IndexedDB holds the publish", async () => {
        const held = (await storedPublishes(publisher.page)).filter((p) => p.data?.lost);
        return held.length && held;
      });
      assert.equal(stored.id, accepted.id, "stored under the id the server saw");
    }
    // Meanwhile another client publishes: the hub hears none of it.
    for (let n = 0; n < 3; n++) watcher.send({ type: "publish", room: "relay", id: n + 1, data: { meanwhile: n } });
    await until("the observer's acks", () => watcher.frames.filter((f) => f.type === "ack").length === 3);
    await publisher.page.waitForTimeout(300);
    for (const { page } of [first, ...others]) {
      assert.deepEqual(await roomMessages(page), [], "the held hub passed nothing on");
    }
    const beforeTakeover = (await health()).connections_opened;

    const endedAt = Date.now();
    // Not awaited first: ending a crashed tab's session can take until its 2 s bound.
    const ended = end(first);
    const lost = await publisher.page.evaluate(() => window.lost);
    const settledAfter = Date.now() - endedAt;
    await ended;
    t.diagnostic(`the publish settled ${settledAfter} ms after the hub was ended`);
    assert.ok(settledAfter < 2_000, `the publish settled ${settledAfter} ms after the hub was ended`);
    assert.deepEqual(
      lost.ok && { id: lost.ok.id, duplicate: lost.ok.duplicate },
      { id: accepted.id, duplicate: true },
      JSON.stringify(lost),
    );

    const expected = [{ lost: true }, { meanwhile: 0 }, { meanwhile: 1 }, { meanwhile: 2 }];
    for (const { page } of others) {
      await heard(page, expected.length);
      await page.waitForTimeout(300);
      const data = (await roomMessages(page)).map((m) => m.data);
      assert.deepEqual(data, expected, "each tab: the lost publish and the others' messages, once, in order");
    }
    const copies = watcher.frames.filter((f) => f.type === "message" && f.data?.lost);
    assert.equal(copies.length, 1, "the observer received the publish once");
    const now = await health();
    assert.equal(now.connections, 2);
    assert.equal(now.connections_opened, beforeTakeover + 1, "the new hub opened one connection");
  } finally {
    await watcher?.close();
    await context.close();
    await proxy.close();
  }
  for (const { errors } of others) assert.deepEqual(errors, []);
}

/**
 * A URL provider with server-dev's one-time tickets, in three tabs of one context (`leader`:
 * without SharedWorker): the hub asks one tab for each attempt's URL; once that tab is gone
 * (and, with `leader`, the hub with it) and the server restarts, the remaining tabs are asked,
 * a provider's error reaches the tabs, and the next attempt asks again.
 */
async function urlProviderAcrossTabs({ leader }) {
  // Logins on (the default): each connection needs a fresh one-time ticket.
  const authed = await startServer(["--allowed-origin", site.url]);
  const authedHealth = async () => (await fetch(new URL("/api/health", authed.url))).json();
  const context = await browser.newContext();
  if (leader) await context.addInitScript(() => delete globalThis.SharedWorker);
  /** Tab name → how often its provider was called; `failNext` makes the next call throw. */
  const asked = { a: 0, b: 0, c: 0 };
  let failNext = false;
  const tabs = {};
  let restarted = authed;
  try {
    for (const name of ["a", "b", "c"]) {
      const page = await context.newPage();
      const errors = collectErrors(page);
      await page.exposeFunction("nextUrl", async () => {
        asked[name]++;
        if (failNext) {
          failNext = false;
          throw new Error("no ticket today");
        }
        const res = await fetch(new URL("/api/login", restarted.url), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name: `user-${name}` }),
        });
        const { ticket } = await res.json();
        return `${wsUrl(restarted, "/ws")}?ticket=${encodeURIComponent(ticket)}`;
      });
      await page.goto(`${site.url}/shared/index.html`);
      await page.waitForSelector("body[data-ready]", { state: "attached", timeout: 20_000 });
      await page.evaluate(() => connect(null, { share: "chat", protocols: "lifeline.v1" }, true));
      tabs[name] = { page, errors };
      // One at a time, so that `a` is the first tab the hub knows.
      await page.waitForFunction(() => s.readyState === 1, undefined, { timeout: 15_000, polling: 20 });
    }
    assert.deepEqual(asked, { a: 1, b: 0, c: 0 }, "one URL, from the first tab");
    assert.equal((await authedHealth()).connections, 1);
    for (const { page } of Object.values(tabs)) await join(page, ["tickets"]);

    // `a` goes; the server restarts (its tickets with it): the next attempts ask `b`, whose
    // first answer is an error.
    const heardBefore = {};
    for (const name of ["b", "c"]) heardBefore[name] = await tabs[name].page.evaluate(() => log.length);
    await tabs.a.page.close();
    failNext = true;
    await authed.stop();
    restarted = await startServer(["--allowed-origin", site.url], { port: authed.port });
    // An `open` after a went: the tabs' last report of the state may still be the old socket's.
    for (const name of ["b", "c"]) {
      await tabs[name].page.waitForFunction(
        (from) => s.readyState === 1 && log.slice(from).some((e) => e.type === "open"),
        heardBefore[name],
        { timeout: 20_000, polling: 20 },
      );
    }
    assert.equal(asked.a, 1, "a closed tab is not asked");
    if (leader) {
      // The new leader's tabs attach in no set order: either may be the first asked.
      assert.ok(asked.b + asked.c >= 2, `b and c gave the URLs after a closed: ${JSON.stringify(asked)}`);
    } else {
      assert.ok(asked.b >= 2, `b gave the URLs after a closed (asked ${asked.b} times)`);
      assert.equal(asked.c, 0, "c was never asked");
    }
    // In b or c: with `leader`, the new hub's first attempt may come before c attached to it.
    const reported = [];
    for (const name of ["b", "c"]) {
      reported.push(
        ...(await tabs[name].page.evaluate(() => log.filter((e) => e.type === "error").map((e) => e.error?.message ?? ""))),
      );
    }
    assert.ok(
      reported.some((m) => m.includes("no ticket today")),
      `the provider's error reached the tabs: ${JSON.stringify(reported)}`,
    );
    const ack = await tabs.c.page.evaluate(() => s.publish("tickets", { after: "restart" }));
    assert.equal(ack.room, "tickets");
    // Both tabs are in the room again: the socket rejoined it on the new connection.
    for (const name of ["b", "c"]) {
      await tabs[name].page.waitForFunction(
        () => log.filter((e) => e.type === "roomMessage" && e.data?.after === "restart").length === 1,
        undefined,
        { timeout: 10_000, polling: 20 },
      );
    }
    assert.equal((await fetch(new URL("/api/health", restarted.url)).then((r) => r.json())).connections, 1);
  } finally {
    await context.close();
    await restarted.stop();
    await authed.stop();
  }
  for (const { errors } of Object.values(tabs)) assert.deepEqual(errors, []);
}

/**
 * Two tabs of one context whose hub connects through a proxy (see `startProxy`), and a plain
 * socket watching `room` directly on the server: `body({ proxy, tabs, watcher })` runs with
 * them, then everything is closed and neither tab may have logged an error.
 */
async function twoTabsBehindProxy(room, body) {
  await until("no live connection", async () => (await health()).connections === 0);
  const proxy = await startProxy(server);
  const url = wsUrl(proxy, "/ws");
  const context = await browser.newContext();
  const tabs = [await openTab(context, undefined, true, url), await openTab(context, undefined, true, url)];
  let watcher;
  try {
    watcher = await observer(server, room, site.url);
    await body({ proxy, tabs, watcher });
  } finally {
    await watcher?.close();
    await context.close();
    await proxy.close();
  }
  for (const { errors } of tabs) assert.deepEqual(errors, []);
}

/** The network goes: the hub's socket drops and cannot come back until `proxy.admit()`. */
async function goOffline(proxy, tab) {
  proxy.refuse();
  await tab.page.waitForFunction(() => s.readyState !== 1, undefined, { timeout: 10_000, polling: 20 });
}

/** The publishes the hub's store (read in `tab`) holds whose data has the key `key`. */
async function storedWith(tab, key) {
  return (await storedPublishes(tab.page)).filter((p) => p.data?.[key] !== undefined);
}

describe("shared mode: one socket for three tabs", () => {
  test("one connection; each tab receives its rooms' messages once; publish settles in its tab", async () => {
    await until("no live connection", async () => (await health()).connections === 0);
    const context = await browser.newContext();
    const tabs = { a: await openTab(context), b: await openTab(context), c: await openTab(context) };
    const rooms = { a: ["room-a", "shared"], b: ["room-b", "shared"], c: ["room-c", "shared"] };
    try {
      for (const [name, { page }] of Object.entries(tabs)) await join(page, rooms[name]);
      assert.equal((await until("one connection", async () => (await health()).connections === 1 && health())).connections, 1);

      const PER_ROOM = 10;
      const results = await Promise.all(
        Object.entries(tabs).map(([name, { page }]) =>
          page.evaluate(
            ([name, rooms, count]) =>
              Promise.all(
                rooms.flatMap((room) =>
                  Array.from({ length: count }, (_, n) => settled(s.publish(room, { tab: name, n }))),
                ),
              ),
            [name, rooms[name], PER_ROOM],
          ),
        ),
      );
      for (const [at, name] of Object.keys(tabs).entries()) {
        const failed = results[at].filter((r) => !r.ok);
        assert.deepEqual(failed, [], `tab ${name}: every publish resolves`);
        const ids = results[at].map((r) => r.ok.id);
        assert.equal(new Set(ids).size, ids.length, `tab ${name}: one ack per publish`);
        const acks = await tabs[name].page.evaluate(() => log.filter((e) => e.type === "ack").map((e) => e.id));
        assert.deepEqual(acks.sort((x, y) => x - y), [...ids].sort((x, y) => x - y), `tab ${name}: its own acks only`);
      }

      // Each tab: its own room (10) and the shared room (3 tabs × 10).
      const expected = PER_ROOM + 3 * PER_ROOM;
      for (const [name, { page }] of Object.entries(tabs)) {
        await heard(page, expected);
        // A little longer, so that a duplicate or a stray message would have arrived.
        await page.waitForTimeout(300);
        const messages = await roomMessages(page);
        assert.equal(messages.length, expected, `tab ${name}: ${messages.length} room messages`);
        const seen = new Set(messages.map((m) => `${m.room}:${m.epoch}:${m.offset}`));
        assert.equal(seen.size, expected, `tab ${name}: no message twice`);
        const own = messages.filter((m) => m.room === rooms[name][0]);
        assert.deepEqual(
          own.map((m) => m.data).sort((x, y) => x.n - y.n),
          Array.from({ length: PER_ROOM }, (_, n) => ({ tab: name, n })),
          `tab ${name}: its own room`,
        );
        const shared = messages.filter((m) => m.room === "shared");
        for (const from of Object.keys(tabs)) {
          assert.equal(shared.filter((m) => m.data.tab === from).length, PER_ROOM, `tab ${name}: shared from ${from}`);
        }
        assert.ok(messages.every((m) => m.sameTarget), "e.target is the tab's socket");
      }
      assert.equal((await health()).connections, 1);

      // Leaving: B's leave of the shared room does not take it from A and C.
      const left = await tabs.b.page.evaluate(() => [s.leave("shared"), s.leave("shared")]);
      assert.deepEqual(left, [true, false]);
      await tabs.a.page.evaluate(() => s.publish("shared", { tab: "a", n: "after b left" }));
      await heard(tabs.c.page, expected + 1);
      await tabs.b.page.waitForTimeout(300);
      assert.equal((await roomMessages(tabs.b.page)).length, expected, "B hears nothing of a room it left");
      assert.equal((await roomMessages(tabs.a.page)).length, expected + 1);

      // close() of one tab releases that tab only.
      const closed = await tabs.c.page.evaluate(() => {
        s.close();
        return [s.readyState, log.at(-1).type, log.at(-1).code];
      });
      assert.deepEqual(closed, [3, "close", 1000]);
      const stillOpen = await tabs.a.page.evaluate(() => s.readyState);
      assert.equal(stillOpen, 1);
      assert.equal((await health()).connections, 1);
    } finally {
      await context.close();
    }
    await until("no live connection once every tab is closed", async () => (await health()).connections === 0);
    for (const { errors } of Object.values(tabs)) assert.deepEqual(errors, []);
  });

  test("closing the tab that opened the socket mid-traffic loses nothing; the last tab closes it", async () => {
    await until("no live connection", async () => (await health()).connections === 0);
    const context = await browser.newContext();
    const opener = await openTab(context);
    await join(opener.page, ["traffic"]);
    const others = [await openTab(context), await openTab(context)];
    try {
      for (const { page } of others) await join(page, ["traffic"]);
      const before = await until("one connection", async () => {
        const h = await health();
        return h.connections === 1 && h;
      });

      // B and C publish one message every 10 ms; A goes after B's tenth ack.
      const COUNT = 60;
      for (const [at, { page }] of others.entries()) {
        await page.evaluate(
          ([tab, count]) => {
            window.publishing = (async () => {
              const out = [];
              for (let n = 0; n < count; n++) {
                out.push(settled(s.publish("traffic", { tab, n })));
                await new Promise((r) => setTimeout(r, 10));
              }
              return Promise.all(out);
            })();
          },
          [`tab${at}`, COUNT],
        );
      }
      await others[0].page.waitForFunction(() => log.filter((e) => e.type === "ack").length >= 10, undefined, {
        timeout: 15_000,
        polling: 10,
      });
      await opener.page.close();
      const results = await Promise.all(others.map(({ page }) => page.evaluate(() => window.publishing)));
      for (const result of results) assert.deepEqual(result.filter((r) => !r.ok), [], "every publish resolves");

      for (const { page } of others) {
        await heard(page, 2 * COUNT);
        await page.waitForTimeout(300);
        const messages = await roomMessages(page);
        assert.equal(messages.length, 2 * COUNT);
        for (const tab of ["tab0", "tab1"]) {
          assert.deepEqual(
            messages.filter((m) => m.data.tab === tab).map((m) => m.data.n),
            Array.from({ length: COUNT }, (_, n) => n),
            `${tab}'s messages, each once and in order`,
          );
        }
        const closes = await page.evaluate(() => log.filter((e) => e.type === "close" || e.type === "reconnecting"));
        assert.deepEqual(closes, [], "the socket never dropped");
      }
      const now = await health();
      assert.equal(now.connections, 1);
      assert.equal(now.connections_opened, before.connections_opened, "no new connection was opened");
      for (const { page } of others) await page.close();
      await until("no live connection once every tab is closed", async () => (await health()).connections === 0, 5_000);
    } finally {
      await context.close();
    }
    for (const { errors } of [opener, ...others]) assert.deepEqual(errors, []);
  });

  test("a tab that goes leaves its publishes to the hub: its room stays joined until they are acknowledged", () =>
    twoTabsBehindProxy("linger", async ({ proxy, tabs: [leaving, staying], watcher }) => {
      await join(leaving.page, ["linger"]);
      await join(staying.page, ["elsewhere"]);
      await goOffline(proxy, staying);
      await leaving.page.evaluate(() => {
        for (let n = 0; n < 3; n++) s.publish("linger", { linger: n }).catch(() => {});
      });
      await until("the hub stored the 3 publishes", async () => (await storedWith(staying, "linger")).length === 3);
      // The publishing tab goes (as a reload would) while they wait; the other tab stays.
      await leaving.page.close();
      await staying.page.waitForTimeout(300);
      proxy.admit();
      await until(
        "the observer received the 3 publishes",
        () => watcher.frames.filter((f) => f.type === "message" && f.data?.linger !== undefined).length === 3,
        20_000,
      );
      const received = watcher.frames.filter((f) => f.type === "message" && f.data?.linger !== undefined);
      assert.deepEqual(received.map((f) => f.data.linger), [0, 1, 2], "each once, in order");
      // Delivered: the socket then leaves the room nobody uses.
      await until("the hub left the room", () => {
        const presence = watcher.frames.filter((f) => f.type === "presence" && f.room === "linger").at(-1);
        return presence && presence.members.length === 1;
      });
      assert.deepEqual(await roomMessages(staying.page), [], "the other tab heard nothing of a room it never joined");
    }));

  test("clearOutbox in one tab empties the hub's outbox: the publishes fail where they were made", () =>
    twoTabsBehindProxy("cleared", async ({ proxy, tabs: [maker, clearer], watcher }) => {
      for (const { page } of [maker, clearer]) await join(page, ["cleared"]);
      await goOffline(proxy, clearer);
      await maker.page.evaluate(() => {
        Promise.all([0, 1].map((n) => settled(s.publish("cleared", { cleared: n })))).then((o) => (window.outcomes = o));
      });
      await until("the hub stored the 2 publishes", async () => (await storedWith(clearer, "cleared")).length === 2);

      await clearer.page.evaluate(() => s.clearOutbox());
      const outcomes = await until("both publishes settled", () => maker.page.evaluate(() => window.outcomes), 10_000);
      assert.deepEqual(
        outcomes.map((o) => o.err?.code),
        ["ERR_OUTBOX_CLEARED", "ERR_OUTBOX_CLEARED"],
        "each rejects in the tab that made it",
      );
      await until("the store holds neither", async () => (await storedWith(clearer, "cleared")).length === 0);

      // Back online: a later publish arrives, the cleared ones never do.
      proxy.admit();
      const later = await maker.page.evaluate(() => settled(s.publish("cleared", { later: true })));
      assert.ok(later.ok, JSON.stringify(later));
      await until("the observer got the later publish", () =>
        watcher.frames.some((f) => f.type === "message" && f.data?.later),
      );
      assert.deepEqual(
        watcher.frames.filter((f) => f.type === "message" && f.data?.cleared !== undefined),
        [],
        "nothing cleared reached the room",
      );
    }));

  test("send and message reach every tab; typed errors for what cannot be shared", async () => {
    await until("no live connection", async () => (await health()).connections === 0);
    const context = await browser.newContext();
    // No subprotocol: no rooms, so the server's answer to a frame it cannot read is a `message`.
    const a = await openTab(context, {}, false);
    const b = await openTab(context, {}, false);
    try {
      for (const { page } of [a, b]) {
        await page.waitForFunction(() => s.readyState === 1, undefined, { timeout: 15_000, polling: 20 });
      }
      assert.equal(await a.page.evaluate(() => s.send("not json")), "sent");
      // The server's answer, once in each tab. Other frames may come first: server-dev pushes
      // the room list to every connection after an earlier test's tabs left their rooms.
      const badJson = () =>
        log.filter((e) => e.type === "message" && JSON.parse(e.data).code === "bad_json").length;
      for (const { page } of [a, b]) {
        await page.waitForFunction(badJson, undefined, { timeout: 15_000, polling: 20 });
      }
      await a.page.waitForTimeout(200);
      for (const { page } of [a, b]) assert.equal(await page.evaluate(badJson), 1);
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
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
  });

  test("a URL provider: the hub asks one tab for each attempt's URL, then the next tab", () =>
    urlProviderAcrossTabs({ leader: false }));

  test("a crashed tab is released without its cooperation", async () => {
    await until("no live connection", async () => (await health()).connections === 0);
    const context = await browser.newContext();
    // The first tab stays: Chromium tends to host the SharedWorker in the process of the tab
    // that made it, and a crash of that process would take the worker (and the socket) too.
    const staying = await openTab(context);
    const crashing = await openTab(context);
    try {
      await join(crashing.page, ["lobby", "solo"]);
      await join(staying.page, ["lobby"]);
      /** `staying`'s latest room list from the server: room → member count. */
      const members = async () => {
        await staying.page.evaluate(() => s.listRooms());
        await staying.page.waitForTimeout(100);
        const list = await staying.page.evaluate(() => log.findLast((e) => e.type === "rooms")?.rooms ?? []);
        return Object.fromEntries(list.map((r) => [r.room, r.members]));
      };
      await until("solo and lobby held", async () => {
        const held = await members();
        return held.solo === 1 && held.lobby === 1;
      });
      const cdp = await context.newCDPSession(crashing.page);
      crashing.page.on("crash", () => {});
      // The session goes with the crashed renderer, often before it answers.
      await Promise.race([cdp.send("Page.crash").catch(() => {}), new Promise((r) => setTimeout(r, 2_000))]);
      await until("solo left", async () => {
        const held = await members();
        return !held.solo && held.lobby === 1;
      });
      assert.equal(await staying.page.evaluate(() => s.readyState), 1);
      assert.equal((await health()).connections, 1);
    } finally {
      await context.close();
    }
    await until("no live connection once every tab is closed", async () => (await health()).connections === 0);
    assert.deepEqual(staying.errors, []);
  });

  test("a crash of the worker's process: the other tab gets a new worker and goes on", async () => {
    await until("no live connection", async () => (await health()).connections === 0);
    const context = await browser.newContext();
    // Chromium starts the SharedWorker in the process of the tab that asked first.
    const host = await openTab(context);
    const other = await openTab(context);
    try {
      for (const { page } of [host, other]) await join(page, ["phoenix"]);
      const opens = await other.page.evaluate(() => log.filter((e) => e.type === "open").length);
      const cdp = await context.newCDPSession(host.page);
      host.page.on("crash", () => {});
      await Promise.race([cdp.send("Page.crash").catch(() => {}), new Promise((r) => setTimeout(r, 2_000))]);
      await other.page.waitForFunction((opens) => log.filter((e) => e.type === "open").length > opens, opens, {
        timeout: 15_000,
        polling: 20,
      });
      const published = await other.page.evaluate(() => settled(s.publish("phoenix", { after: "crash" })));
      assert.ok(published.ok, JSON.stringify(published));
      await other.page.waitForFunction(
        () => log.some((e) => e.type === "roomMessage" && e.data.after === "crash"),
        undefined,
        { timeout: 15_000, polling: 20 },
      );
      assert.equal((await until("one connection", async () => (await health()).connections === 1 && health())).connections, 1);
    } finally {
      await context.close();
    }
    assert.deepEqual(other.errors, []);
  });

  test("a lost ack: the new worker resends under the same id, the server deduplicates it", async (t) => {
    const context = await browser.newContext();
    // Chromium starts the SharedWorker in the process of the tab that asked first: crashing
    // that tab's process ends the worker without a word.
    await lostAckTakeover(t, context, async (host) => {
      const cdp = await context.newCDPSession(host.page);
      host.page.on("crash", () => {});
      await Promise.race([cdp.send("Page.crash").catch(() => {}), new Promise((r) => setTimeout(r, 2_000))]);
    });
  });
});

describe("shared mode without SharedWorker: a leader tab", () => {
  test("one connection; the leader closes mid-traffic and another tab leads within 2 s", async () => {
    await until("no live connection", async () => (await health()).connections === 0);
    const context = await browser.newContext();
    // Chromium has SharedWorker: taking it away is the only way to run the fallback in it.
    await context.addInitScript(() => delete globalThis.SharedWorker);
    const leader = await openTab(context);
    const others = [await openTab(context), await openTab(context)];
    try {
      for (const { page } of [leader, ...others]) await join(page, ["lead"]);
      const before = await until("one connection", async () => {
        const h = await health();
        return h.connections === 1 && h;
      });
      assert.equal(await others[0].page.evaluate(() => typeof SharedWorker), "undefined");

      const COUNT = 40;
      for (const [at, { page }] of others.entries()) {
        await page.evaluate(
          ([tab, count]) => {
            window.publishing = (async () => {
              const out = [];
              for (let n = 0; n < count; n++) {
                out.push(settled(s.publish("lead", { tab, n })));
                await new Promise((r) => setTimeout(r, 10));
              }
              return Promise.all(out);
            })();
          },
          [`tab${at}`, COUNT],
        );
      }
      await others[0].page.waitForFunction(() => log.filter((e) => e.type === "ack").length >= 10, undefined, {
        timeout: 15_000,
        polling: 10,
      });
      const opens = await others[0].page.evaluate(() => log.filter((e) => e.type === "open").length);
      const closedAt = Date.now();
      await leader.page.close();
      await others[0].page.waitForFunction((opens) => log.filter((e) => e.type === "open").length > opens, opens, {
        timeout: 2_000,
        polling: 10,
      });
      const takeover = Date.now() - closedAt;
      assert.ok(takeover < 2_000, `a new leader's socket opened after ${takeover} ms`);
      const results = await Promise.all(others.map(({ page }) => page.evaluate(() => window.publishing)));
      for (const result of results) assert.deepEqual(result.filter((r) => !r.ok), [], "every publish resolves");
      const now = await until("one connection again", async () => {
        const h = await health();
        return h.connections === 1 && h;
      });
      assert.equal(now.connections_opened, before.connections_opened + 1, "the new leader opened one connection");

      // The room goes on under the new leader: each tab receives the other's next messages once.
      const counts = await Promise.all(others.map(({ page }) => roomMessages(page).then((l) => l.length)));
      await Promise.all(others.map(({ page }, at) => page.evaluate((tab) => s.publish("lead", { tab, n: "after" }), `tab${at}`)));
      for (const [at, { page }] of others.entries()) {
        await heard(page, counts[at] + 2);
        await page.waitForTimeout(300);
        const after = (await roomMessages(page)).slice(counts[at]).map((m) => m.data.tab).sort();
        assert.deepEqual(after, ["tab0", "tab1"]);
      }
      for (const { page } of others) await page.close();
      await until("no live connection once every tab is closed", async () => (await health()).connections === 0, 5_000);
    } finally {
      await context.close();
    }
    for (const { errors } of [leader, ...others]) assert.deepEqual(errors, []);
  });

  test("a lost ack: the new leader resends under the same id, the server deduplicates it", async (t) => {
    const context = await browser.newContext();
    await context.addInitScript(() => delete globalThis.SharedWorker);
    // The first tab leads; closing it ends the hub.
    await lostAckTakeover(t, context, (hub) => hub.page.close());
  });

  test("a publish the leader sent but never stored: the next leader resends it under its id", async (t) => {
    const context = await browser.newContext();
    await context.addInitScript(() => delete globalThis.SharedWorker);
    await lostAckTakeover(t, context, (hub) => hub.page.close(), { unstored: true });
  });
  test("a URL provider: the leader asks one tab for each attempt's URL, then the next tab", () =>
    urlProviderAcrossTabs({ leader: true }));

  test("a replay of what a tab already heard is dropped: each message once across a takeover", async () => {
    await until("no live connection", async () => (await health()).connections === 0);
    const context = await browser.newContext();
    await context.addInitScript(() => delete globalThis.SharedWorker);
    const leader = await openTab(context);
    const follower = await openTab(context);
    let watcher;
    try {
      for (const { page } of [leader, follower]) await join(page, ["replay"]);
      watcher = await observer(server, "replay", site.url);
      await follower.page.waitForTimeout(300);
      // A stand-in for a store that lags behind what the tabs heard (a hub ends before its
      // snapshot with the room's newest position is written): the leader's writes fail.
      await leader.page.evaluate(() => {
        IDBObjectStore.prototype.put = () => {
          throw new DOMException("writes held by the test", "UnknownError");
        };
      });
      for (let n = 0; n < 3; n++) watcher.send({ type: "publish", room: "replay", id: n + 1, data: { n } });
      await heard(follower.page, 3);
      const before = (await health()).connections_opened;
      await leader.page.close();
      // The next leader restores the room from before the 3 and the server replays them.
      await until("the new leader's connection", async () => (await health()).connections_opened > before);
      await follower.page.waitForFunction(() => s.readyState === 1, undefined, { timeout: 15_000, polling: 20 });
      watcher.send({ type: "publish", room: "replay", id: 4, data: { n: 3 } });
      await heard(follower.page, 4);
      await follower.page.waitForTimeout(300);
      const messages = await roomMessages(follower.page);
      assert.deepEqual(
        messages.map((m) => m.data.n),
        [0, 1, 2, 3],
        "each message once, in order, although the new hub's socket received the 3 again",
      );
    } finally {
      await watcher?.close();
      await context.close();
    }
    assert.deepEqual(follower.errors, []);
  });

  test("a hub waits for its store's Web Lock: two hubs never drive one store", async () => {
    await until("no live connection", async () => (await health()).connections === 0);
    const context = await browser.newContext();
    const holder = await context.newPage();
    await holder.goto(`${site.url}/shared/index.html`);
    try {
      // Another hub's lock on the store of this URL key (named after the key's store, as
      // shared-hub.js names it): held by a page, as an old worker not yet gone would hold it.
      await holder.evaluate((store) => {
        window.releaseStore = new Promise((held) =>
          navigator.locks.request(store, () => new Promise((release) => held(release))),
        );
      }, `ws-lifeline-shared:ws-lifeline-shared:${JSON.stringify([wsUrl(server, "/ws"), ["lifeline.v1"], {}])}`);
      await holder.evaluate(async () => Boolean(await window.releaseStore));
      const tab = await openTab(context);
      await tab.page.evaluate(() => s.join("waiting"));
      await tab.page.waitForTimeout(1_000);
      assert.equal((await health()).connections, 0, "no socket while another hub holds the store");
      assert.equal(await tab.page.evaluate(() => s.readyState), 0);
      await holder.evaluate(async () => (await window.releaseStore)());
      await join(tab.page, ["waiting"]);
      assert.equal((await health()).connections, 1);
    } finally {
      await context.close();
    }
  });
});

describe("shared mode in a Vite build", () => {
  test("vite builds an app with ws-lifeline/shared; two tabs of it hold one connection", async () => {
    await until("no live connection", async () => (await health()).connections === 0);
    const work = mkdtempSync(path.join(tmpdir(), "ws-lifeline-shared-"));
    const statics = [];
    const context = await browser.newContext();
    try {
      const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      run("npm", ["pack", "--silent", "--pack-destination", work, path.join(root, "client-wasm", "pkg")], root);
      const tarball = path.join(work, readdirSync(work).find((f) => f.endsWith(".tgz")));
      const app = path.join(work, "app");
      mkdirSync(app);
      writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "shared-app", private: true, type: "module" }));
      run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], app);
      writeFileSync(path.join(app, "index.html"), '<!doctype html><html><body><script type="module" src="./main.js"></script></body></html>\n');
      writeFileSync(
        path.join(app, "main.js"),
        [
          'import { LifelineSocket } from "ws-lifeline/shared";',
          'window.ws = new LifelineSocket(new URLSearchParams(location.search).get("ws"), { share: true });',
          'ws.addEventListener("open", () => (document.body.dataset.state = "open"));',
          'ws.addEventListener("message", (e) => (document.body.dataset.lastMessage = e.data));',
          "",
        ].join("\n"),
      );
      // As examples/vite, plus `worker.format`: Vite builds workers as IIFE by default, which
      // cannot hold the package's top-level await.
      writeFileSync(
        path.join(app, "vite.config.js"),
        'export default { optimizeDeps: { exclude: ["ws-lifeline"] }, build: { target: "es2022" }, worker: { format: "es" } };\n',
      );
      run(process.execPath, [path.join(root, "node_modules", "vite", "bin", "vite.js"), "build", "--logLevel", "warn"], app);
      assert.ok(existsSync(path.join(app, "dist", "index.html")));
      const built = await serveStatic({ "/": path.join(app, "dist") });
      statics.push(built);
      // The built app's origin is not the test pages': this server-dev allows the pages' only.
      const local = await startServer(["--no-auth", "--allowed-origin", built.url]);
      statics.push({ close: () => local.stop() });
      const url = `${built.url}/?ws=${encodeURIComponent(wsUrl(local, "/ws"))}`;
      const tabs = [];
      for (let i = 0; i < 2; i++) {
        const page = await context.newPage();
        const errors = collectErrors(page);
        await page.goto(url);
        await page.waitForSelector("body[data-state=open]", { state: "attached", timeout: 20_000 });
        tabs.push({ page, errors });
      }
      // No rooms: the server's answer to a frame it cannot read is a `message`, in both tabs.
      await tabs[0].page.evaluate(() => ws.send("not json"));
      for (const { page } of tabs) {
        await page.waitForSelector("body[data-last-message]", { state: "attached", timeout: 10_000 });
      }
      const localHealth = await (await fetch(new URL("/api/health", local.url))).json();
      assert.equal(localHealth.connections, 1);
      for (const { errors } of tabs) assert.deepEqual(errors, []);
    } finally {
      await context.close();
      for (const s of statics) await s.close();
      rmSync(work, { recursive: true, force: true });
    }
  });
});
