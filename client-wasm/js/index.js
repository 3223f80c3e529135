// The package entry: the wasm-bindgen glue (ws_lifeline.js) plus what a Rust constructor
// cannot do for itself. `LifelineSocket` here hands the socket its own JS object (held weakly)
// for `event.target`, adds WebSocket's constants, `on`/`off` (addEventListener that returns
// its own remover), and makes dispose/free/[Symbol.dispose] safe to call in any order and any
// number of times.
import init, {
  initSync,
  isLifelineError,
  liveResources,
  LifelineSocket as WasmLifelineSocket,
} from "./ws_lifeline.js";

export { init as default, initSync, isLifelineError, liveResources };

export class LifelineSocket extends WasmLifelineSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  #freed = false;

  constructor(url, options) {
    super(url, options);
    this.__attachTarget(this);
  }

  get disposed() {
    return this.#freed || super.disposed;
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

  dispose() {
    if (!this.#freed) super.dispose();
  }

  free() {
    if (this.#freed) return;
    this.#freed = true;
    super.free();
  }

  [Symbol.dispose ?? Symbol.for("Symbol.dispose")]() {
    this.dispose();
  }
}
