// Browser throughput (BENCHMARKS.md, section 1): headless Chromium receives and sends `n`
// ~100-byte protocol-v1 events through server-dev's bench endpoints, with a bare WebSocket,
// partysocket, ws-lifeline's JS API and its Rust API (serde-typed events), in one page, one
// run; plus the coalescing figure (the same events packed 64 per frame, as server-dev's /ws
// batches a queue).
//
// Usage: node benches/browser/throughput.mjs [--n N] [--out FILE]
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
const results = { n, chromium: browser.version(), receive: {}, send: {}, coalescing: {} };
try {
  const page = await browser.newPage();
  const errors = collectErrors(page);
  await page.goto(`${server.url}/index.html`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30_000 });
  const clients = ["bare", "partysocket", "ws-lifeline-js", "ws-lifeline-rust"];
  const rate = (r) => Math.round((r.count / r.ms) * 1000);
  for (const kind of clients) {
    const r = await page.evaluate(([k, n]) => window.receive(k, n, 1), [kind, n]);
    results.receive[kind] = { ...r, per_s: rate(r) };
    console.log(`receive ${kind.padEnd(16)} ${String(rate(r)).padStart(8)} msg/s (${r.ms.toFixed(0)} ms)`);
  }
  for (const kind of clients) {
    const r = await page.evaluate(([k, n]) => window.send(k, n), [kind, n]);
    results.send[kind] = { ...r, per_s: rate(r) };
    console.log(`send    ${kind.padEnd(16)} ${String(rate(r)).padStart(8)} msg/s (${r.ms.toFixed(0)} ms)`);
  }
  for (const kind of ["bare", "ws-lifeline-js"]) {
    const r = await page.evaluate(([k, n]) => window.receive(k, n, 64), [kind, n]);
    results.coalescing[kind] = { ...r, per_s: rate(r), batch: 64 };
    console.log(`receive ${kind.padEnd(16)} ${String(rate(r)).padStart(8)} msg/s, 64 events per frame`);
  }
  for (const dir of ["receive", "send"]) {
    for (const kind of clients) results[dir][kind].ratio_to_bare = +(results[dir][kind].per_s / results[dir].bare.per_s).toFixed(2);
  }
  for (const kind of Object.keys(results.coalescing)) {
    results.coalescing[kind].ratio_to_bare_one_per_frame = +(results.coalescing[kind].per_s / results.receive.bare.per_s).toFixed(2);
  }
  if (errors.length) throw new Error(`page errors:\n${errors.join("\n")}`);
} finally {
  await browser.close();
  await server.stop();
}
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(results, null, 2) + "\n");
console.log(JSON.stringify(results));
