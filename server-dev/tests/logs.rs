//! Rejections are logged, and never with the ticket or message contents.
//!
//! Covers: at TRACE level (tungstenite aside), a login, a used ticket (401), a wrong origin (403), a
//! connection throttled by the rate limit and then closed for sustained abuse, and an oversize
//! message all log a rejection line, and so do the capacity limits when hit (login ticket cap,
//! login rate, per-IP connection cap, server room cap, a connection's queue byte budget);
//! neither a ticket nor the published
//! text appears anywhere in the log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Client, TestServer, http, try_connect};
use protocol::ClientMsg;
use server_dev::Config;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn rejections_are_logged_without_tickets_or_contents() {
    let buf = Buf::default();
    let writer = buf.clone();
    // The only test in this binary, so the global subscriber sees every server thread.
    // Everything at TRACE except tungstenite, whose trace output (shared by this test's client)
    // prints raw handshakes and frames; the server's own logs are what is under test.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "trace,tungstenite=info,tokio_tungstenite=info",
        ))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    // Burst 2 and a 200 ms abuse window: the third frame is throttled, then closed with 1013.
    let config = Config::default()
        .rate_limit(2.0, 2.0)
        .rate_abuse_window(Duration::from_millis(200))
        .max_message_size(512);
    let server = TestServer::start(config).await;
    let (_, body) = http(server.addr, "POST", "/api/login", Some(r#"{"name":"ann"}"#)).await;
    let ticket = serde_json::from_str::<serde_json::Value>(&body).unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    let url = server.ws_url(&format!("/ws?ticket={ticket}"));
    let mut a = Client::from_ws(try_connect(&url, None).await.unwrap());
    assert_eq!(try_connect(&url, None).await.err(), Some(401));
    assert_eq!(
        try_connect(&url, Some("http://evil.example")).await.err(),
        Some(403)
    );

    let secret = "top-secret-words";
    a.send(&ClientMsg::Join {
        room: "r".into(),
        since: None,
    })
    .await;
    a.send(&ClientMsg::Publish {
        room: "r".into(),
        id: 1,
        data: secret.into(),
    })
    .await;
    a.send_text(&format!(
        r#"{{"type":"publish","room":"r","id":2,"data":"{secret}"}}"#
    ))
    .await;
    assert_eq!(
        u16::from(a.expect_close().await.code),
        protocol::close::TRY_AGAIN_LATER
    );

    let ticket2 = {
        let (_, body) = http(server.addr, "POST", "/api/login", Some(r#"{"name":"bob"}"#)).await;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["ticket"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut b = Client::from_ws(
        try_connect(&server.ws_url(&format!("/ws?ticket={ticket2}")), None)
            .await
            .unwrap(),
    );
    b.send_text(&format!(
        r#"{{"type":"ping","id":1,"pad":"{}"}}"#,
        secret.repeat(64)
    ))
    .await;
    assert_eq!(
        u16::from(b.expect_close().await.code),
        protocol::close::TOO_BIG
    );
    server.stop().await;

    // The capacity limits, each set to its smallest so one test hits it: two logins fill the
    // ticket cap of 1 (the first ticket dropped) and the login bucket of 2; a second
    // connection passes the per-IP cap of 1; a second room passes the room cap of 1, which
    // forgets the first, empty one.
    let caps = Config::default()
        .max_tickets(1)
        .login_rate_limit(0.01, 2.0)
        .max_connections_per_ip(1)
        .max_rooms(1);
    let server = TestServer::start(caps).await;
    let login = |name: &'static str| {
        let body = format!(r#"{{"name":"{name}"}}"#);
        async move { http(server.addr, "POST", "/api/login", Some(&body)).await }
    };
    let ticket_of = |body: &str| {
        serde_json::from_str::<serde_json::Value>(body).unwrap()["ticket"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let dropped = ticket_of(&login("cat").await.1);
    let ticket3 = ticket_of(&login("dan").await.1);
    assert_eq!(login("eve").await.0, 429);
    assert_eq!(
        try_connect(&server.ws_url(&format!("/ws?ticket={dropped}")), None)
            .await
            .err(),
        Some(401),
        "the ticket cap dropped the first ticket"
    );
    let mut d = Client::from_ws(
        try_connect(&server.ws_url(&format!("/ws?ticket={ticket3}")), None)
            .await
            .unwrap(),
    );
    // A flood of refused upgrades is logged, but not a line per request.
    for _ in 0..20 {
        assert_eq!(
            try_connect(&server.ws_url("/ws?ticket=none"), None)
                .await
                .err(),
            Some(503)
        );
    }
    d.join("first").await;
    d.send(&ClientMsg::Publish {
        room: "first".into(),
        id: 1,
        data: "kept as history".into(),
    })
    .await;
    d.until(|m| matches!(m, protocol::ServerMsg::Ack { id: 1, .. }))
        .await;
    d.send(&ClientMsg::Leave {
        room: "first".into(),
    })
    .await;
    d.until(|m| matches!(m, protocol::ServerMsg::Left { .. }))
        .await;
    d.join("second").await;
    server.stop().await;

    // The queue byte budget of 2,000 B (the limit under test): a replay of five 500 B
    // messages does not fit it, and the joiner is closed as a slow consumer.
    let budget = Config::default().no_auth(true).queue_bytes(2_000, 2_000);
    let server = TestServer::start(budget).await;
    let mut f = Client::connect(&server, "fay").await;
    f.join("replayed").await;
    for id in 1..=5 {
        f.send(&ClientMsg::Publish {
            room: "replayed".into(),
            id,
            data: "x".repeat(500).into(),
        })
        .await;
        f.until(|m| matches!(m, protocol::ServerMsg::Ack { id: got, .. } if *got == id))
            .await;
    }
    let mut g = Client::connect(&server, "gus").await;
    g.send(&ClientMsg::Join {
        room: "replayed".into(),
        since: Some(protocol::Since {
            epoch: "another".into(),
            offset: 0,
        }),
    })
    .await;
    assert_eq!(
        u16::from(g.expect_close().await.code),
        protocol::close::TRY_AGAIN_LATER
    );
    server.stop().await;

    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    for line in [
        "missing, used or expired ticket",
        "origin not allowed",
        "rate limit reached, reading slower",
        "throttled for the whole abuse window, closing with 1013",
        "above the size limit",
        "login ticket cap reached",
        "login refused: rate limit",
        "ws refused: per-IP connection cap reached",
        "server room cap reached",
        "outbound queue byte budget reached, closing with 1013",
    ] {
        assert!(log.contains(line), "no `{line}` in the log:\n{log}");
    }
    let per_ip_lines = log
        .matches("ws refused: per-IP connection cap reached")
        .count();
    assert!(
        per_ip_lines < 20,
        "{per_ip_lines} lines for 20 refusals: the warning is rate-limited"
    );
    let leaks: Vec<&str> = log
        .lines()
        .filter(|l| {
            [&ticket, &ticket2, &ticket3, &dropped]
                .iter()
                .any(|t| l.contains(t.as_str()))
        })
        .collect();
    assert!(leaks.is_empty(), "ticket leaked into the log: {leaks:#?}");
    assert!(!log.contains(&ticket), "ticket leaked into the log");
    assert!(!log.contains(&ticket2), "ticket leaked into the log");
    assert!(
        !log.contains(secret),
        "message contents leaked into the log"
    );
}
