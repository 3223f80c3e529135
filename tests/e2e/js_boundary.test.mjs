// The npm package's boundary between the wasm (client-wasm/src/js.rs) and its browser shell
// (client-wasm/js/index.js) is numbered: `__input` kinds (IN_*), `__call` operations (OP_*) and
// `__do` actions (DO_*). Both files declare the numbers; this test reads both and fails when
// they differ, so a renumbering on one side cannot slip past the browser suites (some inputs,
// such as online/offline and visibility changes, no browser test produces).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const rust = readFileSync(join(root, "client-wasm", "src", "js.rs"), "utf8");
const js = readFileSync(join(root, "client-wasm", "js", "index.js"), "utf8");

/** `{ NAME: number }` of every match of `pattern` (groups: name, number). */
function constants(text, pattern) {
  const found = {};
  for (const [, name, value] of text.matchAll(pattern)) {
    assert.equal(found[name], undefined, `${name} is declared twice`);
    found[name] = Number(value);
  }
  return found;
}

test("index.js numbers the boundary as src/js.rs does", () => {
  const inRust = constants(rust, /^const ((?:DO|IN|OP)_[A-Z_]+): u32 = (\d+);$/gm);
  const inJs = constants(js, /^const ((?:DO|IN|OP)_[A-Z_]+) = (\d+);$/gm);
  // Every kind of each family, so a missing declaration cannot pass as "equal".
  assert.equal(Object.keys(inRust).filter((n) => n.startsWith("DO_")).length, 7);
  assert.equal(Object.keys(inRust).filter((n) => n.startsWith("IN_")).length, 15);
  assert.equal(Object.keys(inRust).filter((n) => n.startsWith("OP_")).length, 16);
  assert.deepEqual(inJs, inRust);
  for (const family of ["DO_", "IN_", "OP_"]) {
    const numbers = Object.entries(inRust).filter(([n]) => n.startsWith(family)).map(([, v]) => v);
    assert.equal(new Set(numbers).size, numbers.length, `two ${family}* constants share a number`);
  }
});
