//! A private `redis-server` for one test: its own free loopback port and temporary directory,
//! started and stopped by its pid, never the system's service.
//!
//! `cargo xtask setup` installs Debian's `redis-server`. Where it is absent,
//! [`RedisServer::start`] fails with [`io::ErrorKind::NotFound`] and tests skip through
//! [`skip_without_redis`], saying so.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary the tests start.
const REDIS_SERVER: &str = "redis-server";

/// How a test's Redis keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing on disk (`--save '' --appendonly no`): a restart loses everything.
    None,
    /// Append-only file fsynced before every reply (`--appendonly yes --appendfsync always`):
    /// a `kill -9` loses no write Redis answered.
    AppendFsyncAlways,
}

/// A running `redis-server`; dropping it kills it by its pid.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    persistence: Persistence,
    dir: tempfile::TempDir,
}

/// Whether `redis-server` can be run here.
pub fn redis_installed() -> bool {
    Command::new(REDIS_SERVER)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True (after printing why) when the test calling it must skip: `redis-server` is not
/// installed (`cargo xtask setup` installs it).
pub fn skip_without_redis(test: &str) -> bool {
    if redis_installed() {
        return false;
    }
    eprintln!("SKIPPED {test}: redis-server is not installed (`cargo xtask setup` installs it)");
    true
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl RedisServer {
    /// Starts a `redis-server` on a free loopback port and waits, bounded, until it answers.
    pub fn start(persistence: Persistence) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut server = Self {
            child: None,
            port: 0,
            persistence,
            dir,
        };
        // The port is free when picked, and may be taken before Redis binds it: retry.
        for _ in 0..5 {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(err),
                Err(_) => server.stop()?,
            }
        }
        Err(io::Error::other("redis-server did not start"))
    }

    fn spawn(&mut self) -> io::Result<()> {
        let dir: &Path = self.dir.path();
        let mut cmd = Command::new(REDIS_SERVER);
        cmd.args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(dir)
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match self.persistence {
            Persistence::None => cmd.args(["--appendonly", "no"]),
            Persistence::AppendFsyncAlways => {
                cmd.args(["--appendonly", "yes", "--appendfsync", "always"])
            }
        };
        self.child = Some(cmd.spawn()?);
        self.wait_ready()
    }

    /// Waits, bounded, for `PING` to be answered `PONG` (not `LOADING`).
    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!("redis-server exited: {status}")));
            }
            if self.ping().unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::other("redis-server did not answer PING"))
    }

    fn ping(&self) -> io::Result<bool> {
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(1)))?;
        tcp.write_all(b"PING\r\n")?;
        let mut reply = [0u8; 7];
        let n = tcp.read(&mut reply)?;
        Ok(reply[..n].starts_with(b"+PONG"))
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`, as `server-dev --engine` takes it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How this server keeps its data.
    pub fn persistence(&self) -> Persistence {
        self.persistence
    }

    /// SIGKILL to its pid, then reaps it. Idempotent.
    pub fn stop(&mut self) -> io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// `kill -9`, then a new `redis-server` on the same port and directory, as a crash and a
    /// restart would: it keeps what its persistence setting kept.
    pub fn restart_after_kill_9(&mut self) -> io::Result<()> {
        self.stop()?;
        // The port may be held for a moment after the kill.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(_) if Instant::now() < deadline => {
                    self.stop()?;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(err) => return Err(err),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Nothing to report to from a drop; the pid is reaped either way.
        let _ = self.stop();
    }
}
