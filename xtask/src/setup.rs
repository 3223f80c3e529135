//! `cargo xtask setup`: makes sure the machine has every tool, and never rebuilds one that is
//! already there at the pinned version, so a second run takes seconds.

use std::path::Path;
use std::process::Command;

use crate::Result;
use crate::process::Step;
use crate::tools::{self, CargoTool};

/// What a command needs installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Building and serving the demo: the wasm target, wasm-bindgen, trunk, wasm-pack and
    /// wasm-opt (the demo serves the npm package's shared entry).
    Demo,
    /// Everything, including browsers and drivers for the tests.
    Everything,
}

pub(crate) fn run(scope: Scope) -> Result {
    println!("==> setup ({scope:?})");
    wasm_target()?;
    rust_src()?;
    fetch_crates()?;
    let bindgen_version = tools::locked_wasm_bindgen_version()?;
    cargo_tool(&CargoTool {
        krate: "wasm-bindgen-cli",
        binary: "wasm-bindgen",
        version: &bindgen_version,
        // The locked build wants a webpki-roots version the registry mirror lacks.
        locked: false,
    })?;
    cargo_tool(&tools::TRUNK)?;
    // The demo loads the npm package's shared entry, which wasm-pack builds.
    cargo_tool(&tools::WASM_PACK)?;
    npm_packages()?;
    if scope == Scope::Everything {
        cargo_tool(&tools::GECKODRIVER)?;
        js_runtimes()?;
        apt_packages()?;
    }
    println!("<== setup done");
    Ok(())
}

fn wasm_target() -> Result {
    let installed = Step::new("rustup", "rustup")
        .args(["target", "list", "--installed"])
        .output()
        .unwrap_or_default();
    if installed.lines().any(|t| t.trim() == tools::WASM_TARGET) {
        println!("    ok   rust target {}", tools::WASM_TARGET);
        return Ok(());
    }
    Step::new("add the wasm32 target", "rustup")
        .args(["target", "add", tools::WASM_TARGET])
        .run()
}

/// std's source, which the npm package's small-std build compiles (see `npm::small_std`).
fn rust_src() -> Result {
    let installed = Step::new("rustup", "rustup")
        .args(["component", "list", "--installed"])
        .output()
        .unwrap_or_default();
    if installed.lines().any(|c| c.trim() == "rust-src") {
        println!("    ok   rust component rust-src");
        return Ok(());
    }
    Step::new("add the rust-src component", "rustup")
        .args(["component", "add", "rust-src"])
        .run()
}

/// Downloads every crate a later step builds: the workspace's, and std's own dependencies,
/// which the small-std builds (`npm::small_std`) compile from `rust-src`. The demo build runs
/// trunk with `--offline`, so whatever is not fetched here is missing on a new machine. With
/// everything already in cargo's cache this takes about a second and needs no network.
pub(crate) fn fetch_crates() -> Result {
    Step::new("fetch the workspace's crates", "cargo")
        .args(["fetch", "--locked"])
        .run()?;
    let library = std_library_manifest()?;
    // std's manifest uses an unstable cargo feature; `--locked` keeps its lock file untouched.
    Step::new("fetch std's own crates (for build-std)", "cargo")
        .args(["fetch", "--locked", "--manifest-path"])
        .args([&library])
        .env("RUSTC_BOOTSTRAP", "1")
        .run()
}

