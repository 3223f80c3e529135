//! The npm package `ws-lifeline`, built into `client-wasm/pkg`.
//!
//! `wasm-pack --target web` gives one ES module that works unbundled in a
//! `<script type="module">` page, in Vite and from an `npm pack` tarball; `index.js` awaits its
//! `init()` itself (top-level await), and under the `node` export condition `node.js` reads the
//! wasm from its file first. The bundler target would need a bundler that implements the wasm
//! ESM integration, and wasm-bindgen's `module` target needs source-phase imports, which
//! neither Vite nor today's browsers support by default.
//!
//! The raw resilient socket (the build without the `rooms` feature) ships in the same package
//! as `ws-lifeline/socket`, in the package's `socket/` folder.
//!
//! After wasm-pack: wasm-opt -Oz (npm's binaryen; wasm-pack's own is off in the crate
//! metadata), which also shortens the import and export names, the glue renamed to match (see
//! [`boundary`]) and minified with rolldown, the hand-written TypeScript declarations and README
//! from `client-wasm/js`, and the package.json from `client-wasm/js/package.json` with the
//! workspace version filled in. Then the sizes are printed and the TypeScript usage file is
//! type-checked against the package.
//!
//! The wasm is compiled with `--remap-path-prefix` for cargo's home and the workspace root, so
//! no absolute path of the building machine ends up in the published bytes (panic locations
//! name source files); the build fails if one does.

mod boundary;
mod boundary_js;
mod boundary_ts;

use std::path::Path;
use std::process::{Command, Stdio};

use crate::Result;
use crate::process::Step;

/// The files wasm-bindgen writes, named after `--out-name`.
const OUT_NAME: &str = "ws_lifeline";

/// Files copied verbatim from `client-wasm/js` into the package. The React entry (`react.js`)
/// ships readable: it is small, outside the size budget, and the app's bundler minifies it.
const HAND_WRITTEN: [&str; 6] = [
    "index.d.ts",
    "protocol.d.ts",
    "react.js",
    "react-node.js",
    "react.d.ts",
    "README.md",
];

/// The Node entry of each build (`node` export condition), copied verbatim into both folders.
const NODE_ENTRY: [&str; 2] = ["node.js", "node-wasm.js"];

/// The socket entry's folder inside the package.
const SOCKET_DIR: &str = "pkg/socket";

/// The project's licences and changelog, copied from the workspace root into the package.
const FROM_THE_ROOT: [&str; 3] = ["LICENSE-MIT", "LICENSE-APACHE", "CHANGELOG.md"];

/// Builds `client-wasm/pkg`, its socket entry included, and type-checks `tests/ts` against it.
pub(crate) fn build_npm_package() -> Result {
    build(&Options::published())?;
    build_raw_package()?;
    Step::new("npm package: tsc --noEmit --strict tests/ts", "tsc")
        .args(["--project", "tests/ts/tsconfig.json"])
        .run()
}

/// Builds the raw resilient socket (no `rooms` feature) into `client-wasm/pkg/socket`, the
/// package's `ws-lifeline/socket` entry, tested by `tests/e2e/js_raw.test.mjs` and
/// `tests/node`.
pub(crate) fn build_raw_package() -> Result {
    build(&Options {
        out_dir: SOCKET_DIR.into(),
        default_features: false,
    })
}

/// What each registry would say to a release: `cargo publish --dry-run` for the two
/// publishable crates (packaged and built from the packaged sources; the protocol crate
/// stands in for its crates.io release) and `npm publish --dry-run` for the built package.
/// `--allow-dirty`: the check is about what gets packaged, not about the state of git.
pub(crate) fn publish_dry_runs() -> Result {
    Step::new("publish dry-run (crates.io)", "cargo")
        .args(["publish", "--dry-run", "--allow-dirty", "--locked"])
        .args(["--package", "lifeline-protocol", "--package", "ws-lifeline"])
        .run()?;
    Step::new("publish dry-run (npm)", "npm")
        .args(["publish", "--dry-run"])
        .current_dir(crate::root().join("client-wasm").join("pkg"))
        .run()
}

