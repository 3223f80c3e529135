// The hub of `ws-lifeline/shared`, run by its SharedWorker (`shared-worker.js`) or, where
// there is no SharedWorker, by the leader tab (`shared.js`): it owns one real `LifelineSocket`
// (the package's main entry, the same sans-IO core) per URL key and serves every tab of the
// origin that asks for that key, over the tab's `MessagePort` or over a `BroadcastChannel`
// (format: README, "Shared mode"). Rooms are reference-counted across tabs: the socket joins a
// room with its first tab and leaves it with its last; room events go to the tabs in the room,
// socket events to every tab, a publish's answer to the tab that published. A tab that goes
// without a word (closed, crashed, discarded) is found by its Web Lock: the hub asks for it and
// is granted it once the tab is gone.
//
// The socket is the persist entry's (`persist/index.js`), with a store named after the URL
// key: a hub that takes over from one that died (a crashed worker, a closed leader tab)
// restores the same publisher id, session, room positions and unacknowledged publishes, so
// the server deduplicates the resends and replays the rooms from where the last hub was. Each
// publish's id goes to its tab, which asks the next hub for the publish under that id.

// The package loads its wasm with a top-level await; imported dynamically, so that the
// worker's `connect` listener is registered before that await and no tab's connect is missed,
// and so that a tab loads the wasm only once it leads.
let core;
const loadCore = () => (core ??= import("./persist/index.js"));

const PROTOCOL_VERSION = 1;
const LOCK_PREFIX = "ws-lifeline-client:";
const WORKER_LOCK_PREFIX = "ws-lifeline-worker:";
/** The store of a URL key's socket; also the name of the Web Lock its hub holds, so that two
 * hubs that briefly coexist (an old worker not yet gone) never drive one store at once. */
const STORE_PREFIX = "ws-lifeline-shared:";

/** The Web Lock this hub holds for its lifetime, once held (a worker's only, see
 * `holdWorkerLock`): tabs ask for it, and are granted it when the worker is gone. */
let workerLock;

const SOCKET_EVENTS = ["open", "message", "error", "close", "reconnecting", "statechange", "giveup", "offline", "online", "pong"];
/** Room events for every tab that uses rooms (`outboxDelivered`: the publishes an earlier hub
 * left in the store, whichever tab made them). */
const ROOMS_EVENTS = ["welcome", "rooms", "serverError", "badFrame", "outboxDelivered"];
/** Room events for the tabs in `e.room`. `ack` and `publishFailed` are not forwarded: each
 * tab makes its own from its publish's answer. */
const ROOM_SCOPED = ["joined", "recovery", "roomMessage", "left", "presence"];

/** URL key → a promise of the shared socket (undefined for bad options). */
const sockets = new Map();
/** URL key → the ports of its tabs that have a URL provider, in the order they attached. */
const urlGivers = new Map();
/** Request number → the resolve of a URL asked of a tab. */
const urlsAsked = new Map();
let nextUrlRequest = 1;
/** How long a tab may take to give a URL before the next tab is asked. */
const URL_ANSWER_MS = 10_000;
/** `MessagePort` → its client. */
const clients = new Map();

/** A `LifelineError` (or any `Error`) as a plain object that survives `postMessage`; the
 * structured clone of an `Error` keeps only its name and message. */
function plainError(error) {
  return { ...error, name: error?.name ?? "Error", message: error?.message ?? String(error) };
}

/** An event's fields, as the main entry set them, ready to post. */
function fieldsOf(event) {
  switch (event.type) {
    case "message":
      return { data: event.data };
    case "close":
      return { code: event.code, reason: event.reason, wasClean: event.wasClean };
  }
  const { isTrusted: _trusted, ...fields } = event;
  if (fields.error) fields.error = plainError(fields.error);
  return fields;
}

class SharedSocket {
  /** `Set` of clients, in the order they attached. */
  clients = new Set();
  /** room → { members: Set of clients, joined: the latest position, presence, unsettled: the
   * publishes made in it that await their ack, lingering: its last tab went while some did }. */
  rooms = new Map();
  roomsLayer = false;

  /** Publish id → its client and request, for the publishes restored from the store that a
   * tab asked for again; and id → the answer of those settled before their tab asked. */
  awaited = new Map();
  answered = new Map();

