// `ws-lifeline/shared`: one real socket for all of a site's tabs. Each `LifelineSocket` made
// here is the tab's side of a socket that a hub (`shared-hub.js`, which runs the package's own
// `LifelineSocket`) owns, one per URL key (URL, subprotocols and options). The hub runs in a
// module SharedWorker (`shared-worker.js`), or, where there is no SharedWorker, in a leader tab
// chosen with a Web Lock, the other tabs talking to it over a `BroadcastChannel`. This file
// loads no wasm unless its tab leads: it checks the arguments, talks to the hub (the message
// format, version `PROTOCOL_VERSION`, is in the README), keeps what the page reads
// synchronously (state, URL, this tab's rooms and publishes) and dispatches the events the hub
// forwards. The tab holds a Web Lock named after its client id while it is attached: the hub
// asks for the same lock, and is granted it when the tab is gone, however it went.

/** The version of the message format between a tab and the worker. */
export const PROTOCOL_VERSION = 1;

/** The SharedWorker's name: one worker per origin, holding one socket per URL key. */
const WORKER_NAME = "ws-lifeline";

/** Prefix of the Web Lock a tab holds while attached (see `shared-hub.js`). */
export const LOCK_PREFIX = "ws-lifeline-client:";

/** Prefix of the Web Lock whose holder leads (runs the hub) where there is no SharedWorker. */
const LEADER_PREFIX = "ws-lifeline-leader:";

const CONSTANTS = ["CONNECTING", "OPEN", "CLOSING", "CLOSED"];
const READY_STATES = { connecting: 0, open: 1, closing: 2, reconnecting: 0, closed: 3 };
/** Event types with an `on…` property, as on `WebSocket`. */
const HANDLER_TYPES = ["open", "message", "error", "close", "reconnecting", "statechange", "giveup"];
/** Listening for one of these starts the rooms layer, as in the main entry. */
const ROOM_EVENTS = new Set([
  "welcome",
  "joined",
  "recovery",
  "roomMessage",
  "left",
  "ack",
  "publishFailed",
  "presence",
  "rooms",
  "serverError",
  "badFrame",
]);

// Called on the socket for the `on…` handlers' wrappers.
const { addEventListener: add, removeEventListener: remove } = EventTarget.prototype;

/** A `LifelineError`, as the main entry makes them: an `Error` with a `code` and fields. */
function lifelineError(code, message, fields) {
  return Object.assign(new Error(message), { name: "LifelineError", code }, fields);
}

/** The error the worker sent as a plain object (see `plainError` in shared-worker.js). */
function liftError(plain) {
  const { message, ...fields } = plain;
  return Object.assign(new Error(message), fields);
}

const invalid = (message) => lifelineError("ERR_INVALID_ARGUMENT", message);

/** True for errors made by this package (here or in the worker). */
export function isLifelineError(value) {
  return value instanceof Error && value.name === "LifelineError" && typeof value.code === "string";
}

/** The URL as `WebSocket` takes it: resolved against the page, `http(s):` mapped to `ws(s):`. */
function socketUrl(url) {
  if (typeof url !== "string" && !(url instanceof URL)) {
    throw invalid("url must be a string or a URL");
  }
  const supplied = String(url);
  let parsed;
  try {
    parsed = new URL(supplied, globalThis.document?.baseURI ?? globalThis.location?.href);
  } catch {
    throw lifelineError("ERR_INVALID_URL", `invalid URL: ${supplied}`, { supplied });
  }
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw lifelineError("ERR_INVALID_URL", `not a ws: or wss: URL: ${supplied}`, { supplied });
  }
  return parsed.href;
}

/** The options without `share`, checked to cross to the worker: no functions (those stay in
 * the page that made them), everything else as given. */
