// The package entry: the wasm-bindgen glue (ws_lifeline.js) plus the browser shell and the
// JS-shaped work, which cost far fewer bytes here than as wasm imports, closures and export
// shims. The wasm (`src/js.rs`) runs the sans-IO machine and decides everything; this file
// carries it out: it owns the `WebSocket` and its listeners, the one timer, the
// `online`/`offline`/`visibilitychange` listeners, the URL provider's promise and the publish
// promises, and releases all of them on `dispose()`. It also checks arguments and options,
// builds every event (a real `Event`, `MessageEvent` or `CloseEvent`) and every
// `LifelineError` from the plain values the wasm hands over (`__emit`, `__message`, thrown
// `[code, message, detail, bound]`), dispatches the events as the `EventTarget` it is, adds
// WebSocket's constants, `binaryType`, `extensions` and `on`/`off`, and makes
// dispose/free/[Symbol.dispose] safe to call in any order and any number of times. It can
// stand in for `WebSocket`: `new LifelineSocket(url, protocols?, options?)`.
import init, { __live, initSync, LifelineSocket as Machine } from "./ws_lifeline.js";
// The numbers of the boundary with the wasm, generated from `src/js/boundary.rs`.
import * as boundary from "./boundary.gen.js";

export { init as default, initSync };

// No ritual: the module loads its wasm itself (from `ws_lifeline_bg.wasm` beside the glue), so
// the constructor works right after `import`. Top-level await rather than a queue: the
// constructor and every getter stay synchronous, as `WebSocket`'s are, and Chromium, Node,
// Deno, Bun, Vite and rolldown all take it. Under Node, `node.js` has loaded the wasm from
// its file first, and this returns at once. A failed load is reported, not thrown, so that a
// page can still `init()` its wasm from elsewhere.
await init().catch(report);

/**
 * Sockets that must not be garbage-collected: not disposed, not closed for good, and with a
 * listener or handler, as the browser keeps a `WebSocket` with listeners alive while it is
 * open. The shell's own callbacks reach a socket only through a `WeakRef`, and the page's
 * listeners live on the socket itself, so without this a socket the page keeps no reference
 * to would be collected and closed mid-stream.
 */
const RETAINED = new Set();

/* global HAS_ROOMS, HAS_DEBUGGING, HAS_PERSIST */
// `HAS_ROOMS` and `HAS_DEBUGGING` are replaced by the package build (`xtask/src/npm.rs`,
// rolldown's `define`): false for the socket entry, whose wasm has no protocol v1 and whose
// 28 KB budget leaves no room for the logger and `diagnose`, and the minifier then drops those
// parts. `HAS_PERSIST` is true only for the `ws-lifeline/persist` entry (`persist.js`), whose
// wasm has the persistent outbox: its store (`outbox.js`, with `idb`) is imported only there.

/** Protocol v1's subprotocol, offered once the rooms layer runs. */
const V1 = "lifeline.v1";

/** Event types with an `on…` property, as on `WebSocket`: open … giveup. */
const HANDLER_TYPES = boundary.PAGE_EVENT_NAMES.slice(0, boundary.PAGE_EVENT_GIVEUP + 1);

/** `WebSocket`'s `readyState` constants, on the class and its instances. */
const CONSTANTS = ["CONNECTING", "OPEN", "CLOSING", "CLOSED"];

// Called on the socket for its own listener wrappers and handlers.
const { addEventListener: add, removeEventListener: remove } = EventTarget.prototype;

/** `readyState` by state: reconnecting counts as connecting. */
const READY_STATES = [0, 1, 2, 3, 0];

/** What the shell holds right now across all sockets, for `liveResources()`. */
const held = { sockets: 0, listeners: 0, timers: 0 };

/** Registers `handler` for `type` on `target`, kept in `list` for `unlisten`. */
function listen(list, target, type, handler) {
  target.addEventListener(type, handler);
  list.push([target, type, handler]);
  held.listeners++;
}

function unlisten(list) {
  for (const [target, type, handler] of list.splice(0)) {
    target.removeEventListener(type, handler);
    held.listeners--;
  }
}

/** Clears the timer of a socket's resources (see `LifelineSocket#resources`). */
function clearTimer(resources) {
  if (resources.timer !== undefined) {
    clearTimeout(resources.timer);
    resources.timer = undefined;
    held.timers--;
  }
}

/** Releases a socket's `WebSocket`: its listeners first, so the close reports nothing. */
function dropSocket(resources) {
  const ws = resources.ws;
  if (!ws) return;
  unlisten(resources.socketListeners);
  resources.ws = null;
  resources.conn = -1;
  held.sockets--;
  try {
    ws.close(1000);
  } catch {
    // Closing a socket that is closing or closed does nothing.
  }
}

/** Releases everything the shell holds for one socket, and the wasm half. */
function release(resources) {
  clearTimer(resources);
  unlisten(resources.environment);
  dropSocket(resources);
  // IndexedDB finishes the writes already asked for before it closes.
  if (HAS_PERSIST) resources.outbox?.[0].close();
  const machine = resources.machine;
  // Freed once the current call into the wasm (`dispose()` may run inside one) has returned.
  queueMicrotask(() => machine.free());
}