/// `library/Cargo.toml` of the toolchain's `rust-src` component.
pub(crate) fn std_library_manifest() -> Result<std::path::PathBuf> {
    let sysroot = Step::new("rustc --print sysroot", "rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok_or("`rustc --print sysroot` failed")?;
    let manifest = Path::new(sysroot.trim())
        .join("lib/rustlib/src/rust/library")
        .join("Cargo.toml");
    if manifest.exists() {
        Ok(manifest)
    } else {
        Err(format!(
            "{} is missing: the rust-src component is not installed",
            manifest.display()
        ))
    }
}

fn cargo_tool(tool: &CargoTool<'_>) -> Result {
    match tools::installed_version(tool.binary) {
        Some(v) if v == tool.version => {
            println!("    ok   {} {}", tool.binary, tool.version);
            return Ok(());
        }
        Some(v) => println!(
            "    {} is {v}, want {}: installing",
            tool.binary, tool.version
        ),
        None => println!("    {} missing: installing {}", tool.binary, tool.version),
    }
    let mut step = Step::new(&format!("install {} {}", tool.krate, tool.version), "cargo").args([
        "install",
        tool.krate,
        "--version",
        tool.version,
        "--force",
    ]);
    if tool.locked {
        step = step.args(["--locked"]);
    }
    step.run()
}

/// The oldest Node.js the tests run on: 20.10 has the `WebSocket` global (behind
/// `--experimental-websocket`) that the Node suite uses.
const NODE_MIN: (u32, u32) = (20, 10);

/// Checks that `node` is at least [`NODE_MIN`], from `node --version` (`v20.20.2`).
fn node_version() -> Result {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node is missing ({e}): install Node.js 20.10 or newer"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let version = parse_node_version(&text)
        .ok_or_else(|| format!("`node --version` printed `{text}`, not vMAJOR.MINOR.PATCH"))?;
    if version < NODE_MIN {
        return Err(format!(
            "node {text} is too old: the tests need Node.js {}.{} or newer",
            NODE_MIN.0, NODE_MIN.1
        ));
    }
    println!("    ok   node {text}");
    Ok(())
}

fn parse_node_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.strip_prefix('v')?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// `npm ci` from the committed lock file, skipped when node_modules already matches it.
fn npm_packages() -> Result {
    node_version()?;
    let root = crate::root();
    let lock = root.join("package-lock.json");
    let stamp = root.join("node_modules").join(".xtask-package-lock.json");
    let wanted = std::fs::read(&lock).map_err(|e| format!("reading package-lock.json: {e}"))?;
    if std::fs::read(&stamp).is_ok_and(|have| have == wanted) {
        println!("    ok   node_modules matches package-lock.json");
        return Ok(());
    }
    if Command::new("npm").arg("--version").output().is_err() {
        return Err(
            "npm is missing: install Node.js 20 or newer (Debian: apt-get install nodejs npm)"
                .into(),
        );
    }
    Step::new("npm ci", "npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .run()?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("writing {}: {e}", stamp.display()))
}

/// Deno and Bun, for the Node suite: pinned devDependencies, each binary from its platform's
/// npm package (`@deno/linux-x64-glibc`, `@oven/bun-linux-x64`), linked by the package's
/// postinstall; checked here so that a machine where that failed says so before the tests.
fn js_runtimes() -> Result {
    for runtime in ["deno", "bun"] {
        let version = Step::new(runtime, runtime)
            .args(["--version"])
            .output()
            .ok_or_else(|| {
                format!("`{runtime} --version` failed: run `npm ci` again (with install scripts)")
            })?;
        // Deno prints `deno 2.9.6 (…)` and more lines, Bun only `1.4.5`.
        let first_line = version.lines().next().unwrap_or_default();
        let number = first_line.trim_start_matches(runtime).trim();
        println!("    ok   {runtime} {number}");
    }
    Ok(())
}

/// Debian's Redis 7, for server-dev's Redis engine: its tests start their own `redis-server`
/// on a loopback port, never the package's service.
const REDIS_PACKAGE: (&str, &str) = ("redis-server", "/usr/bin/redis-server");

fn apt_packages() -> Result {
    let missing: Vec<&str> = tools::APT_PACKAGES
        .iter()
        .chain([&REDIS_PACKAGE])
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        println!("    ok   chromium, chromedriver, firefox-esr, redis-server");
        return Ok(());
    }
    let list = missing.join(" ");
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !has_apt {
        return Err(format!(
            "this system has no apt-get. Install these yourself, then rerun: {list} \
             (Chromium with its matching ChromeDriver at /usr/bin/chromedriver, and Firefox)"
        ));
    }
    let is_root = Step::new("id", "id")
        .args(["-u"])
        .output()
        .is_some_and(|uid| uid.trim() == "0");
    // As root apt-get runs directly; otherwise through sudo, which may ask for a password.
    let (program, prefix): (&str, &[&str]) = if is_root {
        ("apt-get", &[])
    } else {
        ("sudo", &["apt-get"])
    };
    Step::new("apt-get update", program)
        .args(prefix)
        .args(["update", "-qq"])
        .run()?;
    Step::new(&format!("apt-get install {list}"), program)
        .args(prefix)
        .args(["install", "-y", "-qq"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
}

#[cfg(test)]
mod tests {
    use super::{NODE_MIN, parse_node_version};

    #[test]
    fn node_versions_are_read_and_compared() {
        assert_eq!(parse_node_version("v20.20.2"), Some((20, 20)));
        assert!(parse_node_version("v20.9.0") < Some(NODE_MIN));
        assert!(parse_node_version("v22.1.0") >= Some(NODE_MIN));
        assert_eq!(parse_node_version("20"), None);
    }
}
