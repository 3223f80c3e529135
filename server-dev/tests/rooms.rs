//! Protocol v1 over a real socket: rooms, offsets, presence, room list, and refused input.
//!
//! Covers: hello/welcome, with the server's limits; a publisher id from `hello` stamped with
//! the publish id on live and replayed messages, an invalid one refused; ping/pong; join/publish/broadcast within a room and not across
//! rooms; offsets +1 per room; ack; a message longer than the largest frame the server writes
//! arrives whole; room list pushed on join and leave; presence; list_rooms;
//! malformed JSON, unknown type, publish to a room not joined, invalid room name and the
//! per-connection room cap each get an error while the connection stays open.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use common::{Client, TestServer, open_config};
use protocol::{ClientMsg, ErrorCode, Limits, RoomInfo, ServerMsg, Since};
use serde_json::json;

fn publish(room: &str, id: u64, data: serde_json::Value) -> ClientMsg {
    ClientMsg::Publish {
        room: room.into(),
        id,
        data,
    }
}

#[tokio::test]
async fn hello_and_ping() {
    let server = TestServer::start(open_config()).await;
    let mut a = Client::connect(&server, "ann").await;
    a.send(&ClientMsg::Hello {
        session: None,
        publisher: None,
    })
    .await;
    let (welcome, _) = a.until(|m| matches!(m, ServerMsg::Welcome { .. })).await;
    let ServerMsg::Welcome {
        session,
        resumed,
        name,
        ..
    } = welcome
    else {
        unreachable!()
    };
    assert_eq!((resumed, name.as_str()), (false, "ann"));
    assert_eq!(session.len(), 32);
    a.send(&ClientMsg::Ping { id: 41 }).await;
    assert_eq!(
        a.until(|m| matches!(m, ServerMsg::Pong { .. })).await.0,
        ServerMsg::Pong { id: 41 }
    );
    server.stop().await;
}

