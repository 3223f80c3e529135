//! Limits and liveness over real sockets.
//!
//! Covers: a message above the size limit closes with 1009; a connection kept above the rate
//! limit for the whole abuse window gets `error{rate_limited}` then close 1013 (retryable),
//! after its burst and what the rate allowed were answered; a slow consumer is closed with 1013 while the room
//! keeps receiving; a peer that sends nothing (no pongs) is dropped after the pong timeout and
//! its membership cleaned up, while a responsive peer stays.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::time::{Duration, Instant};

use common::{
    Client, TestServer, WAIT, connect_small_window, expect_close, open_config, raw_until,
};
use futures::{SinkExt, StreamExt};
use protocol::{ClientMsg, ErrorCode, ServerMsg, close};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn oversize_message_closes_with_1009() {
    let server = TestServer::start(open_config().max_message_size(1024)).await;
    let mut a = Client::connect(&server, "ann").await;
    a.send(&ClientMsg::Ping { id: 1 }).await;
    a.until(|m| matches!(m, ServerMsg::Pong { id: 1 })).await;
    let big = format!(r#"{{"type":"ping","id":2,"pad":"{}"}}"#, "x".repeat(2000));
    a.send_text(&big).await;
    assert_eq!(u16::from(a.expect_close().await.code), close::TOO_BIG);
    server.stop().await;
}

#[tokio::test]
async fn sustained_rate_abuse_gets_error_then_1013() {
    // 5/s and a 1 s window instead of the defaults: a short run shows the whole sequence.
    let config = open_config()
        .rate_limit(5.0, 5.0)
        .rate_abuse_window(Duration::from_secs(1));
    let server = TestServer::start(config).await;
    let mut a = Client::connect(&server, "ann").await;
    for id in 0..20 {
        a.ws.feed(Message::text(format!(r#"{{"type":"ping","id":{id}}}"#)))
            .await
            .unwrap();
    }
    a.ws.flush().await.unwrap();
    let mut got = Vec::new();
    let frame = loop {
        match tokio::time::timeout(WAIT, a.ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Text(t) => got.extend(protocol::decode_server_frame(t.as_str()).unwrap()),
            Message::Close(frame) => break frame.unwrap(),
            _ => {}
        }
    };
    assert_eq!(u16::from(frame.code), close::TRY_AGAIN_LATER);
    let pongs: Vec<u64> = got
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Pong { id } => Some(*id),
            _ => None,
        })
        .collect();
    // The burst, then about one per 200 ms of the window, in order.
    assert!(pongs.len() >= 5, "the burst is served: {got:?}");
    assert!(pongs.len() < 20, "the rest was not: {got:?}");
    assert_eq!(pongs, (0..pongs.len() as u64).collect::<Vec<_>>());
    assert!(
        matches!(
            got.last(),
            Some(ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            })
        ),
        "error comes last, before the close: {got:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn slow_consumer_is_closed_with_1013_and_the_room_goes_on() {
    let server = TestServer::start(open_config().queue_capacity(16)).await;
    let mut slow = connect_small_window(&server, "slow").await;
    slow.send(Message::text(r#"{"type":"join","room":"r"}"#))
        .await
        .unwrap();
    raw_until(&mut slow, |m| matches!(m, ServerMsg::Joined { .. })).await;
    // From here on `slow` never reads.

    let mut fast = Client::connect(&server, "fast").await;
    fast.join("r").await;
    let mut publisher = Client::connect(&server, "pub").await;
    publisher.join("r").await;

    let kicked = tokio::spawn(async move {
        let mut offsets = Vec::new();
        loop {
            match fast.next_msg().await {
                ServerMsg::Message { offset, .. } => offsets.push(offset),
                ServerMsg::Presence { members, .. } if !members.contains(&"slow".to_string()) => {
                    return (fast, offsets);
                }
                _ => {}
            }
        }
    });
    let pad = "y".repeat(16 * 1024);
    let mut sent = 0u64;
    while !kicked.is_finished() && sent < 3000 {
        sent += 1;
        let msg = ClientMsg::Publish {
            room: "r".into(),
            id: sent,
            data: pad.clone().into(),
        };
        publisher.send(&msg).await;
        // One publication in flight at a time keeps the publisher and `fast` within their
        // queues; only the peer that stopped reading falls behind.
        publisher
            .until(|m| matches!(m, ServerMsg::Ack { id, .. } if *id == sent))
            .await;
    }
    let (mut fast, offsets) = tokio::time::timeout(WAIT, kicked).await.unwrap().unwrap();
    assert!(!offsets.is_empty());
    assert_eq!(
        offsets,
        (1..=offsets.len() as u64).collect::<Vec<_>>(),
        "no gaps for fast"
    );

    // The room keeps going for the others.
    sent += 1;
    publisher
        .send(&ClientMsg::Publish {
            room: "r".into(),
            id: sent,
            data: "after".into(),
        })
        .await;
    fast.until(|m| matches!(m, ServerMsg::Message { data, .. } if data == "after"))
        .await;

    // The slow peer, once it reads again, finds the 1013 close after what was already sent.
    assert_eq!(
        u16::from(expect_close(&mut slow).await.code),
        close::TRY_AGAIN_LATER
    );
    server.stop().await;
}

#[tokio::test]
async fn silent_peer_is_dropped_after_the_pong_timeout() {
    let (interval, timeout) = (Duration::from_millis(100), Duration::from_millis(300));
    let server = TestServer::start(open_config().heartbeat(interval, timeout)).await;
    let mut quiet = Client::connect(&server, "quiet").await;
    quiet.join("r").await;
    let mut live = Client::connect(&server, "live").await;
    live.join("r").await;
    let joined_at = Instant::now();
    // `quiet` is not polled from here on, so tungstenite never sends its pongs. `live` keeps
    // reading, which answers pings, and sees the membership change.
    live.until(
        |m| matches!(m, ServerMsg::Presence { members, .. } if members == &["live".to_string()]),
    )
    .await;
    let took = joined_at.elapsed();
    assert!(
        took <= interval + timeout + Duration::from_millis(1500),
        "{took:?}"
    );

    // The live peer survives several more heartbeat rounds.
    let (mut rx_live, stay) = (live, Instant::now());
    while stay.elapsed() < 3 * (interval + timeout) {
        rx_live.send(&ClientMsg::Ping { id: 7 }).await;
        rx_live
            .until(|m| matches!(m, ServerMsg::Pong { id: 7 }))
            .await;
        tokio::time::sleep(interval / 2).await;
    }

    // The dropped peer gets no close frame: the connection just ends.
    assert_eq!(common::until_end(&mut quiet.ws).await, None);
    server.stop().await;
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let server = TestServer::start(open_config()).await;
    let mut a = Client::connect(&server, "ann").await;
    let bad = Frame::message(vec![0xff, 0xfe, b'{'], OpCode::Data(Data::Text), true);
    a.ws.send(Message::Frame(bad)).await.unwrap();
    assert_eq!(u16::from(a.expect_close().await.code), 1007);
    server.stop().await;
}
