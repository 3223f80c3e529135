// 1,000 create/dispose cycles of LifelineSocket must not grow memory.
// Covers: wasm linear memory (`WebAssembly.Memory.buffer.byteLength`, which only ever grows)
// and the JS heap after a forced GC (CDP `HeapProfiler.collectGarbage` + `Runtime.getHeapUsage`),
// measured after a warm-up of 1,000 cycles and again after 1,000 more, with listeners and
// on… handlers attached in every cycle, half of the sockets opened and used before dispose,
// and a third with the rooms layer started (a room listener, a join and a publish that is
// still waiting for its ack at dispose);
// and the shell's live sockets, listeners and timers, which must all be zero.
// Wasm memory never shrinks, and after dispose() a socket's small handle (tens of bytes) waits
// for the wrapper's finalizer, so the warm-up sets the high-water mark; a leak shows as growth
// past it. Bounds: at most one 64 KiB page (a leak of 64 bytes per cycle would exceed it), and
// at most 512 KiB of JS heap (~500 bytes per cycle).
import { test } from "node:test";
import assert from "node:assert/strict";
import { jsSuite, openJsPage } from "./support/js_page.mjs";

const WASM_GROWTH_BOUND = 64 * 1024;
const HEAP_GROWTH_BOUND = 512 * 1024;

const suite = jsSuite(["--test-endpoints"]);

test("1,000 create/dispose cycles do not grow wasm memory or the JS heap", async () => {
  const { page, errors } = await openJsPage(suite.browser, suite.site);
  const cdp = await page.context().newCDPSession(page);

  await page.evaluate((url) => {
    window.cycles = async (n) => {
      for (let i = 0; i < n; i++) {
        const ws = new t.LifelineSocket(url, { heartbeat: { interval: 50, timeout: 1000 }, minDelay: 10 });
        const onMessage = () => {};
        ws.addEventListener("message", onMessage);
        ws.addEventListener("close", () => {});
        ws.onstatechange = () => {};
        ws.send(`cycle ${i}`);
        if (i % 3 === 0) {
          ws.on("roomMessage", () => {});
          ws.join("cycle");
          // /echo never acks: dispose rejects it with ERR_CLOSED.
          ws.publish("cycle", i).catch(() => {});
        }
        if (i % 2 === 0) {
          // Open, echo, then dispose while open.
          await new Promise((resolve) => {
            ws.addEventListener("message", resolve, { once: true });
            // With the rooms layer on, an echoed text frame is not protocol v1: a badFrame.
            if (i % 3 === 0) ws.on("badFrame", resolve);
            setTimeout(resolve, 2000);
          });
          ws.removeEventListener("message", onMessage);
        }
        ws.dispose();
      }
    };
  }, `${suite.server.url.replace(/^http/, "ws").replace(/\/$/, "")}/echo`);

  const measure = async () => {
    // Let closing sockets and their timers finish, then collect twice.
    await page.waitForTimeout(500);
    await cdp.send("HeapProfiler.collectGarbage");
    await cdp.send("HeapProfiler.collectGarbage");
    const heap = await cdp.send("Runtime.getHeapUsage");
    const { wasm, live } = await page.evaluate(() => ({
      wasm: t.wasm.memory.buffer.byteLength,
      live: t.liveResources(),
    }));
    return { heap: heap.usedSize, wasm, live };
  };

  await page.evaluate(() => cycles(1000));
  const baseline = await measure();
  const started = Date.now();
  await page.evaluate(() => cycles(1000));
  const elapsed = Date.now() - started;
  const after = await measure();
  const report = {
    wasmBefore: baseline.wasm,
    wasmAfter: after.wasm,
    heapBefore: baseline.heap,
    heapAfter: after.heap,
    heapGrowth: after.heap - baseline.heap,
    elapsedMs: elapsed,
  };
  console.log(`# memory after 1,000 create/dispose cycles: ${JSON.stringify(report)}`);
  assert.deepEqual(after.live, { sockets: 0, listeners: 0, timers: 0, predicates: 0 });
  assert.ok(after.wasm - baseline.wasm <= WASM_GROWTH_BOUND, `wasm memory grew: ${JSON.stringify(report)}`);
  assert.ok(after.heap - baseline.heap <= HEAP_GROWTH_BOUND, `JS heap grew: ${JSON.stringify(report)}`);
  await page.close();
  assert.deepEqual(errors, []);
});
