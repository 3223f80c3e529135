//! The protocol v1 layer on virtual time (native only). Covers:
//! - [x] preamble on every open: hello{session}, join{since} per room, before the core flushes
//!   its queue (driven through the real `Machine`); unacked publishes in id order once that
//!   connection's welcome arrives, ahead of new ones
//! - [x] session token stored from `welcome` and sent on the next hello
//! - [x] publish ids unique and increasing; bound -> TooManyUnacked; ack timeout -> PublishTimeout
//! - [x] acks (also duplicate acks) resolve publishes; refused publish -> PublishFailed
//! - [x] single and batch frames delivered in order; duplicates dropped and counted
//! - [x] a gap asks for recovery (join with since) instead of delivering out of order
//! - [x] joined{recovered:true} -> Recovery event + replay; recovered:false -> Recovery event
//! - [x] presence / room list events; bad frames reported; leave fails its unacked publishes
//! - [x] typed decoding of RoomMessage<T> with a decode error for bad data
//! - [x] publisher id: one per client from the seed, in every hello; publish ids never restart
//! - [x] receive side: a resend re-broadcast under a new epoch/offset is dropped by
//!   (publisher, id); the table is bounded, least recently seen out first; messages carry
//!   epoch, publisher and id
//! - [x] joined{resume_after}: a receiver whose since is in an old epoch gets the new epoch
//!   from offset 1, once
//! - [x] TooLarge: at publish once limits are known, at the welcome for earlier publishes, on
//!   a close 1009 (the largest publish in flight), for a user send; the rest flow
//! - [x] pacing on virtual time: the server's token bucket never runs dry, bursts never exceed
//!   it, at most dedupe_window publishes in flight, user sends share the bucket, no limits =
//!   no pacing
//! - [x] proptest: against a model server with a lossy, duplicating wire, reconnects and
//!   restarts (replaying the new epoch with resume_after, stamping publisher and id),
//!   delivered offsets per room and epoch go up and skip only resends, no publication is
//!   delivered twice, the server sees each publisher's ids in order, and everything settles
//!   after a final reconnect
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

mod machine_out;
mod model_server;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use machine_out::{Out, poll};
use model_server::{Log, Model};
use proptest::prelude::*;
use protocol::{ClientMsg, ErrorCode, Limits, ServerMsg, Since};
use serde_json::json;
use ws_lifeline::Error;
use ws_lifeline::machine::rooms::{
    Outgoing, PublishId, RoomError, RoomEvent, RoomMessage, Rooms, RoomsConfig,
};
use ws_lifeline::machine::{
    CloseInfo, Config, Event, Input, Instant, Io, Machine, Message, Sent, Target,
};

fn text(msg: &ServerMsg) -> Event {
    Event::Message(Message::Text(serde_json::to_string(msg).unwrap()))
}

fn batch(msgs: &[ServerMsg]) -> Event {
    Event::Message(Message::Text(serde_json::to_string(msgs).unwrap()))
}

fn close() -> Event {
    Event::Close(CloseInfo {
        code: 1006,
        reason: String::new(),
        was_clean: false,
    })
}

fn sent(r: &mut Rooms) -> Vec<(bool, ClientMsg)> {
    std::iter::from_fn(|| r.poll_transmit())
        .filter_map(|o| {
            let pre = matches!(o, Outgoing::Preamble(_));
            let m = serde_json::from_str(o.message()?.as_text().unwrap()).unwrap();
            Some((pre, m))
        })
        .collect()
}

fn events(r: &mut Rooms) -> Vec<RoomEvent> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

fn joined(room: &str, epoch: &str, offset: u64, recovered: bool) -> ServerMsg {
    ServerMsg::Joined {
        room: room.into(),
        epoch: epoch.into(),
        offset,
        recovered,
        resume_after: None,
    }
}

fn msg(room: &str, offset: u64) -> ServerMsg {
    ServerMsg::Message {
        room: room.into(),
        offset,
        from: "b".into(),
        data: json!(offset),
        ts: 0,
        publisher: None,
        id: None,
    }
}

fn raw(value: serde_json::Value) -> ws_lifeline::RawJson {
    ws_lifeline::RawJson::from_serialize(&value).unwrap()
}

fn delivered(evs: &[RoomEvent]) -> Vec<u64> {
    evs.iter()
        .filter_map(|e| match e {
            RoomEvent::Message(m) => Some(m.offset),
            _ => None,
        })
        .collect()
}

/// A layer that joined `room` at `offset` of epoch `e1` on an open connection.
fn joined_layer(room: &str, offset: u64) -> Rooms {
    let mut r = Rooms::new(RoomsConfig::default(), 1);
    r.join(Instant(0), room).unwrap();
    r.handle_event(Instant(0), &Event::Open);
    sent(&mut r);
    r.handle_event(Instant(0), &text(&joined(room, "e1", offset, true)));
    events(&mut r);
    r
}

/// The core and the layer driven the way both shells drive them.
struct Shell {
    m: Machine,
    r: Rooms,
    now: u64,
    conn: Option<ws_lifeline::machine::ConnId>,
    /// Frames put on the wire, with the connection they went out on.
    wire: Vec<(ws_lifeline::machine::ConnId, String)>,
    /// When each frame of `wire` went out (virtual ms).
    sent_at: Vec<u64>,
}

impl Shell {
    fn new() -> Self {
        // Offering protocol v1, as every shell does once it runs the layer.
        let config = Config::default()
            .protocols([protocol::SUBPROTOCOL])
            .no_heartbeat()
            .backoff_min(Duration::from_millis(10))
            .backoff_max(Duration::from_millis(10));
        let m = Machine::new(
            config,
            Target::Url("ws://127.0.0.1:1/ws".into()),
            1,
            Instant(0),
        );
        let mut shell = Shell {
            m: m.unwrap(),
            r: Rooms::new(RoomsConfig::default(), 1),
            now: 0,
            conn: None,
            wire: Vec::new(),
            sent_at: Vec::new(),
        };
        shell.pump();
        shell
    }

