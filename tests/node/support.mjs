// Shared pieces of the Node suites (run under Node, Deno and Bun alike): the built npm package
// imported the way an app imports it (by name, through its `exports` and the `node` condition),
// the runtime running it, and waiting on a socket's events.
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The runtime running the suite: `"node"`, `"deno"` or `"bun"`. */
export const runtime = globalThis.Deno ? "deno" : globalThis.Bun ? "bun" : "node";

/** The arguments that make this runtime's own binary (`process.execPath`) run `code` as an ES
 * module with top-level await. */
export function evalArgs(code) {
  if (runtime === "deno") return ["eval", code];
  if (runtime === "bun") return ["--eval", code];
  return ["--input-type=module", "-e", code];
}

/** The package `cargo xtask package` built. */
export const pkg = join(root, "client-wasm", "pkg");

/**
 * A folder whose `node_modules/ws-lifeline` is the built package, with one module per entry
 * that re-exports it by name (and its default export, unless `withDefault` is false), so Node
 * resolves it as an installed package.
 * @returns {{dir: string, entry: (specifier: string, options?: {withDefault?: boolean}) => string, remove: () => void}}
 */
export function installed() {
  const dir = mkdtempSync(join(tmpdir(), "ws-lifeline-node-"));
  mkdirSync(join(dir, "node_modules"));
  symlinkSync(pkg, join(dir, "node_modules", "ws-lifeline"), "dir");
  const entry = (specifier, { withDefault = true } = {}) => {
    const file = join(dir, `${specifier.replace(/\W/g, "_")}.mjs`);
    const reexport = `export * from "${specifier}";\n`;
    writeFileSync(file, withDefault ? `${reexport}export { default } from "${specifier}";\n` : reexport);
    return pathToFileURL(file).href;
  };
  return { dir, entry, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Records every event of `types` on `ws` as a plain object (its type and fields).
 * @returns {object[]}
 */
export function record(ws, types = ["open", "message", "close", "reconnecting", "error", "pong"]) {
  const log = [];
  for (const type of types) {
    ws.addEventListener(type, (event) => {
      const { code, reason, attempt, data, error, rtt } = event;
      log.push({ type, code, reason, attempt, data, error, rtt });
    });
  }
  return log;
}

/** Resolves once `check(log)` holds; rejects after `ms` with what the log held. */
export async function until(log, check, ms = 20_000) {
  const end = Date.now() + ms;
  while (!check(log)) {
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms; events: ${JSON.stringify(log.map((e) => e.type))}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The `ws:` URL of `path` on a server from `startServer`. */
export function wsUrl(server, path) {
  return `${server.url.replace(/^http/, "ws").replace(/\/$/, "")}${path}`;
}
