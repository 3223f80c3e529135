// The `ws-lifeline/persist` entry under Node, Deno and Bun, imported by name as an app imports
// it, against a real server-dev with default options. Covers:
// - without `persist` it is the package's socket: right after import it joins a room,
//   publishes with an ack and another socket receives the message;
// - `persist: true`, a store name or its options object, where IndexedDB is missing (these
//   runtimes), throws the typed ERR_PERSIST_UNAVAILABLE at once, and a wrong `persist` (or
//   bounds that are not positive integers) ERR_INVALID_ARGUMENT;
// - the main entry refuses `persist` with ERR_PERSIST_UNAVAILABLE, naming the persist entry.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "../e2e/support/harness.mjs";
import { installed, record, until, wsUrl } from "./support.mjs";

const install = installed();
let persist;
let main;
let server;
before(async () => {
  persist = await import(install.entry("ws-lifeline/persist"));
  main = await import(install.entry("ws-lifeline"));
  server = await startServer(["--no-auth", "--test-endpoints"]);
});
after(async () => {
  await server?.stop();
  install.remove();
});

test("without `persist` the entry joins, publishes with an ack and receives", async () => {
  const ann = new persist.LifelineSocket(wsUrl(server, "/ws?name=ann"), "lifeline.v1");
  const bob = new persist.LifelineSocket(wsUrl(server, "/ws?name=bob"), "lifeline.v1");
  try {
    const received = [];
    bob.on("roomMessage", (e) => received.push(e.data));
    const joined = [];
    bob.on("joined", (e) => joined.push(e.room));
    bob.join("node-persist");
    await until(joined, (j) => j.length === 1);
    ann.join("node-persist");
    const ack = await ann.publish("node-persist", { hello: "node" });
    assert.equal(ack.room, "node-persist");
    assert.equal(ack.duplicate, false);
    await until(received, (r) => r.length === 1);
    assert.deepEqual(received, [{ hello: "node" }]);
    assert.equal(typeof ann.clearOutbox, "function");
  } finally {
    ann.dispose();
    bob.dispose();
  }
  assert.deepEqual(persist.liveResources(), { sockets: 0, listeners: 0, timers: 0, predicates: 0 });
});

test("`persist` without IndexedDB throws ERR_PERSIST_UNAVAILABLE; a wrong one ERR_INVALID_ARGUMENT", () => {
  assert.equal(globalThis.indexedDB, undefined, "this runtime has no IndexedDB");
  for (const option of [true, "chat", {}, { store: "chat", maxPublishes: 10, maxBytes: 4096 }]) {
    assert.throws(
      () => new persist.LifelineSocket(wsUrl(server, "/echo"), { persist: option }),
      (e) => persist.isLifelineError(e) && e.code === "ERR_PERSIST_UNAVAILABLE" && /IndexedDB/.test(e.message),
    );
  }
  for (const option of [1, "", null, { store: 7 }, { store: "chat", maxPublishes: 0 }, { maxBytes: -1 }]) {
    assert.throws(
      () => new persist.LifelineSocket(wsUrl(server, "/echo"), { persist: option }),
      (e) => persist.isLifelineError(e) && e.code === "ERR_INVALID_ARGUMENT",
    );
  }
  // `false` is the default: a socket, which connects.
  const ws = new persist.LifelineSocket(wsUrl(server, "/echo"), { persist: false });
  ws.dispose();
  assert.deepEqual(persist.liveResources(), { sockets: 0, listeners: 0, timers: 0, predicates: 0 });
});

test("the main entry refuses `persist` with ERR_PERSIST_UNAVAILABLE, naming ws-lifeline/persist", async () => {
  assert.throws(
    () => new main.LifelineSocket(wsUrl(server, "/echo"), { persist: true }),
    (e) => main.isLifelineError(e) && e.code === "ERR_PERSIST_UNAVAILABLE" && e.message.includes("ws-lifeline/persist"),
  );
  const ws = new main.LifelineSocket(wsUrl(server, "/echo"), { persist: false });
  try {
    const log = record(ws);
    ws.send("still a socket");
    await until(log, (l) => l.some((e) => e.type === "message"));
  } finally {
    ws.dispose();
  }
});
