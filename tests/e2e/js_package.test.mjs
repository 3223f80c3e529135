// The npm package as a JavaScript developer gets it.
// Covers: `npm pack` ships exactly the runtime files, the hand-written types, the Node entry,
// the socket entry (`socket/`), the React entry, the shared entry (its worker and hub), the
// README, the changelog and both licences, with a package.json that has an ESM entry, `types`,
// `files`, `./socket`, `./react` and `./shared` in `exports` (a `node` condition where Node
// loads differently), `engines`, react as an optional peer, `sideEffects` only for the Node
// entries' wasm loading, `homepage`, `bugs` and no
// invalid `browser` field; the tarball installs into a fresh folder
// with no network; TypeScript resolves its types there (the React entry's too) through
// `exports`; Vite builds the examples/vite app from it; the built app and a plain
// `<script type="module">` page (no bundler) load the wasm and echo through server-dev; both
// entries construct right after import (no `init()`), in a page and in a module worker, and so
// does the persist entry (`persist/`, in `exports` as `./persist`).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SourceMap } from "node:module";
import { collectErrors, launchChromium, startServer } from "./support/harness.mjs";
import { serveStatic } from "./pages/serve.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const pkg = join(root, "client-wasm", "pkg");
const bin = (name) => join(root, "node_modules", ".bin", name);

let work;
let server;
let browser;
const statics = [];

