// Ten tabs, with and without shared mode (BENCHMARKS.md, section 1): what one user with ten
// tabs of a site costs the server and the browser.
//
// Per mode and round: a fresh headless Chromium, one browser context (one origin, so one
// SharedWorker in shared mode), ten pages of benches/browser/tabs.html served by server-dev
// itself (same origin as /ws). Each page makes one `LifelineSocket` (unshared: the main entry
// `ws-lifeline`; shared: `ws-lifeline/shared` with `share: true`), both with the default
// options but the subprotocol, and joins a room common to all ten and a room of its own. A
// separate Node `ws` client then publishes a fixed number of messages to every room. Measured:
// - server connections: server-dev's `/api/health`, once every tab has joined both rooms;
// - messages delivered per tab, which must equal what was published to its two rooms, each
//   offset once and nothing of other rooms (checked: a mode that loses, repeats or strays
//   fails the run and produces no figure);
// - heap per tab: `Runtime.getHeapUsage` over each page's CDP session after
//   `HeapProfiler.collectGarbage`: `usedSize` (the V8 JS heap) and `backingStorageSize`
//   (array buffers and external strings; not the wasm memory); two pages in one renderer process
//   would report one V8 heap, so there must be at least as many renderers as pages (checked
//   with `SystemInfo.getProcessInfo`);
// - wasm linear memory per tab: the size of the package's `WebAssembly.Memory` (which
//   `getHeapUsage` does not count), read through the package's `init()`, which returns the
//   loaded module's exports; a shared tab loads no wasm;
// - the SharedWorker's heap: its CDP target (type `shared_worker`, found with
//   `Target.getTargets` on the browser session, which Playwright's `context.serviceWorkers`
//   does not list), measured the same way, and its wasm memory through `Runtime.evaluate`; in
//   unshared mode there must be none;
// - totals: the ten tabs plus the worker, JS heap alone and all three kinds of memory;
// - the renderer processes' proportional set size (Linux `/proc/PID/smaps_rollup`, `Pss`),
//   summed over every renderer `SystemInfo.getProcessInfo` lists, after the GCs above: what
//   the heaps miss (compiled code, the wasm module, the engine's own memory), as the OS sees it.
// Each round also measures ten blank tabs of the same page (no import, no socket): the floor
// every tab pays, so the part ws-lifeline adds can be read off (not with --quick).
// Rounds alternate which mode goes first; each round's ratios (shared / unshared) are taken
// within the round, and the medians over rounds are reported.
//
// server-dev runs with its defaults but two flags: `--no-auth` (a shared socket takes no URL
// provider, and a ticket is good for one connection, so both modes connect without one) and
// `--static-dir` (the pages and the package, so the SharedWorker is same-origin).
//
// Usage: SERVER_DEV_BIN=<server-dev binary> node benches/browser/tabs.mjs
//          [--tabs N] [--rounds R] [--common N] [--own N] [--quick] [--out FILE]
// Defaults: 10 tabs, 3 rounds, 50 messages to the common room and 5 to each tab's own room;
// --quick: 1 round, 10 and 2 (what `cargo xtask test` runs). Needs the npm package in
// client-wasm/pkg. Exits non-zero, writing no results, if a check fails or the run exceeds
// its bound.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { collectErrors, launchChromium, startServer } from "../../tests/e2e/support/harness.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const count = (name, dflt, max) => {
  const value = Number(arg(name, dflt));
  if (!Number.isInteger(value) || value < 1 || value > max) throw new Error(`${name} takes a number from 1 to ${max}`);
  return value;
};
const quick = process.argv.includes("--quick");
const TABS = count("--tabs", "10", 30);
const ROUNDS = count("--rounds", quick ? "1" : "3", 20);
const COMMON = count("--common", quick ? "10" : "50", 1000);
const OWN = count("--own", quick ? "2" : "5", 1000);
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const out = arg("--out", join(root, "target", "bench", quick ? "tabs-quick.json" : "tabs.json"));
const MODES = ["unshared", "shared"];
// The blank page's floor, measured in each round beside the two modes.
const BLANK = "blank";
// server-dev's per-connection lines would bury the figures.
process.env.RUST_LOG ??= "warn";

