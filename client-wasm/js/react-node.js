// The React entry under the `node` export condition (server-side rendering): the same hooks,
// with the wasm read from the package's own file first, as `node.js` does for the main entry.
import "./node-wasm.js";
export * from "./react.js";
