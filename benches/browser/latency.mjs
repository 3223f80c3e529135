// Reconnect and detection latency of ws-lifeline's JS API in a headless browser (BENCHMARKS.md,
// section 3; benches/loadgen/src/bin/latency.rs measures the native shell the same way).
// Chromium through Playwright by default; `--browser firefox` starts the system firefox-esr
// itself (Playwright cannot drive it; see firefoxDriver).
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
// report arrives (over the DevTools pipe, or HTTP for Firefox: a variable ms or more on two
// busy cores); the latter is kept in the JSON as `via_report` for comparison. A clock check
// (page stamp against a Node round trip) runs before and after the trials and fails the run
// if the two clocks disagree by more than 2 ms.
//
// Usage: SERVER_DEV_BIN=<server-dev binary> node benches/browser/latency.mjs
//          [--trials N] [--quick] [--out FILE] [--browser chromium|firefox]
// (default 20 trials each, --quick 2 each; results in target/bench/latency-browser.json, or
// latency-browser-firefox.json). Needs the npm package in client-wasm/pkg; CHROMIUM_BIN and
// FIREFOX_BIN override the browsers' paths. Exits non-zero if any trial does not complete
// within its bound, and then writes no results.
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer, connect } from "node:net";
import { loadavg } from "node:os";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { collectErrors, launchChromium, startServer, withoutNetworkNoise } from "../../tests/e2e/support/harness.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const quick = process.argv.includes("--quick");
const browserName = arg("--browser", "chromium");
if (!["chromium", "firefox"].includes(browserName)) throw new Error("--browser takes chromium or firefox");
const trials = Number(arg("--trials", quick ? "2" : "20"));
if (!Number.isInteger(trials) || trials < 1 || trials > 1000) throw new Error("--trials takes a number from 1 to 1000");
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const out = arg("--out", join(root, "target", "bench", browserName === "chromium" ? "latency-browser.json" : `latency-browser-${browserName}.json`));

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

