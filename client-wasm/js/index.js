// The package entry: the wasm-bindgen glue (ws_lifeline.js) plus what is simpler in JS than
// in the wasm. `LifelineSocket` here keeps the listeners and `on…` handlers (the wasm builds
// each event and calls `__emit`, holding this object only weakly), hands the socket its own
// object for `event.target`, adds WebSocket's constants, `on`/`off` (addEventListener that
// returns its own remover), and makes dispose/free/[Symbol.dispose] safe to call in any order
// and any number of times.
import init, {
  initSync,
  isLifelineError,
  liveResources,
  LifelineSocket as WasmLifelineSocket,
} from "./ws_lifeline.js";

export { init as default, initSync, isLifelineError, liveResources };

/**
 * Sockets that must not be garbage-collected: not disposed, not closed for good, and with a
 * listener or handler, as the browser keeps a `WebSocket` with listeners alive while it is
 * open. The wasm reaches a socket only through a WeakRef, and its listeners live on the
 * socket itself, so without this a socket the page keeps no reference to would be collected
 * and closed mid-stream.
 */
const RETAINED = new Set();

/** Event types with an `on…` property, as on `WebSocket`. */
const HANDLER_TYPES = ["open", "message", "error", "close", "reconnecting", "statechange", "giveup"];

/** Calls a listener as `EventTarget` does; an exception goes to `reportError`, not the caller. */
function invoke(listener, target, event) {
  try {
    if (typeof listener === "function") listener.call(target, event);
    else if (typeof listener.handleEvent === "function") listener.handleEvent(event);
  } catch (exception) {
    if (typeof reportError === "function") reportError(exception);
    else console.error(exception);
  }
}

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

  #freed = false;
  /** type → [{ listener, once, release }] in registration order. */
  #listeners = new Map();
  #handlers = new Map();

  constructor(url, options) {
    super(url, options);
    this.__attachTarget(this);
  }

  get disposed() {
    return this.#freed || super.disposed;
  }

  /**
   * Registers a listener (a function or an object with `handleEvent`) for one event type, once
   * per type as with `EventTarget`. Options: `once`, `signal`.
   */
  addEventListener(type, listener, options) {
    // Throws the package's errors (disposed, unknown type, bad listener); starts the rooms
    // layer for a room event.
    this.__check(type, listener);
    if (listener == null) return;
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

  /** Called by the wasm with each event: the listeners (a copy, so they may change the
   * list or dispose the socket), then the `on…` handler. */
  __emit(type, event) {
    for (const entry of [...(this.#listeners.get(type) ?? [])]) {
      if (this.disposed || !this.#listeners.get(type)?.includes(entry)) continue;
      if (entry.once) this.#remove(type, entry);
      invoke(entry.listener, this, event);
    }
    const handler = this.#handlers.get(type);
    if (handler && !this.disposed) invoke(handler, this, event);
    if (type === "statechange") this.#retain();
  }

  /** Connects again now, also after `close()`, `giveup` or a terminal close. */
  reconnect() {
    super.reconnect();
    this.#retain();
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
    if (!this.#freed) super.dispose();
    this.#release();
  }

  free() {
    if (this.#freed) return;
    this.#freed = true;
    super.free();
    this.#release();
  }

  [Symbol.dispose ?? Symbol.for("Symbol.dispose")]() {
    this.dispose();
  }
}
