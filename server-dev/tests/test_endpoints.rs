//! The endpoints behind `--test-endpoints`, which the browser tests drive.
//!
//! Covers: /echo text and binary; /close code and reason; /drop cuts TCP without a close
//! frame; /silent never answers pings; /reject status; no origin check on them; off by default;
//! POST /test/cut drops a /ws connection without a close frame or silences it (TCP open,
//! nothing delivered either way), counts what it cut, answers CORS for loopback origins.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestServer, WAIT, expect_close, http, http_full, open_config, try_connect};
use futures::{SinkExt, StreamExt};
use protocol::{ClientMsg, ServerMsg};
use tokio_tungstenite::tungstenite::{Bytes, Message};

#[tokio::test]
async fn echo_returns_text_and_binary_from_any_origin() {
    let server = TestServer::start(open_config()).await;
    let mut ws = try_connect(&server.ws_url("/echo"), Some("http://localhost:43210"))
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let a = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let b = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(a, Message::text("hi"));
    assert_eq!(b, Message::Binary(Bytes::from_static(&[1, 2, 3])));
    ws.close(None).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn close_uses_the_given_code_and_reason() {
    let server = TestServer::start(open_config()).await;
    let mut ws = try_connect(&server.ws_url("/close?code=4123&reason=bye%20now"), None)
        .await
        .unwrap();
    let frame = expect_close(&mut ws).await;
    assert_eq!(u16::from(frame.code), 4123);
    assert_eq!(frame.reason.as_str(), "bye now");
    server.stop().await;
}

#[tokio::test]
async fn drop_cuts_the_connection_without_a_close_frame() {
    let server = TestServer::start(open_config()).await;
    let started = Instant::now();
    let mut ws = try_connect(&server.ws_url("/drop?after_ms=150"), None)
        .await
        .unwrap();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("got a close frame {frame:?}"));
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Ok(err.to_string()),
                None => return Ok("ended".to_string()),
            }
        }
    })
    .await
    .unwrap();
    assert!(end.is_ok(), "{end:?}");
    assert!(started.elapsed() >= Duration::from_millis(150));
    server.stop().await;
}

#[tokio::test]
async fn silent_never_answers_a_ping() {
    let server = TestServer::start(open_config()).await;
    let mut ws = try_connect(&server.ws_url("/silent"), None).await.unwrap();
    ws.send(Message::Ping(Bytes::from_static(b"hb")))
        .await
        .unwrap();
    ws.send(Message::text("anyone?")).await.unwrap();
    // A live peer answers a ping in well under a millisecond on loopback.
    let heard = tokio::time::timeout(Duration::from_millis(400), ws.next()).await;
    assert!(heard.is_err(), "silent sent something: {heard:?}");
    // Shutdown still releases it (the test must not leave it held).
    server.stop().await;
}

#[tokio::test]
async fn reject_refuses_the_upgrade_with_the_status() {
    let server = TestServer::start(open_config()).await;
    assert_eq!(
        try_connect(&server.ws_url("/reject?status=503"), None)
            .await
            .err(),
        Some(503)
    );
    assert_eq!(
        try_connect(&server.ws_url("/reject?status=401"), None)
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        try_connect(&server.ws_url("/reject"), None).await.err(),
        Some(403)
    );
    server.stop().await;
}

#[tokio::test]
async fn test_endpoints_are_off_by_default() {
    let server = TestServer::start(server_dev::Config::default()).await;
    assert_eq!(
        try_connect(&server.ws_url("/echo"), None).await.err(),
        Some(404)
    );
    assert_eq!(
        common::http(server.addr, "GET", "/api/health", None)
            .await
            .0,
        200
    );
    server.stop().await;
    // Nor can /test/cut reach a live connection.
    let server = TestServer::start(server_dev::Config::default().no_auth(true)).await;
    let mut victim = Client::connect(&server, "victim").await;
    assert_eq!(
        http(server.addr, "POST", "/test/cut?name=victim&mode=drop", None)
            .await
            .0,
        404
    );
    round_trip(&mut victim, 1).await;
    server.stop().await;
}

/// A client-initiated close gets the close reply (a clean close), on /echo and on /ws.
#[tokio::test]
async fn client_close_is_answered() {
    let server = TestServer::start(open_config()).await;
    for path in ["/echo", "/ws?name=c"] {
        let mut ws = try_connect(&server.ws_url(path), None).await.unwrap();
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        };
        ws.close(Some(frame)).await.unwrap();
        let reply = tokio::time::timeout(WAIT, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(frame))) => return Ok(frame),
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => return Err(err.to_string()),
                    None => return Err("ended without a close reply".to_string()),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(
            reply.unwrap().map(|f| u16::from(f.code)),
            Some(1000),
            "{path}"
        );
    }
    server.stop().await;
}

