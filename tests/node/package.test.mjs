// The npm package under Node, Deno and Bun, imported by name as an app imports it (`exports`,
// `node` condition, which Deno and Bun pick too), against a real server-dev, with default
// options unless a test says why; each runtime's own global `WebSocket` unless a test passes
// one. Run by `cargo xtask test` as `node --experimental-websocket --test` (Node 20 has its
// global `WebSocket` behind that flag, on by default from Node 22), `deno test --allow-all` and
// `bun test`, with the files named.
// Covers, for `ws-lifeline` and `ws-lifeline/socket` alike, in each runtime:
// - no ritual: the constructor works right after `import` (the wasm read from the package's
//   own file, no fetch of `file:`);
// - reconnect: server-dev killed (SIGKILL) and started again on its port, the socket back by
//   itself;
// - queue: sends while the server is gone are queued and delivered in order after the
//   reconnect; the send past the default limit (1024 messages) throws ERR_QUEUE_FULL;
// - heartbeat: half-open detection against `/silent` (close 4000, then reconnecting), and
//   server-dev's pongs measured (`pong` events, `rtt`) and never surfacing as `message`;
// - the `WebSocket` option: the given class (the `ws` package's) makes every attempt, text
//   and binary echo through it;
// - rooms, for the full entry: join, publish with its ack, receive on another socket;
// - the `logger` option, for the full entry: attempts, state changes, delays, the heartbeat's
//   close and pongs, queued sends, each at its level; one that throws does not stop the
//   socket; the socket entry has none and does not read the option;
// - `diagnose`, for the full entry: after N failed handshakes one HTTP request reads the
//   status (`/reject?status=`): 401 is reported as ERR_HANDSHAKE and stops retrying, 503 is
//   reported once and retrying goes on; off by default;
// - importing during SSR (no `window`, no global `WebSocket`) does not throw, and the
//   constructor then asks for the `WebSocket` option with a typed error; `ws-lifeline/react`
//   renders on the server with no socket and nothing reported; the browser entry
//   imported under Node reports its failed fetch instead of throwing (Deno and Bun fetch
//   `file:` URLs, so it loads there), and `init()` with the `.wasm` bytes then makes it work.
// Not under Bun: a logger that throws (Bun's `reportError` fails the running test).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { WebSocket as WsWebSocket } from "ws";
import { startServer } from "../e2e/support/harness.mjs";
import { evalArgs, installed, pkg, record, root, runtime, until, wsUrl } from "./support.mjs";

const SERVER_ARGS = ["--no-auth", "--test-endpoints"];
const ENTRIES = [
  { specifier: "ws-lifeline", rooms: true },
  { specifier: "ws-lifeline/socket", rooms: false },
];

const install = installed();
after(() => install.remove());

/** Runs `code` (an ES module) in a new process of the same runtime (for Node, without the
 * WebSocket flag); resolves with its exit code and output once it exits (it ends by itself; it
 * is killed by its pid after 20 s otherwise). */
