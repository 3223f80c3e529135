//! `cargo xtask`: the project's one entry point for users, developers and CI.
//!
//! - `setup`: installs every tool the other commands need, skipping what is already present at
//!   the pinned version (see [`tools`]).
//! - `demo`: builds the demo with trunk and serves it, with its WebSocket endpoint, on one port.
//! - `test`: formatting, clippy (native and wasm32), the wasm32 API docs, native tests, browser
//!   tests in headless Chromium and Firefox, and the end-to-end suite (tests/e2e).
//! - `bench`: the benchmark harness (see BENCHMARKS.md).

// A command-line tool: printing progress to stdout is its job.
#![allow(clippy::print_stdout)]

mod bench;
mod npm;
mod process;
mod readme_examples;
mod setup;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use process::{Server, Step};

/// The result of a step: `Err` carries a message naming what failed.
type Result<T = (), E = String> = std::result::Result<T, E>;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  setup                 install the toolchain pieces the other commands need (idempotent)
  demo [--port N] [--engine E]
                        build the demo and serve it at http://127.0.0.1:N (default 8080);
                        E is server-dev's engine: memory (default), sqlite:PATH or
                        redis://HOST:PORT
  test                  run every check CI runs: fmt, clippy, native, browser and e2e tests
  package [--raw|--persist]
                        build the npm package into client-wasm/pkg (with its socket/ and
                        persist/ entries); --raw builds only its socket entry (no rooms
                        feature) into client-wasm/pkg/socket, --persist only its persist
                        entry into client-wasm/pkg/persist
  bench [size|browser|tabs|latency|server|engines|all] [--quick] [--record-sizes]
                        run the benchmarks (see BENCHMARKS.md); --quick runs each once, tiny;
                        tabs: ten tabs with and without shared mode; engines: only server's
                        storage-engine part

options:
  --skip-setup          assume `cargo xtask setup` already ran (demo, test, bench)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let rest = &args[1..];
    let outcome = match command.as_str() {
        "setup" => setup::run(setup::Scope::Everything),
        "demo" => demo(rest),
        "test" => test(rest),
        "bench" => bench(rest),
        "package" if rest.iter().any(|a| a == "--raw") => npm::build_raw_package(),
        "package" if rest.iter().any(|a| a == "--persist") => npm::build_persist_package(),
        "package" => npm::build_npm_package(),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nxtask: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's folder).
fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Where cargo puts build output.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn reject_unknown(args: &[String], known_flags: &[&str], known_options: &[&str]) -> Result {
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if known_options.contains(&arg) {
            i += 2;
        } else if known_flags.contains(&arg) {
            i += 1;
        } else {
            return Err(format!("unknown argument `{arg}`\n\n{USAGE}"));
        }
    }
    Ok(())
}

fn demo(args: &[String]) -> Result {
    reject_unknown(args, &["--skip-setup"], &["--port", "--engine"])?;
    let engine = option(args, "--engine").unwrap_or("memory");
    let port: u16 = match option(args, "--port") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("--port takes a port number, got `{p}`"))?,
        None => 8080,
    };
    if !flag(args, "--skip-setup") {
        setup::run(setup::Scope::Demo)?;
    }
    build_demo()?;
    build_server()?;
    let server = Server::start(
        &server_binary(),
        &[
            "--port",
            &port.to_string(),
            "--static-dir",
            &root().join("dist").to_string_lossy(),
            "--engine",
            engine,
        ],
    )?;
    println!(
        "\n  ws-lifeline demo: {}\n  (Ctrl-C stops it)\n",
        server.base_url()
    );
    server.wait()
}

