// Reconnect and detection latency of ws-lifeline's JS API in headless Chromium (BENCHMARKS.md,
// section 3; benches/loadgen/src/bin/latency.rs measures the native shell the same way).
//
// One LifelineSocket in a page served by a real server-dev process connects to server-dev's
// `/ws` (protocol v1, which answers the client's `{"type":"ping"}` with a pong) through a
// loopback TCP fault proxy that lives in this script. Settings as for the native figures:
// heartbeat interval 1 s and timeout 1 s, minDelay 0 (every retry at once), minUptime 200 ms.
//
// - reconnect: 300 ms after an `open` the proxy refuses new connections (accepts and closes
//   them at once, like the e2e tests' Rust proxy) and cuts the live one; 300 ms later it
//   accepts again. Measured: from accepting again to the client's `open`.
// - detection: 300 ms after an `open` the proxy blackholes the live connection (both TCP
//   sockets stay open, nothing is forwarded either way). Measured: from the blackhole to the
//   client's `close` (which must be 4000, the heartbeat's code).
//
// Time stamps: both ends read `performance.timeOrigin + performance.now()`, the same wall
// clock at sub-ms resolution: this script when the proxy accepts again or blackholes, the page
// in its `open`/`close` listener. That has less skew than stamping in Node when the page's
// report arrives over the DevTools pipe (a variable ms or more on two busy cores); the latter
// is kept in the JSON as `via_binding` for comparison. A clock check (page stamp against a
// Node round trip) runs before and after the trials and fails the run if the two clocks
// disagree by more than 2 ms.
//
// Usage: SERVER_DEV_BIN=<server-dev binary> node benches/browser/latency.mjs
//          [--trials N] [--quick] [--out FILE]
// (default 20 trials each, --quick 2 each). Needs the npm package in client-wasm/pkg.
// Exits non-zero if any trial does not complete within its bound.
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { collectErrors, launchChromium, startServer, withoutNetworkNoise } from "../../tests/e2e/support/harness.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const quick = process.argv.includes("--quick");
const trials = Number(arg("--trials", quick ? "2" : "20"));
if (!Number.isInteger(trials) || trials < 1 || trials > 1000) throw new Error("--trials takes a number from 1 to 1000");
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const out = arg("--out", join(root, "target", "bench", "latency-browser.json"));

const SETTLE_MS = 300; // from `open` to refusing / blackholing
const REFUSE_MS = 300; // refused connections before accepting again
const WAIT_MS = 10_000; // bound of every wait for an event
const CLOCK_SKEW_MS = 2; // most the page's and Node's clocks may disagree
// Bound of the whole run: far above a normal run (about 3 s per trial pair).
const RUN_BOUND_MS = 60_000 + trials * 2 * (SETTLE_MS + REFUSE_MS + 2 * WAIT_MS);
const OPTIONS = {
  protocols: "lifeline.v1",
  minDelay: 0,
  minUptime: 200,
  heartbeat: { interval: 1000, timeout: 1000 },
};

const stamp = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A loopback TCP proxy in front of `upstreamPort` that can refuse, accept again, cut and
 * blackhole. A connection that ends on either side is closed on both (as in the Rust proxy).
 */
