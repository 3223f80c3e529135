// The package entry: the wasm-bindgen glue (ws_lifeline.js) plus the JS-shaped work, which
// costs far fewer bytes here than as wasm imports and export shims. `LifelineSocket` here
// checks arguments and options, builds every event object and every `LifelineError` from the
// plain values the wasm hands over (`__emit`, thrown `[code, message, a, b]`), keeps the
// listeners and `on…` handlers (the wasm holds this object only weakly), adds WebSocket's
// constants, `on`/`off` (addEventListener that returns its own remover), and makes
// dispose/free/[Symbol.dispose] safe to call in any order and any number of times.
import init, { __live, initSync, LifelineSocket as WasmLifelineSocket } from "./ws_lifeline.js";

export { init as default, initSync };

/**
 * Sockets that must not be garbage-collected: not disposed, not closed for good, and with a
 * listener or handler, as the browser keeps a `WebSocket` with listeners alive while it is
 * open. The wasm reaches a socket only through a WeakRef, and its listeners live on the
 * socket itself, so without this a socket the page keeps no reference to would be collected
 * and closed mid-stream.
 */
const RETAINED = new Set();

/** Event types, by the kind number the wasm emits: the socket's nine, then protocol v1's. */
const TYPES = [
  "open", "message", "error", "close", "reconnecting", "statechange", "giveup", "offline", "online",
  "welcome", "joined", "recovery", "roomMessage", "left", "ack", "publishFailed", "presence",
  "rooms", "serverError", "badFrame",
];
const SOCKET_TYPES = 9;

/** Event types with an `on…` property, as on `WebSocket`. */
const HANDLER_TYPES = TYPES.slice(0, 7);

const STATES = ["connecting", "open", "closing", "closed", "reconnecting"];
const READY_STATES = [0, 1, 2, 3, 0];
const SENT = ["sent", "queued"];

/** An error's fields by code, from the `a` and `b` the wasm throws with it. */
const FIELDS = {
  ERR_INVALID_URL: (a) => ({ supplied: a }),
  ERR_INVALID_CLOSE_CODE: (a) => ({ closeCode: a }),
  ERR_CLOSE_REASON_TOO_LONG: (a) => ({ bytes: a }),
  ERR_QUEUE_FULL: (a, b) => ({ limit: { [a]: b } }),
  ERR_CONNECT_TIMEOUT: (a) => ({ afterMs: a }),
  ERR_INVALID_ROOM: (a) => ({ room: a }),
  ERR_NOT_JOINED: (a) => ({ room: a }),
  ERR_TOO_MANY_UNACKED: (a) => ({ limit: { unacked: a } }),
  ERR_PUBLISH_TIMEOUT: (a, b) => ({ publishId: a, afterMs: b }),
  ERR_PUBLISH_REFUSED: (a, b) => ({ publishId: a, serverCode: b }),
  ERR_LEFT_ROOM: (a, b) => ({ publishId: a, room: b }),
};

/** A `LifelineError`: a real `Error` (with a stack) carrying a machine-readable `code`. */
function lifelineError(code, message, a, b) {
  const error = new Error(message);
  error.name = "LifelineError";
  error.code = code;
  return Object.assign(error, FIELDS[code]?.(a, b));
}

/** The error for what the wasm threw: `[code, message, a, b]`; anything else as it is. */
function lift(thrown) {
  return Array.isArray(thrown) ? lifelineError(...thrown) : thrown;
}

const invalid = (message) => lifelineError("ERR_INVALID_ARGUMENT", message);
const disposedError = () => lifelineError("ERR_DISPOSED", "the LifelineSocket was disposed");

/** Text for a value someone threw or passed: `Error`s as `name: message`, never throwing. */
function describe(value) {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  try {
    return String(value);
  } catch {
    return typeof value;
  }
}

/** A URL as text: a string, or an object such as `URL` by its `toString()`. */
function urlText(value) {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null) return describe(value);
}

/** Hands an exception to the page as `EventTarget` does: `reportError`, else the console. */
function report(exception) {
  if (typeof reportError === "function") reportError(exception);
  else console.error(exception);
}

/** Calls a listener as `EventTarget` does; an exception goes to `reportError`, not the caller. */
function invoke(listener, target, event) {
  try {
    if (typeof listener === "function") listener.call(target, event);
    else if (typeof listener.handleEvent === "function") listener.handleEvent(event);
  } catch (exception) {
    report(exception);
  }
}

/** True for errors made by this package. */
export function isLifelineError(value) {
  return value instanceof Error && value.name === "LifelineError" && typeof value.code === "string";
}

/** What the browser shell holds right now across all sockets; all zeros once every socket
 * is disposed. For leak checks. */