/// What to build: the published package, or a variant of it for measuring.
#[derive(Debug, Clone)]
struct Options {
    /// Folder of the package, relative to `client-wasm` (wasm-pack resolves it there).
    out_dir: String,
    /// `false` builds the raw resilient socket (`--no-default-features`).
    default_features: bool,
}

impl Options {
    fn published() -> Self {
        Self {
            out_dir: "pkg".into(),
            default_features: true,
        }
    }
}

/// Builds a package into `client-wasm/<out_dir>` the way the published one is built, and
/// prints its sizes.
fn build(options: &Options) -> Result {
    let root = crate::root();
    let pkg = root.join("client-wasm").join(&options.out_dir);
    let js = root.join("client-wasm").join("js");
    boundary_js::write()?;
    boundary_ts::write()?;
    let mut build = Step::new("npm package: wasm-pack build", "wasm-pack")
        .args([
            "build",
            "client-wasm",
            "--release",
            "--target",
            "web",
            "--no-pack",
        ])
        .args([
            "--out-dir",
            options.out_dir.as_str(),
            "--out-name",
            OUT_NAME,
        ])
        .args(["--"]);
    build = small_std(build);
    // The package brings its own allocator (feature `talc`); a Rust app picks its own.
    build = build.args(["--features", "js,talc"]);
    if !options.default_features {
        build = build.args(["--no-default-features"]);
    }
    build.run()?;
    let wasm = pkg.join(format!("{OUT_NAME}_bg.wasm"));
    let mut names = boundary::Mapping::parse(&wasm_opt(&wasm)?)?;
    let bytes = std::fs::read(&wasm).map_err(|e| format!("reading {}: {e}", wasm.display()))?;
    let bytes = names.restore_public_exports(&bytes)?;
    let module = names.check_against(&bytes)?;
    std::fs::write(&wasm, &bytes).map_err(|e| format!("writing {}: {e}", wasm.display()))?;
    check_no_machine_paths(&wasm)?;
    for file in NODE_ENTRY {
        copy(&js.join(file), &pkg.join(file))?;
    }
    if options.default_features {
        for file in HAND_WRITTEN {
            copy(&js.join(file), &pkg.join(file))?;
        }
        for file in FROM_THE_ROOT {
            copy(&root.join(file), &pkg.join(file))?;
        }
    } else {
        copy(&js.join("socket.d.ts"), &pkg.join("index.d.ts"))?;
        // wasm-pack's `*` would keep the folder out of the published package; the package's
        // own .gitignore already covers it.
        let ignore = pkg.join(".gitignore");
        if ignore.exists() {
            std::fs::remove_file(&ignore)
                .map_err(|e| format!("removing {}: {e}", ignore.display()))?;
        }
    }
    // index.js ships minified too (2.2 -> 1.0 KiB gzip), with a source map that carries its
    // readable source (client-wasm/js/index.js). The glue stays a separate module it imports.
    let entry = pkg.join("index.js");
    let entry_minified = pkg.join("index.min.js");
    Step::new("npm package: minify index.js (rolldown)", "rolldown")
        .arg_path(&js.join("index.js"))
        .args([
            "--sourcemap",
            "--minify",
            "--format",
            "esm",
            "--external",
            "./ws_lifeline.js",
            // The raw build's wasm has no protocol v1: its room parts go, and so do the logger
            // and `diagnose` (see index.js).
            "--transform.define",
            if options.default_features {
                "HAS_ROOMS:true,HAS_DEBUGGING:true"
            } else {
                "HAS_ROOMS:false,HAS_DEBUGGING:false"
            },
            "--file",
        ])
        .arg_path(&entry_minified)
        .run()?;
    source_map(&entry_minified, &entry)?;
    if options.default_features {
        let manifest = read(&js.join("package.json"))?.replace(
            "\"version\": \"0.0.0-workspace\"",
            &format!("\"version\": \"{}\"", VERSION),
        );
        write(&pkg.join("package.json"), &manifest)?;
    }
    // The generated declarations are superseded by index.d.ts; keeping them out of the folder
    // means nothing can import them by accident, and the glue's own pointer (for Deno) moves.
    let glue = pkg.join(format!("{OUT_NAME}.js"));
    // The glue calls the wasm by its new names: renamed where wasm-bindgen's variable names
    // are still known, and checked again once rolldown has renamed those.
    write(&glue, &names.rewrite_glue(&read(&glue)?, &module)?)?;
    // The glue is minified (a third of its gzip size) with rolldown, a pinned devDependency,
    // keeping the module's exports and the wasm import object's keys unchanged.
    let minified = pkg.join(format!("{OUT_NAME}.min.js"));
    Step::new("npm package: minify the JS glue (rolldown)", "rolldown")
        .arg_path(&glue)
        .args(["--minify", "--format", "esm", "--file"])
        .arg_path(&minified)
        .run()?;
    std::fs::rename(&minified, &glue).map_err(|e| format!("replacing {}: {e}", glue.display()))?;
    boundary::check_minified_glue(&read(&glue)?, &names)?;
    // The glue's pointer to its declarations (for Deno), which minifying dropped, now names
    // index.d.ts.
    let text = format!("/* @ts-self-types=\"./index.d.ts\" */\n{}", read(&glue)?);
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
        .run()
}

