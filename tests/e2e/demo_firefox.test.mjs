// demo_shared.test.mjs in headless Firefox ESR (puppeteer-core over WebDriver BiDi,
// support/firefox.mjs), with server-dev's, the demo's and Firefox's defaults: ann opens the demo
// in three tabs of one browser context, bob in another context. server-dev counts one
// connection for ann's three tabs (Firefox's SharedWorker); every message reaches each tab
// showing its room once; a tab that closes leaves the others connected, on the same socket;
// closing ann's last tab closes her connection. Background tabs hold their timers to one a
// second, so the waits here poll from Node (waitInPage), not with the page's timers.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { collectErrors, demoDist, startServer } from "./support/harness.mjs";
import { launchFirefox, waitInPage } from "./support/firefox.mjs";
import { until } from "./support/shared_tools.mjs";

const LINE_TEXT = '[data-testid="messages"] .line .text';

let server;
let firefox;

before(async () => {
  server = await startServer(["--static-dir", demoDist()]);
  firefox = await launchFirefox();
});

after(async () => {
  await firefox?.stop();
  await server?.stop();
});

const health = async () => (await fetch(new URL("/api/health", server.url))).json();

/** The form field whose label reads `label` (as Playwright's `getByLabel`), once it is there. */
async function field(page, label) {
  await waitInPage(
    page,
    (label) => [...document.querySelectorAll("label")].some((l) => l.textContent.trim() === label && l.control),
    label,
    40_000,
  );
  return page.evaluateHandle(
    (label) => [...document.querySelectorAll("label")].find((l) => l.textContent.trim() === label).control,
    label,
  );
}

/** Types `text` into `input` and presses Enter. */
async function enter(input, text) {
  await input.type(text);
  await input.press("Enter");
}

/** Waits until `page`'s connection bar shows `state`. */
const expectState = (page, state, timeout = 20_000) =>
  waitInPage(
    page,
    (state) => !!document.querySelector(`[data-testid="connection"][data-state="${state}"]`),
    state,
    timeout,
  );

/** A new tab of `context` on the demo, logged in as `name` (the demo keeps the name per tab)
 * and in #lobby: `{ name, context, page, errors }`. */
async function openTab(context, name) {
  const page = await context.newPage();
  const errors = collectErrors(page);
  await page.goto(server.url);
  await enter(await field(page, "Display name"), name);
  await expectState(page, "connected", 40_000);
  await enter(await field(page, "Join or create a room"), "lobby");
  await waitInPage(page, () => !!document.querySelector('.room.selected [data-room="lobby"]'));
  return { name, context, page, errors };
}

/** Sends `text` from `user`'s composer. */
async function say(user, text) {
  const composer = await user.page.waitForSelector("#composer-input");
  await enter(composer, text);
}

/** The texts of the selected room, in display order. */
const texts = (user) => user.page.$$eval(LINE_TEXT, (lines) => lines.map((line) => line.textContent));

/** Waits until a line of the selected room contains `text`. */
const waitForText = (user, text, timeout = 20_000) =>
  waitInPage(
    user.page,
    ([selector, text]) => [...document.querySelectorAll(selector)].some((line) => line.textContent.includes(text)),
    [LINE_TEXT, text],
    timeout,
  );

const count = (list, text) => list.filter((t) => t === text).length;

test("three demo tabs in Firefox share one connection; each shows every message once", async () => {
  const annContext = await firefox.browser.createBrowserContext();
  const bobContext = await firefox.browser.createBrowserContext();
  const ann = await openTab(annContext, "ann");
  const ann2 = await openTab(annContext, "ann");
  const ann3 = await openTab(annContext, "ann");
  const bob = await openTab(bobContext, "bob");
  const tabs = [ann, ann2, ann3];

  const before = await until("ann's three tabs and bob: two connections", async () => {
    const h = await health();
    return h.connections === 2 && h;
  });

  await say(bob, "hello, all of ann's tabs");
  for (const tab of tabs) await waitForText(tab, "hello, all of ann's tabs");
  await say(ann2, "typed in ann's second tab");
  await waitForText(bob, "typed in ann's second tab");
  for (const tab of tabs) await waitForText(tab, "typed in ann's second tab");
  for (const user of [...tabs, bob]) {
    const shown = await texts(user);
    assert.equal(count(shown, "hello, all of ann's tabs"), 1, `once in ${shown}`);
    assert.equal(count(shown, "typed in ann's second tab"), 1, `once in ${shown}`);
  }

  // The first tab (which started the worker) goes: the others stay connected and keep talking.
  await ann.page.close();
  await say(ann3, "after the first tab closed");
  await waitForText(bob, "after the first tab closed");
  await waitForText(ann2, "after the first tab closed");
  const now = await health();
  assert.equal(now.connections, 2);
  // The SharedWorker kept ann's socket; a leader tab's socket (no SharedWorker) would reopen.
  assert.equal(now.connections_opened, before.connections_opened, "no new connection was opened");
  await expectState(ann2.page, "connected");

  // ann's last tabs go: her connection closes with them.
  await ann2.page.close();
  await ann3.page.close();
  await until("only bob's connection", async () => (await health()).connections === 1);

  for (const user of [...tabs, bob]) {
    assert.deepEqual(user.errors, [], `console errors in ${user.name}'s tab`);
  }
  await annContext.close();
  await bobContext.close();
});