fn test(args: &[String]) -> Result {
    reject_unknown(args, &["--skip-setup"], &[])?;
    if !flag(args, "--skip-setup") {
        setup::run(setup::Scope::Everything)?;
    }
    Step::new("format", "cargo")
        .args(["fmt", "--all", "--", "--check"])
        .run()?;
    Step::new("clippy (native)", "cargo")
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
        ])
        .args(["--", "-D", "warnings"])
        .run()?;
    Step::new("clippy (wasm32)", "cargo")
        .args([
            "clippy",
            "--target",
            "wasm32-unknown-unknown",
            "--all-targets",
            "--locked",
        ])
        .args(WASM_PACKAGES)
        .args([
            "--features",
            "ws-lifeline/yew,ws-lifeline/js",
            "--",
            "-D",
            "warnings",
        ])
        .run()?;
    // The library as a Rust app gets it: without `js` (features unify above, so this
    // configuration needs its own run), with the persistent outbox; and as the npm package's
    // persist entry builds it.
    for (name, features) in [
        (
            "clippy (wasm32, ws-lifeline without js)",
            "yew,talc,persist,shared",
        ),
        ("clippy (wasm32, the npm persist entry)", "js,talc,persist"),
    ] {
        Step::new(name, "cargo")
            .args([
                "clippy",
                "--target",
                "wasm32-unknown-unknown",
                "--lib",
                "--locked",
                "-p",
                "ws-lifeline",
                "--features",
                features,
                "--",
                "-D",
                "warnings",
            ])
            .run()?;
    }
    // The browser API (`web`, `yew`) is only documented on wasm32; a broken intra-doc link
    // there is a warning, so `-D warnings` fails the step on it. `js` too: the npm package's
    // module docs link into the core; and with the persistent outbox, whose items only exist
    // with `persist`.
    for (name, features) in [
        ("docs (wasm32, -D warnings)", "yew,js"),
        (
            "docs (wasm32, persist, shared, -D warnings)",
            "yew,js,persist,shared",
        ),
    ] {
        Step::new(name, "cargo")
            .args([
                "doc",
                "--target",
                "wasm32-unknown-unknown",
                "--no-deps",
                "--locked",
                "-p",
                "ws-lifeline",
                "--features",
                features,
            ])
            .env("RUSTDOCFLAGS", "-D warnings")
            .run()?;
    }
    Step::new("native tests", "cargo")
        .args(["test", "--workspace", "--all-features", "--locked"])
        .run()?;
    build_server()?;
    browser_tests()?;
    npm::build_npm_package()?;
    build_demo_app()?;
    npm::publish_dry_runs()?;
    e2e_tests()?;
    node_tests()?;
    bench::quick_after_test()?;
    println!("\nxtask: every test stage passed");
    Ok(())
}

/// Crates that compile to wasm32 (server-dev, the e2e crate and xtask are native only).
const WASM_PACKAGES: [&str; 8] = [
    "--package",
    "lifeline-protocol",
    "--package",
    "ws-lifeline",
    "--package",
    "demo-yew",
    "--package",
    "lifeline-bench-wasm",
];

fn bench(args: &[String]) -> Result {
    bench::run(args)
}

fn build_server() -> Result {
    Step::new("build server-dev", "cargo")
        .args(["build", "--package", "server-dev", "--locked"])
        .run()
}

fn server_binary() -> PathBuf {
    target_dir()
        .join("debug")
        .join(format!("server-dev{}", std::env::consts::EXE_SUFFIX))
}

/// Builds the demo: the npm package's entries its shared mode loads, then the app.
fn build_demo() -> Result {
    npm::build_shared_entries()?;
    build_demo_app()
}

/// Builds the demo app with trunk, which copies the npm package from `client-wasm/pkg`
/// (built before this) into `dist/ws-lifeline/`.
pub(crate) fn build_demo_app() -> Result {
    let build = Step::new("build demo (trunk)", "trunk")
        .args(["build", "--release", "--offline", "--locked"])
        .current_dir(root());
    // Built as the npm package is (std with it, no panic machinery), and like it with no
    // absolute path of this machine in the wasm.
    npm::small_std(build).run()
}