function crossingOptions(options, path = "") {
  const out = {};
  for (const [key, value] of Object.entries(options)) {
    if (!path && key === "share") continue;
    const name = path + key;
    if (typeof value === "function") {
      throw invalid(`option \`${name}\` is a function, which cannot cross to the shared worker`);
    }
    out[key] = value !== null && typeof value === "object" && !Array.isArray(value)
      ? crossingOptions(value, `${name}.`)
      : value;
  }
  return out;
}

/** JSON with sorted object keys, so that equal options give equal keys. */
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** A room name as the core checks it: 1 to 64 characters, no control characters. Checked here
 * too because `join` throws synchronously, before the worker could answer. */
function roomName(room) {
  if (typeof room !== "string") throw invalid("a room name must be a string");
  const chars = [...room].length;
  // eslint-disable-next-line no-control-regex
  if (chars < 1 || chars > 64 || /[\u0000-\u001f\u007f-\u009f]/.test(room)) {
    throw lifelineError("ERR_INVALID_ROOM", `invalid room name ${JSON.stringify(room)}`, { room });
  }
  return room;
}

/** The tab's side of a socket shared by every tab of the origin. */
export class LifelineSocket extends EventTarget {
  static {
    CONSTANTS.forEach((name, value) => {
      for (const target of [this, this.prototype]) {
        Object.defineProperty(target, name, { value, enumerable: true });
      }
    });
    for (const type of HANDLER_TYPES) {
      Object.defineProperty(this.prototype, `on${type}`, {
        get() {
          return this.#handlers.get(type)?.handler ?? null;
        },
        set(handler) {
          if (this.#disposed) return;
          const slot = this.#handlers.get(type);
          if (typeof handler === "function") {
            if (slot) slot.handler = handler;
            else {
              const created = { handler, call: (event) => created.handler.call(this, event) };
              this.#handlers.set(type, created);
              add.call(this, type, created.call);
            }
          } else if (slot) {
            this.#handlers.delete(type);
            remove.call(this, type, slot.call);
          }
        },
        configurable: true,
        enumerable: true,
      });
    }
  }

  /** What `attach` tells the worker: the URL key's parts. */
  #config;
  /** The URL provider, when the page gave one: called here whenever the hub asks. */
  #provider;
  #client = crypto.randomUUID();
  #port;
  /** Messages made before the worker was told who this tab is. */
  #pending = [];
  #attached = false;
  /** Releases this tab's Web Lock. */
  #unlock;
  /** Detached by `close()` (until `reconnect()`), or by `pagehide`. */
  #closed = false;
  #disposed = false;
  #rooms = new Set();
  #roomsStarted = false;
  /** Request number → [resolve, reject, room, json, id]: `id` once the hub has told it. */
  #publishes = new Map();
  #nextRequest = 1;
  /** Room → the position `{ epoch, offset }` of the last message this tab heard in it: a new
   * hub replays a room from the position it restored, which may be before it. */
  #heard = new Map();
  #binaryType = "blob";
  #handlers = new Map();
  /** The worker's socket as last reported: state, url, protocol, rtt, queued, buffered,
   * extensions. */
  #snap = { state: "connecting", url: "", protocol: "", rtt: undefined, queued: 0, buffered: 0, extensions: "" };
  #onPageHide = (event) => {
    if (!event.persisted) this.#detach();
  };

