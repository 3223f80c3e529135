//! Publishes per second through each engine, in the same run: what the durable engine's
//! fsync per publish costs, and what a round trip to Redis (one Lua script) per publish costs. Not a pass/fail test (ignored by default); BENCHMARKS.md §4 quotes
//! it:
//!
//! `cargo test -p server-dev --release --test engine_rate -- --ignored --nocapture`
//!
//! One client on loopback publishes [`PUBLISHES`] messages to one room, at most `window`
//! unacknowledged (64: the durable engine commits what arrives during one fsync together;
//! 1: every publish waits for its own fsync), and the clock runs from the first publish to
//! the last ack. The server's
//! per-connection rate limit is off (it would measure the limit, not the engine); everything
//! else is at its default. The SQLite file is in a temporary directory; Redis is a private
//! `redis-server` on a free loopback port without persistence (`--save '' --appendonly no`),
//! stopped by its pid (skipped, saying so, where it is not installed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestServer, open_config};
use protocol::{ClientMsg, ServerMsg};
use server_dev::EngineKind;

const PUBLISHES: u64 = 10_000;
/// Bound on each engine's run.
const DEADLINE: Duration = Duration::from_secs(120);

/// Acked publishes per second through `engine`.
async fn rate(engine: EngineKind, window: u64) -> f64 {
    let config = open_config().rate_limit(0.0, 0.0).engine(engine);
    let server = TestServer::start(config).await;
    let mut c = Client::connect(&server, "bench").await;
    c.hello(None).await;
    c.join("bench").await;
    let started = Instant::now();
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < PUBLISHES && started.elapsed() < DEADLINE {
        while sent < PUBLISHES && sent - acked < window {
            sent += 1;
            let publish = ClientMsg::Publish {
                room: "bench".into(),
                id: sent,
                data: serde_json::json!({ "n": sent }),
            };
            c.send(&publish).await;
        }
        if let ServerMsg::Ack { .. } = c.next_msg().await {
            acked += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(acked, PUBLISHES, "every publish acked within {DEADLINE:?}");
    server.stop().await;
    acked as f64 / secs
}

/// A private redis-server, killed by its pid when dropped.
struct Redis {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Option<Self> {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else {
            println!("SKIPPED the Redis engine: redis-server is not installed");
            return None;
        };
        let redis = Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let mut reply = [0u8; 5];
            if let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port))
                && tcp.write_all(b"PING\r\n").is_ok()
                && tcp.read_exact(&mut reply).is_ok()
                && &reply == b"+PONG"
            {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand, see the file's doc"]
async fn publishes_per_second_memory_vs_sqlite_vs_redis() {
    let redis = Redis::start();
    for window in [64, 1] {
        let dir = tempfile::tempdir().unwrap();
        let memory = rate(EngineKind::Memory, window).await;
        let sqlite = rate(EngineKind::Sqlite(dir.path().join("db")), window).await;
        println!(
            "engine publish rate ({PUBLISHES} publishes, window {window}, 1 client, loopback): \
             memory {memory:.0}/s, sqlite (WAL, synchronous=FULL) {sqlite:.0}/s, \
             ratio sqlite/memory {:.3}",
            sqlite / memory
        );
        if let Some(redis) = &redis {
            let shared = rate(EngineKind::Redis(redis.url.clone()), window).await;
            println!(
                "  redis (one instance, no persistence) {shared:.0}/s, ratio redis/memory {:.3}",
                shared / memory
            );
        }
    }
}
