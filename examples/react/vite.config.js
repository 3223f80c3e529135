// Plain object (no `import from "vite"`), as in examples/vite.
export default {
  // The dev server's dependency pre-bundling would move the glue away from its .wasm file and
  // break `new URL("ws_lifeline_bg.wasm", import.meta.url)`; a production build needs nothing.
  optimizeDeps: { exclude: ["ws-lifeline"] },
};
