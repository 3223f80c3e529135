//! Running steps and the servers they need.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::Result;

/// `PATH` with the places setup installs into put first: cargo's bin folder and the npm tools.
pub(crate) fn tool_path() -> OsString {
    let mut dirs = vec![
        crate::tools::cargo_bin(),
        crate::root().join("node_modules").join(".bin"),
    ];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// One named step of a command: prints what it runs, and names itself when it fails.
pub(crate) struct Step {
    name: String,
    command: Command,
}

impl Step {
    pub(crate) fn new(name: &str, program: &str) -> Self {
        let mut command = Command::new(program);
        command.env("PATH", tool_path()).current_dir(crate::root());
        Self {
            name: name.to_string(),
            command,
        }
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Removes a variable the step would otherwise inherit.
    pub(crate) fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    pub(crate) fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Runs the step with inherited output; fails naming the step on a non-zero exit.
    pub(crate) fn run(mut self) -> Result {
        let started = Instant::now();
        println!("\n==> {}: {}", self.name, describe(&self.command));
        let status = self
            .command
            .status()
            .map_err(|e| format!("step `{}`: could not start: {e}", self.name))?;
        if status.success() {
            println!(
                "<== {} ok ({:.1}s)",
                self.name,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        } else {
            Err(format!("step `{}` exited with {status}", self.name))
        }
    }

    /// Runs the step quietly and returns its stdout; `None` when it cannot start or fails.
    pub(crate) fn output(mut self) -> Option<String> {
        let out = self.command.stderr(Stdio::null()).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// A server-dev process. Dropping it stops the process (by its pid) and reaps it, so a step
/// that fails or panics never leaves a server behind.
pub(crate) struct Server {
    child: Child,
    base_url: String,
}

/// The line server-dev prints on stdout once it listens.
const READY_PREFIX: &str = "server-dev listening on ";

impl Server {
    pub(crate) fn start(binary: &PathBuf, args: &[&str]) -> Result<Self> {
        println!(
            "\n==> start server-dev: {} {}",
            binary.display(),
            args.join(" ")
        );
        let mut child = Command::new(binary)
            .args(args)
            .env("PATH", tool_path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", binary.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("server-dev stdout was not captured")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        // Keep draining stdout after the ready line so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout)
                .lines()
                .map_while(std::io::Result::ok)
            {
                match line.strip_prefix(READY_PREFIX) {
                    Some(url) if ready_tx.is_some() => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(url.trim().to_string());
                        }
                    }
                    _ => println!("[server-dev] {line}"),
                }
            }
        });
        let mut server = Self {
            child,
            base_url: String::new(),
        };
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => {
                println!(
                    "<== server-dev (pid {}) listening on {url}",
                    server.child.id()
                );
                server.base_url = url;
                Ok(server)
            }
            Err(_) => Err(format!(
                "server-dev did not print `{READY_PREFIX}…` within 60 s (exit: {:?})",
                server.child.try_wait().ok().flatten()
            )),
        }
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Waits for the server to exit on its own (Ctrl-C reaches it through the terminal).
    pub(crate) fn wait(mut self) -> Result {
        let status = self
            .child
            .wait()
            .map_err(|e| format!("waiting for server-dev: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("server-dev exited with {status}"))
        }
    }

    pub(crate) fn stop(self) {
        drop(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            println!("<== stop server-dev (pid {})", self.child.id());
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