#[tokio::test]
async fn welcome_advertises_the_default_limits() {
    let server = TestServer::start(server_dev::Config::default().no_auth(true)).await;
    let mut a = Client::connect(&server, "ann").await;
    a.send(&ClientMsg::Hello {
        session: None,
        publisher: None,
    })
    .await;
    let (welcome, _) = a.until(|m| matches!(m, ServerMsg::Welcome { .. })).await;
    let ServerMsg::Welcome { limits, .. } = welcome else {
        unreachable!()
    };
    assert_eq!(
        limits,
        Some(Limits {
            max_message_bytes: 64 * 1024,
            rate_per_sec: 50,
            rate_burst: 100,
            dedupe_window: 1024,
        })
    );
    a.ws.close(None).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn publisher_id_and_publish_id_ride_on_every_message() {
    let server = TestServer::start(open_config()).await;
    let mut a = Client::connect(&server, "ann").await;
    let mut b = Client::connect(&server, "bob").await;
    a.send(&ClientMsg::Hello {
        session: None,
        publisher: Some("ann-publisher-01".into()),
    })
    .await;
    a.until(|m| matches!(m, ServerMsg::Welcome { .. })).await;
    let ServerMsg::Joined { epoch, .. } = a.join("r").await else {
        unreachable!()
    };
    b.join("r").await;
    a.send(&publish("r", 7, json!("hi"))).await;
    let stamped = |m: &ServerMsg| {
        matches!(m, ServerMsg::Message { publisher: Some(p), id: Some(7), offset: 1, .. }
            if p == "ann-publisher-01")
    };
    b.until(stamped).await;

    // Replayed history carries them too.
    let mut c = Client::connect(&server, "cy").await;
    c.send(&ClientMsg::Join {
        room: "r".into(),
        since: Some(Since { epoch, offset: 0 }),
    })
    .await;
    c.until(stamped).await;

    // An invalid id is refused; the connection goes on without one.
    c.send(&ClientMsg::Hello {
        session: None,
        publisher: Some("bad id!".into()),
    })
    .await;
    expect_error(&mut c, ErrorCode::InvalidPublisher).await;
    c.until(|m| matches!(m, ServerMsg::Welcome { .. })).await;
    c.send(&publish("r", 1, json!("anon"))).await;
    let (msg, _) = b
        .until(|m| matches!(m, ServerMsg::Message { offset: 2, .. }))
        .await;
    assert!(
        matches!(
            msg,
            ServerMsg::Message {
                publisher: None,
                id: None,
                ..
            }
        ),
        "{msg:?}"
    );
    for mut client in [a, b, c] {
        client.ws.close(None).await.unwrap();
    }
    server.stop().await;
}

#[tokio::test]
async fn publish_reaches_the_room_only_with_consecutive_offsets() {
    let server = TestServer::start(open_config()).await;
    let mut a = Client::connect(&server, "ann").await;
    let mut b = Client::connect(&server, "bob").await;
    let mut c = Client::connect(&server, "cy").await;
    let ServerMsg::Joined {
        offset: 0,
        recovered: true,
        epoch,
        ..
    } = a.join("red").await
    else {
        panic!("new room starts at 0")
    };
    assert_eq!(epoch.len(), 16);
    b.join("red").await;
    c.join("blue").await;

    for i in 1..=3u64 {
        a.send(&publish("red", i, json!({ "n": i }))).await;
    }
    c.send(&publish("blue", 1, json!("other room"))).await;

    let mut acks = Vec::new();
    let mut seen_by_a = Vec::new();
    while acks.len() < 3 || seen_by_a.len() < 3 {
        match a.next_msg().await {
            ServerMsg::Ack {
                id,
                offset,
                duplicate: false,
            } => acks.push((id, offset)),
            ServerMsg::Message { room, offset, .. } => {
                assert_eq!(room, "red", "a must not see other rooms");
                seen_by_a.push(offset);
            }
            _ => {}
        }
    }
    assert_eq!(acks, vec![(1, 1), (2, 2), (3, 3)]);
    assert_eq!(seen_by_a, vec![1, 2, 3]);

    let mut seen_by_b = Vec::new();
    while seen_by_b.len() < 3 {
        if let ServerMsg::Message {
            room,
            offset,
            from,
            data,
            ts,
            ..
        } = b.next_msg().await
        {
            assert_eq!((room.as_str(), from.as_str()), ("red", "ann"));
            assert_eq!(data, json!({ "n": offset }));
            assert!(ts > 1_600_000_000_000, "ms since the Unix epoch");
            seen_by_b.push(offset);
        }
    }
    assert_eq!(seen_by_b, vec![1, 2, 3]);

    // c sees only its own room: offset 1 in blue, nothing from red.
    let (msg, before) = c.until(|m| matches!(m, ServerMsg::Message { .. })).await;
    assert!(matches!(msg, ServerMsg::Message { ref room, offset: 1, .. } if room == "blue"));
    assert!(
        !before
            .iter()
            .any(|m| matches!(m, ServerMsg::Message { .. }))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_message_longer_than_a_frame_arrives_whole() {
    // The server writes it as frames of at most 512 B, split inside multi-byte characters too;
    // the client reassembles them into one message (RFC 6455 §5.4).
    let server = TestServer::start(open_config().write_frame_size(512)).await;
    let mut a = Client::connect(&server, "ann").await;
    let mut b = Client::connect(&server, "bob").await;
    a.join("r").await;
    b.join("r").await;
    let long = "é€".repeat(1000);
    a.send(&publish("r", 1, json!(long))).await;
    let (msg, _) = b.until(|m| matches!(m, ServerMsg::Message { .. })).await;
    let ServerMsg::Message { data, from, .. } = msg else {
        unreachable!()
    };
    assert_eq!((data, from.as_str()), (json!(long), "ann"));
    a.send(&ClientMsg::Ping { id: 2 }).await;
    a.until(|m| *m == ServerMsg::Pong { id: 2 }).await;
    server.stop().await;
}

#[tokio::test]
async fn room_list_and_presence_follow_membership() {
    let server = TestServer::start(open_config()).await;
    let mut a = Client::connect(&server, "ann").await;
    let mut b = Client::connect(&server, "bob").await;
    a.join("lobby").await;
    let (rooms, _) = a.until(|m| matches!(m, ServerMsg::Rooms { .. })).await;
    assert_eq!(
        rooms,
        ServerMsg::Rooms {
            rooms: vec![RoomInfo {
                room: "lobby".into(),
                members: 1
            }]
        }
    );

    // b is in no room but still gets the room list pushed when membership changes.
    b.join("lobby").await;
    let (presence, _) = a.until(|m| matches!(m, ServerMsg::Presence { .. })).await;
    assert_eq!(
        presence,
        ServerMsg::Presence {
            room: "lobby".into(),
            members: vec!["ann".into(), "bob".into()]
        }
    );
    let (rooms, _) = a.until(|m| matches!(m, ServerMsg::Rooms { .. })).await;
    assert_eq!(
        rooms,
        ServerMsg::Rooms {
            rooms: vec![RoomInfo {
                room: "lobby".into(),
                members: 2
            }]
        }
    );

    b.send(&ClientMsg::Leave {
        room: "lobby".into(),
    })
    .await;
    b.until(|m| matches!(m, ServerMsg::Left { room } if room == "lobby"))
        .await;
    let (presence, _) = a.until(|m| matches!(m, ServerMsg::Presence { .. })).await;
    assert_eq!(
        presence,
        ServerMsg::Presence {
            room: "lobby".into(),
            members: vec!["ann".into()]
        }
    );
    let (rooms, _) = b.until(|m| matches!(m, ServerMsg::Rooms { .. })).await;
    assert_eq!(
        rooms,
        ServerMsg::Rooms {
            rooms: vec![RoomInfo {
                room: "lobby".into(),
                members: 1
            }]
        }
    );

    // The last member leaving drops the room from the list.
    a.send(&ClientMsg::Leave {
        room: "lobby".into(),
    })
    .await;
    b.until(|m| matches!(m, ServerMsg::Rooms { rooms } if rooms.is_empty()))
        .await;
    b.send(&ClientMsg::ListRooms).await;
    let (rooms, _) = b.until(|m| matches!(m, ServerMsg::Rooms { .. })).await;
    assert_eq!(rooms, ServerMsg::Rooms { rooms: vec![] });

    // A disconnect counts as leaving.
    a.join("den").await;
    b.join("den").await;
    drop(a);
    let (presence, _) = b
        .until(|m| matches!(m, ServerMsg::Presence { members, .. } if members.len() == 1))
        .await;
    assert_eq!(
        presence,
        ServerMsg::Presence {
            room: "den".into(),
            members: vec!["bob".into()]
        }
    );
    server.stop().await;
}

async fn expect_error(c: &mut Client, code: ErrorCode) -> ServerMsg {
    c.until(|m| matches!(m, ServerMsg::Error { code: got, .. } if *got == code))
        .await
        .0
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_connection_stays_open() {
    let server = TestServer::start(open_config().max_rooms_per_conn(2)).await;
    let mut a = Client::connect(&server, "ann").await;

    a.send_text("{not json").await;
    expect_error(&mut a, ErrorCode::BadJson).await;
    a.send_text(r#"{"type":"teleport","id":9}"#).await;
    let err = expect_error(&mut a, ErrorCode::UnknownType).await;
    assert!(
        matches!(
            err,
            ServerMsg::Error {
                reference: Some(9),
                ..
            }
        ),
        "{err:?}"
    );
    a.send_text(r#"{"type":"join"}"#).await;
    expect_error(&mut a, ErrorCode::UnknownType).await;
    a.send(&publish("nowhere", 5, json!(1))).await;
    let err = expect_error(&mut a, ErrorCode::NotJoined).await;
    assert!(
        matches!(
            err,
            ServerMsg::Error {
                reference: Some(5),
                ..
            }
        ),
        "{err:?}"
    );
    a.send(&ClientMsg::Join {
        room: String::new(),
        since: None,
    })
    .await;
    expect_error(&mut a, ErrorCode::InvalidRoom).await;
    a.send(&ClientMsg::Join {
        room: "x".repeat(65),
        since: None,
    })
    .await;
    expect_error(&mut a, ErrorCode::InvalidRoom).await;

    a.join("one").await;
    a.join("two").await;
    a.send(&ClientMsg::Join {
        room: "three".into(),
        since: None,
    })
    .await;
    expect_error(&mut a, ErrorCode::TooManyRooms).await;
    // Rejoining a room already joined is not a new room.
    assert!(matches!(a.join("one").await, ServerMsg::Joined { .. }));

    // Still open and serving.
    a.send(&ClientMsg::Ping { id: 1 }).await;
    a.until(|m| matches!(m, ServerMsg::Pong { id: 1 })).await;
    server.stop().await;
}
