// What the demo suites do to a logged-in page (`user.page`): log a user in, read its
// connection state and messages, and press "Retry now".
import { collectErrors } from "./harness.mjs";

/** Waits until the connection bar shows `state`. */
export async function expectState(page, state, timeout = 20_000) {
  await page.waitForSelector(`[data-testid="connection"][data-state="${state}"]`, { timeout });
}

/** Clicks "Retry now" if the page is waiting for a retry (it may be connecting already). */
export async function retryNow(user) {
  await user.page
    .getByRole("button", { name: "Retry now" })
    .click({ timeout: 5_000 })
    .catch(() => {});
}

/** Types `text` into the composer and sends it. */
export async function say(user, text) {
  const composer = user.page.locator("#composer-input");
  await composer.fill(text);
  await composer.press("Enter");
}

/** The texts of the selected room, in display order. */
export async function texts(user) {
  return user.page.locator('[data-testid="messages"] .line .text').allTextContents();
}

export async function waitForText(user, text, timeout = 20_000) {
  await user.page
    .locator('[data-testid="messages"] .line .text', { hasText: text })
    .first()
    .waitFor({ timeout });
}

/** The delivery status of the user's own last line with `text`. */
export async function ownStatus(user, text) {
  const line = user.page.locator(".line.own", { hasText: text }).last();
  return line.locator("[data-status]").getAttribute("data-status");
}

export async function waitForOwnStatus(user, text, status, timeout = 20_000) {
  await user.page
    .locator(".line.own", { hasText: text })
    .locator(`[data-status="${status}"]`)
    .waitFor({ timeout });
}

/**
 * A page on the demo served by `server`, logged in as `name` and in `#lobby`: in a new browser
 * context, or in `context` (another tab of that browser). Returns the user the other helpers
 * take: `{ name, context, page, errors }`.
 */
export async function loginToLobby(browser, server, name, context) {
  context ??= await browser.newContext();
  const page = await context.newPage();
  const errors = collectErrors(page);
  await page.goto(server.url);
  await page.getByLabel("Display name").fill(name);
  await page.getByLabel("Display name").press("Enter");
  await expectState(page, "connected", 40_000);
  const field = page.getByLabel("Join or create a room");
  await field.fill("lobby");
  await field.press("Enter");
  await page.waitForSelector('.room.selected [data-room="lobby"]');
  return { name, context, page, errors };
}
