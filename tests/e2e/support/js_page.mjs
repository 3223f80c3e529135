// The JS test page (tests/e2e/pages/index.html) with the built npm package, shared by the
// js_*.test.mjs suites: a static server for both, and a page that has loaded the wasm and
// exposes its helpers as `window.t`.
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before } from "node:test";
import { collectErrors, launchChromium, startServer } from "./harness.mjs";
import { serveStatic } from "../pages/serve.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/**
 * Serves `/pkg/` from client-wasm/`pkg` (the npm package, or `pkg/socket`, its raw
 * resilient-socket entry) and `/` from tests/e2e/pages on a free loopback port.
 * @returns {Promise<{url: string, close: () => Promise<void>}>}
 */
export function serveJsPages(pkg = "pkg") {
  return serveStatic({ "/pkg/": join(root, "client-wasm", pkg), "/": join(root, "tests", "e2e", "pages") });
}

/**
 * Opens the test page in a new page of `browser` and waits until the package is loaded.
 * @returns {Promise<{page: import("playwright-core").Page, errors: string[]}>}
 */
export async function openJsPage(browser, site) {
  const page = await browser.newPage();
  const errors = collectErrors(page);
  await page.goto(`${site.url}/index.html`);
  await page.waitForSelector("body[data-ready]", { state: "attached", timeout: 20_000 });
  return { page, errors };
}

/** The `ws:` URL of `path` on a server from `startServer`. */
export function wsUrl(server, path) {
  return `${server.url.replace(/^http/, "ws").replace(/\/$/, "")}${path}`;
}

/**
 * The fixture of a js_*.test.mjs file: before its tests, a server-dev with `serverArgs`, the
 * page server (for the package folder `pkg`) and Chromium; after them, all three stopped.
 * Fields are set once `before` ran.
 * @returns {{server: any, site: any, browser: import("playwright-core").Browser}}
 */
export function jsSuite(serverArgs, pkg = "pkg") {
  const suite = { server: undefined, site: undefined, browser: undefined };
  before(async () => {
    suite.server = await startServer(serverArgs);
    suite.site = await serveJsPages(pkg);
    suite.browser = await launchChromium();
  });
  after(async () => {
    await suite.browser?.close();
    await suite.server?.stop();
    await suite.site?.close();
  });
  return suite;
}

/**
 * A test page whose socket (`window.m`: `{ws, log, rooms}`), with the default options but the
 * subprotocol, joined `room` as `name` on the suite's server. With `held`, its URL provider
 * waits while `window.hold` is set, so the page can be kept away from the server.
 * @returns {Promise<{page: import("playwright-core").Page, errors: string[]}>}
 */
export async function joinedMember(suite, name, room, { held = false } = {}) {
  const { page, errors } = await openJsPage(suite.browser, suite.site);
  await page.evaluate(
    async ([url, room, held]) => {
      window.hold = false;
      const provider = async () => {
        while (window.hold) await new Promise((r) => setTimeout(r, 20));
        return url;
      };
      window.m = t.recorded(held ? provider : url, { protocols: "lifeline.v1" });
      m.rooms = t.roomLog(m.ws).log;
      m.ws.join(room);
      await t.until(m.rooms, (l) => l.some((e) => e.type === "joined" && e.room === room));
    },
    [wsUrl(suite.server, `/ws?name=${encodeURIComponent(name)}`), room, held],
  );
  return { page, errors };
}