/// `POST /test/cut`; returns how many connections it cut.
async fn cut(server: &TestServer, name: &str, mode: &str) -> u64 {
    let (status, body) = http(
        server.addr,
        "POST",
        &format!("/test/cut?name={name}&mode={mode}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    reply["cut"].as_u64().unwrap()
}

/// A ping/pong round trip, so the connection is known to be registered and live.
async fn round_trip(client: &mut Client, id: u64) {
    client.send(&ClientMsg::Ping { id }).await;
    client
        .until(|m| matches!(m, ServerMsg::Pong { id: got } if *got == id))
        .await;
}

#[tokio::test]
async fn cut_drop_ends_the_connection_without_a_close_frame() {
    let server = TestServer::start(open_config()).await;
    let mut victim = Client::connect(&server, "victim").await;
    let mut other = Client::connect(&server, "other").await;
    round_trip(&mut victim, 1).await;
    round_trip(&mut other, 1).await;
    assert_eq!(cut(&server, "nobody", "drop").await, 0);
    assert_eq!(cut(&server, "victim", "drop").await, 1);
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match victim.ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("got a close frame {frame:?}"));
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Ok(err.to_string()),
                None => return Ok("ended".to_string()),
            }
        }
    })
    .await
    .expect("the connection ends within WAIT");
    assert!(end.is_ok(), "{end:?}");
    // Only the named client was cut.
    round_trip(&mut other, 2).await;
    assert_eq!(
        cut(&server, "victim", "drop").await,
        0,
        "nothing left to cut"
    );
    server.stop().await;
}

#[tokio::test]
async fn cut_silence_keeps_tcp_open_but_delivers_nothing() {
    let server = TestServer::start(open_config()).await;
    let mut victim = Client::connect(&server, "victim").await;
    let mut other = Client::connect(&server, "other").await;
    victim.join("r").await;
    other.join("r").await;
    round_trip(&mut victim, 1).await;
    assert_eq!(cut(&server, "victim", "silence").await, 1);
    // The hub forgets the silenced connection at once: cutting again finds nothing.
    assert_eq!(cut(&server, "victim", "silence").await, 0);
    // Whatever queued for the victim before the cut (presence, rooms) may still be in flight;
    // read it off until the line goes quiet.
    while let Ok(Some(Ok(_))) =
        tokio::time::timeout(Duration::from_millis(300), victim.ws.next()).await
    {}
    // Neither a protocol ping, a WebSocket ping, nor a room message gets through, and the
    // stream neither ends nor fails: TCP is still open.
    victim.send(&ClientMsg::Ping { id: 2 }).await;
    victim
        .ws
        .send(Message::Ping(Bytes::from_static(b"hb")))
        .await
        .unwrap();
    other
        .send(&ClientMsg::Publish {
            room: "r".into(),
            id: 1,
            data: serde_json::json!("hello"),
        })
        .await;
    other
        .until(|m| matches!(m, ServerMsg::Ack { id: 1, .. }))
        .await;
    let heard = tokio::time::timeout(Duration::from_millis(600), victim.ws.next()).await;
    assert!(heard.is_err(), "silenced connection delivered {heard:?}");
    // The socket is still held (counted live) by the server.
    let (_, body) = http(server.addr, "GET", "/api/health", None).await;
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["connections"], 2, "{health}");
    assert_eq!(health["connections_opened"], 2, "{health}");
    round_trip(&mut other, 2).await;
    // Shutdown still releases it (the test must not leave it held).
    server.stop().await;
}

#[tokio::test]
async fn cut_answers_cors_for_loopback_origins_and_checks_its_query() {
    let server = TestServer::start(open_config()).await;
    let origin = "origin: http://127.0.0.1:43210\r\n";
    let (status, head, body) = http_full(
        server.addr,
        "POST",
        "/test/cut?name=nobody&mode=drop",
        None,
        origin,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        head.contains("access-control-allow-origin: http://127.0.0.1:43210"),
        "{head}"
    );
    let (status, head, _) = http_full(
        server.addr,
        "OPTIONS",
        "/test/cut?name=nobody&mode=drop",
        None,
        "origin: http://localhost:43210\r\naccess-control-request-method: POST\r\n",
    )
    .await;
    assert_eq!(status, 204);
    assert!(
        head.contains("access-control-allow-methods: get, post"),
        "{head}"
    );
    let (_, head, _) = http_full(
        server.addr,
        "POST",
        "/test/cut?name=nobody&mode=drop",
        None,
        "origin: http://evil.example\r\n",
    )
    .await;
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    for bad in [
        "/test/cut?name=victim&mode=explode",
        "/test/cut?name=victim",
        "/test/cut?mode=drop",
    ] {
        assert_eq!(http(server.addr, "POST", bad, None).await.0, 400, "{bad}");
    }
    assert_eq!(
        http(server.addr, "GET", "/test/cut?name=victim&mode=drop", None)
            .await
            .0,
        405
    );
    server.stop().await;
}
