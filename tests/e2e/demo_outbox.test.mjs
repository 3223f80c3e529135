// The demo's persistent outbox across a reload, with server-dev's and the demo's defaults.
// Two users in #lobby; server-dev is stopped; alice types 3 messages, each shown as queued;
// alice's page reloads while the server is still down (the page's files come from a stand-in
// on the same port): the 3 show as queued again, restored from IndexedDB; server-dev comes
// back on the same port:
// - bob receives each of the 3 exactly once, in the order typed;
// - alice's 3 lines turn "delivered" (the client's `OutboxDelivered` named them), each once;
// - no console errors on either page beyond the refused requests of the downtime.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, resolve, sep } from "node:path";
import {
  demoDist,
  launchChromium,
  startServer,
  withoutNetworkNoise,
} from "./support/harness.mjs";
import {
  expectState,
  loginToLobby,
  retryNow,
  say,
  texts,
  waitForOwnStatus,
  waitForText,
} from "./support/demo_page.mjs";

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

const login = (name) => loginToLobby(browser, server, name);

/**
 * Serves the demo's built files on server-dev's port while server-dev is down: the demo has no
 * offline app shell (service worker) of its own, and a reload needs the page from somewhere.
 * A real loopback HTTP server, so the page's origin (and its IndexedDB) and Chromium's local
 * network rules stay those of server-dev; `/api` answers 503 and `/ws` is refused, as a backend
 * that is down would. Returns its stop.
 */
async function serveDemoFilesWhileDown(port) {
  const dist = resolve(demoDist());
  const http = createServer(async (request, response) => {
    const { pathname } = new URL(request.url, "http://127.0.0.1");
    const file = resolve(join(dist, pathname === "/" ? "index.html" : decodeURIComponent(pathname)));
    if (pathname.startsWith("/api/") || !file.startsWith(dist + sep)) {
      response.writeHead(503).end();
      return;
    }
    try {
      const body = await readFile(file);
      response.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((ready, fail) => http.once("error", fail).listen(port, "127.0.0.1", ready));
  return () =>
    new Promise((closed) => {
      http.closeAllConnections();
      http.close(closed);
    });
}

const TYPES = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".wasm": "application/wasm",
  ".css": "text/css",
};

/** The number of publishes the page's outbox store holds in IndexedDB (as the library wrote it). */
async function storedPublishes(page) {
  return page.evaluate(
    () =>
      new Promise((resolvePromise, reject) => {
        const open = indexedDB.open("ws-lifeline-outbox");
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const db = open.result;
          if (!db.objectStoreNames.contains("snapshots")) {
            db.close();
            return resolvePromise(0);
          }
          const request = db.transaction("snapshots").objectStore("snapshots").getAll();
          request.onerror = () => reject(request.error);
          request.onsuccess = () => {
            db.close();
            const counts = request.result.map((text) => JSON.parse(text).publishes.length);
            resolvePromise(Math.max(0, ...counts));
          };
        };
      }),
  );
}

async function ownStatuses(user) {
  return user.page.locator(".line.own [data-status]").evaluateAll((nodes) => nodes.map((n) => n.dataset.status));
}

test("3 messages typed while the server is down survive a reload and arrive once, marked delivered", async () => {
  const alice = await login("alice");
  const bob = await login("bob");
  const port = server.port;
  await server.stop();
  await Promise.all([expectState(alice.page, "reconnecting", 40_000), expectState(bob.page, "reconnecting", 40_000)]);

  const typed = ["first, typed offline", "second, typed offline", "third, typed offline"];
  for (const text of typed) {
    await say(alice, text);
    await waitForOwnStatus(alice, text, "queued");
  }
  // The store is written a moment after each publish; reload once it holds all three.
  const deadline = Date.now() + 10_000;
  while ((await storedPublishes(alice.page)) < typed.length) {
    assert.ok(Date.now() < deadline, "the outbox store did not reach 3 publishes within 10 s");
    await new Promise((r) => setTimeout(r, 100));
  }

  const stopServingFiles = await serveDemoFilesWhileDown(port);
  try {
    await alice.page.reload();
    await alice.page.waitForSelector('.room.selected [data-room="lobby"]', { timeout: 20_000 });
    for (const text of typed) await waitForOwnStatus(alice, text, "queued");
    assert.deepEqual(await texts(alice), typed, "after the reload: the 3 restored, in order");
    assert.deepEqual(await ownStatuses(alice), ["queued", "queued", "queued"]);
  } finally {
    await stopServingFiles();
  }

  server = await startServer(["--static-dir", demoDist()], { port });
  await retryNow(alice);
  await retryNow(bob);
  await Promise.all([expectState(alice.page, "connected", 40_000), expectState(bob.page, "connected", 40_000)]);
  for (const text of typed) {
    await waitForOwnStatus(alice, text, "delivered", 30_000);
    await waitForText(bob, text, 30_000);
  }

  const bobTexts = await texts(bob);
  const aliceTexts = await texts(alice);
  for (const text of typed) {
    assert.equal(bobTexts.filter((t) => t === text).length, 1, `bob got "${text}" once`);
    assert.equal(aliceTexts.filter((t) => t === text).length, 1, `alice shows "${text}" once`);
  }
  assert.deepEqual(
    bobTexts.filter((t) => typed.includes(t)),
    typed,
    "bob got them in the order alice typed them",
  );
  assert.deepEqual(await ownStatuses(alice), ["delivered", "delivered", "delivered"]);
  for (const user of [alice, bob]) {
    assert.deepEqual(withoutNetworkNoise(user.errors), [], `console errors on ${user.name}'s page`);
    await user.context.close();
  }
});