    fn pump(&mut self) {
        let now = Instant(self.now);
        while let Some(c) = poll(&mut self.m) {
            match c {
                Out::Io(Io::Open { conn, .. }) => self.conn = Some(conn),
                Out::Io(Io::Transmit { conn, message }) => {
                    self.wire
                        .push((conn, message.as_text().unwrap().to_owned()));
                    self.sent_at.push(self.now);
                }
                Out::Event(e) => {
                    self.r.handle_event(now, &e);
                    while let Some(o) = self.r.poll_transmit() {
                        // Refused when the socket is not open; the layer redoes it.
                        let _ = self.m.send_outgoing(now, o);
                    }
                }
                _ => {}
            }
        }
    }

    fn opened(&mut self) {
        let conn = self.conn.unwrap();
        let input = Input::SocketOpened {
            conn,
            protocol: String::new(),
        };
        self.m.handle(Instant(self.now), input);
        self.pump();
    }

    fn receive(&mut self, msg: &ServerMsg) {
        let Event::Message(message) = text(msg) else {
            unreachable!()
        };
        let conn = self.conn.unwrap();
        self.m
            .handle(Instant(self.now), Input::SocketMessage { conn, message });
        self.pump();
    }

    fn publish(&mut self, n: u64) {
        self.r
            .publish(Instant(self.now), "a", raw(json!(n)))
            .unwrap();
        self.pump_layer();
    }

    fn pump_layer(&mut self) {
        while let Some(o) = self.r.poll_transmit() {
            let _ = self.m.send_outgoing(Instant(self.now), o);
        }
        self.pump();
    }

    fn publish_ids_on(&self, conn: ws_lifeline::machine::ConnId) -> Vec<u64> {
        self.wire
            .iter()
            .filter(|(c, _)| *c == conn)
            .filter_map(|(_, f)| match serde_json::from_str::<ClientMsg>(f).ok()? {
                ClientMsg::Publish { id, .. } => Some(id),
                _ => None,
            })
            .collect()
    }

    /// Runs both timers up to virtual time `t`.
    fn advance(&mut self, t: u64) {
        loop {
            let next = [self.m.poll_timeout(), self.r.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at.0 <= t => {
                    self.now = self.now.max(at.0);
                    self.m.handle_timeout(Instant(self.now));
                    self.r.handle_timeout(Instant(self.now));
                    self.pump_layer();
                }
                _ => break,
            }
        }
        self.now = t;
    }

    fn closed(&mut self, code: u16) {
        let conn = self.conn.unwrap();
        let info = CloseInfo {
            code,
            reason: String::new(),
            was_clean: true,
        };
        self.m
            .handle(Instant(self.now), Input::SocketClosed { conn, info });
        self.pump();
    }

    /// The server's acks for every publish on the wire not acked yet.
    fn ack_all(&mut self, acked: &mut HashSet<u64>) {
        let ids = self.publish_ids_on(self.conn.unwrap());
        for id in ids {
            if acked.insert(id) {
                self.receive(&ServerMsg::Ack {
                    id,
                    offset: id,
                    duplicate: false,
                });
            }
        }
    }
}

fn limits(max_message_bytes: u32, rate_per_sec: u32, rate_burst: u32, window: u32) -> Limits {
    Limits {
        max_message_bytes,
        rate_per_sec,
        rate_burst,
        dedupe_window: window,
    }
}

fn welcome_with(limits: Limits) -> ServerMsg {
    ServerMsg::Welcome {
        session: "s".into(),
        resumed: false,
        name: "me".into(),
        limits: Some(limits),
    }
}

fn msg_from(room: &str, offset: u64, publisher: &str, id: u64) -> ServerMsg {
    ServerMsg::Message {
        room: room.into(),
        offset,
        from: "b".into(),
        data: json!(offset),
        ts: 0,
        publisher: Some(publisher.into()),
        id: Some(id),
    }
}

