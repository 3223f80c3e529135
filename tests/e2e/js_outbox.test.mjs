// The persistent outbox of the npm package's `ws-lifeline/persist` entry (`persist` option,
// IndexedDB), in headless Chromium against server-dev at its defaults (only `--no-auth` and
// `--test-endpoints`, which lets the test page's loopback origin in) and the package's default
// options. Covers:
// - reload: 100 publishes made while server-dev is down (stopped by its pid) are kept; the page
//   reloads and publishes one more before the stored outbox has loaded; server-dev starts again
//   on its port; a second member receives the 101 once, in order (the restored 100 first), and
//   the reloaded page hears `outboxDelivered` with exactly the 100 ids the earlier page stored;
// - bounds: with the default bounds (1024 publishes, 1 MiB), a publish that would take the
//   outbox past 1 MiB rejects with ERR_OUTBOX_FULL and nothing held is dropped; bounds given
//   as `persist: { store, maxPublishes, maxBytes }` apply, and bad ones are typed errors;
// - `clearOutbox()`: the held publishes reject with ERR_OUTBOX_CLEARED, the store empties, and
//   publishing works again;
// - a stored snapshot this client cannot read is reported (ERR_OUTBOX_SNAPSHOT), and the
//   socket goes on with an empty outbox, which replaces it;
// - without `persist` the entry is the package's socket (the second member uses it).
import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer, withoutNetworkNoise } from "./support/harness.mjs";
import { joinedMember, jsSuite, openJsPage, wsUrl } from "./support/js_page.mjs";

const SERVER_ARGS = ["--no-auth", "--test-endpoints"];
const suite = jsSuite(SERVER_ARGS, "pkg/persist");
const BURST = 100;

/** In the page: the store's snapshot once `check(snapshot)` holds (polled, at most 10 s). */
async function storedWhen(page, store, check) {
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
  const { page, errors } = await openJsPage(suite.browser, suite.site);
  const annUrl = wsUrl(suite.server, "/ws?name=ann");
  await page.evaluate(async (url) => {
    window.m = t.recorded(url, { protocols: "lifeline.v1", persist: "chat" });
    m.rooms = t.roomLog(m.ws).log;
    m.ws.join("outbox");
    await t.until(m.rooms, (l) => l.some((e) => e.type === "joined"));
  }, annUrl);
  const port = suite.server.port;
  await suite.server.stop();
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
  await page.waitForSelector("body[data-ready]", { state: "attached", timeout: 20_000 });
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
  suite.server = await startServer(SERVER_ARGS, { port });
  const bob = await joinedMember(suite, "bob", "outbox");
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
  await page.waitForTimeout(500);
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
  await bob.page.close();
  await page.close();
});

test("a full outbox refuses with ERR_OUTBOX_FULL; clearOutbox fails and forgets what it held", async () => {
  const { page, errors } = await openJsPage(suite.browser, suite.site);
  await page.evaluate((url) => {
    // Never connects (the provider never answers), so every publish stays in the outbox.
    const provider = () => new Promise(() => {});
    window.m = t.recorded(provider, { protocols: "lifeline.v1", persist: "full" });
    m.ws.join("r");
  }, wsUrl(suite.server, "/ws?name=full"));
  // Restored (here: empty) and stored once before the publishes below.
  await storedWhen(page, "full", (s) => s.publishes.length === 0);
  const filled = await page.evaluate(async () => {
    const data = "x".repeat(60_000);
    m.outcomes = [];
    m.settled = [];
    for (let n = 0; n < 30; n++) {
      m.settled.push(t.settled(m.ws.publish("r", { n, data })).then((o) => (m.outcomes[n] = o)));
    }
    // A refusal settles at once; an accepted publish waits for its ack.
    await new Promise((r) => setTimeout(r, 200));
    return { outcomes: [...m.outcomes], unacked: m.ws.unackedPublishes };
  });
  const accepted = filled.unacked;
  // 1 MiB of publish frames of about 60 KB each.
  assert.ok(accepted >= 16 && accepted <= 17, `accepted ${accepted}`);
  assert.ok(filled.outcomes.slice(0, accepted).every((o) => o === null || o === undefined), "the first ones wait");
  const refused = filled.outcomes.slice(accepted);
  assert.equal(refused.length, 30 - accepted);
  for (const o of refused) assert.equal(o?.err?.code, "ERR_OUTBOX_FULL", JSON.stringify(o));
  const full = await page.evaluate(async () => {
    try {
      await m.ws.publish("r", { n: 30, data: "x".repeat(60_000) });
    } catch (e) {
      return { code: e.code, maxPublishes: e.maxPublishes, maxBytes: e.maxBytes };
    }
  });
  assert.deepEqual(full, { code: "ERR_OUTBOX_FULL", maxPublishes: 1024, maxBytes: 1 << 20 });
  const held = await storedWhen(page, "full", (s) => s.publishes.length > 0);
  assert.equal(held.publishes.length, accepted, "what was accepted is stored, nothing dropped");

  const cleared = await page.evaluate(async (accepted) => {
    m.ws.clearOutbox();
    const outcomes = (await Promise.all(m.settled.slice(0, accepted))).map((o) => o.err);
    return { outcomes, unacked: m.ws.unackedPublishes };
  }, accepted);
  assert.equal(cleared.unacked, 0);
  assert.deepEqual(
    cleared.outcomes.map((e) => e.code),
    Array(accepted).fill("ERR_OUTBOX_CLEARED"),
  );
  assert.deepEqual(
    cleared.outcomes.map((e) => e.publishId),
    held.publishes.map((p) => p.id),
    "each cleared publish named by its id",
  );
  await storedWhen(page, "full", (s) => s.publishes.length === 0);
  const again = await page.evaluate(() => {
    m.ws.publish("r", "after the clear").catch(() => {});
    return m.ws.unackedPublishes;
  });
  assert.equal(again, 1, "the cleared outbox takes publishes again");
  await page.evaluate(() => m.ws.dispose());
  assert.deepEqual(withoutNetworkNoise(errors), []);
  await page.close();
});