function startProxy(upstreamPort) {
  const live = new Set();
  const stats = { accepted: 0, refused: 0, cut: 0, blackholed: 0, pongs: 0 };
  let refusing = false;
  let dials = []; // when each connection (refused or not) reached the proxy
  const server = createServer({ noDelay: true }, (client) => {
    dials.push(stamp());
    if (refusing) {
      stats.refused++;
      client.destroy();
      return;
    }
    stats.accepted++;
    const upstream = connect({ host: "127.0.0.1", port: upstreamPort, noDelay: true });
    const c = { client, upstream, mode: "forward" };
    live.add(c);
    const end = () => {
      live.delete(c);
      client.destroy();
      upstream.destroy();
    };
    // Blackholed bytes are still read (and dropped), so neither sender sees a full window.
    client.on("data", (b) => c.mode === "forward" && upstream.write(b));
    upstream.on("data", (b) => {
      if (c.mode !== "forward") return;
      // Server frames are unmasked: the client's pongs (which it does not surface as
      // `message` events) can be counted here.
      stats.pongs += b.toString("latin1").split('"type":"pong"').length - 1;
      client.write(b);
    });
    for (const s of [client, upstream]) for (const e of ["end", "close", "error"]) s.on(e, end);
  });
  const forwarding = () => [...live].filter((c) => c.mode === "forward");
  return {
    stats,
    listen: () => new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve(server.address().port));
    }),
    forwarding: () => forwarding().length,
    takeDials: () => {
      const d = dials;
      dials = [];
      return d;
    },
    refuse: () => { refusing = true; },
    accept: () => { refusing = false; },
    cutAll: () => {
      const n = live.size;
      for (const c of [...live]) {
        live.delete(c);
        c.client.destroy();
        c.upstream.destroy();
      }
      stats.cut += n;
      return n;
    },
    blackholeAll: () => {
      const now = forwarding();
      for (const c of now) c.mode = "blackhole";
      stats.blackholed += now.length;
      return now.length;
    },
    close: () => {
      for (const c of [...live]) {
        c.client.destroy();
        c.upstream.destroy();
      }
      live.clear();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Upper median (as the native bench: element len/2 of the sorted samples) and maximum. */
function summary(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const r = (x) => Math.round(x * 1000) / 1000;
  return { trials: s.length, median_ms: r(s[Math.floor(s.length / 2)]), max_ms: r(s[s.length - 1]) };
}

// Every process and listener this script starts, stopped by its own handle, also on failure.
let server;
let browser;
let proxy;
let cleaning;
function cleanup() {
  cleaning ??= (async () => {
    await browser?.close().catch((e) => console.error(`closing Chromium: ${e.message}`));
    await proxy?.close().catch((e) => console.error(`closing the proxy: ${e.message}`));
    await server?.stop().catch((e) => console.error(`stopping server-dev: ${e.message}`));
  })();
  return cleaning;
}
const fail = async (why, code = 1) => {
  console.error(why);
  await cleanup();
  process.exit(code);
};
const watchdog = setTimeout(() => fail(`latency: the run took longer than ${RUN_BOUND_MS} ms`), RUN_BOUND_MS);
process.once("SIGINT", () => fail("latency: interrupted", 130));
process.once("SIGTERM", () => fail("latency: terminated", 143));

// The page, and the npm package next to it, in a folder of their own that server-dev serves.
const site = join(root, "target", "bench", "latency-site");
mkdirSync(join(site, "ws-lifeline"), { recursive: true });
cpSync(join(root, "benches", "browser", "latency.html"), join(site, "index.html"));
for (const f of ["index.js", "ws_lifeline.js", "ws_lifeline_bg.wasm"]) {
  cpSync(join(root, "client-wasm", "pkg", f), join(site, "ws-lifeline", f));
}

const results = { shell: "browser", trials, settings: { ...OPTIONS, settle_ms: SETTLE_MS, refuse_ms: REFUSE_MS } };
try {
  // The page's origin is server-dev's own, which /ws allows; no ticket (--no-auth) and no
  // rate limit, as the native bench configures its in-process server.
  server = await startServer(["--no-auth", "--rate-limit", "0", "--static-dir", site]);
  proxy = startProxy(server.port);
  const proxyPort = await proxy.listen();
  browser = await launchChromium();
  results.browser = "chromium";
  results.chromium = browser.version();

  const page = await browser.newPage();
  const errors = collectErrors(page);
  // Events the page reports: its own stamp `t`, and `received`, when Node got the report.
  const events = [];
  let wake = () => {};
  await page.exposeBinding("report", (_source, event) => {
    events.push({ ...event, received: stamp() });
    wake();
  });
  await page.goto(`${server.url.replace(/\/$/, "")}/index.html`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30_000 });

  // The page's and Node's clocks: the page's stamp must fall inside Node's round trip
  // around it. The tightest of 20 round trips bounds the offset.
  const clockCheck = async (when) => {
    let best;
    for (let i = 0; i < 20; i++) {
      const t0 = stamp();
      const p = await page.evaluate(() => window.now());
      const t1 = stamp();
      if (!best || t1 - t0 < best.rtt_ms) best = { rtt_ms: t1 - t0, offset_ms: p - (t0 + t1) / 2 };
    }
    const check = { rtt_ms: +best.rtt_ms.toFixed(3), offset_ms: +best.offset_ms.toFixed(3) };
    if (Math.abs(best.offset_ms) > best.rtt_ms / 2 + CLOCK_SKEW_MS) {
      throw new Error(`clock check ${when}: page clock off by ${check.offset_ms} ms (round trip ${check.rtt_ms} ms)`);
    }
    return check;
  };
  results.clock_check = { before: await clockCheck("before") };

  /** The first event at index `from` or later of `type`, within WAIT_MS. */
  const waitFor = async (type, from, what) => {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const hit = events.slice(from).find((e) => e.type === type);
      if (hit) return { event: hit, index: events.indexOf(hit) };
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what}: no ${type} within ${WAIT_MS} ms`);
      await new Promise((r) => {
        const timer = setTimeout(r, left);
        wake = () => {
          clearTimeout(timer);
          r();
        };
      });
    }
  };
  const counts = () => page.evaluate(() => ({ ...window.counts }));
  const since = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - a[k]]));
  /** Waits until SETTLE_MS after `open` (page stamp), checking the connection stayed up. */
  const settle = async (open, what) => {
    await sleep(Math.max(0, Math.ceil(open.event.t + SETTLE_MS - stamp())));
    if (events.length !== open.index + 1) throw new Error(`${what}: the connection did not stay open`);
    if (proxy.forwarding() !== 1) throw new Error(`${what}: ${proxy.forwarding()} connections forwarding, expected 1`);
  };

  await page.evaluate(([url, options]) => window.start(url, options), [`ws://127.0.0.1:${proxyPort}/ws`, OPTIONS]);
  let open = await waitFor("open", 0, "first connection");

  // The heartbeat must be answered, or detection would measure a connection that dies on its
  // own after interval + timeout: hold one connection for 3.5 s and expect pongs, no close.
  // (The client swallows pongs; the proxy counts them on their way to it.)
  const p0 = proxy.stats.pongs;
  await sleep(3_500);
  const pongs = proxy.stats.pongs - p0;
  if (events.length !== open.index + 1 || pongs < 2) {
    throw new Error(`heartbeat check: ${pongs} pongs in 3.5 s, connection ${events.length === open.index + 1 ? "open" : "closed"}`);
  }
  results.heartbeat_check = { held_ms: 3_500, pongs };

  const reconnect = { page: [], binding: [], retries: [] };
  for (let i = 1; i <= trials; i++) {
    const what = `reconnect trial ${i}`;
    await settle(open, what);
    const before = await counts();
    await page.evaluate(() => { window.retries = []; });
    proxy.takeDials();
    proxy.refuse();
    if (proxy.cutAll() < 1) throw new Error(`${what}: nothing to cut`);
    await sleep(REFUSE_MS);
    const from = events.length;
    const accepting = stamp();
    proxy.accept();
    open = await waitFor("open", from, what);
    const opened = events.slice(from, open.index + 1);
    if (opened.some((e) => e.type !== "open" || e.t < accepting)) throw new Error(`${what}: an open before accepting again`);
    const ms = open.event.t - accepting;
    reconnect.page.push(ms);
    reconnect.binding.push(open.event.received - accepting);
    // Where the time went. The client's `reconnecting` events (page stamps) carry the delay
    // it chose; the proxy stamps when each attempt's TCP connection actually arrived. The
    // gap between the two is the browser's own wait before dialling.
    const retries = await page.evaluate(() => window.retries);
    const dials = proxy.takeDials();
    const waits = retries.map((r) => dials.find((d) => d >= r.t) - r.t).filter(Number.isFinite);
    const dial = dials.find((d) => d >= accepting);
    reconnect.retries.push({
      retries: since(before, await counts()).reconnecting,
      max_delay_ms: Math.max(0, ...retries.map((r) => r.delay)),
      median_dial_wait_ms: waits.length ? +summary(waits).median_ms.toFixed(1) : null,
      dial_after_accepting_ms: dial === undefined ? null : +(dial - accepting).toFixed(1),
    });
    const r = reconnect.retries.at(-1);
    console.error(`${what}: ${ms.toFixed(1)} ms (${r.retries} retries at delay <= ${r.max_delay_ms} ms; browser dialled ${r.median_dial_wait_ms} ms after each; ${r.dial_after_accepting_ms} ms after accepting)`);
  }

  const detection = { page: [], binding: [], settled: [] };
  for (let i = 1; i <= trials; i++) {
    const what = `detection trial ${i}`;
    await settle(open, what);
    const from = events.length;
    const blackholed = stamp();
    detection.settled.push(+(blackholed - open.event.t).toFixed(1));
    if (proxy.blackholeAll() !== 1) throw new Error(`${what}: expected one connection to blackhole`);
    const closed = await waitFor("close", from, what);
    if (closed.event.code !== 4000) throw new Error(`${what}: close ${closed.event.code}, expected 4000 (heartbeat)`);
    const ms = closed.event.t - blackholed;
    detection.page.push(ms);
    detection.binding.push(closed.event.received - blackholed);
    console.error(`${what}: ${ms.toFixed(1)} ms (blackholed ${detection.settled.at(-1)} ms after open)`);
    open = await waitFor("open", closed.index + 1, `${what} (reopen)`);
  }

  results.clock_check.after = await clockCheck("after");
  results.reconnect_after_accepting = {
    ...summary(reconnect.page),
    samples_ms: reconnect.page.map((x) => +x.toFixed(3)),
    retries: reconnect.retries,
    via_binding: summary(reconnect.binding),
  };
  results.detection_after_blackhole = {
    ...summary(detection.page),
    samples_ms: detection.page.map((x) => +x.toFixed(3)),
    // From `open` to the blackhole: detection is due at 2000 ms after `open` minus this.
    blackholed_after_open_ms: detection.settled,
    via_binding: summary(detection.binding),
  };
  results.proxy = { ...proxy.stats };
  const pageErrors = withoutNetworkNoise(errors);
  if (pageErrors.length) throw new Error(`page errors:\n${pageErrors.join("\n")}`);
} catch (e) {
  await fail(`latency: ${e.stack ?? e}`);
} finally {
  clearTimeout(watchdog);
  await cleanup();
}

mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(results, null, 2) + "\n");
const row = (name, s) => `${name.padEnd(48)} ${s.median_ms.toFixed(1).padStart(9)} ms ${s.max_ms.toFixed(1).padStart(9)} ms`;
console.log(`Chromium ${results.chromium}, ${trials} trials each`);
console.log(`${"figure (browser)".padEnd(48)} ${"median".padStart(12)} ${"max".padStart(12)}`);
console.log(row("accepting again -> open (after 300 ms refused)", results.reconnect_after_accepting));
console.log(row("blackholed -> close 4000 (half-open detected)", results.detection_after_blackhole));
console.log(`results: ${out}`);
