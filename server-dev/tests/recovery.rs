//! Issue 5, server half: history, epochs, recovery on rejoin, dedupe across a resumed session,
//! and batch frames.
//!
//! Covers: `recovered:true` with every missed message in order; `recovered:false` and nothing
//! partial for a gap older than the history (by count and by age); `since` in another epoch
//! gets `recovered:false` with `resume_after` and the retained history of the current epoch,
//! so a message published after a restart but before the rejoin is not skipped; a resent
//! id after a reconnect with `hello{session}` is acked as a duplicate with its first offset and
//! not broadcast again; an unknown session is not resumed; a slow reader gets several messages
//! in one array frame while a lone message arrives as an object.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::time::Duration;

use common::{Client, TestServer, WAIT, connect_small_window, open_config};
use futures::{SinkExt, StreamExt};
use protocol::{ClientMsg, ServerMsg, Since};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn publish_n(c: &mut Client, room: &str, ids: std::ops::RangeInclusive<u64>) {
    let last = *ids.end();
    for id in ids {
        c.send(&ClientMsg::Publish {
            room: room.into(),
            id,
            data: json!(id),
        })
        .await;
    }
    c.until(|m| matches!(m, ServerMsg::Ack { id, .. } if *id == last))
        .await;
}

fn epoch_of(joined: &ServerMsg) -> String {
    match joined {
        ServerMsg::Joined { epoch, .. } => epoch.clone(),
        other => panic!("not joined: {other:?}"),
    }
}

async fn join_since(c: &mut Client, room: &str, epoch: &str, offset: u64) -> ServerMsg {
    let since = Some(Since {
        epoch: epoch.into(),
        offset,
    });
    c.send(&ClientMsg::Join {
        room: room.into(),
        since,
    })
    .await;
    c.until(|m| matches!(m, ServerMsg::Joined { .. })).await.0
}