const WAIT_MS = 30_000; // bound of every wait for the pages or the server
const SETTLE_MS = 300; // after the last expected message, for a late duplicate or stray
const RUN_BOUND_MS = 60_000 + ROUNDS * (MODES.length + 1) * (90_000 + (COMMON + TABS * OWN) * 100);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

// Every process and connection started here and still running, stopped by its own handle (the
// newest first), also on failure. `track` returns the function that stops it and forgets it.
const running = new Map();
function track(what, stop) {
  const key = Symbol(what);
  running.set(key, { what, stop });
  return async () => {
    if (running.delete(key)) await stop();
  };
}
async function stopAll() {
  for (const key of [...running.keys()].reverse()) {
    const { what, stop } = running.get(key);
    running.delete(key);
    await stop().catch((e) => console.error(`stopping ${what}: ${e.message}`));
  }
}
const fail = async (why, code = 1) => {
  console.error(`tabs: ${why}`);
  await stopAll();
  process.exit(code);
};
const watchdog = setTimeout(() => fail(`the run took longer than ${RUN_BOUND_MS} ms`), RUN_BOUND_MS);
process.once("SIGINT", () => fail("interrupted", 130));
process.once("SIGTERM", () => fail("terminated", 143));

/** Polls `check` until it returns a truthy value, or throws after WAIT_MS. */
async function until(what, check) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * A CDP session to one target of the browser session `browserSession`, attached without
 * flattening (Playwright's CDPSession has no way to address a child session), so commands
 * travel as `Target.sendMessageToTarget` and answers as `Target.receivedMessageFromTarget`.
 */
async function attach(browserSession, targetId) {
  const { sessionId } = await browserSession.send("Target.attachToTarget", { targetId, flatten: false });
  const pending = new Map();
  let nextId = 1;
  const onMessage = ({ sessionId: from, message }) => {
    if (from !== sessionId) return;
    const reply = JSON.parse(message);
    const waiter = pending.get(reply.id);
    if (!waiter) return;
    pending.delete(reply.id);
    if (reply.error) waiter.reject(new Error(`${waiter.method}: ${reply.error.message}`));
    else waiter.resolve(reply.result);
  };
  browserSession.on("Target.receivedMessageFromTarget", onMessage);
  return {
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject, method });
        browserSession.send("Target.sendMessageToTarget", { sessionId, message: JSON.stringify({ id, method, params }) }).catch(reject);
      }),
    detach: async () => {
      browserSession.off("Target.receivedMessageFromTarget", onMessage);
      await browserSession.send("Target.detachFromTarget", { sessionId });
    },
  };
}

/** Bytes of JS heap and of array buffers in use on `session`'s target after a forced full GC. */
async function heapUsed(session) {
  await session.send("HeapProfiler.collectGarbage");
  const { usedSize, backingStorageSize } = await session.send("Runtime.getHeapUsage");
  return { js: usedSize, buffers: backingStorageSize };
}

/** The proportional set size of process `pid` in bytes (Linux), or null where there is no /proc. */
function pss(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  } catch {
    return null;
  }
  const kib = /^Pss:\s+(\d+) kB/m.exec(text);
  if (!kib) throw new Error(`no Pss line in /proc/${pid}/smaps_rollup`);
  return Number(kib[1]) * 1024;
}

/** An expression that evaluates to the byte size of the package's wasm memory in its realm. */
const wasmMemoryOf = (origin) =>
  `import(${JSON.stringify(`${origin}/ws-lifeline/index.js`)}).then((m) => m.default()).then((w) => w.memory.buffer.byteLength)`;

/**
 * The protocol-v1 publisher: a Node `ws` client that joins `rooms` and publishes `plan`
 * (`[room, n]` pairs), then resolves once every publish is acked.
 */