  constructor(key, socket, restored, release) {
    this.key = key;
    this.socket = socket;
    /** The ids of the publishes the store held, which the socket resends. */
    this.restored = restored;
    this.release = release;
    socket.binaryType = "arraybuffer";
    // Restored publishes are room publishes: their answers are awaited from the start.
    if (restored.size) this.startRooms();
    for (const type of SOCKET_EVENTS) socket.addEventListener(type, (e) => this.#toAll(e, type !== "message"));
  }

  /** What a tab reads synchronously, sent with every event but `message`. */
  snap() {
    const s = this.socket;
    return {
      state: s.state,
      url: s.url,
      protocol: s.protocol,
      rtt: s.rtt,
      queued: s.queuedMessages,
      buffered: s.bufferedAmount,
      extensions: s.extensions,
    };
  }

  post(client, type, fields, withSnap = true) {
    client.port.postMessage({ v: PROTOCOL_VERSION, ev: "event", type, fields, snap: withSnap ? this.snap() : undefined });
  }

  #toAll(event, withSnap, onlyRooms = false) {
    const fields = fieldsOf(event);
    const snap = withSnap ? this.snap() : undefined;
    for (const client of this.clients) {
      if (onlyRooms && !client.roomsLayer) continue;
      client.port.postMessage({ v: PROTOCOL_VERSION, ev: "event", type: event.type, fields, snap });
    }
  }