/// wasm-bindgen-test suites of client-wasm, in headless Chromium and Firefox, against a
/// server-dev started for them.
fn browser_tests() -> Result {
    let server = Server::start(
        &server_binary(),
        &["--port", "0", "--test-endpoints", "--no-auth"],
    )?;
    // One browser per run, with only its driver in the environment: the test runner picks the
    // driver from whichever variable it finds, so with both set it would drive one browser twice.
    let geckodriver = tools::cargo_bin().join("geckodriver");
    let runs = [
        (
            "Chromium",
            "--chrome",
            ("CHROMEDRIVER", PathBuf::from(tools::CHROMEDRIVER)),
            "GECKODRIVER",
        ),
        (
            "Firefox",
            "--firefox",
            ("GECKODRIVER", geckodriver),
            "CHROMEDRIVER",
        ),
    ];
    // The test runner ends chromedriver without closing its session, which leaves each test
    // binary's Chromium profile in the temp dir: here they go into a folder of our own, emptied
    // before and after.
    let profiles = target_dir().join("browser-tests-tmp");
    let empty = || {
        let _ = std::fs::remove_dir_all(&profiles);
        std::fs::create_dir_all(&profiles)
            .map_err(|e| format!("creating {}: {e}", profiles.display()))
    };
    empty()?;
    for (name, flag, (driver_var, driver), other_driver_var) in runs {
        Step::new(&format!("browser tests ({name})"), "wasm-pack")
            .args(["test", "--headless", flag, "client-wasm"])
            // The allocator the npm package and the demo ship with; `persist` for the outbox's
            // IndexedDB test (the other suites do not turn the outbox on).
            .args(["--features", "yew,talc,persist,shared"])
            .env("LIFELINE_TEST_SERVER", server.base_url())
            .env(driver_var, driver)
            .env_remove(other_driver_var)
            .env("TMPDIR", &profiles)
            .run()?;
    }
    server.stop();
    empty()?;
    Ok(())
}

/// The npm package under Node, Deno and Bun (tests/node), every entry, against server-dev.
/// Node 20 has its global `WebSocket` behind a flag, on by default from Node 22. Deno and Bun
/// (npm devDependencies) run the same `node:test` files with their own test runners.
fn node_tests() -> Result {
    let files = test_files("node")?;
    Step::new("Node tests (the npm package under Node)", "node")
        .args(["--experimental-websocket", "--test", "--test-concurrency=1"])
        .args(&files)
        .env("SERVER_DEV_BIN", server_binary())
        .current_dir(root())
        .run()?;
    // `bun test` gives each test 5 s by default, too little for a reconnect on a busy 2-core
    // machine; Node's and Deno's runners have no limit.
    let runtimes = [
        ("Deno", "deno", ["test", "--allow-all"].as_slice()),
        ("Bun", "bun", ["test", "--timeout", "60000"].as_slice()),
    ];
    for (name, program, args) in runtimes {
        Step::new(&format!("Node tests under {name}"), program)
            .args(args)
            .args(&files)
            .env("SERVER_DEV_BIN", server_binary())
            .current_dir(root())
            .run()?;
    }
    Ok(())
}

/// The `*.test.mjs` files of `tests/<folder>`, named one by one: from Node 21 on, `--test`
/// takes file patterns, not folders.
fn test_files(folder: &str) -> Result<Vec<PathBuf>> {
    let folder = root().join("tests").join(folder);
    let entries =
        std::fs::read_dir(&folder).map_err(|e| format!("reading {}: {e}", folder.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    Ok(files)
}

/// The suite under tests/e2e: Chromium through Playwright, and Firefox ESR through
/// puppeteer-core (`js_firefox.test.mjs`, `demo_firefox.test.mjs`); each test file starts the
/// servers it needs.
fn e2e_tests() -> Result {
    Step::new("e2e tests (Chromium and Firefox)", "node")
        .args(["--test", "--test-concurrency=1"])
        .args(test_files("e2e")?)
        .env("SERVER_DEV_BIN", server_binary())
        .env("DEMO_DIST", root().join("dist"))
        .current_dir(root())
        .run()
}
