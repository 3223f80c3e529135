//! The binary: flags, the one stdout line with the bound port, and SIGTERM handling.
//!
//! Covers: `--port 0` prints `server-dev listening on http://127.0.0.1:PORT` with the real
//! port; `--test-endpoints` and `--no-auth` take effect; SIGTERM closes WebSockets with 1001
//! and the process exits 0; `--tls-self-signed` prints an https line.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{WAIT, expect_close, try_connect};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

async fn spawn(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_server-dev"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(WAIT, BufReader::new(stdout).read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    (child, line.trim_end().to_string())
}

fn terminate(child: &Child) {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn prints_the_bound_port_and_exits_cleanly_on_sigterm() {
    let (mut child, line) = spawn(&["--port", "0", "--test-endpoints", "--no-auth"]).await;
    let port: u16 = line
        .strip_prefix("server-dev listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .parse()
        .unwrap();
    assert_ne!(port, 0);
    let mut echo = try_connect(&format!("ws://127.0.0.1:{port}/echo"), None)
        .await
        .unwrap();
    let mut ws = try_connect(&format!("ws://127.0.0.1:{port}/ws?name=cli"), None)
        .await
        .unwrap();

    terminate(&child);
    assert_eq!(
        u16::from(expect_close(&mut echo).await.code),
        protocol::close::GOING_AWAY
    );
    assert_eq!(
        u16::from(expect_close(&mut ws).await.code),
        protocol::close::GOING_AWAY
    );
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn tls_self_signed_prints_an_https_line() {
    let (mut child, line) = spawn(&["--port", "0", "--tls-self-signed"]).await;
    assert!(
        line.starts_with("server-dev listening on https://127.0.0.1:"),
        "{line}"
    );
    terminate(&child);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn unreadable_tls_files_fail_before_the_listening_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_server-dev"))
        .args([
            "--port",
            "0",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, output).await.unwrap().unwrap();
    assert!(!output.status.success());
    assert!(
        output.stdout.is_empty(),
        "printed {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
}
