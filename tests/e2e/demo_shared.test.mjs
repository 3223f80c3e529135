// The demo in shared mode, with server-dev's and the demo's defaults: ann opens the demo in
// three tabs of one browser (one context), bob in another browser. server-dev counts one
// connection for ann's three tabs; every message reaches each tab showing its room once; a
// tab that closes leaves the others connected; closing ann's last tab closes her connection.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { demoDist, launchChromium, startServer } from "./support/harness.mjs";
import { expectState, loginToLobby, say, texts, waitForText } from "./support/demo_page.mjs";
import { until } from "./support/shared_tools.mjs";

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

const health = async () => (await fetch(new URL("/api/health", server.url))).json();

const count = (list, text) => list.filter((t) => t === text).length;

test("three demo tabs share one connection; each shows every message once", async () => {
  const ann = await loginToLobby(browser, server, "ann");
  // More tabs of ann's browser, each logged in itself (the demo keeps the name per tab).
  const ann2 = await loginToLobby(browser, server, "ann", ann.context);
  const ann3 = await loginToLobby(browser, server, "ann", ann.context);
  const bob = await loginToLobby(browser, server, "bob");
  const tabs = [ann, ann2, ann3];

  await until("ann's three tabs and bob: two connections", async () => (await health()).connections === 2);

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

  // The first tab (which started the worker) goes: the others stay connected, on the same
  // socket (a leader-tab fallback would open a new one here), and keep talking.
  const opened = (await health()).connections_opened;
  await ann.page.close();
  await say(ann3, "after the first tab closed");
  await waitForText(bob, "after the first tab closed");
  await waitForText(ann2, "after the first tab closed");
  const now = await health();
  assert.equal(now.connections, 2);
  assert.equal(now.connections_opened, opened, "no new connection after the first tab closed");
  await expectState(ann2.page, "connected");

  // ann's last tabs go: her connection closes with them.
  await ann2.page.close();
  await ann3.page.close();
  await until("only bob's connection", async () => (await health()).connections === 1);

  for (const user of [...tabs, bob]) {
    assert.deepEqual(user.errors, [], `console errors in ${user.name}'s tab`);
  }
  await ann.context.close();
  await bob.context.close();
});
