//! Tests: a private `redis-server` on a free loopback port, without persistence, killed by its
//! pid when dropped. (The cross-crate tests have their own, with persistence and restarts:
//! `tests/src/redis.rs`.)

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct TestRedis {
    child: Child,
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

/// Whether `redis-server` is installed; prints why a test skips when not.
pub(crate) fn installed(test: &str) -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED {test}: redis-server is not installed (`cargo xtask setup` installs it)"
        );
    }
    ok
}

fn pong(port: u16) -> bool {
    let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut reply = [0u8; 5];
    tcp.set_read_timeout(Some(Duration::from_secs(1))).is_ok()
        && tcp.write_all(b"PING\r\n").is_ok()
        && tcp.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG"
}

impl TestRedis {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .arg("--dir")
                .arg(dir.path())
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                if pong(port) {
                    return Self {
                        child,
                        url: format!("redis://127.0.0.1:{port}"),
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // The port was taken meanwhile: another one.
            child.kill().ok();
            child.wait().ok();
        }
        panic!("redis-server did not start");
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
