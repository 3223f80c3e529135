// The delivery promise under DEFAULT settings of both the npm package and server-dev (only
// `--no-auth` and `--test-endpoints`, which lets the test page's loopback origin in; no limit
// is changed). Covers:
// - offline burst: a joined socket's connection is cut (server-side drop) and its reconnect is
//   held back while it publishes 300 messages; once it is let through, every publish is
//   acknowledged once, with consecutive offsets, within 10 s; the server never closes the
//   connection (the only close is the cut's)
//   and a second member receives the 300 messages once, in order, each with the publisher's
//   id and the publish id;
// - the receiver's `roomMessage` carries `epoch`, `publisher` and `id`, a key unique across
//   server restarts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { joinedMember, jsSuite } from "./support/js_page.mjs";

const suite = jsSuite(["--no-auth", "--test-endpoints"]);
const BURST = 300;

test("300 publishes made offline are all acknowledged once after coming back", async () => {
  const ann = await joinedMember(suite, "ann", "burst", { held: true });
  const bob = await joinedMember(suite, "bob", "burst");

  await ann.page.evaluate(() => (window.hold = true));
  const cut = await fetch(`${suite.server.url.replace(/\/$/, "")}/test/cut?name=ann&mode=drop`, { method: "POST" });
  assert.deepEqual(await cut.json(), { cut: 1 });
  await ann.page.evaluate(async () => {
    await t.until(m.log, (l) => l.some((e) => e.type === "close"));
  });
  await ann.page.evaluate((burst) => {
    window.outcomes = [];
    for (let n = 1; n <= burst; n++) {
      t.settled(m.ws.publish("burst", { n })).then((o) => outcomes.push(o));
    }
  }, BURST);
  const backAt = Date.now();
  await ann.page.evaluate(() => (window.hold = false));
  const outcomes = await ann.page.evaluate(async (burst) => {
    await t.until(outcomes, (o) => o.length === burst, 10_000);
    return outcomes;
  }, BURST);
  const tookMs = Date.now() - backAt;

  const failed = outcomes.filter((o) => o.err);
  assert.deepEqual(failed, [], "no publish failed");
  const offsets = outcomes.map((o) => o.ok.offset).sort((a, b) => a - b);
  assert.deepEqual(offsets, Array.from({ length: BURST }, (_, i) => i + 1), "each acknowledged once, offsets 1..300");
  assert.equal(outcomes.filter((o) => o.ok.duplicate).length, 0);

  const annLog = await ann.page.evaluate(() => m.log);
  const closes = annLog.filter((e) => e.type === "close");
  assert.equal(closes.length, 1, `one close, the cut's: ${JSON.stringify(closes)}`);
  assert.equal(annLog.filter((e) => e.type === "giveup").length, 0);
  const acks = (await ann.page.evaluate(() => m.rooms)).filter((e) => e.type === "ack");
  assert.equal(acks.length, BURST, "one ack event per publish");

  const received = await bob.page.evaluate(async (burst) => {
    await t.until(m.rooms, (l) => l.filter((e) => e.type === "roomMessage").length >= burst, 10_000);
    return m.rooms.filter((e) => e.type === "roomMessage");
  }, BURST);
  assert.deepEqual(
    received.map((e) => e.data.n),
    Array.from({ length: BURST }, (_, i) => i + 1),
    "bob receives every message once, in order",
  );
  const publisher = received[0].publisher;
  assert.match(publisher, /^[0-9a-f]{16,}$/, "the publisher id is on every message");
  assert.ok(received.every((e) => e.publisher === publisher && typeof e.epoch === "string" && e.epoch.length > 0));
  assert.equal(new Set(received.map((e) => e.id)).size, BURST, "publish ids are distinct");
  const bobCloses = (await bob.page.evaluate(() => m.log)).filter((e) => e.type === "close");
  assert.deepEqual(bobCloses, [], "the receiver was never disconnected");
  console.log(`offline burst: ${BURST} acknowledged ${tookMs} ms after coming back online`);
  assert.deepEqual(ann.errors, []);
  assert.deepEqual(bob.errors, []);
});
