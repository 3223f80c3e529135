// LifelineSocket handed as the WebSocket implementation to real libraries from npm, in headless
// Chromium against the libraries' own servers (tests/e2e/compat/servers.mjs, Node `ws`).
// Covers:
// - graphql-ws (`webSocketImpl`): a query and a subscription; the server is killed and started
//   again on the same port, and the subscription's ticks and a new query go on;
// - y-websocket (`WebSocketPolyfill`): two documents sync through the server; the server is
//   killed and started again, and an edit made afterwards still reaches the other document.
// - the migration snippets of client-wasm/js/README.md, exactly as written there: each pair
//   differs only in its import line, and the reconnecting-websocket and partysocket code logs
//   the same against server-dev's /echo with the library and with LifelineSocket, from the
//   package and from its socket entry (`ws-lifeline/socket`).
// The page gets the libraries bundled by rolldown (tests/e2e/compat/libraries.mjs).
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { build } from "rolldown";
import { collectErrors, launchChromium, startServer, withoutNetworkNoise } from "./support/harness.mjs";
import { openJsPage } from "./support/js_page.mjs";
import { serveStatic } from "./pages/serve.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");

/** The libraries' servers as a child process on `ports` (0: any); stopped by its pid. */
async function startServers(ports = [0, 0]) {
  const child = spawn(process.execPath, [join(here, "compat", "servers.mjs"), ...ports.map(String)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the compat servers did not start within 20 s")), 20_000);
    child.once("exit", (code) => reject(new Error(`the compat servers exited early with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (l) => {
      if (l.startsWith("ready ")) {
        clearTimeout(timer);
        resolve(l);
      }
    });
  });
  const [graphql, yjs] = line.split(" ").slice(1).map(Number);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    // Killed, not asked: the connections die as they would with a crashed server.
    process.kill(child.pid, "SIGKILL");
    await exited;
  };
  return { ports: [graphql, yjs], stop };
}

const fixture = {};

before(async () => {
  fixture.bundle = await mkdtemp(join(tmpdir(), "ws-lifeline-compat-"));
  await build({
    input: join(here, "compat", "libraries.mjs"),
    platform: "browser",
    logLevel: "warn",
    output: { file: join(fixture.bundle, "libraries.js"), format: "esm" },
  });
  fixture.site = await serveStatic({
    "/pkg/": join(root, "client-wasm", "pkg"),
    "/compat/": fixture.bundle,
    "/": join(root, "tests", "e2e", "pages"),
  });
  fixture.servers = await startServers();
  fixture.browser = await launchChromium();
});

after(async () => {
  await fixture.browser?.close();
  await fixture.servers?.stop();
  await fixture.site?.close();
  if (fixture.bundle) await rm(fixture.bundle, { recursive: true, force: true });
});

/** Kills the servers and starts them again on the same ports. */
async function restartServers() {
  const { ports } = fixture.servers;
  await fixture.servers.stop();
  fixture.servers = await startServers(ports);
}

test("graphql-ws: query and subscription, and both go on after the server restarts", async () => {
  const { page, errors } = await openJsPage(fixture.browser, fixture.site);
  const url = `ws://127.0.0.1:${fixture.servers.ports[0]}/graphql`;
  const first = await page.evaluate(async (url) => {
    const { createClient } = await import("/compat/libraries.js");
    const sockets = [];
    window.client = createClient({
      url,
      webSocketImpl: t.LifelineSocket,
      retryAttempts: Infinity,
      shouldRetry: () => true,
      retryWait: () => new Promise((resolve) => setTimeout(resolve, 200)),
      on: { connected: (socket) => sockets.push(socket instanceof t.LifelineSocket) },
    });
    window.query = () =>
      new Promise((resolve, reject) => {
        let value;
        client.subscribe({ query: "{ hello }" }, { next: (v) => (value = v), error: reject, complete: () => resolve(value) });
      });
    const hello = await query();
    window.ticks = [];
    client.subscribe(
      { query: "subscription { ticks }" },
      { next: (v) => ticks.push(v.data.ticks), error: (e) => ticks.push(`error ${e?.code ?? e}`), complete: () => ticks.push("complete") },
    );
    await t.until(ticks, (l) => l.length >= 3);
    return { hello, sockets };
  }, url);
  assert.deepEqual(first.hello, { data: { hello: "world" } });
  assert.ok(first.sockets.length > 0 && first.sockets.every(Boolean), "graphql-ws connected through LifelineSocket");

  await restartServers();
  const second = await page.evaluate(async () => {
    const before = ticks.length;
    // The restarted server counts from 1 again.
    await t.until(ticks, (l) => l.length > before + 3 && l.at(-1) === l.at(-2) + 1, 20_000);
    const hello = await query();
    const afterRestart = ticks.slice(before);
    client.dispose();
    return { hello, afterRestart };
  });
  assert.deepEqual(second.hello, { data: { hello: "world" } });
  assert.ok(!second.afterRestart.some((t) => typeof t !== "number"), `no error or completion: ${second.afterRestart}`);
  await page.close();
  assert.deepEqual(withoutNetworkNoise(errors), []);
});

test("y-websocket: two documents sync, and go on syncing after the server restarts", async () => {
  const { page, errors } = await openJsPage(fixture.browser, fixture.site);
  const url = `ws://127.0.0.1:${fixture.servers.ports[1]}`;
  const first = await page.evaluate(async (url) => {
    const { WebsocketProvider, Y } = await import("/compat/libraries.js");
    window.docs = [new Y.Doc(), new Y.Doc()];
    // disableBc: the two documents must meet through the server, not a BroadcastChannel.
    const options = { WebSocketPolyfill: t.LifelineSocket, disableBc: true, maxBackoffTime: 500 };
    window.providers = docs.map((doc) => new WebsocketProvider(url, "dropin-room", doc, options));
    window.text = (n) => docs[n].getText("t").toString();
    docs[0].getText("t").insert(0, "hello");
    await t.until([], () => text(1) === "hello");
    return { lifeline: providers.map((p) => p.ws instanceof t.LifelineSocket), text: text(1) };
  }, url);
  assert.deepEqual(first, { lifeline: [true, true], text: "hello" });

  await restartServers();
  const second = await page.evaluate(async () => {
    await t.until([], () => providers.every((p) => p.synced && p.wsconnected), 20_000);
    docs[0].getText("t").insert(5, " again");
    docs[1].getText("t").insert(0, ">");
    await t.until([], () => text(0) === text(1) && text(1) === ">hello again", 20_000);
    const texts = [text(0), text(1)];
    for (const p of providers) p.destroy();
    return texts;
  });
  assert.deepEqual(second, [">hello again", ">hello again"]);
  await page.close();
  assert.deepEqual(withoutNetworkNoise(errors), []);
});

/** The README's migration snippets: `{ [library]: { before, after } }`. */
async function migrationSnippets() {
  const readme = await readFile(join(root, "client-wasm", "js", "README.md"), "utf8");
  const snippets = {};
  for (const [, library, when, code] of readme.matchAll(/<!-- migration: (\S+) (before|after) -->\n```js\n([\s\S]*?)```/g)) {
    (snippets[library] ??= {})[when] = code;
  }
  return snippets;
}

test("the README's migration snippets run unchanged apart from the import lines", async () => {
  const snippets = await migrationSnippets();
  assert.deepEqual(Object.keys(snippets).sort(), ["partysocket", "reconnecting-websocket"]);
  const body = (code) => code.split("\n").filter((line) => !line.startsWith("import "));
  for (const [library, { before, after }] of Object.entries(snippets)) {
    assert.deepEqual(body(after), body(before), `${library}: only the import lines differ`);
  }
  const server = await startServer(["--test-endpoints"]);
  const site = fixture.site.url;
  // The packages the snippets import, by name (an import map), from the bundle.
  await writeFile(join(fixture.bundle, "partysocket.js"), 'export { PartySocket as WebSocket } from "./libraries.js";\n');
  await writeFile(
    join(fixture.bundle, "reconnecting-websocket.js"),
    'export { ReconnectingWebSocket as default } from "./libraries.js";\n',
  );
  const imports = (entry) => ({
    "ws-lifeline": `${site}/pkg/${entry}`,
    partysocket: `${site}/compat/partysocket.js`,
    "reconnecting-websocket": `${site}/compat/reconnecting-websocket.js`,
  });
  const logs = {};
  try {
    for (const [library, { before, after }] of Object.entries(snippets)) {
      const runs = [
        ["before", before, "index.js"],
        ["after", after, "index.js"],
        ["socket", after, "socket/index.js"],
      ];
      for (const [when, code, entry] of runs) {
        const name = `migration-${library}-${when}`;
        await writeFile(join(fixture.bundle, `${name}.js`), code);
        // The snippets' "/echo" resolves against <base>: server-dev.
        await writeFile(
          join(fixture.bundle, `${name}.html`),
          `<!doctype html><html><head><base href="${server.url.replace(/\/?$/, "/")}">` +
            `<script type="importmap">${JSON.stringify({ imports: imports(entry) })}</script></head>` +
            `<body><script type="module" src="${site}/compat/${name}.js"></script></body></html>`,
        );
        const page = await fixture.browser.newPage();
        const errors = collectErrors(page);
        const lines = [];
        page.on("console", (message) => message.type() === "log" && lines.push(message.text()));
        await page.goto(`${site}/compat/${name}.html`);
        const expected = library === "partysocket" ? 2 : 1;
        const started = Date.now();
        while (lines.length < expected && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, 200));
        (logs[library] ??= {})[when] = lines;
        await page.close();
        assert.deepEqual(errors, [], `${name}: no page errors`);
      }
    }
  } finally {
    await server.stop();
  }
  assert.deepEqual(logs["reconnecting-websocket"].before, ["echo: hello true"]);
  assert.deepEqual(logs["partysocket"].before, ["echo: 1,2,3 0", "closed: 1000 done"]);
  for (const [library, { before, after, socket }] of Object.entries(logs)) {
    assert.deepEqual(after, before, `${library}: the same with LifelineSocket`);
    assert.deepEqual(socket, before, `${library}: the same with ws-lifeline/socket`);
  }
});
