//! A model of server-dev's room protocol for the sans-IO proptests: sessions with their
//! publish dedupe, rooms with a history and an epoch that a restart changes, and the wire of
//! frames on their way to the client.
// Each proptest reads the part of the model its invariants need.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use protocol::{ClientMsg, ServerMsg};
use serde_json::json;
use ws_lifeline::machine::{Event, Message};

/// (room, epoch, offset) -> the message's (publisher, id), if stamped.
pub(crate) type Log = HashMap<(String, String, u64), Option<(String, u64)>>;

#[derive(Default)]
pub(crate) struct ServerRoom {
    pub(crate) offset: u64,
    /// (offset, frame) of the last `history` messages.
    history: VecDeque<(u64, ServerMsg)>,
}

pub(crate) struct Model {
    pub(crate) generation: u32,
    pub(crate) rooms: BTreeMap<String, ServerRoom>,
    /// How many messages a room keeps for recovery.
    history: usize,
    /// Session token -> accepted ids with their offsets: the server's dedupe.
    sessions: HashMap<String, HashMap<u64, u64>>,
    session: Option<String>,
    /// The publisher id of the client's `hello`.
    publisher: Option<String>,
    pub(crate) connected: bool,
    joined: HashSet<String>,
    /// Frames sent and not yet delivered to the client.
    pub(crate) wire: VecDeque<ServerMsg>,
    /// Frames delivered on this connection.
    pub(crate) seen: Vec<ServerMsg>,
    /// (generation, publisher, id) in acceptance order.
    pub(crate) accepted: Vec<(u32, String, u64)>,
    /// Every message broadcast.
    pub(crate) log: Log,
}

impl Model {
    /// A server whose rooms keep their last `history` messages.
    pub(crate) fn new(history: usize) -> Model {
        Model {
            generation: 0,
            rooms: BTreeMap::new(),
            history,
            sessions: HashMap::new(),
            session: None,
            publisher: None,
            connected: false,
            joined: HashSet::new(),
            wire: VecDeque::new(),
            seen: Vec::new(),
            accepted: Vec::new(),
            log: HashMap::new(),
        }
    }

    pub(crate) fn epoch(&self, room: &str) -> String {
        format!("g{}-{room}", self.generation)
    }

    /// A new connection: it has joined nothing, and no frame of an earlier one reaches it
    /// (the core tags sockets).
    pub(crate) fn connect(&mut self) {
        self.connected = true;
        self.joined.clear();
        self.wire.clear();
        self.seen.clear();
    }

    /// The connection drops with its frames in flight; false if there was none.
    pub(crate) fn disconnect(&mut self) -> bool {
        let was = self.connected;
        self.connected = false;
        self.wire.clear();
        was
    }

    /// The server restarts: sessions, history and epochs lost.
    pub(crate) fn restart(&mut self) {
        self.generation += 1;
        self.rooms.clear();
        self.sessions.clear();
    }

    /// Up to `k` frames off the wire as the client receives them: one frame, or one batch.
    pub(crate) fn take_frame(&mut self, k: usize) -> Option<Event> {
        let take: Vec<ServerMsg> = (0..k).filter_map(|_| self.wire.pop_front()).collect();
        let text = match take.as_slice() {
            [] => return None,
            [one] => serde_json::to_string(one).unwrap(),
            many => serde_json::to_string(many).unwrap(),
        };
        self.seen.extend(take);
        Some(Event::Message(Message::Text(text)))
    }

    /// Another member publishes: the message is stored and broadcast. Returns its offset.
    pub(crate) fn publish(
        &mut self,
        room: &str,
        from: &str,
        data: serde_json::Value,
        stamp: Option<(String, u64)>,
    ) -> u64 {
        let (offset, m) = self.store(room, from, data, stamp);
        self.broadcast(room, m);
        offset
    }

    /// Appends a message (its data wrapped with its epoch) to the room's history and the log.
    fn store(
        &mut self,
        room: &str,
        from: &str,
        data: serde_json::Value,
        stamp: Option<(String, u64)>,
    ) -> (u64, ServerMsg) {
        let epoch = self.epoch(room);
        let r = self.rooms.entry(room.into()).or_default();
        r.offset += 1;
        self.log
            .insert((room.into(), epoch.clone(), r.offset), stamp.clone());
        let (publisher, id) = stamp.unzip();
        let m = ServerMsg::Message {
            room: room.into(),
            offset: r.offset,
            from: from.into(),
            data: json!({"epoch": epoch, "data": data}),
            ts: 0,
            publisher,
            id,
        };
        r.history.push_back((r.offset, m.clone()));
        while r.history.len() > self.history {
            r.history.pop_front();
        }
        (r.offset, m)
    }

    fn broadcast(&mut self, room: &str, m: ServerMsg) {
        if self.connected && self.joined.contains(room) {
            self.wire.push_back(m);
        }
    }

    /// A frame from the client, answered on the wire.
    pub(crate) fn handle(&mut self, msg: ClientMsg) {
        if !self.connected {
            return;
        }
        match msg {
            ClientMsg::Hello { session, publisher } => {
                self.publisher = publisher;
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
                let mut resume_after = None;
                let (recovered, replay) = match &since {
                    None => (true, vec![]),
                    // Another epoch: its retained history is replayed from its first message.
                    Some(s) if s.epoch != epoch => {
                        resume_after = Some(r.history.front().map_or(r.offset, |(o, _)| o - 1));
                        (false, r.history.iter().map(|(_, m)| m.clone()).collect())
                    }
                    Some(s) if s.offset > r.offset => (false, vec![]),
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
                self.wire.push_back(ServerMsg::Joined {
                    room: room.clone(),
                    epoch,
                    offset: r.offset,
                    recovered,
                    resume_after,
                });
                self.wire.extend(replay);
                self.joined.insert(room);
            }
            ClientMsg::Publish { room, id, data } => {
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
                let publisher = self.publisher.clone().unwrap();
                self.accepted.push((self.generation, publisher.clone(), id));
                let (offset, m) = self.store(&room, "me", data, Some((publisher, id)));
                self.sessions.get_mut(&token).unwrap().insert(id, offset);
                // The ack goes out before the broadcast, as server-dev's hub sends them.
                self.wire.push_back(ServerMsg::Ack {
                    id,
                    offset,
                    duplicate: false,
                });
                self.broadcast(&room, m);
            }
            ClientMsg::Leave { .. } | ClientMsg::Ping { .. } | ClientMsg::ListRooms => {}
        }
    }
}