/**
 * Releases a socket the page dropped without `dispose()`, once it is garbage-collected. Every
 * callback the shell registers (socket, window and document listeners, the timer, the URL
 * provider's promise) reaches the socket only through a `WeakRef`, so none of them keeps it
 * alive; while it has listeners of its own and is not closed, `RETAINED` does.
 */
const COLLECTED = typeof FinalizationRegistry === "function" ? new FinalizationRegistry(release) : undefined;

/** `[name, message]` of an exception, as the wasm's error conversion takes them; the name is
 * empty for a thrown value that is not an `Error`. */
function exception(value) {
  if (value instanceof Error) return [value.name, value.message];
  return ["", typeof value === "string" ? value : `a thrown ${typeof value}`];
}

/** The names of an error's `detail` and `bound` (see `lifelineError`), by code. */
const FIELDS = {
  ERR_INVALID_URL: ["supplied"],
  ERR_INVALID_CLOSE_CODE: ["closeCode"],
  ERR_CLOSE_REASON_TOO_LONG: ["bytes"],
  ERR_CONNECT_TIMEOUT: ["afterMs"],
  ERR_TOO_LARGE: ["size", "maxMessageBytes"],
  ERR_HANDSHAKE: ["status"],
};
if (HAS_ROOMS) {
  Object.assign(FIELDS, {
    ERR_INVALID_ROOM: ["room"],
    ERR_NOT_JOINED: ["room"],
    ERR_PUBLISH_TIMEOUT: ["publishId", "afterMs"],
    ERR_PUBLISH_REFUSED: ["publishId", "serverCode"],
    ERR_LEFT_ROOM: ["publishId", "room"],
  });
}
if (HAS_PERSIST) {
  Object.assign(FIELDS, {
    ERR_OUTBOX_FULL: ["maxPublishes", "maxBytes"],
    ERR_OUTBOX_CLEARED: ["publishId"],
  });
}

/** A `LifelineError`: a real `Error` (with a stack) carrying a machine-readable `code` and
 * the refused input or the bound it broke. */
function lifelineError(code, message, detail, bound) {
  const error = Object.assign(new Error(message), { name: "LifelineError", code });
  if (code === "ERR_QUEUE_FULL") error.limit = { [detail]: bound };
  else if (code === "ERR_TOO_MANY_UNACKED") error.limit = { unacked: detail };
  else FIELDS[code]?.forEach((name, at) => (error[name] = at ? bound : detail));
  return error;
}

/** The error for what the wasm threw, `[code, message, detail, bound]`; anything else as it
 * is. */
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

/** A URL as text: a string, or an object such as `URL` by its `toString()`, resolved
 * against the page as `WebSocket` resolves it (the wasm maps `http(s):` to `ws(s):` and
 * refuses what stays invalid). */
