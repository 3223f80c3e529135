// A publish over the server's size limit fails at once and blocks nothing behind it.
// The server runs with `--max-message-size 1024` (the test is about that limit; at the default
// 64 KiB the same rule is covered by the machine tests in client-wasm/tests/rooms_machine.rs).
// Covers:
// - `welcome` advertises the limit; publish of 2 KiB rejects at once with ERR_TOO_LARGE, its
//   size and `maxMessageBytes` 1024; the 10 small publishes after it are acknowledged within
//   1 s with no reconnect;
// - a publish made before the limit was known (before `welcome`) fails with ERR_TOO_LARGE when
//   `welcome` arrives and is never sent, and the publishes queued with it go through;
// - `send` of a frame over the limit throws ERR_TOO_LARGE once the limit is known.
import { test } from "node:test";
import assert from "node:assert/strict";
import { joinedMember, jsSuite, openJsPage, wsUrl } from "./support/js_page.mjs";

const suite = jsSuite(["--no-auth", "--test-endpoints", "--max-message-size", "1024"]);

test("an oversized publish fails at once and the small ones after it are acknowledged", async () => {
  const { page, errors } = await joinedMember(suite, "ann", "sizes");
  const result = await page.evaluate(async () => {
    const big = await t.settled(m.ws.publish("sizes", { pad: "x".repeat(2048) }));
    const started = performance.now();
    const small = await Promise.all(Array.from({ length: 10 }, (_, n) => t.settled(m.ws.publish("sizes", { n }))));
    return { big, small, tookMs: performance.now() - started, log: m.log };
  });
  assert.equal(result.big.err?.code, "ERR_TOO_LARGE");
  assert.equal(result.big.err.maxMessageBytes, 1024);
  assert.ok(result.big.err.size > 2048, `size ${result.big.err.size}`);
  assert.deepEqual(
    result.small.map((o) => o.ok?.offset),
    Array.from({ length: 10 }, (_, i) => i + 1),
    "the ten small publishes are acknowledged in order",
  );
  assert.ok(result.tookMs < 1000, `acknowledged within 1 s (${result.tookMs} ms)`);
  assert.deepEqual(result.log.filter((e) => e.type === "close"), [], "no reconnect");
  const thrown = await page.evaluate(() => t.thrown(() => m.ws.send("y".repeat(4096))));
  assert.equal(thrown?.code, "ERR_TOO_LARGE");
  assert.deepEqual(errors, []);
});

test("a publish accepted before the limit was known fails at welcome; the rest go through", async () => {
  const { page, errors } = await openJsPage(suite.browser, suite.site);
  const result = await page.evaluate(async (url) => {
    window.m = t.recorded(url, { protocols: "lifeline.v1" });
    m.rooms = t.roomLog(m.ws).log;
    m.ws.join("early");
    // Before the socket opened: the server's limit is not known yet.
    const outcomes = await Promise.all([
      t.settled(m.ws.publish("early", { n: 1 })),
      t.settled(m.ws.publish("early", { pad: "x".repeat(2048) })),
      t.settled(m.ws.publish("early", { n: 2 })),
    ]);
    return { outcomes, log: m.log };
  }, wsUrl(suite.server, "/ws?name=bea"));
  const [first, big, last] = result.outcomes;
  assert.equal(big.err?.code, "ERR_TOO_LARGE");
  assert.equal(big.err.maxMessageBytes, 1024);
  assert.deepEqual([first.ok?.offset, last.ok?.offset], [1, 2], "the oversized one was never sent");
  assert.deepEqual(result.log.filter((e) => e.type === "close"), [], "no reconnect");
  assert.deepEqual(errors, []);
});
