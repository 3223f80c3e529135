// Browser throughput (BENCHMARKS.md, section 1): headless Chromium receives and sends `n`
// ~100-byte protocol-v1 events through server-dev's bench endpoints, with a bare WebSocket,
// partysocket, ws-lifeline's JS API and its Rust API (serde-typed events), in one page, one
// run; plus the coalescing figure (the same events packed 64 per frame, as server-dev's /ws
// batches a queue).
//
// With --rounds R (default 1), every figure is measured R times in the same page, the clients'
// order rotating by one each round, and each client's figure and ratio to bare are the medians
// over the rounds (each round's ratio is against that round's bare); `rounds` in the JSON keeps
// every round. On a shared machine one round's ratio moves by ±0.1.
//
// With --heartbeat, the JS API also runs with its default heartbeat (client
// "ws-lifeline-js-heartbeat", receive only), which the server's lifeline.v1 turns on: the path
// every frame takes through the wasm. The bench's own JS API client has it off, as a bare
// socket has none.
//
// Usage: node benches/browser/throughput.mjs [--n N] [--rounds R] [--heartbeat] [--out FILE]
// Needs SERVER_DEV_BIN (a server-dev binary), the npm package in client-wasm/pkg and the Rust
// API's page module in benches/browser-rust/pkg (both built by `cargo xtask bench browser`).
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { collectErrors, launchChromium, startServer } from "../../tests/e2e/support/harness.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const n = Number(arg("--n", "100000"));
const rounds = Number(arg("--rounds", "1"));
const heartbeat = process.argv.includes("--heartbeat");
const root = join(dirname(new URL(import.meta.url).pathname), "..", "..");
const out = arg("--out", join(root, "target", "bench", "browser.json"));

// One static folder: the page, partysocket's ESM files, the built npm package, the Rust API's
// page module.
const site = join(root, "target", "bench", "site");
mkdirSync(join(site, "partysocket"), { recursive: true });
mkdirSync(join(site, "ws-lifeline"), { recursive: true });
mkdirSync(join(site, "ws-lifeline-rust"), { recursive: true });
cpSync(join(root, "benches", "browser", "page.html"), join(site, "index.html"));
for (const f of ["ws.js"]) cpSync(join(root, "node_modules", "partysocket", "dist", f), join(site, "partysocket", f));
for (const f of ["index.js", "ws_lifeline.js", "ws_lifeline_bg.wasm"]) {
  cpSync(join(root, "client-wasm", "pkg", f), join(site, "ws-lifeline", f));
}
for (const f of ["lifeline_bench_wasm.js", "lifeline_bench_wasm_bg.wasm"]) {
  cpSync(join(root, "benches", "browser-rust", "pkg", f), join(site, "ws-lifeline-rust", f));
}

const server = await startServer(["--bench-endpoints", "--static-dir", site]);
const browser = await launchChromium();
const results = { n, rounds, chromium: browser.version(), receive: {}, send: {}, coalescing: {} };
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
try {
  const page = await browser.newPage();
  const errors = collectErrors(page);
  await page.goto(`${server.url}/index.html`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30_000 });
  const clients = ["bare", "partysocket", "ws-lifeline-js", "ws-lifeline-rust"];
  const rate = (r) => Math.round((r.count / r.ms) * 1000);
  const measured = { receive: {}, send: {}, coalescing: {} };
  const keep = (dir, kind, r, extra) => (measured[dir][kind] ??= []).push({ ...r, per_s: rate(r), ...extra });
  for (let round = 0; round < rounds; round++) {
    const order = [...clients.slice(round % clients.length), ...clients.slice(0, round % clients.length)];
    const tag = rounds > 1 ? `round ${round + 1}: ` : "";
    for (const kind of heartbeat ? [...order, "ws-lifeline-js-heartbeat"] : order) {
      const r = await page.evaluate(([k, n]) => window.receive(k, n, 1), [kind, n]);
      keep("receive", kind, r);
      console.log(`${tag}receive ${kind.padEnd(16)} ${String(rate(r)).padStart(8)} msg/s (${r.ms.toFixed(0)} ms)`);
    }
    for (const kind of order) {
      const r = await page.evaluate(([k, n]) => window.send(k, n), [kind, n]);
      keep("send", kind, r);
      console.log(`${tag}send    ${kind.padEnd(16)} ${String(rate(r)).padStart(8)} msg/s (${r.ms.toFixed(0)} ms)`);
    }
    for (const kind of round % 2 ? ["ws-lifeline-js", "bare"] : ["bare", "ws-lifeline-js"]) {
      const r = await page.evaluate(([k, n]) => window.receive(k, n, 64), [kind, n]);
      keep("coalescing", kind, r, { batch: 64 });
      console.log(`${tag}receive ${kind.padEnd(16)} ${String(rate(r)).padStart(8)} msg/s, 64 events per frame`);
    }
  }
  // Ratios per round, against the same round's bare one-event-per-frame receive.
  const ratio = (dir, kind, base, at) => measured[dir][kind][at].per_s / measured[base].bare[at].per_s;
  for (const dir of ["receive", "send", "coalescing"]) {
    for (const [kind, all] of Object.entries(measured[dir])) {
      const base = dir === "coalescing" ? "receive" : dir;
      const key = dir === "coalescing" ? "ratio_to_bare_one_per_frame" : "ratio_to_bare";
      const single = all.length === 1 ? all[0] : {};
      results[dir][kind] = {
        ...single,
        per_s: Math.round(median(all.map((r) => r.per_s))),
        [key]: +median(all.map((_, at) => ratio(dir, kind, base, at))).toFixed(2),
        ...(all.length > 1 ? { rounds: all } : {}),
      };
    }
  }
  if (errors.length) throw new Error(`page errors:\n${errors.join("\n")}`);
} finally {
  await browser.close();
  await server.stop();
}
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(results, null, 2) + "\n");
console.log(JSON.stringify(results));