function urlText(value) {
  let text;
  if (typeof value === "string") text = value;
  else if (typeof value === "object" && value !== null) text = describe(value);
  else return;
  try {
    return new URL(text, globalThis.document?.baseURI ?? globalThis.location?.href).href;
  } catch {
    return text;
  }
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

/** What the browser shell holds right now across all sockets (here and, for the page's
 * functions `isTerminalClose`, `ping` and `isPong`, in the wasm); all zeros once every socket
 * is disposed. For leak checks. */
export function liveResources() {
  return { ...held, predicates: __live() };
}

function number(object, key) {
  const value = object[key];
  if (value === undefined) return NaN;
  if (typeof value === "number" && value >= 0) return value;
  throw invalid(`option \`${key}\` must be a non-negative number, got ${describe(value)}`);
}

/** The page's function `fn` as the wasm calls it: its answer through `check`; an exception
 * (of either) is reported and answers `undefined`, which leaves the choice to the default. */
function guarded(fn, check) {
  return (arg) => {
    try {
      return check(fn(arg));
    } catch (exception) {
      report(exception);
    }
  };
}

/** Checks `options` and turns them into the constructor's numbers, protocols and rule. */
function parseOptions(options, protocols) {
  // No high-water mark unless asked for: an open socket takes every send, as `WebSocket` does.
  const numbers = boundary.OPTION_SLOT_NAMES.map(() => NaN);
  numbers[boundary.OPTION_SLOT_HIGH_WATER_MARK] = Infinity;
  if (options === undefined || options === null) options = {};
  if (typeof options !== "object") throw invalid("options must be an object");
  if (protocols === undefined || protocols === null) protocols = options.protocols;
  else if (options.protocols !== undefined) {
    throw invalid("subprotocols given both as an argument and as the option `protocols`");
  }
  if (protocols === undefined) protocols = [];
  else if (typeof protocols === "string") protocols = [protocols];
  else if (!Array.isArray(protocols) || protocols.some((p) => typeof p !== "string")) {
    throw invalid("`protocols` must be a string or an array of strings");
  }
  // The slots up to maxUnacked are named after their option.
  for (let slot = 0; slot <= boundary.OPTION_SLOT_MAX_UNACKED; slot++) {
    const key = boundary.OPTION_SLOT_NAMES[slot];
    if (options[key] !== undefined) numbers[slot] = number(options, key);
  }
  const heartbeat = options.heartbeat;
  let ping, isPong;
  if (heartbeat === false) numbers[boundary.OPTION_SLOT_NO_HEARTBEAT] = 1;
  else if (typeof heartbeat === "object" && heartbeat !== null) {
    numbers[boundary.OPTION_SLOT_HEARTBEAT_INTERVAL] = number(heartbeat, "interval");
    numbers[boundary.OPTION_SLOT_HEARTBEAT_TIMEOUT] = number(heartbeat, "timeout");
    for (const key of ["interval", "timeout"]) {
      if (heartbeat[key] === 0) throw invalid(`option \`${key}\` must be a positive number, got 0`);
    }
    const text = heartbeat.ping;
    if (typeof text === "string") ping = () => text;
    else if (typeof text === "function") {
      // Not a string, or an exception (reported): the default ping goes out instead.
      ping = guarded(text, (frame) => {
        if (typeof frame === "string") return frame;
        throw invalid(`heartbeat \`ping\` must return a string, got ${describe(frame)}`);
      });
    } else if (text !== undefined) throw invalid("option `ping` must be a string or a function");
    const test = heartbeat.isPong;
    if (typeof test === "function") isPong = guarded(test, Boolean);
    else if (test !== undefined) throw invalid("option `isPong` must be a function");
  } else if (heartbeat !== undefined && heartbeat !== true) {
    throw invalid("option `heartbeat` must be false or { interval, timeout, ping, isPong }");
  }
  const isTerminal = options.isTerminalClose;
  let rule;
  // An exception is reported, and the default rule decides (the wasm sees `undefined`).
  if (typeof isTerminal === "function") rule = guarded(isTerminal, Boolean);
  else if (isTerminal !== undefined && isTerminal !== null) {
    throw invalid("option `isTerminalClose` must be a function");
  }
  // Any constructor with `WebSocket`'s API: Node 20 has no global one without a flag.
  const Socket = options.WebSocket ?? globalThis.WebSocket;
  if (typeof Socket !== "function") throw invalid("option `WebSocket` must be a function");
  let log, diagnosis;
  if (HAS_DEBUGGING) {
    const logger = options.logger ?? (options.debug === true ? consoleLogger : undefined);
    if (logger !== undefined && typeof logger !== "function") throw invalid("option `logger` must be a function");
    // A logger that throws is reported, as a listener that throws is.
    log = logger && ((...entry) => { try { logger(...entry); } catch (e) { report(e); } });
    diagnosis = parseDiagnose(options.diagnose);
  }
  let store;
  const persist = options.persist;
  if (HAS_PERSIST && persist !== undefined && persist !== false) {
    const { store: name = true, maxPublishes, maxBytes } =
      typeof persist === "object" && persist ? persist : { store: persist };
    if (name !== true && (typeof name !== "string" || !name)) {
      throw invalid("option `persist` must be true, a store name or { store, maxPublishes, maxBytes }");
    }
    const bounds = [maxPublishes, maxBytes];
    if (bounds.some((n) => n !== undefined && !(Number.isSafeInteger(n) && n > 0))) {
      throw invalid("`persist.maxPublishes` and `persist.maxBytes` must be positive integers");
    }
    // Node and Deno have no IndexedDB: there the outbox cannot be kept.
    if (!globalThis.indexedDB) {
      throw lifelineError("ERR_PERSIST_UNAVAILABLE", "option `persist` needs IndexedDB, which this runtime lacks");
    }
    store = [name, bounds];
  } else if (HAS_ROOMS && !HAS_PERSIST && persist) {
    throw lifelineError("ERR_PERSIST_UNAVAILABLE", 'option `persist` needs the entry "ws-lifeline/persist"');
  }
  return [numbers, protocols, rule, ping, isPong, Socket, log, diagnosis, store];
}

/** The `diagnose` option: `[after, isTerminal]`, or undefined when off. `true` is after 3. */
function parseDiagnose(diagnose) {
  if (diagnose == null || diagnose === false) return;
  const options = diagnose === true ? {} : typeof diagnose === "number" ? { after: diagnose } : diagnose;
  // By default 401, 403 and 404 stop reconnecting.
  const { after = 3, isTerminal = (status) => [401, 403, 404].includes(status) } = Object(options);
  if (typeof options !== "object" || !(Number.isInteger(after) && after > 0) || typeof isTerminal !== "function") {
    throw invalid("option `diagnose` must be true, a count or { after, isTerminal }");
  }
  return [after, guarded(isTerminal, Boolean)];
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

/** Event fields that JS wants in another shape than the values the wasm hands over. */
/** `debug: true`: each entry to the console, at its level. */
function consoleLogger(level, message, fields) {
  console[level === "debug" ? "debug" : level](`[ws-lifeline] ${message}`, fields);
}

/** The level an event is logged at; the rest are "debug". */
const LOG_LEVELS = { error: "error", giveup: "error", close: "warn", reconnecting: "warn", badFrame: "warn", statechange: "info", open: "info", online: "info", offline: "info" };

const RESHAPE = {
  error(fields) {
    fields.error = lift(fields.error);
    fields.message = fields.error.message;
  },
  statechange(fields) {
    fields.state = boundary.STATE_NAMES[fields.state];
  },
};
if (HAS_ROOMS) {
  Object.assign(RESHAPE, {
    recovery(fields) {
      fields.since = { epoch: fields.sinceEpoch, offset: fields.sinceOffset };
      delete fields.sinceEpoch;
      delete fields.sinceOffset;
    },
    roomMessage(fields) {
      fields.data = JSON.parse(fields.data);
    },
    publishFailed(fields) {
      fields.error = lift(fields.error);
    },
    rooms(fields) {
      fields.rooms = fields.rooms.map(([room, members]) => ({ room, members }));
    },
  });
}

/** An `error` event carrying `error`, as the wasm's are built. */
const errorEvent = (error) => Object.assign(new Event("error"), { error, message: error.message });

/** `persist`: the error for a failed IndexedDB request. */
const storeFailed = (e) => lifelineError("ERR_OUTBOX_STORE", `the outbox store failed: ${describe(e)}`);

export class LifelineSocket extends EventTarget {
  static {
    CONSTANTS.forEach((name, value) => {
      for (const target of [this, this.prototype]) {
        Object.defineProperty(target, name, { value, enumerable: true });
      }
    });
    for (const type of HANDLER_TYPES) {
      // As on `WebSocket`: the handler runs among the listeners, where it was first set.
      Object.defineProperty(this.prototype, `on${type}`, {
        get() {
          return this.#handlers.get(type)?.handler ?? null;
        },
        set(handler) {
          if (this.#disposed) return;
          let slot = this.#handlers.get(type);
          if (typeof handler === "function") {
            if (slot) slot.handler = handler;
            else {
              const created = { handler, call: (event) => invoke(created.handler, this, event) };
              this.#handlers.set(type, created);
              add.call(this, type, created.call);
            }
          } else if (slot) {
            this.#handlers.delete(type);
            remove.call(this, type, slot.call);
          }
          this.#retain();
        },
        configurable: true,
        enumerable: true,
      });
    }
    // Protocol v1's methods, here so that they reach the private members.
    if (HAS_ROOMS) {
      /** `publish` (or `publishAs`, with the earlier id), called on the socket. */
      function publish(call, room, data, earlier) {
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
          const id = this.#call(call, room, call === boundary.CALL_PUBLISH ? json : [json, earlier]);
          const settled = (id) => new Promise((resolve, reject) => this.#publishes.set(id, [resolve, reject]));
          if (!HAS_PERSIST) return settled(id);
          // While the stored outbox loads, the id comes once the publish is carried out.
          const promise = id instanceof Promise ? id.then(settled) : settled(id);
          // The id (or a promise of it), for shared mode's hub: it tells the tab, which, if
          // the hub goes, asks the next one for the publish under that id (shared-hub.js).
          promise.publishId = id;
          return promise;
        } catch (thrown) {
          return Promise.reject(thrown);
        }
      }
      const methods = {
        /** Joins a room: now if open, and again (with recovery) after every reconnect. */
        join(room) {
          this.#call(boundary.CALL_JOIN, roomName(room));
        },

        /** Leaves a room; false if it was not joined. Its unacknowledged publishes fail. */
        leave(room) {
          return this.#call(boundary.CALL_LEAVE, roomName(room));
        },

        /** Publishes JSON `data` to a joined room. Never throws: the promise resolves with the
         * server's ack `{id, room, offset, duplicate}` or rejects with a `LifelineError`. */
        publish(room, data) {
          return publish.call(this, boundary.CALL_PUBLISH, room, data);
        },

        /** Asks the server for the room list (a `rooms` event); false when not connected. */
        listRooms() {
          return this.#call(boundary.CALL_LIST_ROOMS);
        },
      };
      if (HAS_PERSIST) {
        /** Empties the persistent outbox (and its store): its publishes fail with
         * ERR_OUTBOX_CLEARED and are not resent. */
        methods.clearOutbox = function () {
          this.#call(boundary.CALL_CLEAR_OUTBOX);
        };
        /** For shared mode's hub (shared-hub.js): publishes under `id`, the id an earlier
         * socket on the same store gave the publish, which the store may have missed. */
        methods.publishAs = function (room, data, id) {
          return publish.call(this, boundary.CALL_PUBLISH_AS, room, data, id);
        };
      }
      for (const [name, value] of Object.entries(methods)) {
        Object.defineProperty(this.prototype, name, { value, writable: true, configurable: true });
      }
    }
  }

  /** The wasm half: the machine, which decides what this shell does. */
  #machine;
  /**
   * What the shell holds in the browser, kept apart from this object so that `release` can
   * free it after this object was collected: the machine, the connection's `WebSocket`, its
   * number (the machine's) and its four listeners, the connection whose frames skip the wasm
   * (`passing`, see `COMMAND_PASS_MESSAGES`), the `online`/`offline`/`visibilitychange`
   * listeners and the timer.
   */
  #resources;
  /** This socket, for the shell's callbacks (see `COLLECTED`). */
  #self = new WeakRef(this);
  #disposed = false;
  /** type → [{ listener, capture, call, release }]: the page's listeners and the wrappers
   * (`call`) registered for them, which count the socket's listeners and report exceptions. */
  #listeners = new Map();
  /** type → { handler, call }: the `on…` handlers. */
  #handlers = new Map();
  #binaryType = "blob";
  #provider;
  /** The page's subprotocols, offered on every attempt. */
  #protocols;
  /** The `WebSocket` constructor of every attempt (the option, else the global one). */
  #Socket;
  /** The `logger` option (or the console's, for `debug: true`), wrapped. */
  #logger;
  /** The `diagnose` option, `[after, isTerminal]`; attempts in a row that never opened, and
   * the URL of the last one. */
  #diagnosis;
  #unopened = 0;
  #attemptUrl;
  /** Publish id → [resolve, reject]. */
  #publishes = new Map();
  /** The text frame the wasm is handling, whose `message` it reports without a copy. */
  #inboundText;
  /** `persist`: the page's rooms calls made while the stored outbox loads, as
   * `[call, a, b, settle?]`, carried out in order once it is restored (see `#restore`). */
  #waiting;

  /**
   * `new LifelineSocket(url, protocols?, options?)` as `new WebSocket(url, protocols)`, with
   * `(url, options)` also accepted.
   */
  constructor(url, protocols, options) {
    super();
    if (options === undefined && typeof protocols === "object" && protocols && !Array.isArray(protocols)) {
      options = protocols;
      protocols = undefined;
    }
    const [numbers, protocolList, rule, ping, isPong, Socket, logger, diagnosis, store] = parseOptions(options, protocols);
    this.#logger = logger;
    this.#diagnosis = diagnosis;
    const target = parseUrl(url);
    // `persist: true` keeps the outbox under the socket's URL.
    if (HAS_PERSIST && store?.[0] === true && typeof target !== "string") {
      throw invalid("option `persist` needs a store name with a URL provider");
    }
    const hasWindow = typeof window === "object" && window;
    numbers[boundary.OPTION_SLOT_SEED_HIGH] = Math.random() * 2 ** 32;
    numbers[boundary.OPTION_SLOT_SEED_LOW] = Math.random() * 2 ** 32;
    numbers[boundary.OPTION_SLOT_OFFLINE] = hasWindow && navigator.onLine === false ? 1 : 0;
    try {
      this.#machine = new Machine(
        typeof target === "string" ? target : undefined,
        new Float64Array(numbers),
        rule,
        ping,
        isPong,
      );
    } catch (thrown) {
      throw lift(thrown);
    }
    if (typeof target === "function") this.#provider = target;
    this.#protocols = [...protocolList];
    this.#Socket = Socket;
    const resources = (this.#resources = {
      machine: this.#machine,
      ws: null,
      conn: -1,
      passing: -1,
      socketListeners: [],
      environment: [],
      timer: undefined,
    });
    COLLECTED?.register(this, resources, this);
    const self = this.#self;
    if (hasWindow) {
      const on = (target, type, input) =>
        listen(resources.environment, target, type, () => self.deref()?.#input(input()));
      on(window, "online", () => boundary.INPUT_ONLINE);
      on(window, "offline", () => boundary.INPUT_OFFLINE);
      if (typeof document === "object" && document) {
        on(document, "visibilitychange", () =>
          document.visibilityState === "visible" ? boundary.INPUT_VISIBLE : boundary.INPUT_HIDDEN,
        );
      }
    }
    // The first attempt starts after the constructor has returned, so that listeners added
    // right after it hear everything, even a URL the browser refuses at once (as a
    // `WebSocket` reports its errors asynchronously). Through `self`: a closure here that
    // used `this` would keep it in the context the listeners above share.
    if (HAS_PERSIST && store !== undefined) this.#restore(store[0] === true ? target : store[0], store[1]);
    else queueMicrotask(() => self.deref()?.#input(boundary.INPUT_START));
  }

  /**
   * `persist`: loads the store's snapshot and starts the machine from it before the first
   * connection, as the Rust shell's `connect_persistent` does. The constructor cannot wait, so
   * the page's rooms calls made meanwhile wait in `#waiting` and are carried out after the
   * restore, in order: their publishes come after the restored ones. A store that cannot be
   * opened, or a snapshot this client cannot read, is reported as an `error` event; the socket
   * then runs without the outbox, or with an empty one.
   */
  #restore(name, bounds) {
    this.#waiting = [];
    const self = this.#self;
    const resources = this.#resources;
    const loaded = import("./outbox.js").then(async ({ openOutbox, SNAPSHOTS }) => {
      const db = await openOutbox();
      const text = await db.get(SNAPSHOTS, name).catch((e) => {
        db.close();
        throw e;
      });
      return [db, SNAPSHOTS, text];
    });
    const start = (db, snapshots, text) => {
      const socket = self.deref();
      if (!socket || socket.#disposed) return db?.close();
      const waiting = socket.#waiting;
      socket.#waiting = undefined;
      if (db) {
        resources.outbox = [db, snapshots, name];
        try {
          socket.#call(boundary.CALL_RESTORE_OUTBOX, text, bounds);
        } catch (error) {
          socket.#fail(error);
          socket.#call(boundary.CALL_RESTORE_OUTBOX, undefined, bounds);
        }
      }
      for (const [call, a, b, settle] of waiting) {
        try {
          const answer = socket.#call(call, a, b);
          settle?.[0](answer);
        } catch (error) {
          if (settle) settle[1](error);
          else socket.#fail(error);
        }
      }
      socket.#input(boundary.INPUT_START);
    };
    loaded.then(
      ([db, snapshots, text]) => start(db, snapshots, text),
      (e) => {
        self.deref()?.#fail(storeFailed(e));
        start();
      },
    );
  }

  /** `persist`: reports an error of the shell's own (the store's, a waiting call's) as the
   * wasm's are reported: to the logger and as an `error` event. */
  #fail(error) {
    if (HAS_DEBUGGING) this.#logger?.("error", "error", { error });
    this.#dispatch(errorEvent(error));
  }

  /** Tells the machine what happened (an `INPUT_*`); it calls `__do` and `__emit` for the
   * consequences. */
  #input(input, conn = 0, a, b, c) {
    if (!this.#disposed) this.#machine.__input(this, input, conn, a, b, c);
  }

  /** Makes the page's call (a `CALL_*`) of the machine. */
  #call(call, a, b) {
    this.#live();
    if (HAS_PERSIST && this.#waiting && call >= boundary.CALL_START_ROOMS) {
      // Carried out once the stored outbox is restored; a publish's promise waits for its id.
      let settle;
      const publishing = call === boundary.CALL_PUBLISH || call === boundary.CALL_PUBLISH_AS;
      const answer = publishing ? new Promise((...both) => (settle = both)) : false;
      this.#waiting.push([call, a, b, settle]);
      return answer;
    }
    try {
      return this.#machine.__call(this, call, a, b);
    } catch (thrown) {
      throw lift(thrown);
    }
  }

  /** Called by the wasm: carries out `command` (a `COMMAND_*`) for connection `conn`. */
  __do(command, conn, a, b) {
    const resources = this.#resources;
    const current = resources.conn === conn;
    const self = this.#self;
    switch (command) {
      case boundary.COMMAND_RESOLVE_URL:
        // Called from a microtask, as the Rust shell's provider future is first polled.
        Promise.resolve().then(() => {
          const socket = self.deref();
          if (!socket || socket.#disposed) return;
          socket.#provider().then(
            (url) => self.deref()?.#input(boundary.INPUT_URL_RESOLVED, conn, url),
            (reason) => self.deref()?.#input(boundary.INPUT_URL_FAILED, conn, reason),
          );
        });
        break;
      case boundary.COMMAND_OPEN:
        if (HAS_DEBUGGING) {
          this.#logger?.("info", "attempt", { url: a });
          this.#attemptUrl = a;
          this.#unopened++;
        }
        // `b`: the rooms layer offers lifeline.v1 too.
        this.#open(conn, a, HAS_ROOMS && b && !this.#protocols.includes(V1) ? [...this.#protocols, V1] : this.#protocols);
        break;
      case boundary.COMMAND_SEND:
        if (current) {
          try {
            resources.ws.send(a);
          } catch (thrown) {
            this.#input(boundary.INPUT_SEND_FAILED, conn, undefined, ...exception(thrown));
          }
        }
        break;
      case boundary.COMMAND_CLOSE:
      case boundary.COMMAND_ABANDON:
        if (current) {
          try {
            resources.ws.close(a, b);
          } catch {
            // Closing a socket that is closing or closed does nothing.
          }
          if (command === boundary.COMMAND_ABANDON) dropSocket(resources);
        }
        break;
      case boundary.COMMAND_BUFFERED:
        return current ? resources.ws.bufferedAmount : -1;
      case boundary.COMMAND_PASS_MESSAGES:
        resources.passing = conn;
        break;
      case boundary.COMMAND_STORE_OUTBOX:
        if (HAS_PERSIST && resources.outbox) {
          const [db, snapshots, name] = resources.outbox;
          // `put` opens its transaction now, so the writes commit in the order they were asked.
          db.put(snapshots, a, name).then(
            () => self.deref()?.#input(boundary.INPUT_OUTBOX_STORED, 0, a),
            (e) => self.deref()?.#fail(storeFailed(e)),
          );
        }
        break;
      case boundary.COMMAND_TIMER:
        clearTimer(resources);
        if (conn >= 0) {
          held.timers++;
          resources.timer = setTimeout(() => {
            resources.timer = undefined;
            held.timers--;
            self.deref()?.#input(boundary.INPUT_TIMER);
          }, conn);
        }
        break;
    }
    return 0;
  }

  #open(conn, url, protocols) {
    const resources = this.#resources;
    // The machine has moved on from any earlier socket.
    dropSocket(resources);
    let ws;
    try {
      ws = new this.#Socket(url, protocols);
    } catch (thrown) {
      this.#input(boundary.INPUT_OPEN_FAILED, conn, url, ...exception(thrown));
      return;
    }
    ws.binaryType = "arraybuffer";
    resources.ws = ws;
    resources.conn = conn;
    held.sockets++;
    const self = this.#self;
    const on = (type, handler) => listen(resources.socketListeners, ws, type, handler);
    on("open", () => self.deref()?.#input(boundary.INPUT_OPENED, conn, ws.protocol));
    on("message", ({ data }) => {
      const socket = self.deref();
      const text = typeof data === "string";
      if (!socket || !(text || data instanceof ArrayBuffer)) return;
      // The hot path: the session has said it would only report this frame.
      if (resources.passing === conn) socket.__message(data);
      else if (text) {
        socket.#inboundText = data;
        socket.#input(boundary.INPUT_TEXT, conn, data);
        socket.#inboundText = undefined;
      } else socket.#input(boundary.INPUT_BYTES, conn, data);
    });
    on("error", () => self.deref()?.#input(boundary.INPUT_ERROR, conn));
    on("close", ({ code, reason, wasClean }) => {
      // This socket is finished: released before the machine hears of it.
      dropSocket(resources);
      self.deref()?.#input(boundary.INPUT_CLOSED, conn, code, reason, wasClean);
    });
  }

  get disposed() {
    return this.#disposed;
  }

  /** The finer-grained state: connecting, open, closing, reconnecting, closed. */
  get state() {
    return this.#disposed ? "closed" : boundary.STATE_NAMES[this.#machine.__call(this, boundary.CALL_STATE)];
  }

  /** `WebSocket`'s `readyState`: 0 connecting (also while waiting to reconnect), 1 open,
   * 2 closing, 3 closed. */
  get readyState() {
    return this.#disposed ? 3 : READY_STATES[this.#machine.__call(this, boundary.CALL_STATE)];
  }

  /** The URL of the current or last attempt. */
  get url() {
    return this.#disposed ? "" : this.#machine.__call(this, boundary.CALL_URL);
  }

  /** The subprotocol the server selected. */
  get protocol() {
    return this.#disposed ? "" : this.#machine.__call(this, boundary.CALL_PROTOCOL);
  }

  /** The heartbeat's round-trip time in ms, `{ last, smoothed }` (smoothed as TCP's SRTT),
   * or `undefined` before the first pong. */
  get rtt() {
    const rtt = this.#disposed ? undefined : this.#machine.__call(this, boundary.CALL_RTT);
    return rtt && { last: rtt[0], smoothed: rtt[1] };
  }

  /** Bytes the browser has not sent yet. */
  get bufferedAmount() {
    return this.#resources.ws?.bufferedAmount ?? 0;
  }

  /** The extensions the server selected on the current connection. */
  get extensions() {
    return this.#resources.ws?.extensions ?? "";
  }

  /** How binary messages arrive: `"blob"` (the default, as on `WebSocket`) or
   * `"arraybuffer"`; other values are ignored, as `WebSocket` ignores them. */
  get binaryType() {
    return this.#binaryType;
  }

  set binaryType(type) {
    if (type === "blob" || type === "arraybuffer") this.#binaryType = type;
  }

  /** Messages waiting in the outbound queue (not counted in `bufferedAmount`). */
  get queuedMessages() {
    return this.#disposed ? 0 : this.#machine.__call(this, boundary.CALL_QUEUED);
  }

  /** Publishes awaiting their ack (0 before the rooms layer starts). */
  get unackedPublishes() {
    return this.#disposed ? 0 : this.#machine.__call(this, boundary.CALL_UNACKED);
  }

  #live() {
    if (this.#disposed) throw disposedError();
  }

  /** Sends a string, `ArrayBuffer` or view now if open, otherwise queues it. */
  send(data) {
    let sent;
    if (typeof data === "string") sent = this.#call(boundary.CALL_SEND_TEXT, data);
    else if (data instanceof ArrayBuffer) sent = this.#call(boundary.CALL_SEND_BYTES, new Uint8Array(data));
    else if (ArrayBuffer.isView(data)) {
      sent = this.#call(
        boundary.CALL_SEND_BYTES,
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      );
    } else {
      this.#live();
      throw invalid("send takes a string, an ArrayBuffer or an ArrayBufferView");
    }
    if (HAS_DEBUGGING && sent === boundary.SEND_RESULT_QUEUED) this.#logger?.("debug", "queued", { queued: this.queuedMessages });
    return boundary.SEND_RESULT_NAMES[sent];
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
    this.#call(boundary.CALL_CLOSE, code, reason);
  }

  /** Connects again now, also after `close()`, `giveup` or a terminal close. */
  reconnect() {
    this.#call(boundary.CALL_RECONNECT);
    this.#retain();
  }

  /**
   * `EventTarget`'s, for any event type (a listener for a room event starts the rooms
   * layer). Options: `once`, `signal`, `capture`. A listener that throws is reported with
   * `reportError` and the others still run.
   */
  addEventListener(type, listener, options) {
    this.#live();
    type = String(type);
    if (listener == null) return;
    if (typeof listener !== "function" && typeof listener !== "object") {
      throw invalid("a listener must be a function or an object with handleEvent");
    }
    if (boundary.PAGE_EVENT_NAMES.indexOf(type) >= boundary.PAGE_EVENT_WELCOME) this.#call(boundary.CALL_START_ROOMS);
    const flags = typeof options === "object" && options !== null ? options : { capture: options };
    const capture = !!flags.capture;
    const once = !!flags.once;
    const signal = flags.signal;
    const list = this.#listeners.get(type) ?? [];
    if (signal?.aborted || list.some((e) => e.listener === listener && e.capture === capture)) return;
    const entry = { listener, capture, release: undefined };
    entry.call = (event) => {
      if (once) this.#remove(type, entry);
      invoke(listener, this, event);
    };
    if (signal) {
      const abort = () => this.#remove(type, entry);
      signal.addEventListener("abort", abort, { once: true });
      entry.release = () => signal.removeEventListener("abort", abort);
    }
    list.push(entry);
    this.#listeners.set(type, list);
    super.addEventListener(type, entry.call, capture);
    this.#retain();
  }

  /** `EventTarget`'s; the listener is released at once. */
  removeEventListener(type, listener, options) {
    const capture = !!(typeof options === "object" && options !== null ? options.capture : options);
    const entry = this.#listeners.get(String(type))?.find((e) => e.listener === listener && e.capture === capture);
    if (entry) this.#remove(String(type), entry);
  }

  #remove(type, entry) {
    const list = this.#listeners.get(type);
    const at = list ? list.indexOf(entry) : -1;
    if (at < 0) return;
    list.splice(at, 1);
    if (list.length === 0) this.#listeners.delete(type);
    super.removeEventListener(type, entry.call, entry.capture);
    entry.release?.();
    this.#retain();
  }

  #retain() {
    const wanted =
      !this.#disposed && this.state !== "closed" && (this.#listeners.size > 0 || this.#handlers.size > 0);
    if (wanted) RETAINED.add(this);
    else RETAINED.delete(this);
  }

  /** Called by the wasm with each event: its kind and its fields' values, in the order of
   * `PAGE_EVENT_FIELDS`. Settles a publish, builds the event (a `MessageEvent`, a
   * `CloseEvent`, or an `Event` carrying the fields) and dispatches it. */
  __emit(kind, ...values) {
    if (kind === boundary.PAGE_EVENT_MESSAGE) return this.__message(values[0]);
    const type = boundary.PAGE_EVENT_NAMES[kind];
    const fields = {};
    boundary.PAGE_EVENT_FIELDS[kind].forEach((name, at) => (fields[name] = values[at]));
    RESHAPE[type]?.(fields);
    if (HAS_DEBUGGING) {
      this.#logger?.(LOG_LEVELS[type] ?? "debug", type, fields);
      if (kind === boundary.PAGE_EVENT_OPEN) this.#unopened = 0;
      if (kind === boundary.PAGE_EVENT_RECONNECTING && this.#unopened === this.#diagnosis?.[0]) this.#diagnose();
    }
    if (HAS_ROOMS && (kind === boundary.PAGE_EVENT_ACK || kind === boundary.PAGE_EVENT_PUBLISH_FAILED)) {
      const settle = this.#publishes.get(fields.id);
      this.#publishes.delete(fields.id);
      if (kind === boundary.PAGE_EVENT_ACK) settle?.[0]({ ...fields });
      else settle?.[1](fields.error);
    }
    // Node 20 and 22 have no `CloseEvent`: there a close is an `Event` with the same fields.
    this.#dispatch(
      kind === boundary.PAGE_EVENT_CLOSE && globalThis.CloseEvent
        ? new CloseEvent(type, fields)
        : Object.assign(new Event(type), fields),
    );
    if (kind === boundary.PAGE_EVENT_STATECHANGE) this.#retain();
  }

  /** Dispatches a `message` with `data`: from the wasm (`undefined` for the text frame it is
   * handling), or straight from the socket's listener for the frames the session lets through
   * (`COMMAND_PASS_MESSAGES`). */
  __message(data = this.#inboundText) {
    if (this.#binaryType === "blob" && data instanceof ArrayBuffer) data = new Blob([data]);
    this.#dispatch(new MessageEvent("message", { data }));
  }

  #dispatch(event) {
    // Dispose removes every listener, so none runs after it, even in this dispatch.
    if (!this.#disposed) this.dispatchEvent(event);
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
    if (!this.#disposed) this.removeEventListener(type, listener);
  }

  /** Closes the socket (1000), clears the timer, removes every listener, fails every pending
   * publish with ERR_CLOSED and releases the handlers and the wasm half. Idempotent;
   * afterwards every method but `dispose`/`free` throws ERR_DISPOSED. */
  /** `diagnose`: one plain HTTP request to the URL the handshakes keep failing on; an error
   * status is reported as `ERR_HANDSHAKE`, and stops reconnecting where `isTerminal` says so.
   * A request that fails (network, CORS) reports nothing: there is nothing to read. */
  async #diagnose() {
    const [, isTerminal] = this.#diagnosis;
    const streak = this.#unopened;
    let status;
    try {
      status = (await fetch(this.#attemptUrl.replace(/^ws/, "http"), { cache: "no-store" })).status;
    } catch {
      return;
    }
    // 426: the URL is a WebSocket endpoint, and the handshake itself failed elsewhere.
    if (this.#disposed || this.#unopened < streak || status < 400 || status === 426) return;
    const error = lifelineError("ERR_HANDSHAKE", `HTTP ${status} from ${this.#attemptUrl}`, status);
    this.#logger?.("error", "error", { error });
    this.#dispatch(errorEvent(error));
    if (isTerminal(status) && !this.#disposed) this.close();
  }

  dispose() {
    if (this.#disposed) return;
    this.#machine.__call(this, boundary.CALL_DISPOSE);
    this.#disposed = true;
    COLLECTED?.unregister(this);
    release(this.#resources);
    if (HAS_ROOMS) {
      for (const [, reject] of this.#publishes.values()) {
        reject(lifelineError("ERR_CLOSED", "the client is closed"));
      }
      this.#publishes.clear();
    }
    if (HAS_PERSIST) {
      for (const [, , , settle] of this.#waiting ?? []) settle?.[1](lifelineError("ERR_CLOSED", "the client is closed"));
    }
    for (const [type, list] of this.#listeners) {
      for (const entry of list) {
        super.removeEventListener(type, entry.call, entry.capture);
        entry.release?.();
      }
    }
    for (const [type, { call }] of this.#handlers) super.removeEventListener(type, call);
    this.#listeners.clear();
    this.#handlers.clear();
    RETAINED.delete(this);
  }

  /** The same as `dispose()`. */
  free() {
    this.dispose();
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