/// The messages that directly follow `joined`, up to the pong of a marker ping.
async fn replay_after_join(c: &mut Client) -> Vec<u64> {
    c.send(&ClientMsg::Ping { id: 999 }).await;
    let (_, before) = c.until(|m| matches!(m, ServerMsg::Pong { id: 999 })).await;
    before
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Message { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn rejoin_replays_the_gap_in_order() {
    let server = TestServer::start(open_config()).await;
    let mut a = Client::connect(&server, "ann").await;
    let epoch = epoch_of(&a.join("r").await);
    publish_n(&mut a, "r", 1..=6).await;

    let mut b = Client::connect(&server, "bob").await;
    let joined = join_since(&mut b, "r", &epoch, 2).await;
    assert_eq!(
        joined,
        ServerMsg::Joined {
            room: "r".into(),
            epoch: epoch.clone(),
            offset: 6,
            recovered: true,
            resume_after: None,
        }
    );
    assert_eq!(replay_after_join(&mut b).await, vec![3, 4, 5, 6]);

    // Up to date: recovered, nothing to replay.
    let mut c = Client::connect(&server, "cy").await;
    assert!(matches!(
        join_since(&mut c, "r", &epoch, 6).await,
        ServerMsg::Joined {
            recovered: true,
            ..
        }
    ));
    assert_eq!(replay_after_join(&mut c).await, Vec::<u64>::new());
    server.stop().await;
}

#[tokio::test]
async fn unknown_epoch_or_lost_history_is_not_recovered() {
    let server = TestServer::start(open_config().history(3, Duration::from_secs(60))).await;
    let mut a = Client::connect(&server, "ann").await;
    let epoch = epoch_of(&a.join("r").await);
    publish_n(&mut a, "r", 1..=6).await;

    let mut b = Client::connect(&server, "bob").await;
    // Another epoch (e.g. from before a restart): not recovered, and what this epoch still
    // holds (4..=6) follows, after `resume_after` 3.
    let joined = join_since(&mut b, "r", "0123456789abcdef", 6).await;
    assert_eq!(
        joined,
        ServerMsg::Joined {
            room: "r".into(),
            epoch: epoch.clone(),
            offset: 6,
            recovered: false,
            resume_after: Some(3),
        }
    );
    assert_eq!(replay_after_join(&mut b).await, vec![4, 5, 6]);
    // History holds 4..=6 only: a gap from 2 cannot be filled; from 3 it can.
    let joined = join_since(&mut b, "r", &epoch, 2).await;
    assert!(
        matches!(
            joined,
            ServerMsg::Joined {
                recovered: false,
                ..
            }
        ),
        "{joined:?}"
    );
    assert_eq!(
        replay_after_join(&mut b).await,
        Vec::<u64>::new(),
        "nothing partial"
    );
    assert!(matches!(
        join_since(&mut b, "r", &epoch, 3).await,
        ServerMsg::Joined {
            recovered: true,
            ..
        }
    ));
    assert_eq!(replay_after_join(&mut b).await, vec![4, 5, 6]);
    // A position ahead of the room is not trusted.
    assert!(matches!(
        join_since(&mut b, "r", &epoch, 60).await,
        ServerMsg::Joined {
            recovered: false,
            ..
        }
    ));
    server.stop().await;
}

#[tokio::test]
async fn history_older_than_max_age_is_not_replayed() {
    let server = TestServer::start(open_config().history(100, Duration::from_millis(100))).await;
    let mut a = Client::connect(&server, "ann").await;
    let epoch = epoch_of(&a.join("r").await);
    publish_n(&mut a, "r", 1..=2).await;
    // Age is the behaviour under test: let the history expire.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b = Client::connect(&server, "bob").await;
    assert!(matches!(
        join_since(&mut b, "r", &epoch, 0).await,
        ServerMsg::Joined {
            recovered: false,
            ..
        }
    ));
    assert_eq!(replay_after_join(&mut b).await, Vec::<u64>::new());
    server.stop().await;
}

#[tokio::test]
async fn room_history_outlives_its_members_and_a_new_room_has_a_new_epoch() {
    let server = TestServer::start(open_config()).await;
    let mut a = Client::connect(&server, "ann").await;
    let epoch = epoch_of(&a.join("r").await);
    publish_n(&mut a, "r", 1..=3).await;
    drop(a);
    // Everyone left; the history is kept (bounded by age) so a rejoin still recovers.
    let mut b = Client::connect(&server, "bob").await;
    assert!(matches!(
        join_since(&mut b, "r", &epoch, 1).await,
        ServerMsg::Joined {
            recovered: true,
            ..
        }
    ));
    assert_eq!(replay_after_join(&mut b).await, vec![2, 3]);
    // A room that never had history gets its own epoch.
    let other = epoch_of(&b.join("fresh").await);
    assert_ne!(other, epoch);
    server.stop().await;
}

#[tokio::test]
async fn after_a_restart_a_message_of_the_new_epoch_is_replayed_to_a_late_rejoin() {
    // The demo's loss: the receiver knew epoch E1 up to offset 3; the server restarts, a
    // sender publishes in the new epoch before the receiver rejoins. The rejoin must carry it.
    let before = TestServer::start(open_config()).await;
    let mut rx = Client::connect(&before, "rx").await;
    let old_epoch = epoch_of(&rx.join("r").await);
    publish_n(&mut rx, "r", 1..=3).await;
    before.stop().await;

    let after = TestServer::start(open_config()).await;
    let mut tx = Client::connect(&after, "tx").await;
    let new_epoch = epoch_of(&tx.join("r").await);
    assert_ne!(new_epoch, old_epoch);
    publish_n(&mut tx, "r", 1..=2).await;

    let mut rx = Client::connect(&after, "rx").await;
    let joined = join_since(&mut rx, "r", &old_epoch, 3).await;
    assert_eq!(
        joined,
        ServerMsg::Joined {
            room: "r".into(),
            epoch: new_epoch.clone(),
            offset: 2,
            recovered: false,
            resume_after: Some(0),
        }
    );
    assert_eq!(replay_after_join(&mut rx).await, vec![1, 2]);
    // Live traffic continues right after the replay.
    publish_n(&mut tx, "r", 3..=3).await;
    let (msg, _) = rx.until(|m| matches!(m, ServerMsg::Message { .. })).await;
    assert!(
        matches!(msg, ServerMsg::Message { offset: 3, .. }),
        "{msg:?}"
    );
    after.stop().await;
}

#[tokio::test]
async fn another_epoch_replays_from_the_first_retained_offset() {
    // History of 2: offsets 1..=3 leave 2..=3, so the replay starts after 1.
    let server = TestServer::start(open_config().history(2, Duration::from_secs(60))).await;
    let mut tx = Client::connect(&server, "tx").await;
    tx.join("r").await;
    publish_n(&mut tx, "r", 1..=3).await;
    let mut rx = Client::connect(&server, "rx").await;
    let joined = join_since(&mut rx, "r", "0123456789abcdef", 40).await;
    assert!(
        matches!(
            joined,
            ServerMsg::Joined {
                recovered: false,
                offset: 3,
                resume_after: Some(1),
                ..
            }
        ),
        "{joined:?}"
    );
    assert_eq!(replay_after_join(&mut rx).await, vec![2, 3]);
    server.stop().await;
}

#[tokio::test]
async fn resent_id_after_resume_is_acked_as_duplicate_and_not_rebroadcast() {
    let server = TestServer::start(open_config()).await;
    let mut b = Client::connect(&server, "bob").await;
    b.join("r").await;

    let mut a = Client::connect(&server, "ann").await;
    let (session, resumed) = a.hello(None).await;
    assert!(!resumed);
    a.join("r").await;
    a.send(&ClientMsg::Publish {
        room: "r".into(),
        id: 1,
        data: json!("once"),
    })
    .await;
    let (ack, _) = a.until(|m| matches!(m, ServerMsg::Ack { .. })).await;
    assert_eq!(
        ack,
        ServerMsg::Ack {
            id: 1,
            offset: 1,
            duplicate: false
        }
    );
    a.ws.close(None).await.unwrap();
    drop(a);

    // Reconnect and resume: the same id is a duplicate.
    let mut a = Client::connect(&server, "ann").await;
    assert_eq!(
        a.hello(Some(session.clone())).await,
        (session.clone(), true)
    );
    a.join("r").await;
    a.send(&ClientMsg::Publish {
        room: "r".into(),
        id: 1,
        data: json!("once"),
    })
    .await;
    let (ack, _) = a.until(|m| matches!(m, ServerMsg::Ack { .. })).await;
    assert_eq!(
        ack,
        ServerMsg::Ack {
            id: 1,
            offset: 1,
            duplicate: true
        }
    );
    a.send(&ClientMsg::Publish {
        room: "r".into(),
        id: 2,
        data: json!("two"),
    })
    .await;
    let (ack, _) = a.until(|m| matches!(m, ServerMsg::Ack { .. })).await;
    assert_eq!(
        ack,
        ServerMsg::Ack {
            id: 2,
            offset: 2,
            duplicate: false
        }
    );

    // b saw offset 1 once, then offset 2: no duplicate in between.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let ServerMsg::Message { offset, .. } = b.next_msg().await {
            seen.push(offset);
        }
    }
    assert_eq!(seen, vec![1, 2]);

    // An unknown session is not resumed; a fresh one is handed out.
    let mut c = Client::connect(&server, "cy").await;
    let (fresh, resumed) = c
        .hello(Some("feedfacefeedfacefeedfacefeedface".into()))
        .await;
    assert!(!resumed);
    assert_ne!(fresh, session);
    server.stop().await;
}

