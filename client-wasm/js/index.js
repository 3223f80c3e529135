// The package entry: the wasm-bindgen glue (ws_lifeline.js) plus what a Rust constructor
// cannot do for itself. `LifelineSocket` here hands the socket its own JS object (held weakly)
// for `event.target`, adds WebSocket's constants, and makes dispose/free/[Symbol.dispose]
// safe to call in any order and any number of times.
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
