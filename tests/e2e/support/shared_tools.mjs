// Helpers of the shared-mode suites (js_shared.test.mjs in Chromium, js_firefox.test.mjs in
// Firefox): a proxy that can lose a server's answers, a plain socket in a room, and what the
// hubs stored in IndexedDB. Pages are Playwright's or puppeteer's: only `evaluate` is used.
import { connect as tcpConnect, createServer as tcpServer } from "node:net";
import { WebSocket as NodeWebSocket } from "ws";
import { wsUrl } from "./js_page.mjs";

/** Polls `check` (async) until it returns a truthy value, or fails after `ms`. */
export async function until(what, check, ms = 15_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A TCP proxy on loopback in front of `target` (a server from `startServer`). `hold()` stops
 * passing the server's bytes to the connections open now, as a link that lost its way back
 * would: the server reads and answers them, they hear nothing. Later connections pass.
 * `refuse()` drops the connections open now and every new one until `admit()`, as a network
 * that is down would.
 */
export async function startProxy(target) {
  const links = new Set();
  let refusing = false;
  const proxy = tcpServer((client) => {
    if (refusing) return client.destroy();
    const upstream = tcpConnect(target.port, "127.0.0.1");
    const link = { client, upstream };
    const end = () => {
      client.destroy();
      upstream.destroy();
      links.delete(link);
    };
    links.add(link);
    for (const socket of [client, upstream]) socket.on("close", end).on("error", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${proxy.address().port}`,
    hold() {
      for (const { client, upstream } of links) {
        upstream.unpipe(client);
        upstream.pause();
      }
      return links.size;
    },
    refuse() {
      refusing = true;
      for (const { client, upstream } of links) {
        client.destroy();
        upstream.destroy();
      }
    },
    admit() {
      refusing = false;
    },
    close() {
      for (const { client, upstream } of links) {
        client.destroy();
        upstream.destroy();
      }
      return new Promise((resolve) => proxy.close(resolve));
    },
  };
}

/** A plain `lifeline.v1` socket (the `ws` package in Node) on `server` (from `startServer`),
 * joined to `room`: `frames` holds every message the server sent it, batches unpacked. */
export async function observer(server, room, origin) {
  const ws = new NodeWebSocket(wsUrl(server, "/ws?name=observer"), "lifeline.v1", { origin });
  const frames = [];
  ws.on("message", (data) => frames.push(...[JSON.parse(data.toString())].flat()));
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  ws.send(JSON.stringify({ type: "hello" }));
  ws.send(JSON.stringify({ type: "join", room }));
  await until(`the observer joined ${room}`, () => frames.some((f) => f.type === "joined" && f.room === room));
  return {
    frames,
    send: (message) => ws.send(JSON.stringify(message)),
    close: () =>
      new Promise((resolve) => {
        if (ws.readyState === ws.CLOSED) return resolve();
        ws.once("close", resolve);
        ws.close();
      }),
  };
}

/** The publishes of the outboxes that `page`'s origin holds in IndexedDB, each `data` parsed
 * (a snapshot keeps it as JSON text, docs/PROTOCOL.md "Snapshot format"). */
export const storedPublishes = (page) =>
  page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open("ws-lifeline-outbox");
        // Not made yet: left for the persist entry to make, with its object store.
        open.onupgradeneeded = () => open.transaction.abort();
        open.onerror = () => (open.error?.name === "AbortError" ? resolve([]) : reject(open.error));
        open.onsuccess = () => {
          const db = open.result;
          if (!db.objectStoreNames.contains("snapshots")) return resolve((db.close(), []));
          const all = db.transaction("snapshots").objectStore("snapshots").getAll();
          all.onsuccess = () => {
            db.close();
            const publishes = all.result.flatMap((text) => JSON.parse(text).publishes ?? []);
            resolve(publishes.map((p) => ({ ...p, data: JSON.parse(p.data) })));
          };
          all.onerror = () => reject(all.error);
        };
      }),
  );
