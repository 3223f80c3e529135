//! The npm package `ws-lifeline`, built into `client-wasm/pkg`.
//!
//! `wasm-pack --target web` gives one ES module that works unbundled in a
//! `<script type="module">` page, in Vite and from an `npm pack` tarball; its only cost is one
//! `await init()` before the first `new LifelineSocket(...)`. The bundler target would need a
//! bundler that implements the wasm ESM integration, and wasm-bindgen's `module` target needs
//! source-phase imports, which neither Vite nor today's browsers support by default.
//!
//! After wasm-pack: wasm-opt -Oz (npm's binaryen; wasm-pack's own is off in the crate
//! metadata), the hand-written TypeScript declarations and README from `client-wasm/js`, and the
//! package.json from `client-wasm/js/package.json` with the workspace version filled in. Then
//! the sizes are printed and the TypeScript usage file is type-checked against the package.

use std::path::Path;

use crate::Result;
use crate::process::Step;

/// The files wasm-bindgen writes, named after `--out-name`.
const OUT_NAME: &str = "ws_lifeline";

/// Files copied verbatim from `client-wasm/js` into the package.
const HAND_WRITTEN: [&str; 4] = ["index.js", "index.d.ts", "protocol.d.ts", "README.md"];

/// Builds `client-wasm/pkg` and type-checks `tests/ts` against it.
pub(crate) fn build_npm_package() -> Result {
    let root = crate::root();
    let pkg = root.join("client-wasm").join("pkg");
    let js = root.join("client-wasm").join("js");
    Step::new("npm package: wasm-pack build", "wasm-pack")
        .args([
            "build",
            "client-wasm",
            "--release",
            "--target",
            "web",
            "--no-pack",
        ])
        .args(["--out-dir", "pkg", "--out-name", OUT_NAME])
        .run()?;
    let wasm = pkg.join(format!("{OUT_NAME}_bg.wasm"));
    Step::new("npm package: wasm-opt -Oz", "wasm-opt")
        .arg_path(&wasm)
        .args(["-Oz", "--strip-debug", "--strip-producers", "-o"])
        .arg_path(&wasm)
        .run()?;
    for file in HAND_WRITTEN {
        copy(&js.join(file), &pkg.join(file))?;
    }
    let manifest = read(&js.join("package.json"))?.replace(
        "\"version\": \"0.0.0-workspace\"",
        &format!("\"version\": \"{}\"", VERSION),
    );
    write(&pkg.join("package.json"), &manifest)?;
    // The generated declarations are superseded by index.d.ts; keeping them out of the folder
    // means nothing can import them by accident, and the glue's own pointer (for Deno) moves.
    let glue = pkg.join(format!("{OUT_NAME}.js"));
    let text = read(&glue)?.replace(
        &format!("/* @ts-self-types=\"./{OUT_NAME}.d.ts\" */"),
        "/* @ts-self-types=\"./index.d.ts\" */",
    );
    write(&glue, &text)?;
    for generated in [
        format!("{OUT_NAME}.d.ts"),
        format!("{OUT_NAME}_bg.wasm.d.ts"),
    ] {
        let path = pkg.join(generated);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        }
    }
    Step::new("npm package: sizes", "node")
        .arg_path(&js.join("sizes.mjs"))
        .arg_path(&pkg)
        .run()?;
    Step::new("npm package: tsc --noEmit --strict tests/ts", "tsc")
        .args(["--project", "tests/ts/tsconfig.json"])
        .run()
}

/// The workspace version: xtask shares `[workspace.package] version` with client-wasm.
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

trait ArgPath {
    fn arg_path(self, path: &Path) -> Self;
}

impl ArgPath for Step {
    fn arg_path(self, path: &Path) -> Self {
        self.args([path.as_os_str()])
    }
}
