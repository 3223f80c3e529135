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
//! - [x] proptest: against a model server with a lossy, duplicating wire, reconnects and
//!   restarts, delivered offsets per room and epoch go up by exactly one, never twice, the
//!   server sees each publisher's ids in order, and everything settles after a final reconnect
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use proptest::prelude::*;
use protocol::{ClientMsg, ErrorCode, ServerMsg, Since};
use serde_json::json;
use ws_lifeline::machine::rooms::{
    Outgoing, PublishId, RoomError, RoomEvent, RoomMessage, Rooms, RoomsConfig,
};
use ws_lifeline::machine::{
    CloseInfo, Command, Config, Event, Input, Instant, Machine, Message, Target,
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
}

impl Shell {
    fn new() -> Self {
        let config = Config::default()
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
        };
        shell.pump();
        shell
    }

    fn pump(&mut self) {
        let now = Instant(self.now);
        while let Some(c) = self.m.poll_command() {
            match c {
                Command::Open { conn, .. } => self.conn = Some(conn),
                Command::Transmit { conn, message } => {
                    self.wire
                        .push((conn, message.as_text().unwrap().to_owned()));
                }
                Command::Emit(e) => {
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
            .filter_map(
                |(_, f)| match serde_json::from_str::<ClientMsg>(f).unwrap() {
                    ClientMsg::Publish { id, .. } => Some(id),
                    _ => None,
                },
            )
            .collect()
    }
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
        Config::default().no_heartbeat(),
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
    let conn = std::iter::from_fn(|| m.poll_command())
        .find_map(|c| match c {
            Command::Open { conn, .. } => Some(conn),
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
        let Some(c) = m.poll_command() else {
            // The server's welcome arrives.
            let Some(Event::Message(message)) = inbound.pop() else {
                break;
            };
            m.handle(Instant(2), Input::SocketMessage { conn, message });
            continue;
        };
        match c {
            Command::Emit(e) => {
                r.handle_event(Instant(1), &e);
                while let Some(o) = r.poll_transmit() {
                    m.send_outgoing(Instant(1), o).unwrap();
                }
            }
            Command::Transmit { message, .. } => wire.push(message.as_text().unwrap().to_owned()),
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
const HISTORY: usize = 6;

#[derive(Default)]
struct ServerRoom {
    offset: u64,
    /// (offset, frame) of the last HISTORY messages.
    history: VecDeque<(u64, ServerMsg)>,
}

struct Model {
    generation: u32,
    rooms: BTreeMap<String, ServerRoom>,
    /// Session token -> accepted client ids (with their offsets).
    sessions: HashMap<String, HashMap<u64, u64>>,
    session: Option<String>,
    joined: HashSet<String>,
    connected: bool,
    wire: VecDeque<ServerMsg>,
    seen: Vec<ServerMsg>,
    /// (generation, client id) in acceptance order.
    accepted: Vec<(u32, u64)>,
    remote: u64,
}

impl Model {
    fn epoch(&self, room: &str) -> String {
        format!("g{}-{room}", self.generation)
    }

    fn publish(&mut self, room: &str, from: &str, data: serde_json::Value) -> u64 {
        let epoch = self.epoch(room);
        let r = self.rooms.entry(room.into()).or_default();
        r.offset += 1;
        let m = ServerMsg::Message {
            room: room.into(),
            offset: r.offset,
            from: from.into(),
            data: json!({"epoch": epoch, "data": data}),
            ts: 0,
            publisher: None,
            id: None,
        };
        r.history.push_back((r.offset, m.clone()));
        while r.history.len() > HISTORY {
            r.history.pop_front();
        }
        if self.connected && self.joined.contains(room) {
            self.wire.push_back(m);
        }
        r.offset
    }

    fn handle(&mut self, msg: ClientMsg) {
        if !self.connected {
            return;
        }
        match msg {
            ClientMsg::Hello { session, .. } => {
                let resumed = session
                    .as_ref()
                    .is_some_and(|s| self.sessions.contains_key(s));
                let token = match session.filter(|_| resumed) {
                    Some(t) => t,
                    None => {
                        let t = format!("s{}-{}", self.generation, self.sessions.len());
                        self.sessions.insert(t.clone(), HashMap::new());
                        t
                    }
                };
                self.session = Some(token.clone());
                self.wire.push_back(ServerMsg::Welcome {
                    session: token,
                    resumed,
                    name: "me".into(),
                    limits: None,
                });
            }
            ClientMsg::Join { room, since } => {
                let epoch = self.epoch(&room);
                let r = self.rooms.entry(room.clone()).or_default();
                let (recovered, replay) = match &since {
                    None => (true, vec![]),
                    Some(s) if s.epoch != epoch || s.offset > r.offset => (false, vec![]),
                    Some(s) if s.offset == r.offset => (true, vec![]),
                    Some(s) => match r.history.front() {
                        Some((first, _)) if *first <= s.offset + 1 => (
                            true,
                            r.history
                                .iter()
                                .filter(|(o, _)| *o > s.offset)
                                .map(|(_, m)| m.clone())
                                .collect(),
                        ),
                        _ => (false, vec![]),
                    },
                };
                self.wire
                    .push_back(joined(&room, &epoch, r.offset, recovered));
                self.wire.extend(replay);
                self.joined.insert(room);
            }
            ClientMsg::Publish { room, id, .. } => {
                let token = self.session.clone().unwrap();
                if let Some(&offset) = self.sessions[&token].get(&id) {
                    self.wire.push_back(ServerMsg::Ack {
                        id,
                        offset,
                        duplicate: true,
                    });
                    return;
                }
                assert!(self.joined.contains(&room), "publish before join");
                self.accepted.push((self.generation, id));
                let offset = self.publish(&room, "me", json!(id));
                self.sessions.get_mut(&token).unwrap().insert(id, offset);
                self.wire.push_back(ServerMsg::Ack {
                    id,
                    offset,
                    duplicate: false,
                });
            }
            ClientMsg::Leave { .. } | ClientMsg::Ping { .. } | ClientMsg::ListRooms => {}
        }
    }
}

/// What the application has seen, checked against the invariants on every event.
#[derive(Default)]
struct App {
    /// room -> (epoch, last offset) as told by events.
    pos: HashMap<String, (String, u64)>,
    delivered: HashSet<(String, String, u64)>,
    acked: HashSet<u64>,
}

impl App {
    fn see(&mut self, ev: RoomEvent) -> Result<(), TestCaseError> {
        match ev {
            RoomEvent::Joined {
                room,
                epoch,
                offset,
            } => {
                self.pos.insert(room, (epoch, offset));
            }
            RoomEvent::Recovery {
                room,
                recovered,
                since,
                epoch,
                offset,
            } => {
                let cur = self.pos.get(&room).cloned();
                prop_assert_eq!(
                    cur.clone(),
                    Some((since.epoch.clone(), since.offset)),
                    "since is what was delivered"
                );
                if recovered {
                    prop_assert_eq!(&since.epoch, &epoch);
                } else {
                    let last = match cur {
                        Some((e, o)) if e == epoch => o.max(offset),
                        _ => offset,
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
                prop_assert_eq!(m.offset, last + 1, "offsets go up by one");
                prop_assert!(
                    self.delivered
                        .insert((m.room.clone(), epoch.clone(), m.offset)),
                    "delivered twice"
                );
                self.pos.insert(m.room, (epoch, m.offset));
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
            app.see(ev)?;
        }
        if !moved {
            return Ok(());
        }
    }
    prop_assert!(false, "pump did not settle");
    Ok(())
}

fn deliver(r: &mut Rooms, model: &mut Model, k: usize) {
    let take: Vec<ServerMsg> = (0..k).filter_map(|_| model.wire.pop_front()).collect();
    if take.is_empty() {
        return;
    }
    model.seen.extend(take.iter().cloned());
    let ev = if take.len() == 1 {
        text(&take[0])
    } else {
        batch(&take)
    };
    r.handle_event(Instant(0), &ev);
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut r = Rooms::new(RoomsConfig::default().max_unacked(64), 1);
    let mut model = Model {
        generation: 0,
        rooms: BTreeMap::new(),
        sessions: HashMap::new(),
        session: None,
        joined: HashSet::new(),
        connected: false,
        wire: VecDeque::new(),
        seen: Vec::new(),
        accepted: Vec::new(),
        remote: 0,
    };
    let mut app = App::default();
    for room in ROOMS {
        r.join(Instant(0), room).unwrap();
    }
    let mut published = 0u64;
    let open = |r: &mut Rooms, model: &mut Model| {
        model.connected = true;
        model.joined.clear();
        model.wire.clear();
        // Frames of an earlier connection never reach a later one (the core tags sockets).
        model.seen.clear();
        r.handle_event(Instant(0), &Event::Open);
    };
    let drop_conn = |r: &mut Rooms, model: &mut Model| {
        if model.connected {
            model.connected = false;
            model.wire.clear();
            r.handle_event(Instant(0), &close());
        }
    };
    for s in steps {
        match s {
            Step::Remote(i) => {
                model.remote += 1;
                let n = model.remote;
                model.publish(ROOMS[usize::from(i)], "other", json!(n));
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
                model.generation += 1;
                model.rooms.clear();
                model.sessions.clear();
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
        prop_assert_eq!(app.pos.get(room).cloned(), Some(want.clone()), "caught up");
        let p = r.position(room).unwrap();
        prop_assert_eq!((p.epoch.clone(), p.offset), want);
    }
    // The server accepted the client's ids in increasing order: resends keep publish order.
    prop_assert!(
        model
            .accepted
            .windows(2)
            .all(|w| w[0].0 != w[1].0 || w[0].1 < w[1].1),
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
