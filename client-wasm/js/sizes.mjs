// Prints the transfer size of the npm package's runtime files (the .wasm and its JS glue):
// raw, gzip -9 and brotli (quality 11), the figures the README quotes.
// Usage: node sizes.mjs <package folder>
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const dir = process.argv[2];
if (!dir) throw new Error("usage: node sizes.mjs <package folder>");
const files = ["ws_lifeline_bg.wasm", "ws_lifeline.js"];
const rows = files.map((name) => {
  const bytes = readFileSync(join(dir, name));
  return {
    file: name,
    raw: bytes.length,
    gzip: gzipSync(bytes, { level: 9 }).length,
    brotli: brotliCompressSync(bytes, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length },
    }).length,
  };
});
const total = rows.reduce(
  (sum, r) => ({ file: "total", raw: sum.raw + r.raw, gzip: sum.gzip + r.gzip, brotli: sum.brotli + r.brotli }),
  { raw: 0, gzip: 0, brotli: 0 },
);
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
for (const r of [...rows, total]) {
  console.log(`${r.file.padEnd(22)} raw ${kib(r.raw).padStart(10)}  gzip ${kib(r.gzip).padStart(10)}  brotli ${kib(r.brotli).padStart(10)}`);
}
// Kept beside the package (not in its `files`) for the README and the tests to read.
writeFileSync(join(dir, "sizes.json"), JSON.stringify({ files: rows, total }, null, 2));