async function publish(url, rooms, plan) {
  const ws = new WebSocket(url, "lifeline.v1");
  const close = track("the publisher", async () => ws.terminate());
  const frames = [];
  let wake = () => {};
  ws.on("message", (data) => {
    // server-dev batches a queue into one frame as a JSON array.
    const parsed = JSON.parse(data.toString());
    frames.push(...(Array.isArray(parsed) ? parsed : [parsed]));
    wake();
  });
  const waitFor = async (what, check) => {
    const deadline = Date.now() + WAIT_MS;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`publisher: timed out waiting for ${what}`);
      await new Promise((r) => {
        const timer = setTimeout(r, left);
        wake = () => {
          clearTimeout(timer);
          r();
        };
      });
    }
  };
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  ws.send(JSON.stringify({ type: "hello" }));
  await waitFor("welcome", () => frames.some((f) => f.type === "welcome"));
  for (const room of rooms) ws.send(JSON.stringify({ type: "join", room }));
  await waitFor("joined", () => rooms.every((room) => frames.some((f) => f.type === "joined" && f.room === room)));
  let id = 0;
  for (const [room, n] of plan) {
    for (let i = 0; i < n; i++) ws.send(JSON.stringify({ type: "publish", room, id: ++id, data: { n: i, text: "x".repeat(40) } }));
  }
  const acked = () => new Set(frames.filter((f) => f.type === "ack").map((f) => f.id)).size;
  await waitFor(`${id} acks`, () => acked() >= id);
  const failed = frames.filter((f) => f.type === "error");
  if (failed.length) throw new Error(`publisher: server errors ${JSON.stringify(failed)}`);
  return { published: id, close };
}

let chromiumVersion;

/** One mode of one round: figures, or an exception naming the check that failed. */
async function measure(server, mode, round) {
  const health = async () => (await fetch(new URL("/api/health", server.url))).json();
  await until("server-dev to hold no connection", async () => (await health()).connections === 0);

  const browser = await launchChromium();
  const closeBrowser = track("Chromium", () => browser.close());
  chromiumVersion = browser.version();
  try {
    return await measureIn(server, browser, health, mode, round);
  } finally {
    await closeBrowser();
  }
}

/** The part of `measure` that runs in `browser`. */
async function measureIn(server, browser, health, mode, round) {
  const context = await browser.newContext();
  const wsUrl = `${server.url.replace(/^http/, "ws").replace(/\/$/, "")}/ws`;
  const common = `r${round}-${mode}-common`;
  const tabs = [];
  for (let i = 0; i < TABS; i++) {
    const page = await context.newPage();
    const errors = collectErrors(page);
    await page.goto(`${server.url.replace(/\/$/, "")}/index.html?mode=${mode}`);
    await page.waitForFunction(() => window.ready === true, null, { timeout: WAIT_MS });
    const rooms = [common, `r${round}-${mode}-tab${i}`];
    if (mode !== BLANK) await page.evaluate(([url, rooms]) => window.start(url, rooms), [wsUrl, rooms]);
    tabs.push({ page, errors, rooms });
  }
  const delivered = mode === BLANK ? { connections: (await health()).connections } : await deliver(mode, tabs, health, wsUrl, common);
  const { connections, perTab, published } = delivered;
  return { connections, published, delivered_per_tab: perTab, ...(await heaps(browser, context, mode, tabs, server.url.replace(/\/$/, ""))) };
}

/**
 * Waits for every tab to join its rooms, checks server-dev's connection count, publishes the
 * plan and checks every tab received exactly its rooms' messages.
 */
async function deliver(mode, tabs, health, wsUrl, common) {
  for (const { page, rooms } of tabs) {
    await page.waitForFunction((rooms) => rooms.every((r) => window.tab.joined.includes(r)), rooms, {
      timeout: WAIT_MS,
      polling: 50,
    });
  }
  const connections = (await health()).connections;
  const expectedConnections = mode === "shared" ? 1 : TABS;
  if (connections !== expectedConnections) {
    throw new Error(`${mode}: server-dev counts ${connections} connections for ${TABS} joined tabs, expected ${expectedConnections}`);
  }

  const plan = [[common, COMMON], ...tabs.map(({ rooms }) => [rooms[1], OWN])];
  const publisher = await publish(wsUrl, plan.map(([room]) => room), plan);
  // Closed once every tab has its messages, or by stopAll on a failure.
  const expected = { [common]: COMMON };
  for (const { rooms } of tabs) expected[rooms[1]] = OWN;
  const perTab = [];
  for (const [i, { page, rooms }] of tabs.entries()) {
    await page
      .waitForFunction(
        ([rooms, want]) => rooms.every((r) => window.tab.received[r] >= want[r]),
        [rooms, expected],
        { timeout: WAIT_MS, polling: 50 },
      )
      .catch((e) => {
        throw new Error(`${mode}: tab ${i} did not receive its rooms' messages: ${e.message}`);
      });
  }
  await sleep(SETTLE_MS);
  for (const [i, { page, rooms, errors }] of tabs.entries()) {
    const state = await page.evaluate(() => window.tab);
    const got = rooms.map((r) => state.received[r]);
    const want = rooms.map((r) => expected[r]);
    const repeated = rooms.reduce((sum, r) => sum + state.repeated[r], 0);
    if (JSON.stringify(got) !== JSON.stringify(want) || repeated || state.errors.length || errors.length) {
      throw new Error(
        `${mode}: tab ${i} received ${JSON.stringify(got)} (expected ${JSON.stringify(want)}), ` +
          `${repeated} repeated, errors ${JSON.stringify([...state.errors, ...errors])}`,
      );
    }
    perTab.push(got[0] + got[1]);
  }
  await publisher.close();
  return { connections, perTab, published: publisher.published };
}

