//! The `server-dev` binary as a child process, for tests that need a real process: one that
//! is killed with SIGKILL and started again on the same port, as a crash would.
//!
//! The binary is `SERVER_DEV_BIN` if set (as `cargo xtask test` sets it for the e2e suite),
//! else `server-dev` in the target directory of the running test: `cargo test --workspace`
//! builds it with the tests, and `cargo build -p server-dev` builds it for a run of this crate
//! alone (Cargo builds a binary only for its own package's tests).

use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{sleep, timeout};

/// The line the binary prints once bound, before the port.
const LISTENING: &str = "server-dev listening on http://127.0.0.1:";

/// A running `server-dev` process; dropping it kills it.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    port: u16,
}

impl ServerProcess {
    /// The binary these tests run.
    pub fn binary() -> io::Result<PathBuf> {
        if let Some(bin) = std::env::var_os("SERVER_DEV_BIN") {
            return Ok(bin.into());
        }
        // The test runs as <target>/<profile>/deps/<test>-<hash>.
        let exe = std::env::current_exe()?;
        let profile_dir = exe.parent().and_then(|deps| deps.parent());
        let bin = profile_dir
            .map(|dir| dir.join(format!("server-dev{}", std::env::consts::EXE_SUFFIX)))
            .filter(|bin| bin.is_file());
        bin.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no server-dev binary next to this test: `cargo build -p server-dev` first, \
                 or set SERVER_DEV_BIN",
            )
        })
    }

    /// Starts `server-dev --port PORT ARGS` (port 0: any) and waits, bounded, for its
    /// listening line. Right after a kill the port may still be held briefly, so a start that
    /// prints no such line is retried, bounded.
    pub async fn start(port: u16, args: &[&str]) -> io::Result<Self> {
        let binary = Self::binary()?;
        for _ in 0..50 {
            let mut child = Command::new(&binary)
                .arg("--port")
                .arg(port.to_string())
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            let stdout = child
                .stdout
                .take()
                .ok_or_else(|| io::Error::other("no stdout"))?;
            let mut line = String::new();
            let read = timeout(
                Duration::from_secs(10),
                BufReader::new(stdout).read_line(&mut line),
            )
            .await;
            if let Ok(Ok(n)) = read
                && n > 0
                && let Some(Ok(port)) = line.trim_end().strip_prefix(LISTENING).map(str::parse)
            {
                return Ok(Self { child, port });
            }
            Self { child, port }.kill_9().await?;
            sleep(Duration::from_millis(100)).await;
        }
        Err(io::Error::other(format!(
            "server-dev did not start on port {port}"
        )))
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ws://127.0.0.1:PORT{path_and_query}`.
    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://127.0.0.1:{}{}", self.port, path_and_query)
    }

    /// SIGKILL to this process's pid (no shutdown of any kind), then reaps it, bounded.
    pub async fn kill_9(mut self) -> io::Result<()> {
        self.child.start_kill()?;
        timeout(Duration::from_secs(10), self.child.wait())
            .await
            .map_err(|_| io::Error::other("killed server-dev did not exit"))??;
        Ok(())
    }
}
