//! Checks before the upgrade: origin allowlist, one-time tickets, connection cap; health.
//!
//! Covers: wrong origin 403 and allowed/own origin accepted; login gives a ticket; a ticket
//! works once (reuse 401), expires (401), and is required (missing 401); bad login 400;
//! the ticket's name becomes the display name; connection cap 503; /api/health.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::time::Duration;

use common::{Client, TestServer, http, try_connect};
use futures::StreamExt;
use protocol::{ClientMsg, ServerMsg};
use server_dev::Config;

async fn login(server: &TestServer, name: &str) -> String {
    let (status, body) = http(
        server.addr,
        "POST",
        "/api/login",
        Some(&format!(r#"{{"name":"{name}"}}"#)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["expires_in_ms"].as_u64().unwrap() > 0);
    v["ticket"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn origin_allowlist_is_checked_before_upgrade() {
    let config = Config::default()
        .no_auth(true)
        .allow_origin("https://chat.example");
    let server = TestServer::start(config).await;
    let url = server.ws_url("/ws");
    assert_eq!(
        try_connect(&url, Some("http://evil.example")).await.err(),
        Some(403)
    );
    assert_eq!(
        try_connect(&url, Some("https://chat.example.evil"))
            .await
            .err(),
        Some(403)
    );
    assert!(
        try_connect(&url, Some("https://chat.example"))
            .await
            .is_ok()
    );
    assert!(
        try_connect(&url, Some(&server.origin())).await.is_ok(),
        "own origin"
    );
    let localhost = format!("http://localhost:{}", server.addr.port());
    assert!(
        try_connect(&url, Some(&localhost)).await.is_ok(),
        "own origin by name"
    );
    // With an explicit list the trunk default is replaced.
    assert_eq!(
        try_connect(&url, Some("http://127.0.0.1:8081")).await.err(),
        Some(403)
    );
    server.stop().await;
}

#[tokio::test]
async fn default_origins_are_own_and_trunk() {
    let server = TestServer::start(Config::default().no_auth(true)).await;
    let url = server.ws_url("/ws");
    assert!(
        try_connect(&url, Some("http://127.0.0.1:8081"))
            .await
            .is_ok()
    );
    assert!(
        try_connect(&url, Some("http://localhost:8081"))
            .await
            .is_ok()
    );
    assert_eq!(
        try_connect(&url, Some("http://localhost:8082")).await.err(),
        Some(403)
    );
    server.stop().await;
}

#[tokio::test]
async fn tickets_are_single_use_required_and_named() {
    let server = TestServer::start(Config::default()).await;
    assert_eq!(
        try_connect(&server.ws_url("/ws"), None).await.err(),
        Some(401),
        "missing"
    );
    assert_eq!(
        try_connect(&server.ws_url("/ws?name=eve"), None)
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        try_connect(
            &server.ws_url("/ws?ticket=00112233445566778899aabbccddeeff"),
            None
        )
        .await
        .err(),
        Some(401),
        "unknown"
    );

    let ticket = login(&server, "ann").await;
    assert_eq!(ticket.len(), 32);
    let url = server.ws_url(&format!("/ws?ticket={ticket}"));
    let ws = try_connect(&url, None).await.unwrap();
    let mut a = Client::from_ws(ws);
    a.send(&ClientMsg::Hello {
        session: None,
        publisher: None,
    })
    .await;
    let (welcome, _) = a.until(|m| matches!(m, ServerMsg::Welcome { .. })).await;
    assert!(matches!(welcome, ServerMsg::Welcome { ref name, .. } if name == "ann"));
    assert_eq!(try_connect(&url, None).await.err(), Some(401), "reuse");

    for bad in [r#"{"name":""}"#, r#"{"nom":"x"}"#, "nope"] {
        assert_eq!(
            http(server.addr, "POST", "/api/login", Some(bad)).await.0,
            400,
            "{bad}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn tickets_expire() {
    let server = TestServer::start(Config::default().ticket_ttl(Duration::from_millis(50))).await;
    let ticket = login(&server, "ann").await;
    // Let the short TTL pass: expiry is the behaviour under test.
    tokio::time::sleep(Duration::from_millis(120)).await;
    let url = server.ws_url(&format!("/ws?ticket={ticket}"));
    assert_eq!(try_connect(&url, None).await.err(), Some(401));
    server.stop().await;
}

#[tokio::test]
async fn connection_cap_answers_503() {
    let server = TestServer::start(Config::default().no_auth(true).max_connections(2)).await;
    let url = server.ws_url("/ws");
    let a = try_connect(&url, None).await.unwrap();
    let _b = try_connect(&url, None).await.unwrap();
    assert_eq!(try_connect(&url, None).await.err(), Some(503));
    // A slot frees when a connection ends.
    let mut a = a;
    a.close(None).await.unwrap();
    let drained = tokio::time::timeout(common::WAIT, async { while a.next().await.is_some() {} });
    drained.await.unwrap();
    let mut reopened = None;
    for _ in 0..100 {
        match try_connect(&url, None).await {
            Ok(ws) => {
                reopened = Some(ws);
                break;
            }
            Err(503) => tokio::task::yield_now().await,
            Err(other) => panic!("{other}"),
        }
    }
    assert!(reopened.is_some());
    server.stop().await;
}

#[tokio::test]
async fn health_reports_ok() {
    let server = TestServer::start(Config::default()).await;
    let (status, body) = http(server.addr, "GET", "/api/health", None).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok");
    server.stop().await;
}

/// A page on an allowed origin (trunk's dev server) may call the login API across origins.
#[tokio::test]
async fn login_api_answers_cors_for_allowed_origins_only() {
    let server = TestServer::start(Config::default()).await;
    let preflight = "origin: http://127.0.0.1:8081\r\naccess-control-request-method: POST\r\n";
    let (status, head, _) =
        common::http_full(server.addr, "OPTIONS", "/api/login", None, preflight).await;
    assert_eq!(status, 204);
    assert!(
        head.contains("access-control-allow-origin: http://127.0.0.1:8081"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-headers: content-type"),
        "{head}"
    );

    let body = Some(r#"{"name":"ann"}"#);
    let (status, head, _) = common::http_full(
        server.addr,
        "POST",
        "/api/login",
        body,
        "origin: http://evil.example\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    server.stop().await;
}
