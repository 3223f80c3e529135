//! `cargo xtask bench [size|server|all] [--quick] [--record-sizes]`: the benchmark harness.
//!
//! - `size`: builds the npm package and the demo, measures them and the peers' npm bundles
//!   (`benches/size/sizes.mjs`) and fails when one of ours grew more than 10% over
//!   `benches/sizes.json` (`--record-sizes` rewrites that file instead).
//! - `browser`: headless Chromium receives and sends protocol-v1 events through server-dev's
//!   bench endpoints with a bare WebSocket, partysocket, ws-lifeline's JS API and its Rust API
//!   (`benches/browser/throughput.mjs`; the Rust side is the `benches/browser-rust` crate),
//!   plus the coalescing figure.
//! - `tabs`: ten tabs of one browser context against one server-dev, with and without shared
//!   mode (`benches/browser/tabs.mjs`): server connections, JS heap and wasm memory per tab,
//!   the SharedWorker's, and every tab's deliveries checked; `--quick` checks 1 connection
//!   against 10 and the deliveries.
//! - `latency`: reconnect and half-open detection latency of the native shell
//!   (`benches/loadgen/src/bin/latency.rs`, through the e2e tests' fault proxy).
//! - `server`: server-dev (built with `--profile bench-native`) and the Node `ws` peer
//!   (`benches/peers/ws-broadcast.mjs`) under the load generator (`benches/loadgen`), one fresh
//!   server process per workload, in one run: idle connections, fan-out, chat mix. Fan-out
//!   and the 1,000-connection chat mix also run against server-dev's other storage engines:
//!   `sqlite:` (a file in a temporary folder) and Redis with two server-dev instances on one
//!   private `redis-server`, each reported as a ratio to the memory engine of the same run.
//! - `engines`: only that engine part of `server` (the two workloads, every engine, the peer).
//!
//! `--quick` runs every benchmark once at a tiny size and checks only that it produced
//! results (for the engines, that messages arrived through every instance); `cargo xtask test`
//! ends with it so the harness cannot rot. Results go to
//! `target/bench/*.json`; BENCHMARKS.md quotes them with the command that made them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::Result;
use crate::process::Step;

const USAGE: &str = "usage: cargo xtask bench [size|browser|tabs|latency|server|engines|all] \
                     [--quick] [--record-sizes] [--skip-setup]";