  /**
   * `new LifelineSocket(url, protocols?, options?)`, or `(url, options?)`, as in the main entry;
   * `share` is true, absent, or the shared socket's name (needed with a URL provider); for an
   * unshared socket, import `ws-lifeline`.
   */
  constructor(url, protocols, options) {
    super();
    if (options === undefined && typeof protocols === "object" && protocols && !Array.isArray(protocols)) {
      options = protocols;
      protocols = undefined;
    }
    options ??= {};
    if (typeof options !== "object") throw invalid("options must be an object");
    const { share } = options;
    const name = typeof share === "string" && share ? share : undefined;
    if (share !== undefined && share !== true && !name) {
      throw invalid("`ws-lifeline/shared` makes shared sockets only (`share` is true or a name): import `ws-lifeline` for `share: false`");
    }
    // A provider stays in its page: the hub asks a tab for each attempt's URL. Tabs cannot
    // compare providers, so they share by name.
    if (typeof url === "function" && !name) {
      throw invalid('a URL provider needs the shared socket\'s name: `share: "name"`');
    }
    if (protocols === undefined || protocols === null) protocols = options.protocols;
    else if (options.protocols !== undefined) {
      throw invalid("subprotocols given both as an argument and as the option `protocols`");
    }
    const { protocols: _ignored, ...rest } = options;
    if (protocols === undefined) protocols = [];
    else if (typeof protocols === "string") protocols = [protocols];
    else if (!Array.isArray(protocols) || protocols.some((p) => typeof p !== "string")) {
      throw invalid("`protocols` must be a string or an array of strings");
    }
    const hasWorker = typeof SharedWorker === "function";
    if (!hasWorker && !(typeof BroadcastChannel === "function" && globalThis.navigator?.locks)) {
      throw lifelineError("ERR_PLATFORM", "this browser has neither SharedWorker nor BroadcastChannel and Web Locks");
    }
    const href = typeof url === "function" ? undefined : socketUrl(url);
    if (href === undefined) this.#provider = url;
    const crossing = crossingOptions(rest);
    this.#snap.url = href ?? "";
    this.#config = {
      key: canonical([name === undefined ? href : { name }, protocols, crossing]),
      url: href,
      provider: href === undefined,
      protocols,
      options: crossing,
    };
    if (hasWorker) this.#connectWorker();
    else this.#follow();
    globalThis.addEventListener?.("pagehide", this.#onPageHide);
    this.#attach();
  }

