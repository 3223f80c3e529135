// The entry under the `node` export condition (Node, and Deno, Bun and SSR builds that resolve
// it): the same module as index.js, with its wasm read from the package's own file first,
// since Node's `fetch` refuses the `file:` URL that index.js's `init()` would fetch.
import "./node-wasm.js";
export * from "./index.js";
export { default } from "./index.js";
