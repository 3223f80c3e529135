// Headless Firefox for the e2e suites. Playwright drives only its own patched Firefox builds,
// which cannot be downloaded here; puppeteer-core drives the system firefox-esr over WebDriver
// BiDi. Its pages take the same `on("console")`/`on("pageerror")` listeners as Playwright's,
// so harness.mjs's `collectErrors` works on them.
import puppeteer from "puppeteer-core";

// On top of puppeteer's own automation prefs: nothing leaves loopback.
const PREFS = {
  "app.normandy.enabled": false,
  "browser.region.update.enabled": false,
  "network.captive-portal-service.enabled": false,
  "network.connectivity-service.enabled": false,
  "network.dns.disablePrefetch": true,
  "network.prefetch-next": false,
  "toolkit.telemetry.enabled": false,
  "services.settings.server": "http://127.0.0.1:1/",
};

/**
 * Launches the system Firefox (FIREFOX_BIN, else /usr/bin/firefox-esr) headless, with a fresh
 * profile that puppeteer removes on close. `stop()` closes it and, should it hang, kills its
 * process by pid.
 * @returns {Promise<{browser: import("puppeteer-core").Browser, version: string, stop: () => Promise<void>}>}
 */
export async function launchFirefox() {
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: process.env.FIREFOX_BIN ?? "/usr/bin/firefox-esr",
    headless: true,
    extraPrefsFirefox: PREFS,
  });
  const child = browser.process();
  const version = await browser.version();
  const stop = async () => {
    const closed = browser.close().then(() => "closed", () => "failed");
    const timeout = sleep(10_000).then(() => "timeout");
    if ((await Promise.race([closed, timeout])) !== "closed" && child?.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, "SIGKILL");
    }
  };
  return { browser, version, stop };
}

/** Resolves after `ms` (puppeteer's pages have no `waitForTimeout`). */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits until `fn(arg)` is truthy in `page` (polled from here every 20 ms, for at most
 * `timeout` ms) and returns its value. Not `page.waitForFunction`: that polls with the page's
 * timers, which Firefox holds to one a second in a background tab.
 */
export async function waitInPage(page, fn, arg, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await page.evaluate(fn, arg);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${fn}`);
    await sleep(20);
  }
}