/** The heaps of `tabs` and of the SharedWorker (none but in shared mode). */
async function heaps(browser, context, mode, tabs, origin) {
  const browserSession = await browser.newBrowserCDPSession();
  const { processInfo } = await browserSession.send("SystemInfo.getProcessInfo");
  const renderers = processInfo.filter((p) => p.type === "renderer").length;
  if (renderers < TABS) throw new Error(`${mode}: ${renderers} renderer processes for ${TABS} tabs; heaps would be shared`);
  const tabHeaps = [];
  for (const { page } of tabs) {
    const session = await context.newCDPSession(page);
    const heap = await heapUsed(session);
    heap.wasm = mode === "unshared" ? await page.evaluate(wasmMemoryOf(origin)) : 0;
    tabHeaps.push(heap);
    await session.detach();
  }
  const { targetInfos } = await browserSession.send("Target.getTargets");
  const workers = targetInfos.filter((t) => t.type === "shared_worker");
  if (workers.length !== (mode === "shared" ? 1 : 0)) {
    throw new Error(`${mode}: ${workers.length} shared workers (${workers.map((w) => w.url).join(", ")})`);
  }
  let workerHeap = { js: 0, buffers: 0, wasm: 0 };
  if (workers.length) {
    const session = await attach(browserSession, workers[0].targetId);
    workerHeap = await heapUsed(session);
    const { result, exceptionDetails } = await session.send("Runtime.evaluate", {
      expression: wasmMemoryOf(origin),
      awaitPromise: true,
      returnByValue: true,
    });
    if (exceptionDetails || typeof result.value !== "number") {
      throw new Error(`the worker's wasm memory: ${JSON.stringify(exceptionDetails ?? result)}`);
    }
    workerHeap.wasm = result.value;
    await session.detach();
  }
  const renderersPss = (await browserSession.send("SystemInfo.getProcessInfo")).processInfo
    .filter((p) => p.type === "renderer")
    .map((p) => pss(p.id));
  await browserSession.detach();

  const sum = (key) => tabHeaps.reduce((total, heap) => total + heap[key], 0);
  const [js, buffers, wasm] = [sum("js"), sum("buffers"), sum("wasm")];
  return {
    renderers,
    heap_per_tab_bytes: Math.round(js / TABS),
    buffers_per_tab_bytes: Math.round(buffers / TABS),
    wasm_per_tab_bytes: Math.round(wasm / TABS),
    heap_worker_bytes: workerHeap.js,
    buffers_worker_bytes: workerHeap.buffers,
    wasm_worker_bytes: workerHeap.wasm,
    heap_total_bytes: js + workerHeap.js,
    memory_total_bytes: js + buffers + wasm + workerHeap.js + workerHeap.buffers + workerHeap.wasm,
    renderers_pss_bytes: renderersPss.includes(null) ? null : renderersPss.reduce((a, b) => a + b, 0),
    heap_tabs_bytes: tabHeaps,
  };
}

const site = join(root, "target", "bench", "tabs-site");
rmSync(site, { recursive: true, force: true });
mkdirSync(site, { recursive: true });
cpSync(join(root, "benches", "browser", "tabs.html"), join(site, "index.html"));
cpSync(join(root, "client-wasm", "pkg"), join(site, "ws-lifeline"), { recursive: true });