/// `cargo xtask bench ...`.
pub(crate) fn run(args: &[String]) -> Result {
    let mut what = "all";
    let (mut quick, mut record, mut skip_setup) = (false, false, false);
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            "--record-sizes" => record = true,
            "--skip-setup" => skip_setup = true,
            "size" | "browser" | "tabs" | "latency" | "server" | "engines" | "all" => {
                what = arg.as_str()
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if !skip_setup {
        crate::setup::run(crate::setup::Scope::Everything)?;
    }
    let all = what == "all";
    if what == "size" || what == "browser" || what == "latency" || all {
        crate::npm::build_npm_package()?;
        crate::build_demo_app()?;
    }
    if what == "tabs" {
        crate::npm::build_npm_package()?;
    }
    if what == "size" || all {
        crate::npm::build_raw_package()?;
        sizes(record)?;
    }
    if what == "browser" || all {
        browser(quick)?;
    }
    if what == "tabs" || all {
        tabs(quick)?;
    }
    if what == "latency" || all {
        latency(quick)?;
    }
    if what == "server" || all {
        server(quick, false)?;
    }
    if what == "engines" {
        server(quick, true)?;
    }
    Ok(())
}

/// The tail of `cargo xtask test`: the size check on what the test just built, and every
/// benchmark once at a tiny size.
/// After `cargo xtask test`, which has built every entry of the package.
pub(crate) fn quick_after_test() -> Result {
    sizes(false)?;
    browser(true)?;
    tabs(true)?;
    latency(true)?;
    server(true, false)
}

/// Measured runs use the speed-optimised profile; `--quick` only checks that results come
/// out, so it reuses the debug build `cargo xtask test` already has.
fn build_native(quick: bool, packages: &[&str]) -> Result<PathBuf> {
    let profile = if quick { "dev" } else { "bench-native" };
    let mut step = Step::new(
        &format!("bench: build {} ({profile})", packages.join(", ")),
        "cargo",
    )
    .args(["build", "--locked", "--profile", profile]);
    for package in packages {
        step = step.args(["--package", package]);
    }
    step.run()?;
    Ok(crate::target_dir().join(if quick { "debug" } else { "bench-native" }))
}

fn browser(quick: bool) -> Result {
    build_rust_bench()?;
    // Built last, so the binary started is the one just built even when another checkout
    // shares the target folder.
    let bin = build_native(quick, &["server-dev"])?;
    let out = bench_dir().join(if quick {
        "browser-quick.json"
    } else {
        "browser.json"
    });
    Step::new("bench: browser throughput (headless Chromium)", "node")
        .args([crate::root()
            .join("benches")
            .join("browser")
            .join("throughput.mjs")])
        .args(["--n", if quick { "500" } else { "100000" }])
        // Three rounds with the clients' order rotating, medians reported: one round's ratios
        // move by ±0.1 on a shared machine.
        .args(["--rounds", if quick { "1" } else { "3" }])
        .args(["--out".as_ref(), out.as_os_str()])
        .env("SERVER_DEV_BIN", bin.join("server-dev"))
        .run()
}

/// Ten tabs with and without shared mode (`benches/browser/tabs.mjs`, which needs the npm
/// package). The script fails when a mode holds another number of connections than 10 and 1,
/// or a tab misses or repeats a message, so `--quick` checks both modes.
fn tabs(quick: bool) -> Result {
    let bin = build_native(quick, &["server-dev"])?;
    let out = bench_dir().join(if quick {
        "tabs-quick.json"
    } else {
        "tabs.json"
    });
    let mut step = Step::new(
        "bench: ten tabs, with and without shared mode (headless Chromium)",
        "node",
    )
    .args([crate::root()
        .join("benches")
        .join("browser")
        .join("tabs.mjs")])
    .args(["--out".as_ref(), out.as_os_str()])
    .env("SERVER_DEV_BIN", bin.join("server-dev"));
    if quick {
        step = step.args(["--quick"]);
    }
    step.run()
}

/// Client (d), the Rust API in the page: `benches/browser-rust` into its `pkg` folder, built as
/// the npm package is (release profile, `--target web`, the same small std, then
/// `wasm-opt -Oz`), so the two ws-lifeline clients differ only in their API.
fn build_rust_bench() -> Result {
    let krate = crate::root().join("benches").join("browser-rust");
    let build = Step::new("bench: wasm-pack the Rust API page", "wasm-pack")
        .args(["build", "--release", "--target", "web", "--no-pack"])
        .args(["--out-dir", "pkg", "--out-name", "lifeline_bench_wasm"])
        .args([&krate]);
    crate::npm::small_std(build).run()?;
    let wasm = krate.join("pkg").join("lifeline_bench_wasm_bg.wasm");
    Step::new("bench: wasm-opt -Oz the Rust API page", "wasm-opt")
        .args([&wasm])
        .args(["-Oz", "--strip-debug", "--strip-producers", "-o"])
        .args([&wasm])
        .run()
}

/// Section 3: the native shell (`loadgen`'s `latency`), then the JS API in headless Chromium
/// and Firefox (`benches/browser/latency.mjs`, which needs the npm package).
fn latency(quick: bool) -> Result {
    let bin = build_native(quick, &["loadgen", "server-dev"])?;
    latency_native(quick, &bin)?;
    for browser in ["chromium", "firefox"] {
        let name = match (browser, quick) {
            ("chromium", false) => "latency-browser.json",
            ("chromium", true) => "latency-browser-quick.json",
            (_, false) => "latency-browser-firefox.json",
            (_, true) => "latency-browser-firefox-quick.json",
        };
        let out = bench_dir().join(name);
        let title = if browser == "chromium" {
            "bench: reconnect and detection latency (JS API, headless Chromium)"
        } else {
            "bench: reconnect and detection latency (JS API, headless Firefox)"
        };
        let mut step = Step::new(title, "node")
            .args([crate::root()
                .join("benches")
                .join("browser")
                .join("latency.mjs")])
            .args(["--browser", browser])
            .args(["--out".as_ref(), out.as_os_str()])
            .env("SERVER_DEV_BIN", bin.join("server-dev"));
        if quick {
            step = step.args(["--quick"]);
        }
        step.run()?;
    }
    Ok(())
}

fn latency_native(quick: bool, bin: &Path) -> Result {
    let out = Command::new(bin.join("latency"))
        .args(["--trials", if quick { "2" } else { "20" }])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running latency: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    println!("\n==> bench: reconnect and detection latency (native shell)\n{text}");
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("latency printed no JSON: {e}"))?;
    let failed = value["errors"].as_array().is_some_and(|e| !e.is_empty());
    if quick && failed {
        return Err(format!("latency bench failed: {}", value["errors"]));
    }
    let file = bench_dir().join(if quick {
        "latency-quick.json"
    } else {
        "latency.json"
    });
    std::fs::create_dir_all(bench_dir()).map_err(|e| format!("creating target/bench: {e}"))?;
    std::fs::write(&file, text).map_err(|e| format!("writing {}: {e}", file.display()))
}