before(async () => {
  if (!existsSync(join(pkg, "package.json"))) {
    throw new Error("client-wasm/pkg is missing: run `cargo xtask test` (it builds the npm package)");
  }
  work = mkdtempSync(join(tmpdir(), "ws-lifeline-pack-"));
  server = await startServer(["--test-endpoints"]);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  for (const s of statics) await s.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

test("npm pack ships the runtime, the types and a complete package.json", () => {
  const [info] = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", work, pkg], root));
  const files = info.files.map((f) => f.path).sort();
  assert.deepEqual(files, [
    "CHANGELOG.md",
    "LICENSE-APACHE",
    "LICENSE-MIT",
    "README.md",
    "index.d.ts",
    "index.js",
    "index.js.map",
    "node-wasm.js",
    "node.js",
    "package.json",
    "persist/index.d.ts",
    "persist/index.js",
    "persist/index.js.map",
    "persist/node-wasm.js",
    "persist/node.js",
    "persist/ws_lifeline.js",
    "persist/ws_lifeline_bg.wasm",
    "protocol.d.ts",
    "react-node.js",
    "react.d.ts",
    "react.js",
    "shared-hub.js",
    "shared-worker.js",
    "shared.d.ts",
    "shared.js",
    "socket/index.d.ts",
    "socket/index.js",
    "socket/index.js.map",
    "socket/node-wasm.js",
    "socket/node.js",
    "socket/ws_lifeline.js",
    "socket/ws_lifeline_bg.wasm",
    "ws_lifeline.js",
    "ws_lifeline_bg.wasm",
  ]);
  const manifest = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8"));
  assert.equal(manifest.name, "ws-lifeline");
  assert.equal(manifest.type, "module");
  // Only the Node entries' wasm loading is a side effect a bundler must keep.
  assert.deepEqual(manifest.sideEffects, ["./node-wasm.js", "./socket/node-wasm.js", "./persist/node-wasm.js"]);
  assert.equal(manifest.types, "./index.d.ts");
  assert.deepEqual(manifest.exports["."], { types: "./index.d.ts", node: "./node.js", default: "./index.js" });
  assert.deepEqual(manifest.exports["./socket"], {
    types: "./socket/index.d.ts",
    node: "./socket/node.js",
    default: "./socket/index.js",
  });
  assert.deepEqual(manifest.exports["./persist"], {
    types: "./persist/index.d.ts",
    node: "./persist/node.js",
    default: "./persist/index.js",
  });
  assert.match(manifest.engines.node, /^>=\d+/);
  assert.deepEqual(manifest.exports["./react"], {
    types: "./react.d.ts",
    node: "./react-node.js",
    default: "./react.js",
  });
  assert.deepEqual(manifest.exports["./shared"], { types: "./shared.d.ts", default: "./shared.js" });
  assert.deepEqual(manifest.peerDependencies, { react: ">=18" });
  assert.deepEqual(manifest.peerDependenciesMeta, { react: { optional: true } });
  assert.match(manifest.version, /^\d+\.\d+\.\d+/);
  assert.ok(manifest.description.length > 20);
  assert.equal(manifest.license, "MIT OR Apache-2.0");
  assert.match(manifest.homepage, /^https:\/\//);
  assert.match(manifest.bugs, /^https:\/\//);
  // A `browser` field, if any, must be a path or a map of paths (not `true`).
  assert.ok(manifest.browser === undefined || typeof manifest.browser !== "boolean");
  assert.ok(manifest.keywords.includes("websocket"));
  assert.ok(existsSync(join(work, info.filename)));
});

test("index.js ships minified with a source map back to its readable source", () => {
  const code = readFileSync(join(pkg, "index.js"), "utf8");
  assert.ok(code.endsWith("//# sourceMappingURL=index.js.map\n"));
  const payload = JSON.parse(readFileSync(join(pkg, "index.js.map"), "utf8"));
  const source = readFileSync(join(root, "client-wasm", "js", "index.js"), "utf8");
  // index.js and the boundary's numbers it imports, generated from src/js/boundary.rs.
  assert.deepEqual([...payload.sources].sort(), ["ws-lifeline/boundary.gen.js", "ws-lifeline/index.js"]);
  const generated = readFileSync(join(root, "client-wasm", "js", "boundary.gen.js"), "utf8");
  assert.equal(payload.sourcesContent[payload.sources.indexOf("ws-lifeline/index.js")], source);
  assert.equal(payload.sourcesContent[payload.sources.indexOf("ws-lifeline/boundary.gen.js")], generated);
  // A string that survives minification maps back to the source line that holds it.
  const needle = "send takes a string";
  const before = code.slice(0, code.indexOf(needle));
  const line = before.split("\n").length - 1;
  const column = before.length - (before.lastIndexOf("\n") + 1);
  const entry = new SourceMap(payload).findEntry(line, column);
  assert.equal(entry.originalSource, "ws-lifeline/index.js");
  assert.match(source.split("\n")[entry.originalLine], new RegExp(needle));
});

test("the tarball installs into a fresh folder; tsc and vite build against it", async () => {
  const tarball = readdirTarball(work);
  const app = join(work, "app");
  cpSync(join(root, "examples", "vite"), app, {
    recursive: true,
    filter: (src) => !/node_modules|dist|package(-lock)?\.json$/.test(src.slice(join(root, "examples", "vite").length)),
  });
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "fresh-app", private: true, type: "module" }));
  run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], app);
  assert.ok(existsSync(join(app, "node_modules", "ws-lifeline", "ws_lifeline_bg.wasm")));

  // The types resolve through package.json `exports`, as in any TypeScript project.
  writeFileSync(
    join(app, "check.ts"),
    [
      'import init, { LifelineSocket, type LifelineCloseEvent, type ServerMsg } from "ws-lifeline";',
      'import { useRoom, type RoomView } from "ws-lifeline/react";',
      "await init();",
      'const ws = new LifelineSocket("ws://127.0.0.1:1/echo", { maxRetries: 1 });',
      'ws.addEventListener("close", (e: LifelineCloseEvent) => console.log(e.code));',
      'const m: ServerMsg = { type: "pong", id: 1 };',
      "console.log(m, ws.send(new Uint8Array([1])));",
      "export const room = (): RoomView => useRoom(ws, \"lobby\");",
      "",
    ].join("\n"),
  );
  run(
    bin("tsc"),
    ["--noEmit", "--strict", "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler",
      "--lib", "es2022,dom,esnext.disposable", "--types", "", "check.ts"],
    app,
  );

  run(process.execPath, [join(root, "node_modules", "vite", "bin", "vite.js"), "build", "--logLevel", "warn"], app);
  assert.ok(existsSync(join(app, "dist", "index.html")));

  const site = await serveStatic({ "/": join(app, "dist") });
  statics.push(site);
  const page = await browser.newPage();
  const errors = collectErrors(page);
  await page.goto(`${site.url}/?ws=${encodeURIComponent(`${wsBase()}/echo`)}`);
  await page.waitForSelector("body[data-state=open]", { state: "attached", timeout: 20_000 });
  await page.fill("#text", "hello from vite");
  await page.click("button");
  await page.waitForSelector('body[data-last-message="hello from vite"]', { state: "attached", timeout: 10_000 });
  await page.close();
  assert.deepEqual(errors, []);
});