  /** Starts the rooms layer of the socket (on the first tab that uses rooms). */
  startRooms() {
    if (this.roomsLayer) return;
    this.roomsLayer = true;
    for (const type of ROOMS_EVENTS) this.socket.addEventListener(type, (e) => this.#toAll(e, true, true));
    for (const type of ROOM_SCOPED) this.socket.addEventListener(type, (e) => this.#toRoom(e));
    this.socket.addEventListener("ack", (e) => this.#settleRestored(e.id, { ack: fieldsOf(e) }));
    this.socket.addEventListener("publishFailed", (e) => this.#settleRestored(e.id, { error: plainError(e.error) }));
  }

  /** Answers the tab awaiting restored publish `id`, or keeps the answer for it. */
  #settleRestored(id, answer) {
    if (!this.restored.has(id)) return;
    const waiter = this.awaited.get(id);
    this.awaited.delete(id);
    if (waiter) reply(waiter.client.port, waiter.request, answer);
    else this.answered.set(id, answer);
  }

  /** A tab's publish that an earlier hub made with `id`: awaited if the store held it, else
   * published under that id. */
  resume(client, { request, room, json, id }) {
    // Not in the store: sent, or acknowledged, after its last snapshot. Under its id, as it
    // may have reached the server (the core publishes it as new if the id is not one of an
    // earlier hub's on this store).
    if (!this.restored.has(id)) return this.publish(client, { request, room, json }, id);
    const answer = this.answered.get(id);
    if (answer) reply(client.port, request, answer);
    else this.awaited.set(id, { client, request });
  }

  publish(client, { request, room, json }, earlier) {
    const port = client.port;
    const data = JSON.parse(json);
    const published =
      earlier === undefined ? this.socket.publish(room, data) : this.socket.publishAs(room, data, earlier);
    Promise.resolve(published.publishId).then(
      (id) => reply(port, request, { id }),
      () => {},
    );
    const joined = this.rooms.get(room);
    if (joined) joined.unsettled++;
    const settle = () => {
      if (joined && --joined.unsettled === 0 && joined.lingering) this.#leaveSocket(room, joined);
    };
    published.then(
      (ack) => {
        reply(port, request, { ack });
        settle();
      },
      (error) => {
        reply(port, request, { error: plainError(error) });
        settle();
      },
    );
  }

  /** The socket leaves `name`, which no tab uses any more (and for which no publish waits). */
  #leaveSocket(name, room) {
    if (this.rooms.get(name) !== room || room.members.size) return;
    this.rooms.delete(name);
    this.socket.leave(name);
  }

  #toRoom(event) {
    const room = this.rooms.get(event.room);
    if (!room) return;
    if (event.type === "joined" || event.type === "recovery" || event.type === "roomMessage") {
      room.joined = { epoch: event.epoch, offset: event.offset };
    } else if (event.type === "presence") room.presence = event.members;
    const fields = fieldsOf(event);
    for (const client of room.members) {
      client.port.postMessage({ v: PROTOCOL_VERSION, ev: "event", type: event.type, fields });
    }
  }

  join(client, name) {
    let room = this.rooms.get(name);
    if (!room) {
      room = { members: new Set(), joined: undefined, presence: undefined, unsettled: 0, lingering: false };
      this.rooms.set(name, room);
      this.socket.join(name);
    }
    room.lingering = false;
    if (room.members.has(client)) return;
    room.members.add(client);
    // The room was already joined for another tab: this tab hears what it would have heard.
    if (room.joined) {
      this.post(client, "joined", { room: name, ...room.joined }, false);
      if (room.presence) this.post(client, "presence", { room: name, members: room.presence }, false);
    }
  }

  leave(client, name) {
    const room = this.rooms.get(name);
    if (!room?.members.delete(client)) return;
    this.post(client, "left", { room: name }, false);
    if (room.members.size === 0) {
      this.rooms.delete(name);
      this.socket.leave(name);
    }
  }

  /** Forgets `client`: its rooms (left where it was the last), and the socket with the last
   * client. A room whose publishes still await their ack is left once they are acknowledged
   * (a tab that went, a reload say, did not ask to leave: what it published is delivered). The
   * last client's rooms are not left at all: the socket is disposed with them joined, so that
   * its store keeps them and their unacknowledged publishes for the next hub (a reload of the
   * only tab resends them, as a reload does without shared mode). */
  detach(client) {
    const last = this.clients.size === 1 && this.clients.has(client);
    for (const [name, room] of last ? [] : this.rooms) {
      if (room.members.delete(client) && room.members.size === 0) {
        if (room.unsettled) room.lingering = true;
        else this.#leaveSocket(name, room);
      }
    }
    for (const [id, waiter] of this.awaited) if (waiter.client === client) this.awaited.delete(id);
    this.clients.delete(client);
    if (this.clients.size === 0) {
      sockets.delete(this.key);
      this.socket.dispose();
      this.release();
    }
  }
}

/** Answers a tab's `publish`: its `id`, then its `ack` or `error`. */
function reply(port, request, answer) {
  port.postMessage({ v: PROTOCOL_VERSION, ev: "reply", request, ...answer });
}

/** Holds the Web Lock `name` (once granted) until the returned function is called. */
function holdLock(name) {
  const locks = globalThis.navigator?.locks;
  if (!locks) return Promise.resolve(() => {});
  return new Promise((held) => locks.request(name, () => new Promise((release) => held(release))));
}

/** Makes the socket of a URL key; with rooms, once no other hub holds its store (`persist`
 * if a name, else one named after the key), with the ids of the publishes that store holds.
 * Or the error of bad options. */
async function open(message) {
  const { LifelineSocket, storedOutbox } = await loadCore();
  let options = message.options;
  let release = () => {};
  let restored = new Set();
  // The outbox is part of the rooms layer: a socket whose first tab uses no rooms keeps none,
  // and its text frames stay `message` events.
  if (message.roomsLayer) {
    const { persist } = options;
    const named = typeof persist === "object" && persist ? persist.store : persist;
    const store = typeof named === "string" && named ? named : STORE_PREFIX + message.key;
    release = await holdLock(STORE_PREFIX + store);
    // Read under the lock and before the socket can write, so it is what the socket restores.
    // A store that cannot be read is the socket's `error` event too; this hub resumes nothing.
    const snapshot = await storedOutbox(store).catch(() => undefined);
    restored = new Set((snapshot?.publishes ?? []).map((p) => p.id));
    options = { ...options, persist: typeof persist === "object" && persist ? { ...persist, store } : store };
  }
  try {
    const target = message.provider ? () => askUrl(message.key) : message.url;
    const socket = new LifelineSocket(target, message.protocols, options);
    return new SharedSocket(message.key, socket, restored, release);
  } catch (error) {
    release();
    return plainError(error);
  }
}

/** The URL of a connection attempt of `key`'s socket, from the first of its tabs with a
 * provider that answers; the provider's error as the attempt's failure. */
async function askUrl(key) {
  for (const port of [...(urlGivers.get(key) ?? [])]) {
    const request = nextUrlRequest++;
    const answer = await new Promise((resolve) => {
      const timer = setTimeout(resolve, URL_ANSWER_MS);
      urlsAsked.set(request, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      port.postMessage({ v: PROTOCOL_VERSION, ev: "url", request });
    });
    urlsAsked.delete(request);
    if (answer?.url) return answer.url;
    if (answer?.error !== undefined) throw new Error(answer.error);
  }
  throw new Error("no tab of this shared socket answered with a URL");
}

/** Tells `port`'s tab about a failure of its own call, as an `error` event. */
function failed(port, error) {
  port.postMessage({ v: PROTOCOL_VERSION, ev: "event", type: "error", fields: { error: plainError(error) } });
}

async function attach(port, message) {
  // A tab that attaches again (after `close()`, or to a new leader) starts afresh.
  detach(port);
  // Before the socket is made: its first attempt may ask this tab.
  if (message.provider) {
    if (!urlGivers.has(message.key)) urlGivers.set(message.key, new Set());
    urlGivers.get(message.key).add(port);
  }
  let opening = sockets.get(message.key);
  if (!opening) {
    opening = open(message);
    sockets.set(message.key, opening);
  }
  const shared = await opening;
  if (!(shared instanceof SharedSocket)) {
    if (sockets.get(message.key) === opening) sockets.delete(message.key);
    detach(port);
    // Bad options: the tab's socket is closed, as the main entry's constructor would throw.
    const snap = { state: "closed", url: message.url, protocol: "", queued: 0, buffered: 0, extensions: "" };
    port.postMessage({ v: PROTOCOL_VERSION, ev: "event", type: "error", fields: { error: shared }, snap });
    return;
  }
  if (shared.socket.state === "closed") {
    // Given up, or closed by the server for good: a tab that arrives now wants a connection.
    shared.socket.reconnect();
  }
  const abort = new AbortController();
  const client = { id: message.client, port, shared, roomsLayer: false, abort };
  clients.set(port, client);
  shared.clients.add(client);
  // Granted only once the tab has released it: it is gone (or disposed).
  navigator.locks
    ?.request(LOCK_PREFIX + client.id, { signal: abort.signal }, () => detach(port))
    .catch(() => {});
  port.postMessage({ v: PROTOCOL_VERSION, ev: "attached", snap: shared.snap(), lock: await workerLock });
  // The socket is already open for other tabs: this tab hears the `open` it would have heard.
  if (shared.socket.state === "open") shared.post(client, "open", { protocol: shared.socket.protocol });
  if (message.roomsLayer) startRooms(client);
  for (const room of message.rooms) shared.join(client, room);
}

function startRooms(client) {
  client.roomsLayer = true;
  client.shared.startRooms();
}

function detach(port) {
  for (const [key, ports] of urlGivers) {
    if (ports.delete(port) && !ports.size) urlGivers.delete(key);
  }
  const client = clients.get(port);
  if (!client) return;
  clients.delete(port);
  client.abort.abort();
  client.shared.detach(client);
}

/** Carries out one message of a tab. */
async function handle(port, message) {
  if (message?.v !== PROTOCOL_VERSION) {
    failed(port, { name: "LifelineError", code: "ERR_PLATFORM", message: `unknown message format ${message?.v}` });
    return;
  }
  if (message.op === "attach") return attach(port, message);
  const client = clients.get(port);
  if (!client) return;
  const { shared } = client;
  const socket = shared.socket;
  switch (message.op) {
    case "detach":
      return detach(port);
    case "send":
      return socket.send(message.data);
    case "reconnect":
      return socket.reconnect();
    case "rooms":
      return startRooms(client);
    case "join":
      return shared.join(client, message.room);
    case "leave":
      return shared.leave(client, message.room);
    case "listRooms":
      return socket.listRooms();
    case "clearOutbox":
      // A socket made without rooms keeps no outbox (see `open`): nothing to clear.
      return socket.clearOutbox?.();
    case "publish":
      return message.id === undefined ? shared.publish(client, message) : shared.resume(client, message);
  }
}

/** Holds a Web Lock of this worker's own for its lifetime, and names it in every `attached`. */
export function holdWorkerLock() {
  const locks = globalThis.navigator?.locks;
  if (!locks) return;
  const name = WORKER_LOCK_PREFIX + crypto.randomUUID();
  // Named to the tabs only once held, so that no tab is granted it while the worker lives.
  workerLock = new Promise((held) => locks.request(name, () => (held(name), new Promise(() => {}))));
}

/** Serves the tab at the other end of `port` (`postMessage` and `onmessage`): its messages one
 * at a time and in order (an `attach` awaits the package's load). */
export function serve(port) {
  let queue = Promise.resolve();
  port.onmessage = ({ data }) => {
    // Not queued: an `attach` waiting for its socket may wait for this answer.
    if (data?.v === PROTOCOL_VERSION && data.op === "url") return urlsAsked.get(data.request)?.(data);
    queue = queue.then(() => handle(port, data)).catch((error) => failed(port, error));
  };
}

/**
 * Serves every tab on `channel` (a `BroadcastChannel` of one URL key): a tab's messages carry
 * its `client` id, the answers go out with `to` set to it. Returns `stop()`, which releases
 * every tab served (and so their sockets).
 */
export function serveChannel(channel) {
  const ports = new Map();
  channel.onmessage = ({ data }) => {
    if (typeof data?.client !== "string" || data.to !== undefined) return;
    let port = ports.get(data.client);
    if (!port) {
      port = { postMessage: (message) => channel.postMessage({ ...message, to: data.client }), onmessage: null };
      ports.set(data.client, port);
      serve(port);
    }
    port.onmessage({ data });
    if (data.op === "detach") ports.delete(data.client);
  };
  return () => {
    channel.onmessage = null;
    for (const port of ports.values()) detach(port);
    ports.clear();
  };
}