fn bench_dir() -> PathBuf {
    crate::target_dir().join("bench")
}

fn sizes(record: bool) -> Result {
    let root = crate::root();
    let recorded = root.join("benches").join("sizes.json");
    let out = bench_dir().join("sizes.json");
    let mut step = Step::new("bench: sizes", "node")
        .args([root.join("benches").join("size").join("sizes.mjs")])
        .args(["--out".as_ref(), out.as_os_str()]);
    step = if record {
        step.args(["--record".as_ref(), recorded.as_os_str()])
    } else {
        step.args(["--check".as_ref(), recorded.as_os_str()])
    };
    step.run()
}

/// One workload of the server benchmark, at full and at `--quick` size.
struct Workload {
    name: &'static str,
    full: &'static [&'static str],
    quick: &'static [&'static str],
    /// Also run against the sqlite and Redis engines, not only memory and the peer.
    every_engine: bool,
}

const WORKLOADS: [Workload; 6] = [
    Workload {
        name: "idle-connected",
        every_engine: false,
        full: &["--workload", "idle", "--conns", "10000", "--rooms", "0"],
        quick: &["--workload", "idle", "--conns", "20", "--rooms", "0"],
    },
    Workload {
        name: "idle-joined-2000",
        every_engine: false,
        full: &[
            "--workload",
            "idle",
            "--conns",
            "2000",
            "--rooms",
            "20",
            "--setup-secs",
            "60",
        ],
        quick: &["--workload", "idle", "--conns", "20", "--rooms", "2"],
    },
    Workload {
        name: "idle-joined",
        every_engine: false,
        full: &[
            "--workload",
            "idle",
            "--conns",
            "10000",
            "--rooms",
            "100",
            "--setup-secs",
            "90",
        ],
        quick: &["--workload", "idle", "--conns", "40", "--rooms", "4"],
    },
    Workload {
        name: "fanout",
        every_engine: true,
        full: &[
            "--workload",
            "fanout",
            "--conns",
            "1000",
            "--secs",
            "15",
            "--window",
            "100",
        ],
        quick: &["--workload", "fanout", "--conns", "10", "--secs", "0.5"],
    },
    Workload {
        name: "chat",
        every_engine: false,
        full: &[
            "--workload",
            "chat",
            "--conns",
            "5000",
            "--rooms",
            "100",
            "--rate",
            "1",
            "--secs",
            "20",
            "--setup-secs",
            "120",
        ],
        quick: &[
            "--workload",
            "chat",
            "--conns",
            "20",
            "--rooms",
            "2",
            "--secs",
            "1",
        ],
    },
    // The same room size (50) at a fifth of the connections: server-dev's joins push the room
    // list to every connection, so setting up 5,000 takes longer than the bound (BENCHMARKS.md).
    Workload {
        name: "chat-1000",
        every_engine: true,
        full: &[
            "--workload",
            "chat",
            "--conns",
            "1000",
            "--rooms",
            "20",
            "--rate",
            "1",
            "--secs",
            "20",
            "--setup-secs",
            "60",
        ],
        quick: &[
            "--workload",
            "chat",
            "--conns",
            "20",
            "--rooms",
            "2",
            "--secs",
            "1",
        ],
    },
];

/// Flags that lift server-dev's per-connection limits out of the way of the load generator;
/// nothing else differs from the defaults.
const SERVER_DEV_FLAGS: [&str; 14] = [
    "--no-auth",
    "--rate-limit",
    "0",
    "--max-connections",
    "20000",
    // Every load-generator connection comes from loopback, one address.
    "--max-connections-per-ip",
    "0",
    "--queue-capacity",
    "4096",
    "--max-sessions",
    "20000",
    "--max-message-size",
    "1048576",
    "--bench-endpoints",
];

/// What one workload runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// server-dev with its default engine, `memory`.
    Memory,
    /// server-dev with `--engine sqlite:FILE`, the file in a fresh temporary folder.
    Sqlite,
    /// Two server-dev instances with `--engine redis://…` on one private `redis-server`.
    Redis2,
    /// The Node `ws` broadcast server.
    Peer,
}