  /** Connects to the origin's SharedWorker, starting it if none runs. */
  #connectWorker() {
    const worker = new SharedWorker(new URL("./shared-worker.js", import.meta.url), {
      type: "module",
      name: WORKER_NAME,
    });
    worker.addEventListener("error", () => this.#fail("the shared worker failed to start"));
    const port = (this.#port = worker.port);
    port.onmessage = ({ data }) => {
      if (this.#port === port) this.#receive(data);
    };
  }

  /**
   * Watches the worker's own Web Lock (`name`, from its `attached`): granted to this tab only
   * once the worker is gone, for instance with the process that hosted it, which Chromium does
   * not report on the port. Then a new worker takes this tab.
   */
  #watchWorker(name) {
    this.#workerWatch?.abort();
    const watch = (this.#workerWatch = new AbortController());
    navigator.locks
      .request(name, { signal: watch.signal }, () => {
        if (this.#workerWatch !== watch || this.#disposed || this.#closed) return;
        this.#connectWorker();
        this.#rejoin();
      })
      .catch(() => {});
  }

  /** Stops `#watchWorker`. */
  #workerWatch;

  /** Attaches to a new hub (worker or leader), rooms included, and hands it this tab's
   * unacknowledged publishes, under their request numbers: with the id the last hub gave each
   * (the new hub resends it under that id if its store held it, else as new). */
  #rejoin() {
    this.#attached = false;
    this.#attach();
    for (const [request, [, , room, json, id]] of this.#publishes) this.#post("publish", { request, room, json, id });
  }

  #fail(message) {
    const error = lifelineError("ERR_PLATFORM", message);
    this.#dispatch(Object.assign(new Event("error"), { error, message }));
  }

  /**
   * Without SharedWorker: talks to the leader over a `BroadcastChannel` of this URL key, and
   * asks to lead. The tab granted the leader lock runs the hub until it disposes or goes; then
   * the next tab waiting is granted it, and every tab attaches to the new leader, resending its
   * unacknowledged publishes.
   */
  #follow() {
    const name = `ws-lifeline:${this.#config.key}`;
    const channel = new BroadcastChannel(name);
    this.#port = {
      postMessage: (message) => channel.postMessage({ ...message, client: this.#client }),
      close: () => channel.close(),
    };
    channel.onmessage = ({ data }) => {
      if (data?.to === this.#client) this.#receive(data);
      else if (data?.v === PROTOCOL_VERSION && data.ev === "leader" && !this.#disposed && !this.#closed) {
        this.#rejoin();
      }
    };
    navigator.locks.request(LEADER_PREFIX + this.#config.key, async () => {
      if (this.#disposed) return;
      let stop;
      try {
        const { serveChannel } = await import("./shared-hub.js");
        const hub = new BroadcastChannel(name);
        const stopServing = serveChannel(hub);
        stop = () => {
          stopServing();
          hub.close();
        };
        hub.postMessage({ v: PROTOCOL_VERSION, ev: "leader" });
      } catch {
        return this.#fail("the hub failed to load");
      }
      // Leads until disposed; a tab that closes or crashes releases the lock with it.
      await new Promise((resolve) => (this.#resign = resolve));
      stop();
    });
  }

  /** Ends this tab's lead (without SharedWorker). */
  #resign;

  /** Holds this tab's lock, then tells the worker who it is, then what was asked meanwhile. */
  #attach() {
    this.#closed = false;
    const attach = () => {
      if (this.#disposed || this.#closed) return;
      this.#port.postMessage({
        v: PROTOCOL_VERSION,
        op: "attach",
        client: this.#client,
        ...this.#config,
        rooms: [...this.#rooms],
        roomsLayer: this.#roomsStarted,
      });
      this.#attached = true;
      for (const message of this.#pending.splice(0)) this.#port.postMessage(message);
    };
    if (this.#unlock || !globalThis.navigator?.locks) return attach();
    // Granted at once: the name is this tab's own. Held until dispose, so the worker is granted
    // it only once this tab is gone.
    navigator.locks.request(LOCK_PREFIX + this.#client, () => {
      const held = new Promise((resolve) => (this.#unlock = resolve));
      attach();
      return held;
    });
  }

  /** Tells the worker this tab is done (its rooms, listeners and port), keeping the lock. */
  #detach() {
    this.#workerWatch?.abort();
    if (this.#attached) this.#port.postMessage({ v: PROTOCOL_VERSION, op: "detach" });
    this.#attached = false;
    this.#closed = true;
    this.#pending.length = 0;
  }

  #post(op, fields) {
    const message = { v: PROTOCOL_VERSION, op, ...fields };
    if (this.#attached) this.#port.postMessage(message);
    else if (!this.#closed) this.#pending.push(message);
  }

  #receive(message) {
    if (this.#disposed || this.#closed || message?.v !== PROTOCOL_VERSION) return;
    const before = this.#snap.state;
    if (message.snap) this.#snap = message.snap;
    // A tab attaching to a socket that is open already hears its state, as its other tabs did.
    if (message.ev === "attached" && message.snap && message.snap.state !== before) {
      this.#dispatch(Object.assign(new Event("statechange"), { state: message.snap.state }));
    }
    if (message.ev === "attached" && message.lock && globalThis.navigator?.locks) this.#watchWorker(message.lock);
    if (message.ev === "event") this.#event(message.type, message.fields);
    else if (message.ev === "reply") this.#reply(message);
    else if (message.ev === "url") this.#giveUrl(message.request);
  }

  /** Answers the hub's request for a connection attempt's URL with this tab's provider. */
  async #giveUrl(request) {
    let answer;
    try {
      answer = { url: socketUrl(await this.#provider()) };
    } catch (error) {
      answer = { error: error instanceof Error ? error.message : String(error) };
    }
    if (this.#attached && !this.#disposed) this.#port.postMessage({ v: PROTOCOL_VERSION, op: "url", request, ...answer });
  }

  #event(type, fields) {
    if (type === "roomMessage") {
      const last = this.#heard.get(fields.room);
      if (last?.epoch === fields.epoch && fields.offset <= last.offset) return;
      this.#heard.set(fields.room, { epoch: fields.epoch, offset: fields.offset });
    }
    if (type === "message") {
      let data = fields.data;
      if (this.#binaryType === "blob" && data instanceof ArrayBuffer) data = new Blob([data]);
      return this.#dispatch(new MessageEvent("message", { data }));
    }
    if (fields.error) {
      fields.error = liftError(fields.error);
      if (type === "error") fields.message = fields.error.message;
    }
    this.#dispatch(type === "close" ? new CloseEvent(type, fields) : Object.assign(new Event(type), fields));
  }

  /** The worker's answer to a `publish`: its id, then the ack or the error. */
  #reply({ request, id, ack, error }) {
    const settle = this.#publishes.get(request);
    if (!settle) return;
    if (!ack && !error) {
      settle[4] = id;
      return;
    }
    this.#publishes.delete(request);
    const [resolve, reject, room] = settle;
    if (ack) {
      this.#dispatch(Object.assign(new Event("ack"), ack));
      resolve(ack);
    } else {
      const lifted = liftError(error);
      if (lifted.publishId !== undefined) {
        this.#dispatch(Object.assign(new Event("publishFailed"), { id: lifted.publishId, room, error: lifted }));
      }
      reject(lifted);
    }
  }

  #dispatch(event) {
    if (!this.#disposed) this.dispatchEvent(event);
  }

  #live() {
    if (this.#disposed) throw lifelineError("ERR_DISPOSED", "the LifelineSocket was disposed");
  }

  #startRooms() {
    if (this.#roomsStarted) return;
    this.#roomsStarted = true;
    this.#post("rooms");
  }

  get disposed() {
    return this.#disposed;
  }

  /** The shared socket's state; "closed" once this tab closed or disposed. */
  get state() {
    return this.#disposed || this.#closed ? "closed" : this.#snap.state;
  }

  get readyState() {
    return READY_STATES[this.state];
  }

  get url() {
    return this.#disposed ? "" : this.#snap.url;
  }

  get protocol() {
    return this.#disposed ? "" : this.#snap.protocol;
  }

  get rtt() {
    return this.#disposed ? undefined : this.#snap.rtt;
  }

  /** The shared socket's, as of the worker's last report. */
  get bufferedAmount() {
    return this.#snap.buffered;
  }

  get extensions() {
    return this.#snap.extensions;
  }

  get binaryType() {
    return this.#binaryType;
  }

  set binaryType(type) {
    if (type === "blob" || type === "arraybuffer") this.#binaryType = type;
  }

  /** The shared socket's queue, as of the worker's last report. */
  get queuedMessages() {
    return this.#disposed ? 0 : this.#snap.queued;
  }

  /** This tab's publishes that await their ack. */
  get unackedPublishes() {
    return this.#publishes.size;
  }

  /** Hands `data` to the worker. The answer is what the socket's state suggests; a refusal
   * (`ERR_QUEUE_FULL`, `ERR_TOO_LARGE`) arrives as an `error` event in this tab. */
  send(data) {
    this.#live();
    if (this.#closed) throw lifelineError("ERR_CLOSED", "the client is closed");
    if (ArrayBuffer.isView(data)) data = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    else if (typeof data !== "string" && !(data instanceof ArrayBuffer)) {
      throw invalid("send takes a string, an ArrayBuffer or an ArrayBufferView");
    }
    this.#post("send", { data });
    return this.#snap.state === "open" ? "sent" : "queued";
  }

  /** Closes this tab's use of the shared socket: its rooms are released, and the socket closes
   * only when no other tab uses it. `code` and `reason` are those of this tab's `close` event. */
  close(code, reason) {
    this.#live();
    if (code !== undefined && !(code === 1000 || (Number.isInteger(code) && code >= 3000 && code <= 4999))) {
      throw lifelineError("ERR_INVALID_CLOSE_CODE", `invalid close code ${code}: use 1000 or 3000-4999`, {
        closeCode: code,
      });
    }
    if (reason !== undefined && typeof reason !== "string") throw invalid("the close reason must be a string");
    const bytes = new TextEncoder().encode(reason ?? "").length;
    if (bytes > 123) {
      throw lifelineError("ERR_CLOSE_REASON_TOO_LONG", `the close reason is ${bytes} bytes, over 123`, { bytes });
    }
    if (this.#closed) return;
    this.#detach();
    this.#dispatch(Object.assign(new Event("statechange"), { state: "closed" }));
    this.#dispatch(new CloseEvent("close", { code: code ?? 1000, reason: reason ?? "", wasClean: true }));
  }

  /** After `close()`: attaches this tab again (its rooms rejoined). Otherwise: the shared
   * socket connects again now, for every tab. */
  reconnect() {
    this.#live();
    if (this.#closed) this.#attach();
    else this.#post("reconnect");
  }

  join(room) {
    this.#live();
    room = roomName(room);
    this.#startRooms();
    if (this.#rooms.has(room)) return;
    this.#rooms.add(room);
    this.#post("join", { room });
  }

  /** Leaves a room for this tab (the socket leaves it with the last tab); false if this tab
   * had not joined it. */
  leave(room) {
    this.#live();
    room = roomName(room);
    this.#startRooms();
    if (!this.#rooms.delete(room)) return false;
    this.#post("leave", { room });
    return true;
  }

  /** As in the main entry; settles in this tab only. */
  publish(room, data) {
    try {
      this.#live();
      room = roomName(room);
      this.#startRooms();
      let json;
      try {
        json = JSON.stringify(data);
      } catch (exception) {
        throw lifelineError("ERR_ENCODE", `could not encode the data as JSON: ${exception?.message ?? exception}`);
      }
      if (typeof json !== "string") {
        throw invalid("publish data must be a JSON value (not undefined, a function or a symbol)");
      }
      if (!this.#rooms.has(room)) throw lifelineError("ERR_NOT_JOINED", `room ${room} is not joined`, { room });
      if (this.#closed) throw lifelineError("ERR_CLOSED", "the client is closed");
      const request = this.#nextRequest++;
      this.#post("publish", { request, room, json });
      return new Promise((resolve, reject) => this.#publishes.set(request, [resolve, reject, room, json]));
    } catch (thrown) {
      return Promise.reject(thrown);
    }
  }

  /** Asks the server for the room list (a `rooms` event, in every tab using rooms); false when
   * the shared socket is not open. */
  listRooms() {
    this.#live();
    this.#startRooms();
    if (this.state !== "open") return false;
    this.#post("listRooms");
    return true;
  }

  /** Empties the shared socket's outbox (and its store), for every tab: its publishes fail with
   * ERR_OUTBOX_CLEARED in the tabs that made them and are not resent. */
  clearOutbox() {
    this.#live();
    this.#post("clearOutbox");
  }

  addEventListener(type, listener, options) {
    this.#live();
    if (ROOM_EVENTS.has(String(type))) this.#startRooms();
    super.addEventListener(type, listener, options);
  }

  on(type, listener, options) {
    this.addEventListener(type, listener, options);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    if (!this.#disposed) this.removeEventListener(type, listener);
  }

  /** Releases this tab's side: the worker forgets its rooms and listeners, its pending
   * publishes reject with ERR_CLOSED (the worker still delivers them), no listener fires
   * again, and the Web Lock and port go. Idempotent. */
  dispose() {
    if (this.#disposed) return;
    this.#detach();
    this.#disposed = true;
    globalThis.removeEventListener?.("pagehide", this.#onPageHide);
    this.#unlock?.();
    this.#resign?.();
    this.#port.close();
    for (const [, reject] of this.#publishes.values()) reject(lifelineError("ERR_CLOSED", "the client is closed"));
    this.#publishes.clear();
    for (const [type, { call }] of this.#handlers) remove.call(this, type, call);
    this.#handlers.clear();
  }

  free() {
    this.dispose();
  }

  [Symbol.dispose ?? Symbol.for("Symbol.dispose")]() {
    this.dispose();
  }
}
