// Loads the wasm from the file beside this one, before index.js runs (node.js imports this
// first), so that index.js's own `await init()` finds it loaded and fetches nothing.
import { readFileSync } from "node:fs";
import { initSync } from "./ws_lifeline.js";

initSync({ module: readFileSync(new URL("./ws_lifeline_bg.wasm", import.meta.url)) });