impl Target {
    /// The `label` of its results (memory keeps the name the earlier results used).
    fn label(self) -> &'static str {
        match self {
            Self::Memory => "server-dev",
            Self::Sqlite => "server-dev-sqlite",
            Self::Redis2 => "server-dev-redis-2",
            Self::Peer => "peer",
        }
    }
}

/// Redis without persistence: the figure is the engine's round trips and scripts, not Redis's
/// fsync (DEPLOY.md says what each persistence setting keeps).
const REDIS_FLAGS: [&str; 10] = [
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "no",
    "--protected-mode",
    "yes",
    "--bind",
    "127.0.0.1",
];

fn server(quick: bool, engines_only: bool) -> Result {
    let bin = build_native(quick, &["server-dev", "loadgen"])?;
    let loadgen = bin.join("loadgen");
    let binaries = Binaries {
        server_dev: bin.join("server-dev"),
        peer_script: crate::root()
            .join("benches")
            .join("peers")
            .join("ws-broadcast.mjs"),
        log: bench_dir().join("server-dev.log"),
    };
    std::fs::create_dir_all(bench_dir()).map_err(|e| format!("creating target/bench: {e}"))?;
    let mut results = Vec::new();
    for workload in WORKLOADS.iter().filter(|w| w.every_engine || !engines_only) {
        let args = if quick { workload.quick } else { workload.full };
        let targets: &[Target] = if workload.every_engine {
            &[Target::Memory, Target::Sqlite, Target::Redis2, Target::Peer]
        } else {
            &[Target::Memory, Target::Peer]
        };
        for &target in targets {
            let label = target.label();
            let servers = Servers::start(target, &binaries)?;
            let pids = servers.pids();
            let pid_list: Vec<String> = pids.iter().map(u32::to_string).collect();
            println!(
                "\n==> bench: {} against {label} (pids {})",
                workload.name,
                pid_list.join(", ")
            );
            let mut cmd = Command::new(&loadgen);
            for url in &servers.urls {
                cmd.args(["--url", url]);
            }
            for pid in &pid_list {
                cmd.args(["--pid", pid]);
            }
            let out = cmd
                .args(["--label", label])
                .args(args)
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("running loadgen: {e}"))?;
            drop(servers);
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            println!("{text}");
            let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                format!(
                    "loadgen printed no JSON for {} on {label}: {e}",
                    workload.name
                )
            })?;
            if quick {
                check_quick(workload, label, &value)?;
            }
            value["bench"] = workload.name.into();
            results.push(value);
        }
    }
    let name = match (engines_only, quick) {
        (false, false) => "server.json",
        (false, true) => "server-quick.json",
        (true, false) => "server-engines.json",
        (true, true) => "server-engines-quick.json",
    };
    let file = bench_dir().join(name);
    let text = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(&file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
    if !engines_only {
        print_server_table(&results);
    }
    print_engine_table(&results);
    println!("\nbench: results in {}", file.display());
    Ok(())
}

/// `--quick` proves the path: no error, and for the workloads run on every engine, messages
/// received through every instance (with Redis, the second one only gets them across Redis).
fn check_quick(workload: &Workload, label: &str, value: &serde_json::Value) -> Result {
    if let Some(err) = value.get("error") {
        return Err(format!("bench {} on {label} failed: {err}", workload.name));
    }
    if !workload.every_engine {
        return Ok(());
    }
    let by_url = value["deliveries_by_url"].as_array().cloned();
    let every_url_received = by_url
        .as_ref()
        .is_some_and(|v| !v.is_empty() && v.iter().all(|d| d.as_u64().unwrap_or(0) > 0));
    if every_url_received {
        Ok(())
    } else {
        Err(format!(
            "bench {} on {label}: some instance delivered nothing (deliveries by URL: {})",
            workload.name, value["deliveries_by_url"]
        ))
    }
}

/// What the servers of a benchmark are started from.
struct Binaries {
    server_dev: PathBuf,
    peer_script: PathBuf,
    /// server-dev's stderr, appended to.
    log: PathBuf,
}

/// The processes serving one benchmark run. Dropping it stops them by pid (the fields drop in
/// order: server-dev, then Redis) and then removes the temporary folder.
struct Servers {
    servers: Vec<Proc>,
    redis: Option<Proc>,
    /// Held only to be removed last.
    _scratch: Option<ScratchDir>,
    /// The WebSocket URLs, one per server.
    urls: Vec<String>,
}