test("the outbox's bounds as options: { store, maxPublishes, maxBytes }; bad bounds are typed errors", async () => {
  // The bounds are the option under test; the default ones are the test above.
  const { page, errors } = await openJsPage(suite.browser, suite.site);
  const result = await page.evaluate(async () => {
    const provider = () => new Promise(() => {});
    const outcome = async (promise) => (await t.settled(promise))?.err?.code ?? "accepted";
    const byCount = t.recorded(provider, { protocols: "lifeline.v1", persist: { store: "count", maxPublishes: 3 } });
    byCount.ws.join("r");
    const counted = [];
    for (let n = 0; n < 5; n++) {
      const settled = outcome(byCount.ws.publish("r", { n }));
      counted.push(await Promise.race([settled, new Promise((r) => setTimeout(r, 300, "waiting"))]));
    }
    const full = await byCount.ws.publish("r", 5).catch((e) => ({ maxPublishes: e.maxPublishes, maxBytes: e.maxBytes }));
    const byBytes = t.recorded(provider, { protocols: "lifeline.v1", persist: { store: "bytes", maxBytes: 1_000 } });
    byBytes.ws.join("r");
    const sized = [];
    for (const size of [400, 400, 400]) {
      const settled = outcome(byBytes.ws.publish("r", "x".repeat(size)));
      sized.push(await Promise.race([settled, new Promise((r) => setTimeout(r, 300, "waiting"))]));
    }
    const bad = (persist) => {
      try {
        new t.LifelineSocket(provider, { persist });
        return "no error";
      } catch (e) {
        return e.code;
      }
    };
    const invalid = [bad({ store: "x", maxPublishes: 0 }), bad({ store: "x", maxBytes: 1.5 }), bad({ store: 7 }), bad({ maxPublishes: 2 })];
    byCount.ws.dispose();
    byBytes.ws.dispose();
    return { counted, full, sized, invalid };
  });
  assert.deepEqual(result.counted, ["waiting", "waiting", "waiting", "ERR_OUTBOX_FULL", "ERR_OUTBOX_FULL"]);
  assert.deepEqual(result.full, { maxPublishes: 3, maxBytes: 1 << 20 });
  assert.deepEqual(result.sized, ["waiting", "waiting", "ERR_OUTBOX_FULL"]);
  // The last: `store` absent is the URL, which a URL provider does not give.
  assert.deepEqual(result.invalid, Array(4).fill("ERR_INVALID_ARGUMENT"));
  assert.deepEqual(withoutNetworkNoise(errors), []);
  await page.close();
});

test("an unreadable stored snapshot is reported as ERR_OUTBOX_SNAPSHOT and replaced", async () => {
  const { page, errors } = await openJsPage(suite.browser, suite.site);
  // A snapshot this client did not write: a required field is missing.
  await page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open("ws-lifeline-outbox", 1);
        open.onupgradeneeded = () => open.result.createObjectStore("snapshots");
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const db = open.result;
          const tx = db.transaction("snapshots", "readwrite");
          tx.objectStore("snapshots").put('{"version":1,"publisher":"x"}', "bad");
          tx.oncomplete = () => {
            db.close();
            resolve();
          };
          tx.onerror = () => reject(tx.error);
        };
      }),
  );
  const seen = await page.evaluate(async (url) => {
    window.m = t.recorded(url, { protocols: "lifeline.v1", persist: "bad" });
    m.ws.join("bad");
    const ack = await t.settled(m.ws.publish("bad", "after the bad snapshot"));
    return { log: m.log, ack };
  }, wsUrl(suite.server, "/ws?name=carl"));
  const reported = seen.log.filter((e) => e.type === "error").map((e) => e.error.code);
  assert.deepEqual(reported, ["ERR_OUTBOX_SNAPSHOT"]);
  assert.ok(seen.ack.ok, `the socket goes on with an empty outbox: ${JSON.stringify(seen.ack)}`);
  const stored = await storedWhen(page, "bad", (s) => Array.isArray(s.rooms) && s.rooms.some((r) => r.room === "bad"));
  assert.equal(stored.version, 1);
  assert.deepEqual(stored.publishes, [], "the acknowledged publish is not kept");
  await page.evaluate(() => m.ws.dispose());
  assert.deepEqual(withoutNetworkNoise(errors), []);
  await page.close();
});