/// Moves rolldown's `index.min.js` and its map to `index.js` and `index.js.map`, pointing the
/// one at the other. The map's sources are named `ws-lifeline/<file>` (`index.js`,
/// `boundary.gen.js`): rolldown names them by their path from the package folder, which would
/// publish the layout of the building machine; the texts travel in `sourcesContent`.
fn source_map(minified: &Path, entry: &Path) -> Result {
    let map_of = |js: &Path| js.with_extension("js.map");
    let code = read(minified)?;
    let code = code
        .strip_suffix("//# sourceMappingURL=index.min.js.map\n")
        .or_else(|| code.strip_suffix("//# sourceMappingURL=index.min.js.map"))
        .ok_or("rolldown's index.min.js does not end with its sourceMappingURL")?;
    write(entry, &format!("{code}//# sourceMappingURL=index.js.map\n"))?;
    let mut map: serde_json::Value = serde_json::from_str(&read(&map_of(minified))?)
        .map_err(|e| format!("reading rolldown's source map: {e}"))?;
    // index.js and the generated boundary.gen.js it imports, named by file name alone.
    let sources: Option<Vec<String>> = map["sources"].as_array().and_then(|sources| {
        let names = sources.iter().map(|source| {
            let name = source.as_str()?.rsplit(['/', '\\']).next()?;
            Some(format!("ws-lifeline/{name}"))
        });
        names.collect()
    });
    let carried = map["sourcesContent"]
        .as_array()
        .is_some_and(|texts| texts.iter().all(serde_json::Value::is_string));
    let Some(sources) = sources.filter(|s| carried && s.contains(&"ws-lifeline/index.js".into()))
    else {
        return Err("rolldown's source map does not carry index.js's source".into());
    };
    if map["sourcesContent"].as_array().map(Vec::len) != Some(sources.len()) {
        return Err("rolldown's source map has a source without its text".into());
    }
    map["file"] = "index.js".into();
    map["sources"] = serde_json::json!(sources);
    write(&map_of(entry), &map.to_string())?;
    for file in [minified.to_path_buf(), map_of(minified)] {
        std::fs::remove_file(&file).map_err(|e| format!("removing {}: {e}", file.display()))?;
    }
    Ok(())
}