impl Servers {
    fn start(target: Target, binaries: &Binaries) -> Result<Self> {
        let server_dev = |engine: &str| {
            let mut cmd = Command::new(&binaries.server_dev);
            cmd.args(["--port", "0"])
                .args(SERVER_DEV_FLAGS)
                .args(["--engine", engine])
                .env("RUST_LOG", "warn");
            Proc::start("server-dev", cmd, Some(&binaries.log))
        };
        let (servers, redis, scratch) = match target {
            Target::Memory => (vec![server_dev("memory")?], None, None),
            Target::Sqlite => {
                let scratch = ScratchDir::new("sqlite")?;
                let engine = format!("sqlite:{}", scratch.0.join("rooms.db").display());
                (vec![server_dev(&engine)?], None, Some(scratch))
            }
            Target::Redis2 => {
                let scratch = ScratchDir::new("redis")?;
                let redis = start_redis(&scratch.0)?;
                let engine = format!("redis://{}", redis.host_port);
                let servers = vec![server_dev(&engine)?, server_dev(&engine)?];
                (servers, Some(redis), Some(scratch))
            }
            Target::Peer => {
                let mut cmd = Command::new("node");
                cmd.arg(&binaries.peer_script).arg("0");
                (vec![Proc::start("peer", cmd, None)?], None, None)
            }
        };
        let path = if target == Target::Peer { "/" } else { "/ws" };
        let urls = servers
            .iter()
            .map(|s| format!("ws://{}{path}", s.host_port))
            .collect();
        Ok(Self {
            servers,
            redis,
            _scratch: scratch,
            urls,
        })
    }

    /// The servers' pids, then Redis's: the load generator sums their CPU.
    fn pids(&self) -> Vec<u32> {
        self.servers
            .iter()
            .chain(self.redis.as_ref())
            .map(Proc::pid)
            .collect()
    }
}

/// Starts a `redis-server` on a free loopback port with its files in `dir`, and waits
/// (bounded) until it answers `PING`.
fn start_redis(dir: &Path) -> Result<Proc> {
    let mut last_error = String::new();
    // The port is free when picked and may be taken before Redis binds it: retry.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(REDIS_FLAGS)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting redis-server (`cargo xtask setup` installs it): {e}"))?;
        let mut redis = Proc {
            name: "redis-server",
            child,
            host_port: format!("127.0.0.1:{port}"),
        };
        match wait_for_pong(&mut redis) {
            Ok(()) => return Ok(redis),
            Err(e) => last_error = e,
        }
    }
    Err(format!("redis-server did not start: {last_error}"))
}

fn wait_for_pong(redis: &mut Proc) -> Result {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = redis.child.try_wait() {
            return Err(format!("redis-server exited: {status}"));
        }
        if ping(&redis.host_port).unwrap_or(false) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("redis-server did not answer PING within 10 s".into())
}

fn ping(host_port: &str) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(host_port)?;
    tcp.set_read_timeout(Some(Duration::from_secs(1)))?;
    tcp.write_all(b"PING\r\n")?;
    let mut reply = [0u8; 7];
    let n = tcp.read(&mut reply)?;
    Ok(reply[..n].starts_with(b"+PONG"))
}

/// A folder of its own in the system's temporary folder, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(what: &str) -> Result<Self> {
        let path =
            std::env::temp_dir().join(format!("ws-lifeline-bench-{}-{what}", std::process::id()));
        // A leftover of an earlier run that had the same pid and was killed.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The figure at `path` (e.g. `["latency", "p99_us"]`) of `label`'s run of `workload`; null
/// when that run is missing or failed.
fn figure(
    results: &[serde_json::Value],
    workload: &str,
    label: &str,
    path: &[&str],
) -> serde_json::Value {
    let mut value = results
        .iter()
        .find(|r| r["bench"] == workload && r["label"] == label)
        .cloned()
        .unwrap_or_default();
    for key in path {
        value = value.get(*key).cloned().unwrap_or_default();
    }
    value
}