// Every process and listener this script starts, stopped by its own handle (in reverse
// order), also on failure.
const stops = [];
let cleaning;
function cleanup() {
  cleaning ??= (async () => {
    for (const [what, stop] of stops.reverse()) {
      await stop().catch((e) => console.error(`stopping ${what}: ${e.message}`));
    }
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

/** Headless Chromium through Playwright: page.evaluate for commands, a binding for reports. */
async function chromiumDriver(pageUrl, onReport) {
  const browser = await launchChromium();
  stops.push(["Chromium", () => browser.close()]);
  const page = await browser.newPage();
  const errors = collectErrors(page);
  await page.exposeBinding("report", (_source, event) => onReport(event));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30_000 });
  return {
    version: browser.version(),
    command: (name, ...args) => page.evaluate(([n, a]) => window.command(n, a), [name, args]),
    errors: () => withoutNetworkNoise(errors),
  };
}

// Firefox: Playwright cannot drive the system firefox-esr (its Juggler protocol needs a patched
// build, and its WebDriver BiDi mode sends commands ESR does not know), so this script starts
// firefox-esr itself with a fresh profile, loopback only, and the page talks to a small HTTP
// control server here (latency.html).
const FIREFOX_PREFS = {
  // Sub-ms page stamps (the default rounds performance.now() to 1 ms, with jitter).
  "privacy.reduceTimerPrecision": false,
  // Nothing but the page: no first-run pages, updates, telemetry or background requests.
  "browser.shell.checkDefaultBrowser": false,
  "browser.startup.homepage_override.mstone": "ignore",
  "browser.startup.page": 0,
  "browser.aboutwelcome.enabled": false,
  "datareporting.policy.dataSubmissionEnabled": false,
  "datareporting.healthreport.uploadEnabled": false,
  "toolkit.telemetry.enabled": false,
  "toolkit.telemetry.reportingpolicy.firstRun": false,
  "app.update.disabledForTesting": true,
  "app.update.auto": false,
  "app.normandy.enabled": false,
  "extensions.update.enabled": false,
  "extensions.getAddons.cache.enabled": false,
  "browser.region.update.enabled": false,
  "browser.safebrowsing.malware.enabled": false,
  "browser.safebrowsing.phishing.enabled": false,
  "browser.safebrowsing.downloads.enabled": false,
  "browser.safebrowsing.blockedURIs.enabled": false,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
  "network.dns.disablePrefetch": true,
  "network.prefetch-next": false,
  "network.http.speculative-parallel-limit": 0,
  "services.settings.server": "http://127.0.0.1:1/",
};

/** A loopback HTTP server the Firefox page reports to and takes commands from. */
async function startControl(onReport) {
  let sse;
  let nextId = 0;
  const pending = new Map();
  let readyNow;
  const ready = new Promise((r) => (readyNow = r));
  const cors = { "access-control-allow-origin": "*" };
  const server = createHttpServer((req, res) => {
    if (req.method === "GET" && req.url === "/commands") {
      res.writeHead(200, { ...cors, "content-type": "text/event-stream", "cache-control": "no-store" });
      res.write(": commands\n\n");
      sse = res;
      return;
    }
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const received = stamp();
      res.writeHead(204, cors).end();
      const msg = body ? JSON.parse(body) : {};
      if (req.url === "/report") onReport(msg, received);
      else if (req.url === "/ready") readyNow();
      else if (req.url === "/reply") {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error !== undefined) p?.reject(new Error(`page: ${msg.error}`));
        else p?.resolve(msg.result);
      }
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    ready,
    command: (name, ...args) =>
      new Promise((resolve, reject) => {
        const id = ++nextId;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`page: no reply to ${name} within ${WAIT_MS} ms`));
        }, WAIT_MS);
        const done = (f) => (v) => {
          clearTimeout(timer);
          f(v);
        };
        pending.set(id, { resolve: done(resolve), reject: done(reject) });
        sse.write(`data: ${JSON.stringify({ id, name, args })}\n\n`);
      }),
    close: () => {
      sse?.end();
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Headless firefox-esr (FIREFOX_BIN), started and stopped by its pid. */
async function firefoxDriver(pageUrl, onReport) {
  const control = await startControl(onReport);
  stops.push(["the control server", () => control.close()]);
  const bin = process.env.FIREFOX_BIN ?? "/usr/bin/firefox-esr";
  const version = execFileSync(bin, ["--version"], { encoding: "utf8", timeout: 30_000 }).trim();
  const profile = join(root, "target", "bench", "latency-firefox-profile");
  rmSync(profile, { recursive: true, force: true });
  mkdirSync(profile, { recursive: true });
  const prefs = Object.entries(FIREFOX_PREFS).map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});`);
  writeFileSync(join(profile, "user.js"), prefs.join("\n") + "\n");
  const url = `${pageUrl}?ctl=${encodeURIComponent(control.url)}`;
  const child = spawn(bin, ["--headless", "--no-remote", "--profile", profile, url], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, MOZ_HEADLESS: "1" },
  });
  const log = [];
  createInterface({ input: child.stderr }).on("line", (line) => log.push(line) > 50 && log.shift());
  const exited = once(child, "exit");
  stops.push([
    "Firefox",
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(child.pid, "SIGTERM");
      if ((await Promise.race([exited, sleep(5_000).then(() => "timeout")])) === "timeout") {
        process.kill(child.pid, "SIGKILL");
        await exited;
      }
    },
  ]);
  const started = await Promise.race([
    control.ready.then(() => "ready"),
    exited.then(() => "exited"),
    sleep(60_000).then(() => "timeout"),
  ]);
  if (started !== "ready") throw new Error(`Firefox: page not ready (${started}); its log:\n${log.join("\n")}`);
  // Uncaught page errors come as reports (latency.html).
  return { version, command: control.command, errors: () => [] };
}

// The page, and the npm package next to it, in a folder of their own that server-dev serves.
const site = join(root, "target", "bench", "latency-site");
mkdirSync(join(site, "ws-lifeline"), { recursive: true });
cpSync(join(root, "benches", "browser", "latency.html"), join(site, "index.html"));
for (const f of ["index.js", "ws_lifeline.js", "ws_lifeline_bg.wasm"]) {
  cpSync(join(root, "client-wasm", "pkg", f), join(site, "ws-lifeline", f));
}

const loadBefore = +loadavg()[0].toFixed(2);
const results = { shell: "browser", browser: browserName, trials, settings: { ...OPTIONS, settle_ms: SETTLE_MS, refuse_ms: REFUSE_MS } };
try {
  // The page's origin is server-dev's own, which /ws allows; no ticket (--no-auth) and no
  // rate limit, as the native bench configures its in-process server.
  const server = await startServer(["--no-auth", "--rate-limit", "0", "--static-dir", site]);
  stops.push(["server-dev", () => server.stop()]);
  const proxy = startProxy(server.port);
  stops.push(["the proxy", () => proxy.close()]);
  const proxyPort = await proxy.listen();

  // Events the page reports: its own stamp `t`, and `received`, when Node got the report.
  const events = [];
  const reportedErrors = [];
  let wake = () => {};
  const onReport = (event, received = stamp()) => {
    if (event.type === "pageerror") return reportedErrors.push(`pageerror: ${event.message}`);
    events.push({ ...event, received });
    wake();
  };
  const pageUrl = `${server.url.replace(/\/$/, "")}/index.html`;
  const page = await (browserName === "firefox" ? firefoxDriver : chromiumDriver)(pageUrl, onReport);
  results.version = page.version;

  // The page's and Node's clocks: the page's stamp must fall inside Node's round trip
  // around it. The tightest of 20 round trips bounds the offset.
  const clockCheck = async (when) => {
    let best;
    for (let i = 0; i < 20; i++) {
      const t0 = stamp();
      const p = await page.command("now");
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
  const counts = () => page.command("counts");
  const since = (a, b) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - a[k]]));
  /** Waits until SETTLE_MS after `open` (page stamp), checking the connection stayed up. */
  const settle = async (open, what) => {
    await sleep(Math.max(0, Math.ceil(open.event.t + SETTLE_MS - stamp())));
    if (events.length !== open.index + 1) throw new Error(`${what}: the connection did not stay open`);
    if (proxy.forwarding() !== 1) throw new Error(`${what}: ${proxy.forwarding()} connections forwarding, expected 1`);
  };

  await page.command("start", `ws://127.0.0.1:${proxyPort}/ws`, OPTIONS);
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

  const reconnect = { page: [], report: [], retries: [] };
  for (let i = 1; i <= trials; i++) {
    const what = `reconnect trial ${i}`;
    await settle(open, what);
    const before = await counts();
    await page.command("takeRetries");
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
    reconnect.report.push(open.event.received - accepting);
    // Where the time went. The client's `reconnecting` events (page stamps) carry the delay
    // it chose; the proxy stamps when each attempt's TCP connection actually arrived. The
    // gap between the two is the browser's own wait before dialling.
    const retries = await page.command("takeRetries");
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

  const detection = { page: [], report: [], settled: [] };
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
    detection.report.push(closed.event.received - blackholed);
    console.error(`${what}: ${ms.toFixed(1)} ms (blackholed ${detection.settled.at(-1)} ms after open)`);
    open = await waitFor("open", closed.index + 1, `${what} (reopen)`);
  }

  results.clock_check.after = await clockCheck("after");
  // Other work on the machine shows up in these figures (timers fire late): say how much.
  results.load_average_1m = { before: loadBefore, after: +loadavg()[0].toFixed(2) };
  results.reconnect_after_accepting = {
    ...summary(reconnect.page),
    samples_ms: reconnect.page.map((x) => +x.toFixed(3)),
    retries: reconnect.retries,
    via_report: summary(reconnect.report),
  };
  results.detection_after_blackhole = {
    ...summary(detection.page),
    samples_ms: detection.page.map((x) => +x.toFixed(3)),
    // From `open` to the blackhole: detection is due at 2000 ms after `open` minus this.
    blackholed_after_open_ms: detection.settled,
    via_report: summary(detection.report),
  };
  results.proxy = { ...proxy.stats };
  const pageErrors = [...page.errors(), ...reportedErrors];
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
console.log(`${browserName} ${results.version}, ${trials} trials each`);
console.log(`${"figure (browser)".padEnd(48)} ${"median".padStart(12)} ${"max".padStart(12)}`);
console.log(row("accepting again -> open (after 300 ms refused)", results.reconnect_after_accepting));
console.log(row("blackholed -> close 4000 (half-open detected)", results.detection_after_blackhole));
console.log(`results: ${out}`);
