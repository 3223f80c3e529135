// Shared pieces of the Playwright suites: a server-dev process and a headless Chromium.
// Every process started here is stopped by its own pid when the test ends.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const READY = "server-dev listening on ";

/** The server-dev binary xtask built; tests refuse to guess. */
export function serverBinary() {
  const bin = process.env.SERVER_DEV_BIN;
  if (!bin) throw new Error("SERVER_DEV_BIN is not set: run the suite through `cargo xtask test`");
  return bin;
}

/** The demo's trunk output folder. */
export function demoDist() {
  const dist = process.env.DEMO_DIST;
  if (!dist) throw new Error("DEMO_DIST is not set: run the suite through `cargo xtask test`");
  return dist;
}

/**
 * Starts server-dev with `args` (default port 0) and resolves once it prints its URL.
 * @returns {Promise<{url: string, port: number, pid: number, stop: () => Promise<void>}>}
 */
export async function startServer(args = [], { port = 0 } = {}) {
  const child = spawn(serverBinary(), ["--port", String(port), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server-dev did not start within 30 s")), 30_000);
    child.once("exit", (code) => reject(new Error(`server-dev exited early with ${code}`)));
    lines.on("line", (line) => {
      if (line.startsWith(READY)) {
        clearTimeout(timer);
        resolve(line.slice(READY.length).trim());
      }
    });
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    process.kill(child.pid, "SIGTERM");
    const exited = once(child, "exit");
    const timeout = new Promise((r) => setTimeout(r, 5_000, "timeout"));
    if ((await Promise.race([exited, timeout])) === "timeout") {
      process.kill(child.pid, "SIGKILL");
      await exited;
    }
  };
  return { url, port: Number(new URL(url).port), pid: child.pid, stop };
}

/** Launches the system Chromium headless, with flags that work as root on these machines. */
export async function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Collects console errors and uncaught page errors of a Playwright page. */
export function collectErrors(page) {
  const errors = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`console: ${msg.text()}`);
  });
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  return errors;
}

// While a server is down the browser itself logs every refused request and socket; those are
// the network's doing, not the page's, and tests that stop a server on purpose allow them.
const NETWORK_NOISE = [/Failed to load resource/, /WebSocket connection to .* failed/, /net::ERR_/];

/** `errors` without the browser's own lines about refused requests and sockets. */
export function withoutNetworkNoise(errors) {
  return errors.filter((e) => !NETWORK_NOISE.some((noise) => noise.test(e)));
}
