// Plain object (no `import from "vite"`), so the same file works in a folder that only has the
// packed ws-lifeline installed, as the package test does.
export default {
  // The dev server's dependency pre-bundling would move the glue away from its .wasm file and
  // break `new URL("ws_lifeline_bg.wasm", import.meta.url)`; a production build needs nothing.
  optimizeDeps: { exclude: ["ws-lifeline"] },
  // The package loads its wasm with a top-level await, which needs ES2022.
  build: { target: "es2022" },
};
