//! The endpoints behind `--test-endpoints`, which the browser tests drive.
//!
//! Covers: /echo text and binary; /close code and reason; /drop cuts TCP without a close
//! frame; /silent never answers pings; /reject status; no origin check on them; off by default.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, WAIT, expect_close, open_config, try_connect};
use futures::{SinkExt, StreamExt};
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
