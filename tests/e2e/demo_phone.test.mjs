// The chat demo on a phone-width screen, driven by the keyboard where a user would.
// Covers:
// - login with the autofocused name field and Enter;
// - the room drawer: the menu button opens it (aria-expanded), Escape and the backdrop close it;
// - joining a room from the drawer closes it and shows the room;
// - the composer: Shift+Enter starts a new line, Enter sends; the message is delivered;
// - the layout does not scroll sideways; no console errors;
// - a phone screenshot for the README (with DEMO_SCREENSHOTS=docs).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { collectErrors, demoDist, launchChromium, startServer } from "./support/harness.mjs";

const SHOTS = process.env.DEMO_SCREENSHOTS ?? "tests/e2e/artifacts";

let server;
let browser;

before(async () => {
  server = await startServer(["--static-dir", demoDist()]);
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("phone width: drawer, keyboard and composer", async () => {
  const context = await browser.newContext({
    viewport: { width: 390, height: 760 },
    isMobile: true,
    hasTouch: true,
    colorScheme: "light",
  });
  const page = await context.newPage();
  const errors = collectErrors(page);
  await page.goto(server.url);
  await page.waitForSelector("#login-name:focus");
  await page.keyboard.type("pat");
  await page.keyboard.press("Enter");
  await page.waitForSelector('[data-testid="connection"][data-state="connected"]');

  const menu = page.getByRole("button", { name: "Rooms" });
  const sidebar = page.locator("#sidebar");
  assert.equal(await sidebar.isVisible(), false, "the drawer starts closed on a phone");
  await menu.click();
  assert.equal(await menu.getAttribute("aria-expanded"), "true");
  await sidebar.waitFor({ state: "visible" });
  await page.keyboard.press("Escape");
  await sidebar.waitFor({ state: "hidden" });
  await menu.click();
  await page.locator(".backdrop").click({ position: { x: 370, y: 400 } });
  await sidebar.waitFor({ state: "hidden" });

  await menu.click();
  const field = page.getByLabel("Join or create a room");
  await field.fill("pocket");
  await field.press("Enter");
  await sidebar.waitFor({ state: "hidden" });
  await page.waitForSelector('.room-header h2:has-text("#pocket")');

  const composer = page.locator("#composer-input");
  await composer.click();
  await page.keyboard.type("two lines:");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("fits on a phone");
  await page.keyboard.press("Enter");
  const line = page.locator(".line.own", { hasText: "fits on a phone" });
  await line.locator('[data-status="acked"]').waitFor({ timeout: 20_000 });
  assert.equal(await line.locator(".text").innerText(), "two lines:\nfits on a phone");
  assert.equal(await composer.inputValue(), "", "Enter clears the composer");

  const sideways = await page.evaluate(
    () => document.documentElement.scrollWidth > document.documentElement.clientWidth,
  );
  assert.equal(sideways, false, "the page scrolls sideways at phone width");
  await page.screenshot({ path: `${SHOTS}/demo-phone.png` });
  assert.deepEqual(errors, []);
  await context.close();
});