test("a plain <script type=module> page loads the package with one await init()", async () => {
  const site = await serveStatic({ "/pkg/": pkg, "/": join(root, "tests", "e2e", "pages") });
  statics.push(site);
  const page = await browser.newPage();
  const errors = collectErrors(page);
  await page.goto(`${site.url}/index.html`);
  await page.waitForSelector("body[data-ready]", { state: "attached", timeout: 20_000 });
  const echoed = await page.evaluate(async (url) => {
    const { ws, log } = t.recorded(url);
    ws.send("plain page");
    await t.until(log, (l) => l.some((e) => e.type === "message"));
    ws.dispose();
    return log.find((e) => e.type === "message").data;
  }, `${wsBase()}/echo`);
  assert.equal(echoed, "plain page");
  await page.close();
  assert.deepEqual(errors, []);
});

test("no init ritual: both entries construct a socket right after import", async () => {
  // A page per entry that imports it and constructs at once, as the README's first example.
  const pages = join(work, "no-init");
  mkdirSync(pages, { recursive: true });
  for (const [name, entry] of [["package", "/pkg/index.js"], ["socket", "/pkg/socket/index.js"], ["persist", "/pkg/persist/index.js"]]) {
    writeFileSync(
      join(pages, `${name}.html`),
      `<!doctype html><body><script type="module">import { LifelineSocket } from "${entry}";\n` +
        `const ws = new LifelineSocket(${JSON.stringify(`${wsBase()}/echo`)});\n` +
        `ws.onmessage = (e) => { document.body.dataset.echo = e.data; ws.dispose(); };\n` +
        `ws.send("no ritual");</script></body>`,
    );
  }
  const site = await serveStatic({ "/pkg/": pkg, "/": pages });
  statics.push(site);
  const page = await browser.newPage();
  const errors = collectErrors(page);
  for (const name of ["package", "socket", "persist"]) {
    await page.goto(`${site.url}/${name}.html`);
    await page.waitForSelector('body[data-echo="no ritual"]', { state: "attached", timeout: 20_000 });
  }
  await page.close();
  assert.deepEqual(errors, []);
});

test("in a module worker (no window, no document) both entries connect and echo", async () => {
  const pages = join(work, "worker");
  mkdirSync(pages, { recursive: true });
  for (const [name, entry] of [["package", "/pkg/index.js"], ["socket", "/pkg/socket/index.js"], ["persist", "/pkg/persist/index.js"]]) {
    writeFileSync(
      join(pages, `${name}.js`),
      `import { LifelineSocket } from "${entry}";\n` +
        `const ws = new LifelineSocket(${JSON.stringify(`${wsBase()}/echo`)});\n` +
        `ws.onmessage = (e) => { postMessage({ echo: e.data, window: typeof window, document: typeof document }); ws.dispose(); };\n` +
        `ws.send("from a worker");\n`,
    );
  }
  writeFileSync(join(pages, "index.html"), "<!doctype html><body></body>");
  const site = await serveStatic({ "/pkg/": pkg, "/": pages });
  statics.push(site);
  const page = await browser.newPage();
  const errors = collectErrors(page);
  await page.goto(`${site.url}/index.html`);
  for (const name of ["package", "socket", "persist"]) {
    const reply = await page.evaluate(
      (src) =>
        new Promise((resolve, reject) => {
          const worker = new Worker(src, { type: "module" });
          worker.onmessage = (e) => {
            worker.terminate();
            resolve(e.data);
          };
          worker.onerror = (e) => reject(new Error(e.message));
          setTimeout(() => reject(new Error("no reply from the worker in 20 s")), 20_000);
        }),
      `/${name}.js`,
    );
    assert.deepEqual(reply, { echo: "from a worker", window: "undefined", document: "undefined" }, name);
  }
  await page.close();
  assert.deepEqual(errors, []);
});

function wsBase() {
  return server.url.replace(/^http/, "ws").replace(/\/$/, "");
}

function readdirTarball(dir) {
  const name = JSON.parse(run("npm", ["pack", "--json", "--dry-run", pkg], root))[0].filename;
  return join(dir, name);
}