const FIGURES = [
  "connections",
  "heap_per_tab_bytes",
  "buffers_per_tab_bytes",
  "wasm_per_tab_bytes",
  "heap_worker_bytes",
  "buffers_worker_bytes",
  "wasm_worker_bytes",
  "heap_total_bytes",
  "memory_total_bytes",
  "added_total_bytes",
  "renderers_pss_bytes",
  "added_pss_bytes",
];
const results = {
  tabs: TABS,
  rounds: ROUNDS,
  published: { common_room: COMMON, own_room_each: OWN },
  load_before: +loadavg()[0].toFixed(2),
  runs: [],
};
try {
  const server = await startServer(["--no-auth", "--static-dir", site]);
  track("server-dev", () => server.stop());
  for (let round = 0; round < ROUNDS; round++) {
    const order = [...(quick ? [] : [BLANK]), ...(round % 2 ? [...MODES].reverse() : MODES)];
    const run = { round };
    for (const mode of order) {
      run[mode] = await measure(server, mode, round);
      const { heap_tabs_bytes: _, ...shown } = run[mode];
      console.log(`round ${round + 1}/${ROUNDS} ${mode}: ${JSON.stringify(shown)}`);
    }
    // What ws-lifeline adds to ten tabs: all memory measured, less the blank tabs'.
    if (run[BLANK]) {
      for (const mode of order) {
        run[mode].added_total_bytes = run[mode].memory_total_bytes - run[BLANK].memory_total_bytes;
        if (run[BLANK].renderers_pss_bytes !== null) {
          run[mode].added_pss_bytes = run[mode].renderers_pss_bytes - run[BLANK].renderers_pss_bytes;
        }
      }
    }
    run.ratio = Object.fromEntries(
      FIGURES.filter((f) => run.unshared[f] > 0).map((f) => [f, +(run.shared[f] / run.unshared[f]).toFixed(3)]),
    );
    results.runs.push(run);
  }
  results.chromium = chromiumVersion;
  const medians = (mode) => {
    const figures = FIGURES.filter((f) => f in results.runs[0][mode]);
    return Object.fromEntries(figures.map((f) => [f, median(results.runs.map((r) => r[mode][f]))]));
  };
  const measured = [BLANK, ...MODES].filter((mode) => mode in results.runs[0]);
  results.median = Object.fromEntries(measured.map((mode) => [mode, medians(mode)]));
  results.median.ratio = Object.fromEntries(
    Object.keys(results.runs[0].ratio).map((f) => [f, median(results.runs.map((r) => r.ratio[f]))]),
  );
  results.load_after = +loadavg()[0].toFixed(2);
} catch (e) {
  await fail(e.stack ?? String(e));
}
await stopAll();
clearTimeout(watchdog);

mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(results, null, 2));
const kib = (b) => `${(b / 1024).toFixed(0)} KiB`;
const m = results.median;
console.log(`\n${TABS} tabs, medians of ${ROUNDS} rounds       blank   unshared     shared  shared/unshared`);
for (const [name, key, show] of [
  ["server connections", "connections", String],
  ["JS heap per tab", "heap_per_tab_bytes", kib],
  ["array buffers per tab", "buffers_per_tab_bytes", kib],
  ["wasm memory per tab", "wasm_per_tab_bytes", kib],
  ["SharedWorker JS heap", "heap_worker_bytes", kib],
  ["SharedWorker array buffers", "buffers_worker_bytes", kib],
  ["SharedWorker wasm memory", "wasm_worker_bytes", kib],
  ["JS heap, tabs + worker", "heap_total_bytes", kib],
  ["all three, tabs + worker", "memory_total_bytes", kib],
  ...(m[BLANK] ? [["all three, less the blank tabs'", "added_total_bytes", kib]] : []),
  ["renderer processes' PSS", "renderers_pss_bytes", kib],
  ...(m[BLANK] ? [["PSS, less the blank tabs'", "added_pss_bytes", kib]] : []),
]) {
  if (m.unshared[key] === undefined || m.unshared[key] === null) continue;
  const ratio = m.ratio[key] === undefined ? "-" : `${m.ratio[key].toFixed(2)}x`;
  const cells = [BLANK, ...MODES].map((mode) => (m[mode] ? show(m[mode][key]) : "-").padStart(10)).join(" ");
  console.log(`${name.padEnd(34)} ${cells} ${ratio.padStart(16)}`);
}
console.log(`messages delivered per tab: ${COMMON + OWN} each, in both modes (checked)\nresults in ${out}`);