fn delivered_msgs(evs: &[RoomEvent]) -> Vec<RoomMessage> {
    evs.iter()
        .filter_map(|e| match e {
            RoomEvent::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn failures(evs: &[RoomEvent]) -> Vec<(PublishId, RoomError)> {
    evs.iter()
        .filter_map(|e| match e {
            RoomEvent::PublishFailed { id, error, .. } => Some((*id, error.clone())),
            _ => None,
        })
        .collect()
}

fn welcome() -> ServerMsg {
    ServerMsg::Welcome {
        session: "s".into(),
        resumed: false,
        name: "me".into(),
        limits: None,
    }
}

/// Regression: a publish made after the socket died but before the layer heard of it used to
/// wait in the core's queue and reach the next connection before that connection's resends,
/// so the server saw ids out of order (found by the soak test).
#[test]
fn a_publish_during_a_reconnect_does_not_overtake_the_resends() {
    let mut s = Shell::new();
    s.r.join(Instant(0), "a").unwrap();
    s.opened();
    s.receive(&welcome());
    s.receive(&joined("a", "e1", 0, true));
    s.publish(1);
    let first = s.conn.unwrap();
    assert_eq!(s.publish_ids_on(first), vec![1]);
    // The socket dies; the core knows, the layer has not been told yet.
    let info = CloseInfo {
        code: 1006,
        reason: String::new(),
        was_clean: false,
    };
    s.m.handle(Instant(s.now), Input::SocketClosed { conn: first, info });
    s.r.publish(Instant(s.now), "a", raw(json!(2))).unwrap();
    s.pump_layer();
    s.now += 50;
    s.m.handle_timeout(Instant(s.now));
    s.pump();
    let second = s.conn.unwrap();
    assert_ne!(second, first);
    s.opened();
    s.receive(&welcome());
    s.publish(3);
    let frames: Vec<&str> = s
        .wire
        .iter()
        .filter(|(c, _)| *c == second)
        .map(|(_, f)| f.as_str())
        .collect();
    let hello = format!(
        r#"{{"type":"hello","session":"s","publisher":"{}"}}"#,
        s.r.publisher()
    );
    assert_eq!(frames.first(), Some(&hello.as_str()));
    assert_eq!(s.publish_ids_on(second), vec![1, 2, 3]);
}

#[test]
fn preamble_goes_out_before_the_core_flushes_its_queue() {
    let mut m = Machine::new(
        // Offering protocol v1, as every shell does once it runs the layer.
        Config::default()
            .protocols([protocol::SUBPROTOCOL])
            .no_heartbeat(),
        Target::Url("ws://127.0.0.1:1/ws".into()),
        1,
        Instant(0),
    )
    .unwrap();
    let mut r = Rooms::new(RoomsConfig::default(), 1);
    r.join(Instant(0), "a").unwrap();
    r.join(Instant(0), "b").unwrap();
    let p1 = r.publish(Instant(0), "a", raw(json!(1))).unwrap();
    let p2 = r.publish(Instant(0), "b", raw(json!(2))).unwrap();
    assert!(p2 > p1);
    m.send(Instant(0), "user queued".into()).unwrap();
    let conn = std::iter::from_fn(|| poll(&mut m))
        .find_map(|c| match c {
            Out::Io(Io::Open { conn, .. }) => Some(conn),
            _ => None,
        })
        .unwrap();
    m.handle(
        Instant(1),
        Input::SocketOpened {
            conn,
            protocol: String::new(),
        },
    );
    // The shell loop: events go to the layer, its frames to the core.
    let mut wire = Vec::new();
    let welcome = ServerMsg::Welcome {
        session: "s".into(),
        resumed: false,
        name: "me".into(),
        limits: None,
    };
    let mut inbound = vec![text(&welcome)];
    loop {
        let Some(c) = poll(&mut m) else {
            // The server's welcome arrives.
            let Some(Event::Message(message)) = inbound.pop() else {
                break;
            };
            m.handle(Instant(2), Input::SocketMessage { conn, message });
            continue;
        };
        match c {
            Out::Event(e) => {
                r.handle_event(Instant(1), &e);
                while let Some(o) = r.poll_transmit() {
                    m.send_outgoing(Instant(1), o).unwrap();
                }
            }
            Out::Io(Io::Transmit { message, .. }) => {
                wire.push(message.as_text().unwrap().to_owned())
            }
            _ => {}
        }
    }
    assert_eq!(
        wire,
        vec![
            format!(r#"{{"type":"hello","publisher":"{}"}}"#, r.publisher()),
            r#"{"type":"join","room":"a"}"#.to_owned(),
            r#"{"type":"join","room":"b"}"#.to_owned(),
            "user queued".to_owned(),
            r#"{"type":"publish","room":"a","id":1,"data":1}"#.to_owned(),
            r#"{"type":"publish","room":"b","id":2,"data":2}"#.to_owned(),
        ]
    );
}

#[test]
fn reconnect_resumes_session_rejoins_with_since_and_resends_in_order() {
    let mut r = joined_layer("a", 4);
    r.handle_event(
        Instant(1),
        &text(&ServerMsg::Welcome {
            session: "tok".into(),
            resumed: false,
            name: "me".into(),
            limits: None,
        }),
    );
    r.handle_event(Instant(1), &batch(&[msg("a", 5), msg("a", 6)]));
    assert_eq!(r.session(), Some("tok"));
    let ids: Vec<PublishId> = (0..3)
        .map(|i| r.publish(Instant(2), "a", raw(json!(i))).unwrap())
        .collect();
    assert_eq!(sent(&mut r).len(), 3, "sent at once while open");
    r.handle_event(
        Instant(3),
        &text(&ServerMsg::Ack {
            id: ids[0].0,
            offset: 7,
            duplicate: false,
        }),
    );
    r.handle_event(Instant(4), &close());
    assert!(r.publish(Instant(5), "a", raw(json!(3))).is_ok());
    assert!(sent(&mut r).is_empty(), "nothing sent while closed");
    r.handle_event(Instant(6), &Event::Open);
    let out = sent(&mut r);
    assert!(out.iter().all(|(pre, _)| *pre));
    assert_eq!(out.len(), 2, "publishes wait for the welcome");
    assert!(r.publish(Instant(6), "a", raw(json!(4))).is_ok());
    r.handle_event(
        Instant(6),
        &text(&ServerMsg::Welcome {
            session: "tok".into(),
            resumed: true,
            name: "me".into(),
            limits: None,
        }),
    );
    let after = sent(&mut r);
    assert!(after.iter().all(|(pre, _)| !*pre));
    let msgs: Vec<ClientMsg> = out.into_iter().chain(after).map(|(_, m)| m).collect();
    assert_eq!(
        msgs[0],
        ClientMsg::Hello {
            session: Some("tok".into()),
            publisher: Some(r.publisher().to_owned()),
        }
    );
    assert_eq!(
        msgs[1],
        ClientMsg::Join {
            room: "a".into(),
            since: Some(Since {
                epoch: "e1".into(),
                offset: 6
            })
        }
    );
    let resent: Vec<u64> = msgs[2..]
        .iter()
        .map(|m| match m {
            ClientMsg::Publish { id, .. } => *id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(resent, vec![2, 3, 4, 5]);
    assert_eq!(
        r.stats().resent,
        2,
        "ids 2 and 3 went out before; 4 and 5 are new"
    );
    // Duplicate acks resolve too, and are counted.
    r.handle_event(
        Instant(7),
        &text(&ServerMsg::Ack {
            id: 2,
            offset: 8,
            duplicate: true,
        }),
    );
    let ev = events(&mut r);
    assert!(ev.contains(&RoomEvent::Acked {
        id: PublishId(2),
        room: "a".into(),
        offset: 8,
        duplicate: true
    }));
    assert_eq!(r.stats().duplicate_acks, 1);
    assert_eq!(r.unacked(), 3);
}

#[test]
fn duplicates_are_dropped_and_gaps_trigger_recovery() {
    let mut r = joined_layer("a", 0);
    r.handle_event(Instant(1), &batch(&[msg("a", 1), msg("a", 2), msg("a", 1)]));
    r.handle_event(Instant(1), &text(&msg("a", 2)));
    assert_eq!(delivered(&events(&mut r)), vec![1, 2]);
    assert_eq!(r.stats().duplicates_dropped, 2);
    // 3 is lost: 4 and 5 are not delivered out of order; one rejoin asks for the gap.
    r.handle_event(Instant(2), &text(&msg("a", 4)));
    r.handle_event(Instant(2), &text(&msg("a", 5)));
    assert!(delivered(&events(&mut r)).is_empty());
    assert_eq!(
        sent(&mut r),
        vec![(
            false,
            ClientMsg::Join {
                room: "a".into(),
                since: Some(Since {
                    epoch: "e1".into(),
                    offset: 2
                })
            }
        )]
    );
    r.handle_event(
        Instant(3),
        &batch(&[
            joined("a", "e1", 5, true),
            msg("a", 3),
            msg("a", 4),
            msg("a", 5),
        ]),
    );
    let ev = events(&mut r);
    assert!(matches!(
        &ev[0],
        RoomEvent::Recovery {
            recovered: true,
            ..
        }
    ));
    assert_eq!(delivered(&ev), vec![3, 4, 5]);
    assert_eq!(r.stats().gaps, 2);
    assert_eq!(r.stats().recoveries, 1);
}

#[test]
fn recovery_failure_is_an_event_and_delivery_restarts_in_the_new_epoch() {
    let mut r = joined_layer("a", 10);
    r.handle_event(Instant(1), &close());
    r.handle_event(Instant(2), &Event::Open);
    sent(&mut r);
    r.handle_event(Instant(3), &text(&joined("a", "e2", 3, false)));
    r.handle_event(Instant(3), &batch(&[msg("a", 3), msg("a", 4)]));
    let ev = events(&mut r);
    assert_eq!(
        ev[0],
        RoomEvent::Recovery {
            room: "a".into(),
            recovered: false,
            since: Since {
                epoch: "e1".into(),
                offset: 10
            },
            epoch: "e2".into(),
            offset: 3
        }
    );
    assert_eq!(delivered(&ev), vec![4]);
    assert_eq!(r.stats().recovery_failures, 1);
    assert_eq!(r.position("a").unwrap().epoch, "e2");
}

#[test]
fn bounds_timeouts_refusals_and_leave() {
    let mut r = Rooms::new(
        RoomsConfig::default()
            .max_unacked(2)
            .ack_timeout(Duration::from_millis(100)),
        1,
    );
    assert_eq!(
        r.publish(Instant(0), "a", raw(json!(1))),
        Err(RoomError::NotJoined { room: "a".into() })
    );
    assert_eq!(
        r.join(Instant(0), ""),
        Err(RoomError::InvalidRoom { room: "".into() })
    );
    r.join(Instant(0), "a").unwrap();
    r.join(Instant(0), "b").unwrap();
    let a = r.publish(Instant(0), "a", raw(json!(1))).unwrap();
    let b = r.publish(Instant(50), "b", raw(json!(2))).unwrap();
    assert_eq!(
        r.publish(Instant(50), "a", raw(json!(3))),
        Err(RoomError::TooManyUnacked { limit: 2 })
    );
    assert_eq!(r.poll_timeout(), Some(Instant(100)));
    r.handle_timeout(Instant(100));
    assert_eq!(
        events(&mut r),
        vec![RoomEvent::PublishFailed {
            id: a,
            room: "a".into(),
            error: RoomError::PublishTimeout {
                id: a,
                after_ms: 100
            }
        }]
    );
    // A late ack for a failed publish changes nothing.
    r.handle_event(
        Instant(101),
        &text(&ServerMsg::Ack {
            id: a.0,
            offset: 1,
            duplicate: false,
        }),
    );
    assert_eq!(r.stats().acked, 0);
    // The server refuses a publish by id.
    r.handle_event(
        Instant(102),
        &text(&ServerMsg::Error {
            code: ErrorCode::NotJoined,
            message: "join first".into(),
            reference: Some(b.0),
        }),
    );
    assert!(matches!(
        &events(&mut r)[..],
        [RoomEvent::PublishFailed {
            error: RoomError::Refused {
                code: ErrorCode::NotJoined,
                ..
            },
            ..
        }]
    ));
    let c = r.publish(Instant(103), "a", raw(json!(4))).unwrap();
    assert!(r.leave(Instant(104), "a"));
    assert!(!r.leave(Instant(104), "a"));
    assert_eq!(
        events(&mut r),
        vec![RoomEvent::PublishFailed {
            id: c,
            room: "a".into(),
            error: RoomError::LeftRoom {
                id: c,
                room: "a".into()
            }
        }]
    );
    assert_eq!(r.unacked(), 0);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn presence_rooms_bad_frames_and_typed_decoding() {
    let mut r = joined_layer("a", 0);
    r.handle_event(
        Instant(1),
        &batch(&[
            ServerMsg::Presence {
                room: "a".into(),
                members: vec!["x".into()],
            },
            ServerMsg::Rooms { rooms: vec![] },
        ]),
    );
    r.handle_event(Instant(1), &Event::Message(Message::Text("{nope".into())));
    let ev = events(&mut r);
    assert!(matches!(ev[0], RoomEvent::Presence { .. }));
    assert_eq!(ev[1], RoomEvent::Rooms(vec![]));
    assert!(matches!(&ev[2], RoomEvent::BadFrame(e) if e.raw == "{nope"));
    let m = RoomMessage {
        room: "a".into(),
        epoch: "e1".into(),
        offset: 1,
        from: "x".into(),
        data: raw(json!({"n": 1})),
        ts: 5,
        publisher: Some("p".repeat(16)),
        id: Some(3),
    };
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct N {
        n: u32,
    }
    let typed = m.decode::<N>().unwrap();
    assert_eq!(typed.data, N { n: 1 });
    assert_eq!(
        (typed.epoch.as_str(), typed.publisher, typed.id),
        ("e1", Some("p".repeat(16)), Some(3))
    );
    let bad = m.decode::<String>().unwrap_err();
    assert_eq!(bad.raw, r#"{"n":1}"#);
}

// ---- Model-based property test ----

#[derive(Debug, Clone)]
enum Step {
    /// Another member publishes to room `r`.
    Remote(u8),
    /// The client publishes to room `r`.
    Local(u8),
    /// Up to `k` frames reach the client (one batch frame when more than one).
    Deliver(u8),
    /// A frame already delivered on this connection is delivered again.
    Replay(u8),
    /// The next `k` frames are lost.
    Lose(u8),
    /// The connection drops.
    Drop,
    /// The connection opens again.
    Open,
    /// The server restarts: new epochs, history and sessions lost.
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..2).prop_map(Step::Remote),
        3 => (0u8..2).prop_map(Step::Local),
        6 => (1u8..5).prop_map(Step::Deliver),
        1 => any::<u8>().prop_map(Step::Replay),
        1 => (1u8..3).prop_map(Step::Lose),
        1 => Just(Step::Drop),
        2 => Just(Step::Open),
        1 => Just(Step::Restart),
    ]
}

const ROOMS: [&str; 2] = ["r0", "r1"];
/// How many messages a room of the model server keeps for recovery: few, so that recovery
/// also fails.
const HISTORY: usize = 6;

/// What the application has seen, checked against the invariants on every event.
#[derive(Default)]
struct App {
    /// room -> (epoch, last offset) as told by events; `None` after a recovery into another
    /// epoch, whose retained history starts at an offset the events do not tell.
    pos: HashMap<String, (String, Option<u64>)>,
    delivered: HashSet<(String, String, u64)>,
    /// (room, publisher, id) delivered: never twice, across epochs too.
    keys: HashSet<(String, String, u64)>,
    /// (room, publisher) -> the highest id delivered.
    highest: HashMap<(String, String), u64>,
    acked: HashSet<u64>,
}

impl App {
    /// True when every offset in `after + 1..=upto` of `room` and `epoch` is a resend: its
    /// publisher's id is not above the highest delivered from that publisher in the room (a
    /// publication from before this client's join point counts too). The only messages the
    /// layer may skip.
    fn only_resends(&self, room: &str, epoch: &str, after: u64, upto: u64, log: &Log) -> bool {
        (after + 1..=upto).all(|offset| {
            matches!(
                log.get(&(room.to_owned(), epoch.to_owned(), offset)),
                Some(Some((p, id)))
                    if self.highest.get(&(room.to_owned(), p.clone())).is_some_and(|h| id <= h)
            )
        })
    }

    /// `log`: every message the server broadcast, by (room, epoch, offset), with its stamp.
    fn see(&mut self, ev: RoomEvent, log: &Log) -> Result<(), TestCaseError> {
        match ev {
            RoomEvent::Joined {
                room,
                epoch,
                offset,
            } => {
                self.pos.insert(room, (epoch, Some(offset)));
            }
            RoomEvent::Recovery {
                room,
                recovered,
                since,
                epoch,
                offset,
            } => {
                let cur = self.pos.get(&room).cloned();
                let Some((cur_epoch, cur_last)) = cur.clone() else {
                    return Err(TestCaseError::fail("recovery before a join"));
                };
                prop_assert_eq!(&cur_epoch, &since.epoch, "since is what was delivered");
                if let Some(last) = cur_last {
                    prop_assert!(
                        since.offset >= last
                            && self.only_resends(&room, &since.epoch, last, since.offset, log),
                        "since is what was delivered"
                    );
                }
                if recovered {
                    prop_assert_eq!(&since.epoch, &epoch);
                } else {
                    // Another epoch: its retained history follows from an offset the event
                    // does not tell (`resume_after`).
                    let last = match cur {
                        Some((e, o)) if e == epoch => Some(o.unwrap_or(since.offset).max(offset)),
                        _ => None,
                    };
                    self.pos.insert(room, (epoch, last));
                }
            }
            RoomEvent::Message(m) => {
                let epoch = m.data.decode::<serde_json::Value>().unwrap()["epoch"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let (cur_epoch, last) = self.pos.get(&m.room).cloned().unwrap();
                prop_assert_eq!(&epoch, &cur_epoch, "message from another epoch");
                if let Some(last) = last {
                    prop_assert!(m.offset > last, "offsets go up");
                    // Only a resend of a publication already delivered may be skipped.
                    prop_assert!(
                        self.only_resends(&m.room, &epoch, last, m.offset - 1, log),
                        "an offset skipped that was no resend"
                    );
                }
                if let (Some(publisher), Some(id)) = (&m.publisher, m.id) {
                    prop_assert!(
                        self.keys.insert((m.room.clone(), publisher.clone(), id)),
                        "a publication delivered twice"
                    );
                    let highest = self
                        .highest
                        .entry((m.room.clone(), publisher.clone()))
                        .or_default();
                    prop_assert!(id > *highest, "a publisher's ids go up");
                    *highest = id;
                }
                prop_assert!(
                    self.delivered
                        .insert((m.room.clone(), epoch.clone(), m.offset)),
                    "delivered twice"
                );
                self.pos.insert(m.room, (epoch, Some(m.offset)));
            }
            RoomEvent::Acked { id, .. } => {
                prop_assert!(self.acked.insert(id.0), "acked twice");
            }
            RoomEvent::PublishFailed { .. } => prop_assert!(false, "no publish should fail"),
            _ => {}
        }
        Ok(())
    }
}

fn pump(r: &mut Rooms, model: &mut Model, app: &mut App) -> Result<(), TestCaseError> {
    // Bounded: each round either moves frames or stops.
    for _ in 0..1000 {
        let mut moved = false;
        while let Some(o) = r.poll_transmit() {
            moved = true;
            let Some(frame) = o.message() else { continue };
            let m: ClientMsg = serde_json::from_str(frame.as_text().unwrap()).unwrap();
            model.handle(m);
        }
        while let Some(ev) = r.poll_event() {
            app.see(ev, &model.log)?;
        }
        if !moved {
            return Ok(());
        }
    }
    prop_assert!(false, "pump did not settle");
    Ok(())
}

fn deliver(r: &mut Rooms, model: &mut Model, k: usize) {
    if let Some(frame) = model.take_frame(k) {
        r.handle_event(Instant(0), &frame);
    }
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut r = Rooms::new(RoomsConfig::default().max_unacked(64), 1);
    let mut model = Model::new(HISTORY);
    let mut app = App::default();
    for room in ROOMS {
        r.join(Instant(0), room).unwrap();
    }
    let (mut published, mut remote) = (0u64, 0u64);
    let open = |r: &mut Rooms, model: &mut Model| {
        model.connect();
        r.handle_event(Instant(0), &Event::Open);
    };
    let drop_conn = |r: &mut Rooms, model: &mut Model| {
        if model.disconnect() {
            r.handle_event(Instant(0), &close());
        }
    };
    for s in steps {
        match s {
            Step::Remote(i) => {
                remote += 1;
                model.publish(ROOMS[usize::from(i)], "other", json!(remote), None);
            }
            Step::Local(i) => {
                if r.publish(Instant(0), ROOMS[usize::from(i)], raw(json!(published)))
                    .is_ok()
                {
                    published += 1;
                }
            }
            Step::Deliver(k) => deliver(&mut r, &mut model, usize::from(k)),
            Step::Replay(i) => {
                if model.connected && !model.seen.is_empty() {
                    let m = model.seen[usize::from(i) % model.seen.len()].clone();
                    // Only room messages are replayed; a replayed ack or joined is another
                    // scenario (the server never sends them twice).
                    if matches!(m, ServerMsg::Message { .. }) {
                        r.handle_event(Instant(0), &text(&m));
                    }
                }
            }
            Step::Lose(k) => {
                for _ in 0..k {
                    // Losing a `joined` or an ack on a live connection is not something TCP
                    // does; room messages stand for what a buggy relay might skip.
                    if matches!(model.wire.front(), Some(ServerMsg::Message { .. })) {
                        model.wire.pop_front();
                    }
                }
            }
            Step::Drop => drop_conn(&mut r, &mut model),
            Step::Open => {
                drop_conn(&mut r, &mut model);
                open(&mut r, &mut model);
            }
            Step::Restart => {
                drop_conn(&mut r, &mut model);
                model.restart();
            }
        }
        pump(&mut r, &mut model, &mut app)?;
    }
    // Settle: reconnect and deliver everything.
    drop_conn(&mut r, &mut model);
    open(&mut r, &mut model);
    for _ in 0..10_000 {
        pump(&mut r, &mut model, &mut app)?;
        if model.wire.is_empty() {
            break;
        }
        deliver(&mut r, &mut model, 3);
    }
    pump(&mut r, &mut model, &mut app)?;
    prop_assert_eq!(r.unacked(), 0, "every publish acked after settling");
    for room in ROOMS {
        let want = (
            model.epoch(room),
            model.rooms.get(room).map_or(0, |x| x.offset),
        );
        let (epoch, last) = app.pos.get(room).cloned().unwrap();
        prop_assert_eq!(&epoch, &want.0, "caught up");
        // What was not delivered at the end may only be resends delivered before.
        let last = last.unwrap_or(0);
        prop_assert!(
            last <= want.1 && app.only_resends(room, &epoch, last, want.1, &model.log),
            "{} not delivered up to {}",
            room,
            want.1
        );
        let p = r.position(room).unwrap();
        prop_assert_eq!((p.epoch.clone(), p.offset), want);
    }
    // The server accepted the client's ids in increasing order: resends keep publish order.
    prop_assert!(
        model
            .accepted
            .windows(2)
            .all(|w| w[0].0 != w[1].0 || w[0].2 < w[1].2),
        "{:?}",
        model.accepted
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn offsets_strictly_consecutive_and_nothing_lost_after_settling(
        steps in proptest::collection::vec(step(), 0..120)
    ) {
        run(steps)?;
    }
}

#[test]
fn publisher_id_is_chosen_once_from_the_seed_and_publish_ids_never_restart() {
    let a = Rooms::new(RoomsConfig::default(), 1);
    assert_eq!(
        a.publisher(),
        Rooms::new(RoomsConfig::default(), 1).publisher()
    );
    assert_ne!(
        a.publisher(),
        Rooms::new(RoomsConfig::default(), 2).publisher()
    );
    assert_eq!(a.publisher().len(), 16);
    assert!(a.publisher().bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(protocol::valid_publisher_id(a.publisher()));

    // Across reconnects and a server that forgot the session: one publisher id, ids grow.
    let mut s = Shell::new();
    s.r.join(Instant(0), "a").unwrap();
    let mut ids: Vec<Vec<u64>> = Vec::new();
    let mut hellos = HashSet::new();
    for round in 0..3u64 {
        s.opened();
        s.receive(&welcome());
        s.receive(&joined("a", &format!("e{round}"), 0, true));
        s.publish(round);
        ids.push(s.publish_ids_on(s.conn.unwrap()));
        s.closed(1012);
        s.advance(s.now + 20);
    }
    for (_, f) in &s.wire {
        if let Ok(ClientMsg::Hello { publisher, .. }) = serde_json::from_str::<ClientMsg>(f) {
            hellos.insert(publisher.unwrap());
        }
    }
    assert_eq!(hellos.len(), 1, "one publisher id in every hello");
    assert!(hellos.contains(s.r.publisher()));
    // Unacked publishes are resent on each connection; a new one always gets a higher id.
    assert_eq!(ids, vec![vec![1], vec![1, 2], vec![1, 2, 3]]);
}

#[test]
fn a_resend_rebroadcast_under_a_new_epoch_is_dropped_and_messages_carry_their_key() {
    let mut r = joined_layer("a", 0);
    r.handle_event(
        Instant(1),
        &batch(&[
            msg_from("a", 1, "pub-aaaaaaaa", 1),
            msg_from("a", 2, "pub-aaaaaaaa", 2),
            msg("a", 3),
        ]),
    );
    let first = delivered_msgs(&events(&mut r));
    assert_eq!(first.len(), 3);
    assert_eq!(first[0].epoch, "e1");
    assert_eq!(
        (first[1].publisher.as_deref(), first[1].id),
        (Some("pub-aaaaaaaa"), Some(2))
    );
    assert_eq!((first[2].publisher.clone(), first[2].id), (None, None));
    // The server restarts; the publisher resends 2 (its ack was lost) and publishes 3. The
    // receiver's since is in the old epoch: the new epoch is replayed from offset 1.
    r.handle_event(Instant(2), &close());
    r.handle_event(Instant(3), &Event::Open);
    sent(&mut r);
    r.handle_event(
        Instant(4),
        &batch(&[
            ServerMsg::Joined {
                room: "a".into(),
                epoch: "e2".into(),
                offset: 3,
                recovered: false,
                resume_after: Some(0),
            },
            msg_from("a", 1, "pub-aaaaaaaa", 2),
            msg_from("a", 2, "pub-aaaaaaaa", 3),
            msg("a", 3),
        ]),
    );
    let ev = events(&mut r);
    assert!(matches!(
        &ev[0],
        RoomEvent::Recovery { recovered: false, epoch, .. } if epoch == "e2"
    ));
    let second = delivered_msgs(&ev);
    let keys: Vec<(String, u64, Option<u64>)> = second
        .iter()
        .map(|m| (m.epoch.clone(), m.offset, m.id))
        .collect();
    assert_eq!(
        keys,
        vec![("e2".into(), 2, Some(3)), ("e2".into(), 3, None)],
        "the resend of id 2 is dropped, the rest delivered once"
    );
    assert_eq!(r.stats().resends_dropped, 1);
    assert_eq!(
        r.position("a").unwrap().offset,
        3,
        "the dropped resend still counts"
    );
    // Offsets go on: no gap, no rejoin.
    r.handle_event(Instant(5), &text(&msg_from("a", 4, "pub-aaaaaaaa", 4)));
    assert_eq!(delivered(&events(&mut r)), vec![4]);
    assert!(sent(&mut r).is_empty());
}

#[test]
fn resume_after_delivers_the_new_epoch_from_offset_1_once() {
    let mut r = joined_layer("a", 5);
    r.handle_event(Instant(1), &close());
    r.handle_event(Instant(2), &Event::Open);
    let out = sent(&mut r);
    assert_eq!(
        out[1].1,
        ClientMsg::Join {
            room: "a".into(),
            since: Some(Since {
                epoch: "e1".into(),
                offset: 5
            })
        }
    );
    let joined = ServerMsg::Joined {
        room: "a".into(),
        epoch: "e2".into(),
        offset: 3,
        recovered: false,
        resume_after: Some(0),
    };
    // The replay arrives with a duplicate and a message ahead of its turn mixed in.
    r.handle_event(
        Instant(3),
        &batch(&[joined, msg("a", 1), msg("a", 2), msg("a", 1)]),
    );
    r.handle_event(Instant(3), &batch(&[msg("a", 3), msg("a", 3), msg("a", 4)]));
    let ev = events(&mut r);
    assert!(matches!(
        &ev[0],
        RoomEvent::Recovery { recovered: false, since, epoch, offset: 3, .. }
            if since.offset == 5 && epoch == "e2"
    ));
    assert_eq!(delivered(&ev), vec![1, 2, 3, 4]);
    assert!(delivered_msgs(&ev).iter().all(|m| m.epoch == "e2"));
    assert!(
        sent(&mut r).is_empty(),
        "no recovery join: nothing was missing"
    );
    assert_eq!(r.position("a").unwrap().offset, 4);
}

#[test]
fn the_publisher_table_is_bounded_least_recently_seen_first() {
    let mut r = Rooms::new(RoomsConfig::default().max_publishers(2), 1);
    r.join(Instant(0), "a").unwrap();
    r.handle_event(Instant(0), &Event::Open);
    sent(&mut r);
    r.handle_event(Instant(0), &text(&joined("a", "e1", 0, true)));
    let ids = [
        ("pub-aaaaaaaa", 1),
        ("pub-bbbbbbbb", 1),
        ("pub-aaaaaaaa", 2), // A seen again: B is now the least recently seen
        ("pub-cccccccc", 1), // evicts B
        ("pub-bbbbbbbb", 1), // forgotten: delivered again (the bound's price), evicts A
        ("pub-cccccccc", 1), // remembered: dropped
    ];
    let frames: Vec<ServerMsg> = ids
        .iter()
        .enumerate()
        .map(|(i, (p, id))| msg_from("a", i as u64 + 1, p, *id))
        .collect();
    r.handle_event(Instant(1), &batch(&frames));
    assert_eq!(delivered(&events(&mut r)), vec![1, 2, 3, 4, 5]);
    assert_eq!(r.stats().resends_dropped, 1);
}

#[test]
fn a_publish_over_the_limit_fails_at_once_and_the_rest_flow() {
    let mut s = Shell::new();
    s.r.join(Instant(0), "a").unwrap();
    s.opened();
    s.receive(&welcome_with(limits(1024, 50, 100, 1024)));
    s.receive(&joined("a", "e1", 0, true));
    let big = raw(json!("x".repeat(2048)));
    let err = s.r.publish(Instant(s.now), "a", big).unwrap_err();
    assert!(
        matches!(err, RoomError::TooLarge { size, limit: Some(1024) } if size > 2048),
        "{err:?}"
    );
    for n in 0..10 {
        s.publish(n);
    }
    let conn = s.conn.unwrap();
    assert_eq!(s.publish_ids_on(conn), (2..=11).collect::<Vec<_>>());
    assert_eq!(s.r.stats().opens, 1, "no reconnect");
    // A user send over the limit is refused by the core, as a publish is by the layer.
    let err = s.m.send(Instant(s.now), Message::Text("y".repeat(1025)));
    assert_eq!(
        err,
        Err(Error::TooLarge {
            size: 1025,
            limit: 1024
        })
    );
    assert_eq!(
        s.m.send(Instant(s.now), Message::Text("y".repeat(1024))),
        Ok(Sent::Transmitted)
    );
}

#[test]
fn publishes_accepted_before_the_limit_was_known_are_checked_at_the_welcome() {
    let mut s = Shell::new();
    s.r.join(Instant(0), "a").unwrap();
    let big =
        s.r.publish(Instant(0), "a", raw(json!("x".repeat(2048))))
            .unwrap();
    s.publish(1);
    s.opened();
    s.receive(&welcome_with(limits(1024, 50, 100, 1024)));
    let ev = events(&mut s.r);
    let failed = failures(&ev);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, big);
    assert!(matches!(
        failed[0].1,
        RoomError::TooLarge {
            limit: Some(1024),
            ..
        }
    ));
    assert_eq!(s.publish_ids_on(s.conn.unwrap()), vec![big.0 + 1]);
}

#[test]
fn a_close_1009_fails_the_largest_publish_in_flight_and_the_queue_flows() {
    let mut s = Shell::new();
    s.r.join(Instant(0), "a").unwrap();
    s.opened();
    s.receive(&welcome()); // an older server: no limits
    s.receive(&joined("a", "e1", 0, true));
    s.publish(1);
    let big =
        s.r.publish(Instant(0), "a", raw(json!("x".repeat(70_000))))
            .unwrap();
    s.pump_layer();
    s.publish(3);
    let first = s.conn.unwrap();
    assert_eq!(s.publish_ids_on(first), vec![1, 2, 3]);
    events(&mut s.r);
    s.closed(1009);
    let failed = failures(&events(&mut s.r));
    assert_eq!(
        failed,
        vec![(
            big,
            RoomError::TooLarge {
                size: s
                    .wire
                    .iter()
                    .find(|(_, f)| f.len() > 70_000)
                    .unwrap()
                    .1
                    .len(),
                limit: None
            }
        )]
    );
    // 1009 is retried; the small publishes are resent, the large one is not.
    s.advance(s.now + 20);
    assert_ne!(s.conn.unwrap(), first);
    s.opened();
    s.receive(&welcome());
    assert_eq!(s.publish_ids_on(s.conn.unwrap()), vec![1, 3]);
}

#[test]
fn the_core_paces_user_sends_to_the_limits() {
    let mut m = Machine::new(
        Config::default().no_heartbeat(),
        Target::Url("ws://127.0.0.1:1/ws".into()),
        1,
        Instant(0),
    )
    .unwrap();
    let conn = std::iter::from_fn(|| poll(&mut m))
        .find_map(|c| match c {
            Out::Io(Io::Open { conn, .. }) => Some(conn),
            _ => None,
        })
        .unwrap();
    m.set_limits(Instant(0), Some(&limits(100, 10, 2, 8)));
    m.handle(
        Instant(0),
        Input::SocketOpened {
            conn,
            protocol: String::new(),
        },
    );
    while poll(&mut m).is_some() {}
    let results: Vec<Sent> = (0..5)
        .map(|i| m.send(Instant(0), Message::Text(i.to_string())).unwrap())
        .collect();
    assert_eq!(results[..2], [Sent::Transmitted, Sent::Transmitted]);
    assert!(results[2..].iter().all(|r| *r == Sent::Queued));
    assert_eq!(m.poll_timeout(), Some(Instant(100)), "one frame per 100 ms");
    assert_eq!(std::iter::from_fn(|| poll(&mut m)).count(), 2);
    m.handle_timeout(Instant(100));
    let out: Vec<Out> = std::iter::from_fn(|| poll(&mut m)).collect();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(m.queued_messages(), 2);
    m.handle_timeout(Instant(300));
    while poll(&mut m).is_some() {}
    assert_eq!(m.queued_messages(), 0);
    // Without limits (an older server): no pacing.
    m.set_limits(Instant(300), None);
    for i in 0..20 {
        assert_eq!(
            m.send(Instant(300), Message::Text(i.to_string())),
            Ok(Sent::Transmitted)
        );
    }
}

/// The server's view: a token bucket of `burst` frames, full at the open, refilled at `rate`
/// a second. Every frame must find a token.
fn check_bucket(times: &[u64], open: u64, rate: u64, burst: u64) {
    let (mut tokens, mut at) = (burst * 1000, open);
    for (i, &t) in times.iter().enumerate() {
        tokens = (tokens + (t - at) * rate).min(burst * 1000);
        at = t;
        assert!(tokens >= 1000, "frame {i} at {t} ms found no token");
        tokens -= 1000;
    }
}

#[test]
fn publishes_made_offline_are_paced_to_the_rate_and_the_dedupe_window() {
    let (rate, burst, window) = (50, 100, 40);
    let mut s = Shell::new();
    s.r.join(Instant(0), "a").unwrap();
    for n in 0..300 {
        s.publish(n);
    }
    s.m.send(Instant(0), "user 1".into()).unwrap();
    s.now = 1000;
    s.opened();
    let open = s.now;
    s.receive(&welcome_with(limits(65_536, rate, burst, window)));
    s.receive(&joined("a", "e1", 0, true));
    s.m.send(Instant(s.now), "user 2".into()).unwrap();
    s.pump();
    let conn = s.conn.unwrap();
    assert_eq!(
        s.publish_ids_on(conn).len(),
        window as usize,
        "the window binds"
    );
    // The server acks what it has read once a second.
    let mut acked = HashSet::new();
    let mut max_in_flight = 0;
    while acked.len() < 300 && s.now < 60_000 {
        let in_flight = s.publish_ids_on(conn).len() - acked.len();
        max_in_flight = max_in_flight.max(in_flight);
        s.advance(s.now + 1000);
        s.ack_all(&mut acked);
    }
    assert_eq!(acked.len(), 300, "every publish sent on the one connection");
    assert!(
        max_in_flight <= window as usize,
        "{max_in_flight} in flight"
    );
    assert_eq!(s.r.unacked(), 0);
    let times: Vec<u64> = s
        .wire
        .iter()
        .zip(&s.sent_at)
        .filter(|((c, _), _)| *c == conn)
        .map(|(_, t)| *t)
        .collect();
    check_bucket(&times, open, u64::from(rate), u64::from(burst));
    let frames: Vec<&str> = s.wire.iter().map(|(_, f)| f.as_str()).collect();
    assert!(
        frames[0].starts_with(r#"{"type":"hello""#),
        "the preamble goes first"
    );
    assert!(frames.contains(&"user 1") && frames.contains(&"user 2"));
}

#[test]
fn a_burst_never_exceeds_the_bucket() {
    let (rate, burst) = (50, 100);
    let mut s = Shell::new();
    s.r.join(Instant(0), "a").unwrap();
    for n in 0..300 {
        s.publish(n);
    }
    s.opened();
    s.receive(&welcome_with(limits(65_536, rate, burst, 1024)));
    let conn = s.conn.unwrap();
    // The preamble (hello, join) took two tokens: 98 publishes at once.
    assert_eq!(s.publish_ids_on(conn).len(), 98);
    s.advance(10_000);
    assert_eq!(s.publish_ids_on(conn).len(), 300);
    let times: Vec<u64> = s.sent_at.clone();
    check_bucket(&times, 0, u64::from(rate), u64::from(burst));
    // Paced, not slower: the 202 frames after the burst take 202 / 50 s.
    assert_eq!(times.last(), Some(&4_040));
}
