// The demo that `cargo xtask demo` serves loads in headless Chromium without errors.
// Covers: server-dev serves the trunk build from --static-dir on its own port; the wasm app
// starts and renders its first screen; no console error and no uncaught exception.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { collectErrors, demoDist, launchChromium, startServer } from "./support/harness.mjs";

let server;
let browser;

before(async () => {
  server = await startServer(["--static-dir", demoDist()]);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("the demo page loads and renders without errors", async () => {
  const page = await browser.newPage();
  const errors = collectErrors(page);
  const response = await page.goto(server.url, { waitUntil: "load" });
  assert.equal(response.status(), 200);
  // The app mounts into <main id="app">; any rendered element means the wasm started.
  await page.waitForSelector("[data-app-ready]", { timeout: 30_000 });
  assert.deepEqual(errors, []);
});