export function liveResources() {
  const [sockets, listeners, timers, predicates] = __live();
  return { sockets, listeners, timers, predicates };
}

/** The numeric options, in the order the wasm reads them (NaN: not given). */
const NUMBERS = [
  "minDelay", "maxDelay", "backoffFactor", "maxRetries", "connectTimeout", "minUptime",
  "heartbeat", "interval", "timeout", "maxQueuedMessages", "maxQueuedBytes", "highWaterMark",
  "ackTimeout", "maxUnacked",
];

function number(object, key) {
  const value = object[key];
  if (value === undefined) return NaN;
  if (typeof value === "number" && value >= 0) return value;
  throw invalid(`option \`${key}\` must be a non-negative number, got ${describe(value)}`);
}

/** Checks `options` and turns them into the constructor's numbers, protocols and rule. */
function parseOptions(options) {
  const numbers = NUMBERS.map(() => NaN);
  if (options === undefined || options === null) return [numbers, []];
  if (typeof options !== "object") throw invalid("options must be an object");
  const protocolsError = "option `protocols` must be a string or an array of strings";
  let protocols = options.protocols;
  if (protocols === undefined) protocols = [];
  else if (typeof protocols === "string") protocols = [protocols];
  else if (!Array.isArray(protocols) || protocols.some((p) => typeof p !== "string")) {
    throw invalid(protocolsError);
  }
  NUMBERS.forEach((key, at) => {
    if (key === "heartbeat" || key === "interval" || key === "timeout") return;
    numbers[at] = number(options, key);
  });
  const heartbeat = options.heartbeat;
  if (heartbeat === false) numbers[6] = 1;
  else if (typeof heartbeat === "object" && heartbeat !== null) {
    numbers[7] = number(heartbeat, "interval");
    numbers[8] = number(heartbeat, "timeout");
  } else if (heartbeat !== undefined && heartbeat !== true) {
    throw invalid("option `heartbeat` must be false or { interval, timeout }");
  }
  const isTerminal = options.isTerminalClose;
  let rule;
  if (typeof isTerminal === "function") {
    // An exception is reported, and the default rule decides (the wasm sees `undefined`).
    rule = (code) => {
      try {
        return !!isTerminal(code);
      } catch (exception) {
        report(exception);
      }
    };
  } else if (isTerminal !== undefined && isTerminal !== null) {
    throw invalid("option `isTerminalClose` must be a function");
  }
  return [numbers, protocols, rule];
}

/** The constructor's `url`: text, or a provider wrapped to resolve with text or reject with
 * the reason as text. */
function parseUrl(url) {
  if (typeof url === "function") {
    const settle = (value) => {
      const text = urlText(value);
      if (text === undefined) throw "the URL provider returned neither a string nor a URL";
      return text;
    };
    return () => {
      try {
        return Promise.resolve(url()).then(settle, (e) => Promise.reject(describe(e)));
      } catch (exception) {
        return Promise.reject(describe(exception));
      }
    };
  }
  const text = urlText(url);
  if (text === undefined) throw invalid("url must be a string, a URL or a function returning one");
  return text;
}

/** Each kind's event fields from the values `__emit` gets. */
const ack = (id, room, offset, duplicate) => ({ id, room, offset, duplicate });
const FIELDS_OF = [
  (protocol) => ({ protocol }),
  (data) => ({ data }),
  (error) => ((error = lift(error)), { message: error.message, error }),
  (code, reason, wasClean) => ({ code, reason, wasClean }),
  (attempt, delay) => ({ attempt, delay }),
  (state) => ({ state: STATES[state] }),
  () => ({}),
  () => ({}),
  () => ({}),
  (resumed, name) => ({ resumed, name }),
  (room, epoch, offset) => ({ room, epoch, offset }),
  (room, recovered, sinceEpoch, sinceOffset, epoch, offset) => ({
    room,
    recovered,
    since: { epoch: sinceEpoch, offset: sinceOffset },
    epoch,
    offset,
  }),
  (room, offset, from, data, ts) => ({ room, offset, from, data: JSON.parse(data), ts }),
  (room) => ({ room }),
  ack,
  (id, room, error) => ({ id, room, error: lift(error) }),
  (room, members) => ({ room, members }),
  (flat) => {
    const rooms = [];
    for (let at = 0; at < flat.length; at += 2) rooms.push({ room: flat[at], members: flat[at + 1] });
    return { rooms };
  },
  (code, message) => ({ code, message }),
  (raw, message) => ({ raw, message }),
];

const HAS_ROOMS = "join" in WasmLifelineSocket.prototype;