fn ratio(a: &serde_json::Value, b: &serde_json::Value) -> String {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn show(value: &serde_json::Value) -> String {
    if value.is_null() {
        "error".to_string()
    } else {
        value.to_string()
    }
}

fn print_server_table(results: &[serde_json::Value]) {
    println!(
        "\n{:<16} {:<28} {:>14} {:>14} {:>8}",
        "workload", "figure", "server-dev", "peer", "ratio"
    );
    let rows: [(&str, &str, &[&str]); 15] = [
        (
            "idle-connected",
            "RSS per connection (B)",
            &["rss_per_conn_bytes"],
        ),
        (
            "idle-joined-2000",
            "RSS per connection (B)",
            &["rss_per_conn_bytes"],
        ),
        (
            "idle-joined",
            "RSS per connection (B)",
            &["rss_per_conn_bytes"],
        ),
        ("fanout", "deliveries/s", &["deliveries_per_s"]),
        ("fanout", "p50 latency (us)", &["latency", "p50_us"]),
        ("fanout", "p99 latency (us)", &["latency", "p99_us"]),
        ("fanout", "p999 latency (us)", &["latency", "p999_us"]),
        ("chat-1000", "deliveries/s", &["deliveries_per_s"]),
        ("chat-1000", "server CPU (% of a core)", &["server_cpu_pct"]),
        ("chat-1000", "p99 latency (us)", &["latency", "p99_us"]),
        ("chat-1000", "p50 latency (us)", &["latency", "p50_us"]),
        ("chat", "deliveries/s", &["deliveries_per_s"]),
        ("chat", "server CPU (% of a core)", &["server_cpu_pct"]),
        ("chat", "p99 latency (us)", &["latency", "p99_us"]),
        ("chat", "p50 latency (us)", &["latency", "p50_us"]),
    ];
    for (workload, name, path) in rows {
        let ours = figure(results, workload, Target::Memory.label(), path);
        let peer = figure(results, workload, Target::Peer.label(), path);
        println!(
            "{workload:<16} {name:<28} {:>14} {:>14} {:>8}",
            show(&ours),
            show(&peer),
            ratio(&ours, &peer)
        );
    }
}

/// Every engine and the peer, each as a ratio to the memory engine of the same run.
fn print_engine_table(results: &[serde_json::Value]) {
    let others = [Target::Sqlite, Target::Redis2, Target::Peer];
    print!("\n{:<10} {:<26} {:>12}", "workload", "figure", "memory");
    for target in others {
        print!(" {:>20} {:>7}", target.label(), "/memory");
    }
    println!();
    let rows: [(&str, &str, &[&str]); 8] = [
        ("fanout", "deliveries/s", &["deliveries_per_s"]),
        ("fanout", "p50 latency (us)", &["latency", "p50_us"]),
        ("fanout", "p99 latency (us)", &["latency", "p99_us"]),
        ("fanout", "CPU, all servers (%)", &["server_cpu_pct"]),
        ("chat-1000", "deliveries/s", &["deliveries_per_s"]),
        ("chat-1000", "p50 latency (us)", &["latency", "p50_us"]),
        ("chat-1000", "p99 latency (us)", &["latency", "p99_us"]),
        ("chat-1000", "CPU, all servers (%)", &["server_cpu_pct"]),
    ];
    for (workload, name, path) in rows {
        let memory = figure(results, workload, Target::Memory.label(), path);
        print!("{workload:<10} {name:<26} {:>12}", show(&memory));
        for target in others {
            let value = figure(results, workload, target.label(), path);
            print!(" {:>20} {:>7}", show(&value), ratio(&value, &memory));
        }
        println!();
    }
}

/// A server process for one benchmark, stopped by its pid when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    host_port: String,
}

impl Proc {
    /// Starts `cmd` and waits for its `... listening on http://HOST:PORT` line.
    fn start(name: &'static str, mut cmd: Command, log: Option<&Path>) -> Result<Self> {
        cmd.stdout(Stdio::piped())
            .env("PATH", crate::process::tool_path());
        match log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("opening {}: {e}", path.display()))?;
                cmd.stderr(file);
            }
            None => {
                cmd.stderr(Stdio::inherit());
            }
        }
        let mut child = cmd.spawn().map_err(|e| format!("starting {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("stdout was not captured")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout)
                .lines()
                .map_while(std::io::Result::ok)
            {
                if let Some((_, url)) = line.split_once(" listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.trim().trim_start_matches("http://").to_string());
                }
            }
        });
        let mut proc = Self {
            name,
            child,
            host_port: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(host_port) => {
                proc.host_port = host_port;
                Ok(proc)
            }
            Err(_) => Err(format!(
                "{name} did not print its listening line within 30 s"
            )),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            println!("<== stop {} (pid {})", self.name, self.child.id());
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
