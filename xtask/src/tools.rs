//! Every tool version the project pins, in one place.
//!
//! wasm-bindgen-cli is not listed: its version is read from `Cargo.lock`, because it must equal
//! the `wasm-bindgen` crate the workspace builds against. The npm tools (Playwright's
//! `playwright-core`, `puppeteer-core` for Firefox, `binaryen`'s wasm-opt, TypeScript) are
//! pinned by `package-lock.json`.

use std::path::PathBuf;

use crate::Result;

/// A tool installed with `cargo install`.
pub(crate) struct CargoTool<'a> {
    /// The crate to install.
    pub(crate) krate: &'static str,
    /// The binary it provides.
    pub(crate) binary: &'static str,
    /// The exact version.
    pub(crate) version: &'a str,
    /// Whether to pass `--locked` (see ../shared/TOOLCHAIN.md for why some must not).
    pub(crate) locked: bool,
}

/// wasm-pack 0.15.1 downloads nothing when wasm-bindgen is on PATH and wasm-opt is off.
pub(crate) const WASM_PACK: CargoTool<'static> = CargoTool {
    krate: "wasm-pack",
    binary: "wasm-pack",
    version: "0.15.1",
    locked: true,
};

/// trunk 0.22 needs a newer rustc than the pinned 1.95; 0.21.14 only builds with `--locked`.
pub(crate) const TRUNK: CargoTool<'static> = CargoTool {
    krate: "trunk",
    binary: "trunk",
    version: "0.21.14",
    locked: true,
};

/// The WebDriver for Firefox, used by `wasm-pack test --firefox`.
pub(crate) const GECKODRIVER: CargoTool<'static> = CargoTool {
    krate: "geckodriver",
    binary: "geckodriver",
    version: "0.37.1",
    locked: false,
};

/// Debian packages: the browsers and ChromeDriver, checked by the file each one installs.
pub(crate) const APT_PACKAGES: [(&str, &str); 3] = [
    ("chromium", "/usr/bin/chromium"),
    ("chromium-driver", "/usr/bin/chromedriver"),
    ("firefox-esr", "/usr/bin/firefox-esr"),
];

/// Debian's ChromeDriver (package chromium-driver).
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The compile target of the library and the demo.
pub(crate) const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Where `cargo install` puts binaries.
pub(crate) fn cargo_bin() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    home.unwrap_or_else(|| PathBuf::from(".cargo")).join("bin")
}

/// The `wasm-bindgen` version locked in `Cargo.lock`.
pub(crate) fn locked_wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(crate::root().join("Cargo.lock"))
        .map_err(|e| format!("reading Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == r#"name = "wasm-bindgen""# {
            let version = lines.next().unwrap_or_default().trim();
            if let Some(v) = version
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
            {
                return Ok(v.to_string());
            }
        }
    }
    Err("Cargo.lock has no wasm-bindgen package".into())
}

/// The version a binary reports with `--version`, e.g. `trunk 0.21.14` → `0.21.14`.
pub(crate) fn installed_version(binary: &str) -> Option<String> {
    let out = crate::process::Step::new(binary, binary)
        .args(["--version"])
        .output()?;
    out.split_whitespace()
        .find(|word| word.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|v| v.trim_start_matches('v').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library asks for a caret range (so apps can unify it with their own wasm-bindgen)
    /// whose lowest version is the locked one: what CI builds and tests is what the
    /// requirement allows at its floor.
    #[test]
    fn the_locked_wasm_bindgen_is_the_floor_of_a_caret_requirement() {
        let version = locked_wasm_bindgen_version().unwrap();
        let manifest = std::fs::read_to_string(crate::root().join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(&format!("\nwasm-bindgen = \"{version}\"\n")),
            "the workspace asks for wasm-bindgen \"{version}\" (caret), the locked version"
        );
    }
}