export class LifelineSocket extends WasmLifelineSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  static {
    for (const type of HANDLER_TYPES) {
      Object.defineProperty(this.prototype, `on${type}`, {
        get() {
          return this.#handlers.get(type) ?? null;
        },
        set(handler) {
          if (this.disposed) return;
          if (typeof handler === "function") this.#handlers.set(type, handler);
          else this.#handlers.delete(type);
          this.#retain();
        },
        configurable: true,
        enumerable: true,
      });
    }
  }

  /** Set by `free()`: no wasm object behind this one any more. */
  #freed = false;
  /** Set by `dispose()` and `free()`; read on every event, so kept here, not asked of the wasm. */
  #disposed = false;
  /** type → [{ listener, once, release }] in registration order. */
  #listeners = new Map();
  #handlers = new Map();

  constructor(url, options) {
    const [numbers, protocols, rule] = parseOptions(options);
    const target = parseUrl(url);
    try {
      super(target, new Float64Array(numbers), protocols, rule);
    } catch (thrown) {
      throw lift(thrown);
    }
    this.__attachTarget(this);
  }

  get disposed() {
    return this.#disposed;
  }

  /** The finer-grained state: connecting, open, closing, reconnecting, closed. */
  get state() {
    return this.#freed ? "closed" : STATES[this.__state()];
  }

  /** `WebSocket`'s `readyState`: 0 connecting (also while waiting to reconnect), 1 open,
   * 2 closing, 3 closed. */
  get readyState() {
    return this.#freed ? 3 : READY_STATES[this.__state()];
  }

  #live() {
    if (this.disposed) throw disposedError();
  }

  /** Sends a string, `ArrayBuffer` or view now if open, otherwise queues it. */
  send(data) {
    // The wasm answers ERR_DISPOSED itself; checked here only for a freed object (no wasm
    // behind it) and before refusing an argument, so the hot path makes one call into wasm.
    if (this.#freed) throw disposedError();
    let sent;
    try {
      if (typeof data === "string") sent = this.__sendText(data);
      else if (data instanceof ArrayBuffer) sent = this.__sendBytes(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) {
        sent = this.__sendBytes(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      }
    } catch (thrown) {
      throw lift(thrown);
    }
    if (sent === undefined) {
      this.#live();
      throw invalid("send takes a string, an ArrayBuffer or an ArrayBufferView");
    }
    return SENT[sent];
  }

  /** Closes for good (no reconnect), with an optional code (1000, 3000–4999) and reason. */
  close(code, reason) {
    this.#live();
    if (code !== undefined && !(Number.isInteger(code) && code >= 0 && code <= 65535)) {
      throw lifelineError(
        "ERR_INVALID_CLOSE_CODE",
        `invalid close code ${describe(code)}: use 1000 or 3000-4999`,
        code,
      );
    }
    if (reason !== undefined && typeof reason !== "string") {
      throw invalid("the close reason must be a string");
    }
    try {
      this.__close(code, reason);
    } catch (thrown) {
      throw lift(thrown);
    }
  }

  /** Connects again now, also after `close()`, `giveup` or a terminal close. */
  reconnect() {
    try {
      super.reconnect();
    } catch (thrown) {
      throw lift(thrown);
    }
    this.#retain();
  }

  /**
   * Registers a listener (a function or an object with `handleEvent`) for one event type, once
   * per type as with `EventTarget`. Options: `once`, `signal`. A listener for a room event
   * starts the rooms layer.
   */
  addEventListener(type, listener, options) {
    this.#live();
    const kind = TYPES.indexOf(type);
    if (kind < 0 || (kind >= SOCKET_TYPES && !HAS_ROOMS)) {
      const known = HAS_ROOMS ? TYPES : TYPES.slice(0, SOCKET_TYPES);
      throw invalid(`unknown event type "${type}"; expected one of ${known.join(", ")}`);
    }
    if (listener == null) return;
    if (kind >= SOCKET_TYPES) {
      try {
        this.__startRooms();
      } catch (thrown) {
        throw lift(thrown);
      }
    }
    if (typeof listener !== "function" && typeof listener !== "object") {
      throw invalid("a listener must be a function or an object with handleEvent");
    }
    const list = this.#listeners.get(type) ?? [];
    if (list.some((entry) => entry.listener === listener)) return;
    const once = typeof options === "object" && options !== null && !!options.once;
    const signal = typeof options === "object" && options !== null ? options.signal : undefined;
    if (signal?.aborted) return;
    const entry = { listener, once, release: undefined };
    if (signal) {
      const abort = () => this.#remove(type, entry);
      signal.addEventListener("abort", abort, { once: true });
      entry.release = () => signal.removeEventListener("abort", abort);
    }
    list.push(entry);
    this.#listeners.set(type, list);
    this.#retain();
  }

  /** Removes a listener registered with `addEventListener`, releasing it. */
  removeEventListener(type, listener) {
    const entry = this.#listeners.get(type)?.find((e) => e.listener === listener);
    if (entry) this.#remove(type, entry);
  }

  #remove(type, entry) {
    const list = this.#listeners.get(type);
    const at = list ? list.indexOf(entry) : -1;
    if (at < 0) return;
    list.splice(at, 1);
    if (list.length === 0) this.#listeners.delete(type);
    entry.release?.();
    this.#retain();
  }

  #retain() {
    const wanted =
      !this.disposed && this.state !== "closed" && (this.#listeners.size > 0 || this.#handlers.size > 0);
    if (wanted) RETAINED.add(this);
    else RETAINED.delete(this);
  }

  /** Called by the wasm with each event, as its kind and fields: builds the event, then runs
   * the listeners (a copy, so they may change the list or dispose the socket), then the
   * `on…` handler. */
  __emit(kind, a, b, c, d, e, f) {
    const type = TYPES[kind];
    const event = Object.assign(FIELDS_OF[kind](a, b, c, d, e, f), { type, target: this });
    for (const entry of [...(this.#listeners.get(type) ?? [])]) {
      if (this.disposed || !this.#listeners.get(type)?.includes(entry)) continue;
      if (entry.once) this.#remove(type, entry);
      invoke(entry.listener, this, event);
    }
    const handler = this.#handlers.get(type);
    if (handler && !this.disposed) invoke(handler, this, event);
    if (type === "statechange") this.#retain();
  }

  /**
   * `addEventListener` that returns an unsubscribe function. Room events (`roomMessage`,
   * `presence`, …) and socket events (`open`, `close`, …) alike.
   */
  on(type, listener, options) {
    this.addEventListener(type, listener, options);
    return () => this.off(type, listener);
  }

  /** `removeEventListener`; does nothing once disposed. */
  off(type, listener) {
    if (!this.disposed) this.removeEventListener(type, listener);
  }

  #release() {
    for (const list of this.#listeners.values()) for (const entry of list) entry.release?.();
    this.#listeners.clear();
    this.#handlers.clear();
    RETAINED.delete(this);
  }

  dispose() {
    this.#disposed = true;
    if (!this.#freed) super.dispose();
    this.#release();
  }

  free() {
    if (this.#freed) return;
    this.#freed = this.#disposed = true;
    super.free();
    this.#release();
  }

  [Symbol.dispose ?? Symbol.for("Symbol.dispose")]() {
    this.dispose();
  }
}

/** A room argument: a string (the wasm checks the name itself). */
function roomName(room) {
  if (typeof room !== "string") throw invalid("a room name must be a string");
  return room;
}

/** Protocol v1, where the wasm has it (not in the raw resilient-socket build). */
const ROOM_METHODS = {
  /** Joins a room: now if open, and again (with recovery) after every reconnect. */
  join(room) {
    room = roomName(room);
    try {
      WasmLifelineSocket.prototype.join.call(this, room);
    } catch (thrown) {
      throw lift(thrown);
    }
  },

  /** Leaves a room; false if it was not joined. Its unacknowledged publishes fail. */
  leave(room) {
    room = roomName(room);
    try {
      return WasmLifelineSocket.prototype.leave.call(this, room);
    } catch (thrown) {
      throw lift(thrown);
    }
  },

  /** Publishes JSON `data` to a joined room. Never throws: the promise resolves with the
   * server's ack `{id, room, offset, duplicate}` or rejects with a `LifelineError`. */
  publish(room, data) {
    try {
      room = roomName(room);
      let json;
      try {
        json = JSON.stringify(data);
      } catch (exception) {
        throw lifelineError("ERR_ENCODE", `could not encode the data as JSON: ${describe(exception)}`);
      }
      if (typeof json !== "string") {
        throw invalid("publish data must be a JSON value (not undefined, a function or a symbol)");
      }
      return this.__publish(room, json).then(
        (fields) => ack(...fields),
        (thrown) => Promise.reject(lift(thrown)),
      );
    } catch (thrown) {
      return Promise.reject(lift(thrown));
    }
  },

  /** Asks the server for the room list (a `rooms` event); false when not connected. */
  listRooms() {
    try {
      return WasmLifelineSocket.prototype.listRooms.call(this);
    } catch (thrown) {
      throw lift(thrown);
    }
  },
};

if (HAS_ROOMS) {
  for (const [name, method] of Object.entries(ROOM_METHODS)) {
    Object.defineProperty(LifelineSocket.prototype, name, {
      value: method,
      writable: true,
      configurable: true,
    });
  }
}
