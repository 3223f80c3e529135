// The README's first command, run as a user runs it: `cargo xtask demo` sets up what it needs,
// builds the demo and serves it; the served page renders the login screen in headless Chromium
// with no console error. `.ci/run` runs this file again after removing std's crates from
// cargo's cache, to prove that setup fetches everything the demo build needs.
// Covers: setup (demo scope) + trunk build + server-dev on one port; the login form renders;
// no console error and no uncaught exception; the command's processes are stopped by the
// process group this test started.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { collectErrors, launchChromium } from "./support/harness.mjs";

// A first run may install trunk and wasm-bindgen-cli and build std: allow it the time.
const STARTUP_LIMIT_MS = 30 * 60_000;
const SERVED = /ws-lifeline demo: (http:\/\/\S+)/;

let demo;
let browser;

after(async () => {
  await browser?.close();
  await stopGroup(demo);
});

/** Stops the process group `cargo xtask demo` runs in (cargo, xtask and server-dev). */
async function stopGroup(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  process.kill(-child.pid, "SIGTERM");
  const timeout = new Promise((r) => setTimeout(r, 5_000, "timeout"));
  if ((await Promise.race([exited, timeout])) === "timeout") {
    process.kill(-child.pid, "SIGKILL");
    await exited;
  }
}

test("`cargo xtask demo` serves a demo that renders its login screen", async () => {
  demo = spawn("cargo", ["xtask", "demo", "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
  });
  const lines = createInterface({ input: demo.stdout });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("`cargo xtask demo` printed no URL in 30 min")),
      STARTUP_LIMIT_MS,
    );
    demo.once("exit", (code) => reject(new Error(`\`cargo xtask demo\` exited with ${code}`)));
    lines.on("line", (line) => {
      console.log(`[demo] ${line}`);
      const served = SERVED.exec(line);
      if (served) {
        clearTimeout(timer);
        resolve(served[1]);
      }
    });
  });

  browser = await launchChromium();
  const page = await browser.newPage();
  const errors = collectErrors(page);
  const response = await page.goto(url, { waitUntil: "load" });
  assert.equal(response.status(), 200);
  await page.getByLabel("Display name").waitFor({ timeout: 30_000 });
  assert.equal(await page.locator("form.login-card button[type=submit]").count(), 1);
  assert.deepEqual(errors, []);
});
