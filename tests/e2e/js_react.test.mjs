// `ws-lifeline/react` (useLifelineSocket, useRoom, useLifelineEvent) under React's StrictMode, in headless
// Chromium, against a real server-dev (--no-auth). The page is the examples/react app in a small
// harness (tests/e2e/pages/react), bundled here by Vite with react and react-dom's development
// builds (StrictMode only double-mounts there) and the built package (client-wasm/pkg).
// Covers:
// - StrictMode's double mount (the subtree's mount effects run twice) opens one connection:
//   the server's count of accepted WebSockets, the page's `new WebSocket` calls and the
//   hooks' `new LifelineSocket` calls each grow by one, while the wasm loads (first mount) and
//   once it is loaded (a later mount);
// - the app joins a room (its members show) with one `join` although the room's component
//   mounts twice, its publish is acknowledged (the ack's offset shows) and it receives room
//   messages: its own and another client's;
// - re-renders, each with a new options object, open no connection; a new url opens exactly
//   one and closes the old;
// - a connection the server drops (`/test/cut`): the app renders `reconnecting` and the retry
//   (a `reconnecting` event through `useLifelineEvent`), then `open`, on the same socket, which
//   rejoins the room, and publishes in it again;
// - another room (a fresh mount of the app's room component, doubled by StrictMode) on the
//   open socket: one `leave` of the old room, one `join` of the new;
// - a url the socket refuses shows as the view's `error` (ERR_INVALID_URL) with no socket;
// - unmount disposes the socket: `liveResources()` all zero, and the server counts the
//   connection closed; nothing is logged to the console (React's warnings included).
// The page counts too, because the server's count alone could miss a second socket: Chromium
// may drop a WebSocket closed in the task that opened it before its handshake is sent, and a
// LifelineSocket disposed in the task that created it opens no WebSocket at all.
import { after, afterEach, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";
import { collectErrors, withoutNetworkNoise } from "./support/harness.mjs";
import { jsSuite, joinedMember, wsUrl } from "./support/js_page.mjs";
import { serveStatic } from "./pages/serve.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const pkg = join(root, "client-wasm", "pkg");
const pages = join(root, "tests", "e2e", "pages", "react");

const suite = jsSuite(["--no-auth", "--test-endpoints"]);
let out;
let site;

before(async () => {
  out = mkdtempSync(join(tmpdir(), "ws-lifeline-react-"));
  await build({
    root: pages,
    configFile: false,
    logLevel: "warn",
    mode: "development",
    define: { "process.env.NODE_ENV": JSON.stringify("development") },
    resolve: {
      // The built package, as an app that installed it resolves it.
      alias: [
        { find: /^ws-lifeline\/react$/, replacement: join(pkg, "react.js") },
        { find: /^ws-lifeline$/, replacement: join(pkg, "index.js") },
      ],
    },
    plugins: [
      {
        name: "count-lifeline-sockets",
        enforce: "pre",
        resolveId: (source, importer) =>
          source === "./index.js" && importer === join(pkg, "react.js") ? join(pages, "counting_socket.js") : null,
      },
    ],
    build: { outDir: out, emptyOutDir: true, target: "es2022", minify: false },
  });
  site = await serveStatic({ "/": out });
});

/** Pages a test opened, closed after it even when it failed, so the next one starts clean. */
const openPages = [];
afterEach(async () => {
  for (const page of openPages.splice(0)) await page.close();
});

after(async () => {
  await site?.close();
  if (out) rmSync(out, { recursive: true, force: true });
});

/** server-dev's `/api/health`: `connections` live, `connections_opened` since start. */
async function health() {
  const res = await fetch(new URL("/api/health", suite.server.url));
  return res.json();
}

/** `health()` once the previous test's connections have closed. */
const settled = () => until("no live connection", async () => {
  const h = await health();
  return h.connections === 0 && h;
});

/** Polls `check` (async) until it returns a truthy value, or fails after `ms`. */
async function until(what, check, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Opens the app as `name` in `room` and waits until it has joined. */
async function openApp(name, room) {
  const page = await suite.browser.newPage();
  openPages.push(page);
  const errors = collectErrors(page);
  const ws = wsUrl(suite.server, `/ws?name=${name}`);
  await page.goto(`${site.url}/index.html?ws=${encodeURIComponent(ws)}&room=${room}`);
  await page.waitForSelector("section[data-joined=true]", { state: "attached", timeout: 20_000 });
  return { page, errors };
}

/** The app's mount effects run, and the LifelineSockets and WebSockets the page created. */
const pageCounts = (page) =>
  page.evaluate(() => ({
    effectRuns: probe.effectRuns,
    sockets: window.lifelineSocketsCreated,
    created: window.webSocketsCreated,
  }));

/** The protocol's join and leave messages the page sent. */
const sent = (page) => page.evaluate(() => window.sent);

test("StrictMode's double mount opens one connection; join, publish, ack and receive", async () => {
  const before = await settled();
  const { page, errors } = await openApp("rita", "react-a");
  assert.deepEqual(await pageCounts(page), { effectRuns: 2, sockets: 1, created: 1 }, "mounted twice, one socket");
  await page.waitForSelector("#members:text-is('rita')");
  assert.deepEqual(await sent(page), { join: 1, leave: 0 }, "the room, mounted twice, joined once");
  const joined = await health();
  assert.equal(joined.connections_opened - before.connections_opened, 1, "the server accepted one connection");
  assert.equal(joined.connections - before.connections, 1);

  await page.fill("#text", "hello from react");
  await page.click("button");
  await page.waitForSelector("section[data-acked='#1']", { state: "attached" });
  await page.waitForSelector("#messages li:text-is('rita: hello from react')");

  const bob = await joinedMember(suite, "bob", "react-a");
  openPages.push(bob.page);
  await page.waitForSelector("#members:text-is('bob, rita')");
  await bob.page.evaluate(() => m.ws.publish("react-a", { text: "hi rita" }));
  await page.waitForSelector("#messages li:nth-child(2):text-is('bob: hi rita')");
  await bob.page.evaluate(() => m.ws.dispose());
  await bob.page.close();

  assert.deepEqual(await pageCounts(page), { effectRuns: 2, sockets: 1, created: 1 }, "still the first socket");
  await page.close();
  assert.deepEqual(errors, []);
});

test("re-renders with new options never reconnect; a new url reconnects once", async () => {
  await settled();
  const { page, errors } = await openApp("sam", "react-b");
  const opened = (await health()).connections_opened;
  // Each render passes `useLifelineSocket` a new options object (an inline literal in App.jsx).
  for (let i = 0; i < 20; i++) {
    await page.evaluate(() => harness.rerender());
    await page.fill("#text", `typing ${i}`);
  }
  await page.waitForTimeout(300);
  assert.equal((await health()).connections_opened, opened, "no connection opened by re-renders");
  assert.deepEqual(await pageCounts(page), { effectRuns: 2, sockets: 1, created: 1 });

  const live = (await health()).connections;
  await page.evaluate((url) => harness.setUrl(url), wsUrl(suite.server, "/ws?name=sam2"));
  await page.waitForSelector("#members:text-is('sam2')");
  assert.equal((await health()).connections_opened, opened + 1, "a new url opens one connection");
  await until("the old connection to close", async () => (await health()).connections === live);
  assert.deepEqual(await pageCounts(page), { effectRuns: 2, sockets: 2, created: 2 });
  await page.close();
  assert.deepEqual(errors, []);
});

test("unmount disposes the socket; a later mount, with the wasm loaded, opens one", async () => {
  const before = await settled();
  const { page, errors } = await openApp("uma", "react-c");
  assert.equal((await health()).connections, before.connections + 1);

  await page.evaluate(() => harness.setMounted(false));
  await page.waitForSelector("#unmounted", { state: "attached" });
  await until("the server to see the close", async () => (await health()).connections === before.connections);
  const live = await until("liveResources() to be all zero", () =>
    page.evaluate(() => {
      const r = probe.liveResources();
      return Object.values(r).every((n) => n === 0) && r;
    }),
  );
  assert.deepEqual(live, { sockets: 0, listeners: 0, timers: 0, predicates: 0 });

  await page.evaluate(() => harness.setMounted(true));
  await page.waitForSelector("section[data-joined=true]", { state: "attached" });
  await page.waitForSelector("#members:text-is('uma')");
  assert.deepEqual(await pageCounts(page), { effectRuns: 4, sockets: 2, created: 2 }, "mounted twice again, one socket");
  assert.equal((await sent(page)).join, 2, "one join per mount");
  assert.equal((await health()).connections_opened, before.connections_opened + 2);
  await page.close();
  assert.deepEqual(errors, []);
});

test("a bad url is reported as the view's error and opens nothing; a good one connects", async () => {
  await settled();
  const { page, errors } = await openApp("val", "react-d");
  const opened = (await health()).connections_opened;
  await page.evaluate(() => harness.setUrl("ftp://example.com/ws"));
  await page.waitForSelector("#error:text-is(' (ERR_INVALID_URL)')");
  await page.waitForSelector("main[data-state=closed]", { state: "attached" });
  assert.equal(await page.locator("section").count(), 0, "no socket, no room");
  await page.evaluate((url) => harness.setUrl(url), wsUrl(suite.server, "/ws?name=val"));
  await page.waitForSelector("section[data-joined=true]", { state: "attached" });
  assert.equal(await page.locator("#error").count(), 0);
  assert.equal((await health()).connections_opened, opened + 1);
  assert.deepEqual(await pageCounts(page), { effectRuns: 2, sockets: 2, created: 2 });
  await page.close();
  assert.deepEqual(errors, []);
});

test("a connection the server drops: the app renders the reconnect and stays in its room", async () => {
  await settled();
  const { page, errors } = await openApp("wes", "react-e");
  await page.click("button");
  await page.waitForSelector("section[data-acked='#1']", { state: "attached" });
  const opened = (await health()).connections_opened;

  const res = await fetch(new URL("/test/cut?name=wes&mode=drop", suite.server.url), { method: "POST" });
  assert.deepEqual(await res.json(), { cut: 1 });
  await page.waitForSelector("main[data-state=reconnecting]", { state: "attached" });
  await page.waitForSelector("main[data-state=open]", { state: "attached", timeout: 20_000 });
  assert.match(await page.textContent("#retry"), /^ \(last retry: attempt 1 after \d+ ms\)$/);
  await page.fill("#text", "after the cut");
  await page.click("button");
  await page.waitForSelector("section[data-acked='#2']", { state: "attached" });
  await page.waitForSelector("#messages li:nth-child(2):text-is('wes: after the cut')");
  assert.equal((await health()).connections_opened, opened + 1, "one reconnect");
  assert.deepEqual(await sent(page), { join: 2, leave: 0 }, "joined, then rejoined by the socket");
  assert.deepEqual(await pageCounts(page), { effectRuns: 2, sockets: 1, created: 2 }, "the same socket reconnected");
  await page.close();
  assert.deepEqual(withoutNetworkNoise(errors), []);
});

test("another room, on the open socket: the old one is left, the new one joined once", async () => {
  await settled();
  const { page, errors } = await openApp("xia", "react-f");
  assert.deepEqual(await sent(page), { join: 1, leave: 0 });
  // The app keys its room component by room: a fresh mount, which StrictMode doubles.
  await page.evaluate(() => harness.setRoom("react-g"));
  await page.waitForSelector("section[data-joined=true]", { state: "attached" });
  await page.waitForSelector("#members:text-is('xia')");
  await until("the old room's leave", async () => (await sent(page)).leave === 1);
  await page.waitForTimeout(200);
  assert.deepEqual(await sent(page), { join: 2, leave: 1 });
  const bob = await joinedMember(suite, "bob", "react-f");
  openPages.push(bob.page);
  const members = await bob.page.evaluate(async () => {
    await t.until(m.rooms, (l) => l.some((e) => e.type === "presence"));
    return m.rooms.findLast((e) => e.type === "presence").members;
  });
  assert.deepEqual(members, ["bob"], "xia left react-f");
  await bob.page.evaluate(() => m.ws.dispose());
  await bob.page.close();
  assert.equal((await pageCounts(page)).sockets, 1);
  await page.close();
  assert.deepEqual(errors, []);
});