/// Optimizes the wasm in place for size, and renames its imports, import module and exports to
/// one- or two-character names (with the glue renamed to match, about 4 KB less gzip on both
/// builds). Returns the mapping from old names to new that wasm-opt prints on stdout.
///
/// One run, with `--converge` (the passes repeat until the module stops shrinking: about 0.15 KB
/// less gzip on each build). A second run that only renames compresses worse (+0.4 KB gzip).
fn wasm_opt(wasm: &Path) -> Result<String> {
    let name = "npm package: wasm-opt -Oz, short import and export names";
    let mut command = Command::new("wasm-opt");
    command
        .env("PATH", crate::process::tool_path())
        .current_dir(crate::root())
        .arg(wasm)
        .args([
            "-Oz",
            "--converge",
            "--strip-debug",
            "--strip-producers",
            "--minify-imports-and-exports-and-modules",
            "-o",
        ])
        .arg(wasm)
        .stderr(Stdio::inherit());
    println!("\n==> {name}: wasm-opt {} ...", wasm.display());
    let out = command
        .output()
        .map_err(|e| format!("step `{name}`: could not start: {e}"))?;
    if !out.status.success() {
        return Err(format!("step `{name}` exited with {}", out.status));
    }
    println!("<== {name} ok");
    String::from_utf8(out.stdout).map_err(|e| format!("step `{name}`: stdout is not UTF-8: {e}"))
}

/// Flags that make a shipped wasm smaller by building std with it: panics abort at once
/// (`-Cpanic=immediate-abort`: no panic message, hook or formatting is compiled in) and carry
/// no source location. 34.2 instead of 37.9 KB gzip for the raw socket's wasm. Used for the
/// npm package, the demo and the Rust-API bench page; none of them installs a panic hook, so
/// a panic was already a bare trap there.
///
/// These are unstable flags of the pinned stable compiler, enabled with `RUSTC_BOOTSTRAP=1`
/// for these builds only; the crate itself builds on plain stable. They need the toolchain's
/// `rust-src` component, which `cargo xtask setup` adds. A toolchain bump must re-check them.
const SMALL_STD_RUSTFLAGS: &str =
    "-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none";

/// Makes every cargo build a step runs (directly, or through wasm-pack or trunk) the
/// small-std build of [`SMALL_STD_RUSTFLAGS`], with [`remap_rustflags`]. `build-std` is set
/// through cargo's environment, so the tools in between need no flag of their own.
pub(crate) fn small_std(step: Step) -> Step {
    step.env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_UNSTABLE_BUILD_STD", "std,panic_abort")
        .env(
            "RUSTFLAGS",
            format!("{} {SMALL_STD_RUSTFLAGS}", remap_rustflags()),
        )
}

/// `RUSTFLAGS` that rewrite cargo's home (registry and git sources) and the workspace root to
/// neutral prefixes in everything rustc embeds, panic locations included. Any `RUSTFLAGS`
/// already set are kept. Setting them changes cargo's cache key, so this build does not share
/// artifacts with the plain `cargo build`s; it is a release build, so nothing is lost.
fn remap_rustflags() -> String {
    let mut flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    for (from, to) in [(cargo_home(), "/cargo"), (crate::root(), "/ws-lifeline")] {
        if !flags.is_empty() {
            flags.push(' ');
        }
        flags.push_str(&format!("--remap-path-prefix={}={to}", from.display()));
    }
    flags
}

/// Cargo's home: the parent of the folder setup installs tools into.
fn cargo_home() -> std::path::PathBuf {
    let bin = crate::tools::cargo_bin();
    bin.parent().map(Path::to_path_buf).unwrap_or(bin)
}

/// Fails if the wasm holds an absolute path of this machine: cargo's home, the workspace root
/// or the user's home. Paths are searched as bytes, as `strings | grep` would.
fn check_no_machine_paths(wasm: &Path) -> Result {
    let bytes = std::fs::read(wasm).map_err(|e| format!("reading {}: {e}", wasm.display()))?;
    let mut prefixes = vec![cargo_home(), crate::root()];
    if let Some(home) = std::env::var_os("HOME") {
        prefixes.push(home.into());
    }
    for prefix in prefixes {
        let needle = prefix.to_string_lossy().into_owned();
        if needle.len() > 1
            && bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        {
            return Err(format!(
                "{} holds the machine path {needle}: the build leaks absolute paths",
                wasm.display()
            ));
        }
    }
    Ok(())
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
