// The `ws-lifeline/persist` entry: the package's API (index.js, built with the persistent
// outbox: `HAS_PERSIST`, and a wasm with the `persist` feature) and `storedOutbox`.
export * from "./index.js";
export { default } from "./index.js";
export { storedOutbox } from "./outbox.js";