#[tokio::test]
async fn slow_reader_gets_batches_and_a_lone_message_is_an_object() {
    let server = TestServer::start(open_config().queue_capacity(4096)).await;
    let mut reader = connect_small_window(&server, "reader").await;
    reader
        .send(Message::text(r#"{"type":"join","room":"r"}"#))
        .await
        .unwrap();
    common::raw_until(&mut reader, |m| matches!(m, ServerMsg::Joined { .. })).await;

    let mut a = Client::connect(&server, "ann").await;
    a.join("r").await;
    // `reader` does not read while 300 messages of ~1 KiB are published: its socket fills, its
    // queue grows, and the writer packs what is queued.
    let pad = "z".repeat(1000);
    for id in 1..=300u64 {
        a.send(&ClientMsg::Publish {
            room: "r".into(),
            id,
            data: json!({ "id": id, "pad": pad }),
        })
        .await;
    }
    a.until(|m| matches!(m, ServerMsg::Ack { id: 300, .. }))
        .await;

    let mut offsets = Vec::new();
    let mut arrays = 0;
    while offsets.len() < 300 {
        let msg = tokio::time::timeout(WAIT, reader.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Text(text) = msg else { continue };
        let msgs = protocol::decode_server_frame(text.as_str()).unwrap();
        if text.as_str().starts_with('[') && msgs.len() > 1 {
            arrays += 1;
            assert!(
                text.len() <= 16 * 1024,
                "batch above the cap: {}",
                text.len()
            );
        }
        offsets.extend(msgs.iter().filter_map(|m| match m {
            ServerMsg::Message { offset, .. } => Some(*offset),
            _ => None,
        }));
    }
    assert_eq!(offsets, (1..=300).collect::<Vec<u64>>());
    assert!(arrays > 0, "no batch frame");

    // Nothing queued now: one publication goes out alone, as an object.
    a.send(&ClientMsg::Publish {
        room: "r".into(),
        id: 301,
        data: json!("solo"),
    })
    .await;
    let text = loop {
        let msg = tokio::time::timeout(WAIT, reader.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(text) = msg {
            break text;
        }
    };
    assert!(text.as_str().starts_with('{'), "{text}");
    assert!(text.as_str().contains(r#""offset":301"#));
    server.stop().await;
}