function runScript(code) {
  const child = spawn(process.execPath, evalArgs(code), {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const timer = setTimeout(() => process.kill(child.pid, "SIGKILL"), 20_000);
  return new Promise((resolve) =>
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

for (const { specifier, rooms } of ENTRIES) {
  describe(specifier, () => {
    let lib;
    let server;
    before(async () => {
      lib = await import(install.entry(specifier));
      server = await startServer(SERVER_ARGS);
    });
    after(async () => {
      await server?.stop();
    });

    test("right after import, a socket connects and echoes", async () => {
      const ws = new lib.LifelineSocket(wsUrl(server, "/echo"));
      try {
        const log = record(ws);
        assert.equal(ws.send("hello"), "queued");
        await until(log, (l) => l.some((e) => e.type === "message"));
        assert.equal(ws.readyState, lib.LifelineSocket.OPEN);
        assert.deepEqual(
          log.filter((e) => e.type === "message").map((e) => e.data),
          ["hello"],
        );
        assert.equal(rooms, "join" in ws, "room methods exactly in the full entry");
      } finally {
        ws.dispose();
      }
      assert.deepEqual(lib.liveResources(), { sockets: 0, listeners: 0, timers: 0, predicates: 0 });
    });

    test("server-dev killed and restarted: the socket reconnects and delivers the queue in order", async () => {
      const ws = new lib.LifelineSocket(wsUrl(server, "/echo"));
      try {
        const log = record(ws);
        const messages = () => log.filter((e) => e.type === "message").map((e) => e.data);
        ws.send("before");
        await until(log, () => messages().length === 1);
        process.kill(server.pid, "SIGKILL");
        await server.stop();
        await until(log, (l) => l.some((e) => e.type === "close"));
        const queued = [];
        for (let i = 0; i < 1024; i++) queued.push(ws.send(`queued ${i}`));
        assert.ok(queued.every((r) => r === "queued"));
        assert.equal(ws.queuedMessages, 1024);
        assert.throws(
          () => ws.send("one too many"),
          (e) => lib.isLifelineError(e) && e.code === "ERR_QUEUE_FULL" && e.limit.messages === 1024,
        );
        server = await startServer(SERVER_ARGS, { port: server.port });
        await until(log, () => messages().length === 1025);
        assert.deepEqual(messages(), ["before", ...queued.map((_, i) => `queued ${i}`)]);
        assert.ok(log.some((e) => e.type === "reconnecting" && e.attempt >= 1));
        assert.equal(log.filter((e) => e.type === "open").length, 2);
        assert.equal(ws.queuedMessages, 0);
      } finally {
        ws.dispose();
      }
    });

    test("a logger hears each attempt, state change, delay, heartbeat and queued send (full entry only)", async () => {
      const entries = [];
      const logger = (level, message, fields) => entries.push({ level, message, fields });
      // 200/500 ms instead of 25/10 s, so that a half-open cut and a pong show within a second.
      const heartbeat = { interval: 200, timeout: 500 };
      const quietUrl = wsUrl(server, "/silent");
      const quiet = new lib.LifelineSocket(quietUrl, { heartbeat, logger });
      const answering = new lib.LifelineSocket(wsUrl(server, "/ws?name=logged"), "lifeline.v1", {
        heartbeat,
        logger: (level, message, fields) => entries.push({ level, message, fields, answering: true }),
      });
      // A logger that throws is reported, and the socket goes on. Not under Bun: its
      // `reportError` fails the running test and fires no `error` event a test could catch.
      const throwing = new lib.LifelineSocket(wsUrl(server, "/echo"), {
        logger:
          runtime === "bun"
            ? () => {}
            : () => {
                throw new Error("a logger that throws");
              },
      });
      try {
        assert.equal(quiet.send("early"), "queued");
        const log = record(throwing);
        await until(log, (l) => l.some((e) => e.type === "open"));
        if (!rooms) {
          // The socket entry has no logger (its 28 KB budget): the option is not read.
          await until(record(quiet), (l) => l.some((e) => e.type === "reconnecting"));
          assert.deepEqual(entries, []);
          return;
        }
        await until(entries, (l) => l.some((e) => e.message === "reconnecting" && !e.answering));
        await until(entries, (l) => l.some((e) => e.message === "pong" && e.answering));
        const quietEntries = entries.filter((e) => !e.answering);
        const find = (message) => quietEntries.find((e) => e.message === message);
        assert.deepEqual(find("queued"), { level: "debug", message: "queued", fields: { queued: 1 } });
        assert.deepEqual(find("attempt"), { level: "info", message: "attempt", fields: { url: quietUrl } });
        // A socket starts out connecting; the first change is to open.
        assert.deepEqual(
          quietEntries.filter((e) => e.message === "statechange").map((e) => e.fields.state).slice(0, 2),
          ["open", "reconnecting"],
        );
        assert.equal(find("open").level, "info");
        const close = find("close");
        assert.equal(close.level, "warn");
        assert.equal(close.fields.code, 4000, "the heartbeat's half-open close");
        const reconnecting = find("reconnecting");
        assert.equal(reconnecting.level, "warn");
        assert.equal(reconnecting.fields.attempt, 1);
        assert.equal(typeof reconnecting.fields.delay, "number");
        const pong = entries.find((e) => e.answering && e.message === "pong");
        assert.equal(pong.level, "debug");
        assert.ok(pong.fields.rtt >= 0);
        // `debug: true` logs the same entries to the console, at their level.
        const printed = [];
        const info = console.info;
        console.info = (...args) => printed.push(args);
        const debugged = new lib.LifelineSocket(wsUrl(server, "/echo"), { debug: true });
        try {
          await until(printed, (l) => l.some(([text]) => text === "[ws-lifeline] open"));
          assert.deepEqual(printed[0], ["[ws-lifeline] attempt", { url: wsUrl(server, "/echo") }]);
        } finally {
          console.info = info;
          debugged.dispose();
        }
        assert.throws(
          () => new lib.LifelineSocket(quietUrl, { logger: "console" }),
          (e) => lib.isLifelineError(e) && e.code === "ERR_INVALID_ARGUMENT",
        );
      } finally {
        quiet.dispose();
        answering.dispose();
        throwing.dispose();
      }
    });

    test("diagnose reads a refused handshake's HTTP status: 401 stops retrying, 503 does not (full entry only)", async () => {
      const handshake = (log) => log.filter((e) => e.type === "error" && e.error?.code === "ERR_HANDSHAKE");
      // `diagnose: 2` rather than 3, and `minDelay` 100 ms instead of 1 s, so that two failed
      // attempts take well under a second; the default `diagnose` is off (checked below).
      const options = { diagnose: 2, minDelay: 100, maxDelay: 200 };
      const refused = new lib.LifelineSocket(wsUrl(server, "/reject?status=401"), options);
      const unavailable = new lib.LifelineSocket(wsUrl(server, "/reject?status=503"), options);
      const plain = new lib.LifelineSocket(wsUrl(server, "/reject?status=401"), { minDelay: 100, maxDelay: 200 });
      try {
        const refusedLog = record(refused);
        const unavailableLog = record(unavailable);
        const plainLog = record(plain);
        if (!rooms) {
          // The socket entry has no `diagnose`: it keeps retrying and reports no status.
          await until(refusedLog, (l) => l.filter((e) => e.type === "reconnecting").length >= 4);
          assert.deepEqual(handshake(refusedLog), []);
          return;
        }
        await until(refusedLog, (l) => handshake(l).length === 1);
        const [error] = handshake(refusedLog).map((e) => e.error);
        assert.ok(lib.isLifelineError(error));
        assert.equal(error.status, 401);
        await until(refusedLog, () => refused.readyState === lib.LifelineSocket.CLOSED);
        const attempts = refusedLog.filter((e) => e.type === "reconnecting").length;
        assert.equal(attempts, 2, "diagnosed after the second failed attempt");
        await until(unavailableLog, (l) => handshake(l).length === 1);
        assert.equal(handshake(unavailableLog)[0].error.status, 503);
        const before = unavailableLog.filter((e) => e.type === "reconnecting").length;
        await until(unavailableLog, (l) => l.filter((e) => e.type === "reconnecting").length > before + 2);
        assert.equal(handshake(unavailableLog).length, 1, "once per run of failed attempts");
        // Nothing more from the refused socket after it closed, and nothing from the default.
        await until(plainLog, (l) => l.filter((e) => e.type === "reconnecting").length >= 4);
        assert.equal(refusedLog.filter((e) => e.type === "reconnecting").length, attempts);
        assert.deepEqual(handshake(plainLog), []);
        assert.throws(
          () => new lib.LifelineSocket(wsUrl(server, "/echo"), { diagnose: 0 }),
          (e) => lib.isLifelineError(e) && e.code === "ERR_INVALID_ARGUMENT",
        );
      } finally {
        refused.dispose();
        unavailable.dispose();
        plain.dispose();
      }
    });

    test("the heartbeat cuts a silent server (4000) and measures server-dev's pongs", async () => {
      // 200/500 ms instead of 25/10 s, so that each side shows within a second.
      const heartbeat = { interval: 200, timeout: 500 };
      const quiet = new lib.LifelineSocket(wsUrl(server, "/silent"), { heartbeat });
      const answering = new lib.LifelineSocket(wsUrl(server, "/ws?name=heartbeat"), "lifeline.v1", {
        heartbeat,
      });
      try {
        const quietLog = record(quiet);
        const answeringLog = record(answering);
        await until(quietLog, (l) => l.some((e) => e.type === "reconnecting"));
        const closed = quietLog.find((e) => e.type === "close");
        assert.equal(closed.code, 4000, "closed as half-open");
        await until(answeringLog, (l) => l.filter((e) => e.type === "pong").length >= 3);
        assert.equal(answering.protocol, "lifeline.v1");
        assert.ok(
          !answeringLog.some((e) => ["close", "reconnecting", "message"].includes(e.type)),
          `pongs neither closed nor surfaced: ${answeringLog.map((e) => e.type)}`,
        );
        assert.ok(answeringLog.filter((e) => e.type === "pong").every((e) => e.rtt >= 0));
        assert.equal(typeof answering.rtt.smoothed, "number");
      } finally {
        quiet.dispose();
        answering.dispose();
      }
    });

    test("the WebSocket option: the given class makes every attempt", async () => {
      let made = 0;
      class Counted extends WsWebSocket {
        constructor(...args) {
          super(...args);
          made++;
        }
      }
      const ws = new lib.LifelineSocket(wsUrl(server, "/echo"), { WebSocket: Counted });
      try {
        ws.binaryType = "arraybuffer";
        const log = record(ws);
        ws.send("text");
        ws.send(new Uint8Array([1, 2, 3]));
        await until(log, (l) => l.filter((e) => e.type === "message").length === 2);
        const [text, bytes] = log.filter((e) => e.type === "message").map((e) => e.data);
        assert.equal(text, "text");
        assert.ok(bytes instanceof ArrayBuffer);
        assert.deepEqual([...new Uint8Array(bytes)], [1, 2, 3]);
        assert.equal(made, 1);
      } finally {
        ws.dispose();
      }
    });

    if (rooms) {
      test("rooms: join, publish with ack, receive", async () => {
        const url = (name) => wsUrl(server, `/ws?name=${name}`);
        const ann = new lib.LifelineSocket(url("ann"), "lifeline.v1");
        const bob = new lib.LifelineSocket(url("bob"), "lifeline.v1");
        try {
          const events = [];
          for (const [who, ws] of [["ann", ann], ["bob", bob]]) {
            for (const type of ["joined", "roomMessage"]) {
              ws.addEventListener(type, ({ room, from, data }) => events.push({ who, type, room, from, data }));
            }
            ws.join("lobby");
          }
          await until(events, (l) => l.filter((e) => e.type === "joined").length === 2);
          const ack = await ann.publish("lobby", { n: 1 });
          assert.equal(ack.room, "lobby");
          assert.equal(typeof ack.offset, "number");
          assert.equal(ack.duplicate, false);
          await until(events, (l) => l.some((e) => e.who === "bob" && e.type === "roomMessage"));
          const received = events.find((e) => e.who === "bob" && e.type === "roomMessage");
          assert.deepEqual(received, { who: "bob", type: "roomMessage", room: "lobby", from: "ann", data: { n: 1 } });
        } finally {
          ann.dispose();
          bob.dispose();
        }
      });
    }

    test("importing during SSR (no window, no global WebSocket) does not throw", async () => {
      const result = await runScript(`
        // Node 22+ has a global WebSocket: take it away to be a runtime without one.
        delete globalThis.WebSocket;
        const lib = await import(${JSON.stringify(install.entry(specifier))});
        let thrown;
        try {
          new lib.LifelineSocket("ws://127.0.0.1:9/");
        } catch (e) {
          thrown = { code: e.code, message: e.message };
        }
        console.log(JSON.stringify({ window: typeof window, document: typeof document, thrown }));
      `);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, "");
      assert.deepEqual(JSON.parse(result.stdout), {
        window: "undefined",
        document: "undefined",
        thrown: { code: "ERR_INVALID_ARGUMENT", message: "option `WebSocket` must be a function" },
      });
    });

    if (rooms) {
      test("server-side rendering with ws-lifeline/react: no error, no socket", async () => {
        const result = await runScript(`
          delete globalThis.WebSocket;
          const React = await import("react");
          const { renderToString } = await import("react-dom/server");
          const { useLifelineSocket } = await import(${JSON.stringify(install.entry("ws-lifeline/react", { withDefault: false }))});
          function Status() {
            const { socket, state } = useLifelineSocket("ws://127.0.0.1:9/");
            return React.createElement("p", null, \`\${socket} \${state}\`);
          }
          console.log(JSON.stringify({ html: renderToString(React.createElement(Status)) }));
        `);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stderr, "", "nothing reported: the wasm came from the package's file");
        assert.deepEqual(JSON.parse(result.stdout), { html: "<p>null connecting</p>" });
      });
    }

    test("the browser entry: under Node it reports its failed fetch; init() with the bytes works", async () => {
      const folder = specifier === "ws-lifeline" ? pkg : join(pkg, "socket");
      const result = await runScript(`
        import { readFileSync } from "node:fs";
        const lib = await import(${JSON.stringify(pathToFileURL(join(folder, "index.js")).href)});
        await lib.default({ module_or_path: readFileSync(${JSON.stringify(join(folder, "ws_lifeline_bg.wasm"))}) });
        const ws = new lib.LifelineSocket("ws://127.0.0.1:9/", { WebSocket: class {} });
        const state = ws.state;
        ws.dispose();
        console.log(JSON.stringify({ state }));
      `);
      assert.equal(result.code, 0, result.stderr);
      if (runtime === "node") {
        assert.match(result.stderr, /fetch/i, "the failed load is reported");
      } else {
        // Deno and Bun fetch `file:` URLs, so the browser entry's own load succeeds too.
        assert.equal(result.stderr, "");
      }
      assert.deepEqual(JSON.parse(result.stdout), { state: "connecting" });
    });
  });
}
