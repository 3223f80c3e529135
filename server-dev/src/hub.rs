//! The hub: connections, rooms with history and epochs, and sessions for deduplication.
//!
//! All state sits behind one mutex that is never held across an `.await`. Frames to peers go
//! through each peer's bounded queue with `try_send`, so a slow peer can never stall a room:
//! when its queue is full it is evicted and told to close with 1013 (the slow-consumer rule).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use protocol::{ErrorCode, MsgId, Offset, RoomInfo, ServerMsg, Since, close};
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::{debug, warn};

use crate::Config;
use crate::queue;

/// A connection's id, unique within one server run.
pub(crate) type ConnId = u64;

/// A room's name, shared by the hub's room table, its members' entries and what is queued for
/// them, rather than copied into each.
type RoomName = Arc<str>;

/// One item of a connection's outbound queue.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// One serialized message.
    One(Utf8Bytes),
    /// Several messages that must stay together and in order (a `joined` and its replay).
    Many(Vec<Utf8Bytes>),
    /// The room list as it is when written. State, not an event: at most one is queued per
    /// peer, so a join storm cannot fill a queue with stale lists.
    Rooms,
    /// A room's presence as it is when written; at most one queued per peer and room.
    Presence(RoomName),
}

/// The frames an [`Outbound`] stands for: most often one, which needs no list of its own.
#[derive(Debug)]
pub(crate) enum Frames {
    One(Option<Utf8Bytes>),
    Many(std::vec::IntoIter<Utf8Bytes>),
}

impl Iterator for Frames {
    type Item = Utf8Bytes;

    fn next(&mut self) -> Option<Utf8Bytes> {
        match self {
            Frames::One(frame) => frame.take(),
            Frames::Many(frames) => frames.next(),
        }
    }
}

/// How the hub asks a connection to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    /// Close with this code (the slow-consumer rule).
    Close(u16),
    /// The server is shutting down: close with 1001 and wait (bounded) for the reply.
    Shutdown,
    /// Test endpoints: cut TCP without a close frame.
    Drop,
    /// Test endpoints: stop reading and writing but keep TCP open, like a half-open peer.
    Silence,
}

/// Which snapshots a peer already has queued.
#[derive(Debug, Default)]
struct Snapshots {
    rooms: bool,
    /// Rooms whose presence is queued. A list: it is short-lived and holds one room or few,
    /// and a hash set would allocate room for four.
    presence: Vec<RoomName>,
}

impl Snapshots {
    /// Notes that `room`'s presence is queued; false if it already was.
    fn mark_presence(&mut self, room: &RoomName) -> bool {
        if self.presence.contains(room) {
            return false;
        }
        self.presence.reserve_exact(1);
        self.presence.push(room.clone());
        true
    }
}

/// What the hub and a connection share besides its queue (in the queue's allocation).
#[derive(Debug, Default)]
pub(crate) struct PeerState {
    /// Set once the hub wants the connection to end; `kicked` wakes the connection.
    kick: Mutex<Option<Kick>>,
    kicked: Notify,
    /// The connection's heartbeat wants a protocol Ping written once the queue is drained.
    ping: AtomicBool,
    snaps: Mutex<Snapshots>,
}

/// What the hub holds to reach a connection.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) id: ConnId,
    tx: queue::Sender<Outbound, PeerState>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Peer {
    fn snaps(&self) -> MutexGuard<'_, Snapshots> {
        lock(&self.tx.extra().snaps)
    }

    /// How the hub asked this connection to end, if it has.
    pub(crate) fn kick(&self) -> Option<Kick> {
        *lock(&self.tx.extra().kick)
    }

    /// Asks the connection to end as `kick` says; a later kick replaces an earlier one only
    /// with `replace`. Returns whether the kick was set.
    fn set_kick(&self, kick: Kick, replace: bool) -> bool {
        {
            let mut slot = lock(&self.tx.extra().kick);
            if slot.is_some() && !replace {
                return false;
            }
            *slot = Some(kick);
        }
        self.tx.extra().kicked.notify_one();
        true
    }

    /// Completes once the hub has asked this connection to end.
    pub(crate) async fn kicked(&self) -> Kick {
        loop {
            if let Some(kick) = self.kick() {
                return kick;
            }
            // One waiter: a kick set before this wait leaves a permit, so none is missed.
            self.tx.extra().kicked.notified().await;
        }
    }

    /// Asks the connection's writer for a protocol Ping, after what is already queued.
    pub(crate) fn request_ping(&self) {
        self.tx.extra().ping.store(true, Ordering::Release);
        self.tx.wake();
    }

    /// Whether a Ping was asked for since the last call.
    pub(crate) fn take_ping(&self) -> bool {
        self.tx.extra().ping.swap(false, Ordering::AcqRel)
    }

    /// Queues `out`; false when the queue is full (the peer is too slow).
    fn offer(&self, out: Outbound) -> bool {
        match self.tx.try_send(out) {
            Ok(()) => true,
            Err(queue::TrySendError::Full) => false,
            // The connection task is already gone; its disconnect cleans up.
            Err(queue::TrySendError::Closed) => true,
        }
    }
}

/// What a new connection gets from [`Hub::register`].
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) peer: Peer,
    pub(crate) rx: queue::Receiver<Outbound, PeerState>,
}

#[derive(Debug)]
struct ConnEntry {
    peer: Peer,
    name: String,
    /// At most `max_rooms_per_conn` (32 by default): a list is smaller than a set and as fast.
    rooms: Vec<RoomName>,
    session: SessionId,
}

/// A session's token: 128 random bits, written as 32 lowercase hex digits on the wire. Kept
/// as a number, since every connection holds one (twice: in its entry and as a session key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SessionId(u128);

impl SessionId {
    fn random() -> Self {
        Self(rand::random())
    }

    /// The id a client sent back, if it is one this server could have written.
    fn parse(token: &str) -> Option<Self> {
        let hex = token.len() == 32
            && token
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        hex.then(|| u128::from_str_radix(token, 16).ok().map(Self))
            .flatten()
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[derive(Debug)]
struct Hist {
    offset: Offset,
    at: Instant,
    frame: Utf8Bytes,
}

#[derive(Debug)]
struct Room {
    epoch: String,
    offset: Offset,
    history: VecDeque<Hist>,
    members: BTreeSet<ConnId>,
}

#[derive(Debug, Default)]
struct Session {
    /// Allocated at the session's first publish: most connections never publish, and every
    /// connection has a session.
    dedupe: Option<Box<Dedupe>>,
    attached: usize,
    detached_at: Option<Instant>,
}

/// The recent publish ids of a session, with the offsets they were given.
#[derive(Debug, Default)]
struct Dedupe {
    ids: VecDeque<MsgId>,
    acked: HashMap<MsgId, Offset>,
}

impl Session {
    fn acked(&self, id: MsgId) -> Option<Offset> {
        self.dedupe.as_ref()?.acked.get(&id).copied()
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    queue_capacity: usize,
    max_rooms_per_conn: usize,
    max_rooms: usize,
    history_len: usize,
    history_max_age: Duration,
    dedupe_ids: usize,
    session_ttl: Duration,
    max_sessions: usize,
}

#[derive(Debug, Default)]
struct State {
    conns: HashMap<ConnId, ConnEntry>,
    rooms: BTreeMap<RoomName, Room>,
    sessions: HashMap<SessionId, Session>,
    next_id: ConnId,
    /// Peers whose queue overflowed during the current operation.
    evict: Vec<ConnId>,
    /// The latest room list, read by writers when they write an [`Outbound::Rooms`].
    rooms_frame: Option<Utf8Bytes>,
    /// The latest presence of each room, read for [`Outbound::Presence`].
    presence_frames: HashMap<RoomName, Utf8Bytes>,
    /// Set by [`Hub::shutdown`]: connections registered from now on are asked to end.
    shutting_down: bool,
}

/// The rooms hub. Cloning shares it.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    state: Arc<Mutex<State>>,
    limits: Limits,
}

fn encode(msg: &ServerMsg) -> Utf8Bytes {
    // Serializing our own types to a String cannot fail (string keys, no non-finite floats
    // reach `serde_json::Value`); fall back to an empty array, which clients ignore.
    Utf8Bytes::from(serde_json::to_string(msg).unwrap_or_else(|_| "[]".to_string()))
}

fn error_msg(code: ErrorCode, message: &str, reference: Option<u64>) -> ServerMsg {
    ServerMsg::Error {
        code,
        message: message.to_string(),
        reference,
    }
}

impl State {
    fn deliver(&mut self, id: ConnId, out: Outbound) {
        if let Some(entry) = self.conns.get(&id)
            && !entry.peer.offer(out)
        {
            self.evict.push(id);
        }
    }

    fn reply(&mut self, id: ConnId, msg: &ServerMsg) {
        self.deliver(id, Outbound::One(encode(msg)));
    }

    fn room_list(&self) -> Vec<RoomInfo> {
        self.rooms
            .iter()
            .filter(|(_, r)| !r.members.is_empty())
            .map(|(name, r)| RoomInfo {
                room: name.to_string(),
                members: u32::try_from(r.members.len()).unwrap_or(u32::MAX),
            })
            .collect()
    }

    fn push_rooms_to_all(&mut self) {
        // Update the snapshot before looking at the flags: a writer that clears its flag
        // afterwards then reads this frame or a newer one.
        self.rooms_frame = Some(encode(&ServerMsg::Rooms {
            rooms: self.room_list(),
        }));
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !std::mem::replace(&mut c.peer.snaps().rooms, true))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.deliver(id, Outbound::Rooms);
        }
    }

    fn push_presence(&mut self, room: &RoomName) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let mut members: Vec<String> = r
            .members
            .iter()
            .filter_map(|id| self.conns.get(id).map(|c| c.name.clone()))
            .collect();
        members.sort();
        let frame = encode(&ServerMsg::Presence {
            room: room.to_string(),
            members,
        });
        self.presence_frames.insert(room.clone(), frame);
        let ids: Vec<ConnId> = r
            .members
            .iter()
            .filter(|id| {
                self.conns
                    .get(id)
                    .is_some_and(|c| c.peer.snaps().mark_presence(room))
            })
            .copied()
            .collect();
        for id in ids {
            self.deliver(id, Outbound::Presence(room.clone()));
        }
    }

    /// Removes `id` from all its rooms and from the hub, and tells the others.
    fn remove_conn(&mut self, id: ConnId, now: Instant) {
        let Some(entry) = self.conns.remove(&id) else {
            return;
        };
        for room in &entry.rooms {
            if let Some(r) = self.rooms.get_mut(room) {
                r.members.remove(&id);
                if r.members.is_empty() && r.history.is_empty() {
                    self.rooms.remove(room);
                } else {
                    self.push_presence(room);
                }
            }
        }
        if !entry.rooms.is_empty() {
            self.push_rooms_to_all();
        }
        if let Some(session) = self.sessions.get_mut(&entry.session) {
            session.attached = session.attached.saturating_sub(1);
            if session.attached == 0 {
                session.detached_at = Some(now);
            }
        }
    }

    /// Evicts every peer whose queue overflowed, which may overflow others in turn.
    fn flush_evictions(&mut self, now: Instant) {
        // Each round removes a connection, so this ends after at most `conns.len()` rounds.
        while let Some(id) = self.evict.pop() {
            if let Some(entry) = self.conns.get(&id) {
                warn!(
                    conn = id,
                    "slow consumer: outbound queue full, closing with 1013"
                );
                entry
                    .peer
                    .set_kick(Kick::Close(close::TRY_AGAIN_LATER), true);
                self.remove_conn(id, now);
            }
        }
    }

    fn new_session(&mut self, limits: &Limits) -> SessionId {
        if self.sessions.len() >= limits.max_sessions {
            let oldest = self
                .sessions
                .iter()
                .filter_map(|(k, s)| s.detached_at.map(|at| (at, *k)))
                .min();
            if let Some((_, key)) = oldest {
                self.sessions.remove(&key);
            }
        }
        let token = SessionId::random();
        self.sessions.insert(
            token,
            Session {
                attached: 1,
                ..Session::default()
            },
        );
        token
    }
}

impl Room {
    fn new() -> Self {
        Self {
            epoch: crate::random_hex(8),
            offset: 0,
            history: VecDeque::new(),
            members: BTreeSet::new(),
        }
    }

    fn prune(&mut self, now: Instant, limits: &Limits) {
        while self.history.len() > limits.history_len {
            self.history.pop_front();
        }
        while self
            .history
            .front()
            .is_some_and(|h| now.saturating_duration_since(h.at) > limits.history_max_age)
        {
            self.history.pop_front();
        }
    }

    /// Whether the gap after `since` can be filled entirely, and the frames that fill it.
    fn recover(&self, since: Option<&Since>) -> (bool, Vec<Utf8Bytes>) {
        let Some(since) = since else {
            return (true, Vec::new());
        };
        if since.epoch != self.epoch || since.offset > self.offset {
            return (false, Vec::new());
        }
        if since.offset == self.offset {
            return (true, Vec::new());
        }
        let first_needed = since.offset + 1;
        match self.history.front() {
            Some(front) if front.offset <= first_needed => {
                let skip = usize::try_from(first_needed - front.offset).unwrap_or(usize::MAX);
                (
                    true,
                    self.history
                        .iter()
                        .skip(skip)
                        .map(|h| h.frame.clone())
                        .collect(),
                )
            }
            _ => (false, Vec::new()),
        }
    }
}

impl Hub {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            limits: Limits {
                queue_capacity: config.queue_capacity.max(1),
                max_rooms_per_conn: config.max_rooms_per_conn,
                max_rooms: config.max_rooms,
                history_len: config.history_len,
                history_max_age: config.history_max_age,
                dedupe_ids: config.dedupe_ids,
                session_ttl: config.session_ttl,
                max_sessions: config.max_sessions.max(1),
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state for a dev server;
        // keep serving rather than cascade the panic into every connection.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the locked state, then evicts peers that overflowed meanwhile.
    fn with<R>(&self, f: impl FnOnce(&mut State, &Limits, Instant) -> R) -> R {
        let now = Instant::now();
        let mut state = self.lock();
        let out = f(&mut state, &self.limits, now);
        state.flush_evictions(now);
        out
    }

    /// The frames an outbound item stands for, resolving snapshots to their latest state.
    pub(crate) fn resolve(&self, peer: &Peer, item: Outbound) -> Frames {
        match item {
            Outbound::One(frame) => Frames::One(Some(frame)),
            Outbound::Many(frames) => Frames::Many(frames.into_iter()),
            Outbound::Rooms => {
                // Clear the flag before reading, so a change after this read queues anew.
                peer.snaps().rooms = false;
                Frames::One(self.lock().rooms_frame.clone())
            }
            Outbound::Presence(room) => {
                {
                    let mut snaps = peer.snaps();
                    snaps.presence.retain(|r| *r != room);
                    // An idle connection keeps no table of rooms it has nothing queued for.
                    if snaps.presence.is_empty() {
                        snaps.presence.shrink_to_fit();
                    }
                }
                let state = self.lock();
                let member = state
                    .conns
                    .get(&peer.id)
                    .is_some_and(|c| c.rooms.contains(&room));
                let frame = state.presence_frames.get(&room).filter(|_| member);
                Frames::One(frame.cloned())
            }
        }
    }

    pub(crate) fn room_count(&self) -> usize {
        self.lock()
            .rooms
            .values()
            .filter(|r| !r.members.is_empty())
            .count()
    }

    /// Adds a connection with a fresh session.
    pub(crate) fn register(&self, name: String) -> Registration {
        let (tx, rx) = queue::bounded(self.limits.queue_capacity, PeerState::default());
        self.with(|state, limits, _| {
            state.next_id += 1;
            let id = state.next_id;
            let peer = Peer { id, tx };
            if state.shutting_down {
                peer.set_kick(Kick::Shutdown, false);
            }
            let session = state.new_session(limits);
            state.conns.insert(
                id,
                ConnEntry {
                    peer: peer.clone(),
                    name,
                    rooms: Vec::new(),
                    session,
                },
            );
            Registration { peer, rx }
        })
    }

    /// Test endpoints: asks every connection of the client `name` to end as `kick` says.
    /// Returns how many were asked (connections already ending are not counted).
    pub(crate) fn cut(&self, name: &str, kick: Kick) -> usize {
        self.with(|state, _, _| {
            state
                .conns
                .values()
                .filter(|c| c.name == name)
                .filter(|c| c.peer.set_kick(kick, false))
                .count()
        })
    }

    /// Asks every connection, and every one registered from now on, to close for shutdown.
    pub(crate) fn shutdown(&self) {
        self.with(|state, _, _| {
            state.shutting_down = true;
            for entry in state.conns.values() {
                entry.peer.set_kick(Kick::Shutdown, false);
            }
        });
    }

    /// Removes a connection; idempotent.
    pub(crate) fn disconnect(&self, id: ConnId) {
        self.with(|state, _, now| state.remove_conn(id, now));
    }

    /// Queues `msg` for one connection.
    pub(crate) fn send(&self, id: ConnId, msg: &ServerMsg) {
        self.with(|state, _, _| state.reply(id, msg));
    }

    /// `hello`: resume the named session if the server still knows it.
    pub(crate) fn hello(&self, id: ConnId, wanted: Option<String>) {
        self.with(|state, _, _| {
            let Some(entry) = state.conns.get(&id) else {
                return;
            };
            let current = entry.session;
            let name = entry.name.clone();
            let resumed = match wanted.as_deref().and_then(SessionId::parse) {
                Some(token) if token == current => true,
                Some(token) if state.sessions.contains_key(&token) => {
                    // Leave the fresh session; drop it if nothing was recorded in it.
                    if let Some(old) = state.sessions.get_mut(&current) {
                        old.attached = old.attached.saturating_sub(1);
                        if old.attached == 0 && old.dedupe.is_none() {
                            state.sessions.remove(&current);
                        }
                    }
                    if let Some(session) = state.sessions.get_mut(&token) {
                        session.attached += 1;
                        session.detached_at = None;
                    }
                    if let Some(entry) = state.conns.get_mut(&id) {
                        entry.session = token;
                    }
                    true
                }
                _ => false,
            };
            let session = state
                .conns
                .get(&id)
                .map(|e| e.session.to_string())
                .unwrap_or_default();
            debug!(conn = id, resumed, "hello");
            state.reply(
                id,
                &ServerMsg::Welcome {
                    session,
                    resumed,
                    name,
                    limits: None,
                },
            );
        });
    }

    /// `join`: membership, `joined`, the replay, then presence and room-list pushes.
    pub(crate) fn join(&self, id: ConnId, room: String, since: Option<Since>) {
        self.with(|state, limits, now| {
            if !protocol::valid_room_name(&room) {
                let msg = "room name: 1 to 64 characters, no control characters";
                state.reply(id, &error_msg(ErrorCode::InvalidRoom, msg, None));
                return;
            }
            let Some(entry) = state.conns.get(&id) else {
                return;
            };
            let already = entry.rooms.iter().any(|r| **r == *room);
            if !already && entry.rooms.len() >= limits.max_rooms_per_conn {
                warn!(
                    conn = id,
                    max = limits.max_rooms_per_conn,
                    "join refused: room cap"
                );
                let msg = format!("at most {} rooms per connection", limits.max_rooms_per_conn);
                state.reply(id, &error_msg(ErrorCode::TooManyRooms, &msg, None));
                return;
            }
            if !state.rooms.contains_key(room.as_str()) && state.rooms.len() >= limits.max_rooms {
                // Make room by forgetting the retained history of an empty room.
                let idle = state
                    .rooms
                    .iter()
                    .filter(|(_, r)| r.members.is_empty())
                    .min_by_key(|(_, r)| r.history.back().map(|h| h.at))
                    .map(|(name, _)| name.clone());
                match idle {
                    Some(name) => {
                        state.rooms.remove(&name);
                    }
                    None => {
                        warn!(
                            conn = id,
                            max = limits.max_rooms,
                            "join refused: server room cap"
                        );
                        let msg = "the server holds too many rooms";
                        state.reply(id, &error_msg(ErrorCode::TooManyRooms, msg, None));
                        return;
                    }
                }
            }
            // The table's name for the room if it has one, so that members share it.
            let room: RoomName = match state.rooms.get_key_value(room.as_str()) {
                Some((name, _)) => name.clone(),
                None => room.into(),
            };
            let r = state.rooms.entry(room.clone()).or_insert_with(Room::new);
            r.prune(now, limits);
            let (recovered, replay) = r.recover(since.as_ref());
            let joined = ServerMsg::Joined {
                room: room.to_string(),
                epoch: r.epoch.clone(),
                offset: r.offset,
                recovered,
                resume_after: None,
            };
            r.members.insert(id);
            let mut frames = Vec::with_capacity(replay.len() + 1);
            frames.push(encode(&joined));
            frames.extend(replay);
            if let Some(entry) = state.conns.get_mut(&id)
                && !entry.rooms.contains(&room)
            {
                // Exactly: most connections join one room, and a first push would make room
                // for four.
                entry.rooms.reserve_exact(1);
                entry.rooms.push(room.clone());
            }
            state.deliver(id, Outbound::Many(frames));
            if !already {
                state.push_presence(&room);
                state.push_rooms_to_all();
            }
        });
    }

    /// `leave`: answered with `left` even when not a member (leaving is idempotent).
    pub(crate) fn leave(&self, id: ConnId, room: String) {
        self.with(|state, _, _| {
            let left = state.conns.get_mut(&id).and_then(|e| {
                let at = e.rooms.iter().position(|r| **r == *room)?;
                Some(e.rooms.swap_remove(at))
            });
            if let Some(name) = &left
                && let Some(r) = state.rooms.get_mut(name)
            {
                r.members.remove(&id);
                if r.members.is_empty() && r.history.is_empty() {
                    state.rooms.remove(name);
                }
            }
            state.reply(id, &ServerMsg::Left { room });
            if let Some(name) = left {
                state.push_presence(&name);
                state.push_rooms_to_all();
            }
        });
    }

    /// `publish`: dedupe by (session, id), else give the next offset, record, ack, broadcast.
    pub(crate) fn publish(&self, id: ConnId, room: String, msg_id: MsgId, data: protocol::Data) {
        self.with(|state, limits, now| {
            let Some(entry) = state.conns.get(&id) else {
                return;
            };
            if !entry.rooms.iter().any(|r| **r == *room) {
                let msg = "join the room before publishing to it";
                state.reply(id, &error_msg(ErrorCode::NotJoined, msg, Some(msg_id)));
                return;
            }
            let from = entry.name.clone();
            let session_key = entry.session;
            if let Some(offset) = state
                .sessions
                .get(&session_key)
                .and_then(|s| s.acked(msg_id))
            {
                debug!(
                    conn = id,
                    msg_id, offset, "duplicate publish acked without broadcast"
                );
                state.reply(
                    id,
                    &ServerMsg::Ack {
                        id: msg_id,
                        offset,
                        duplicate: true,
                    },
                );
                return;
            }
            let Some(r) = state.rooms.get_mut(room.as_str()) else {
                return;
            };
            r.offset += 1;
            let offset = r.offset;
            let frame = encode(&ServerMsg::Message {
                room: room.clone(),
                offset,
                from,
                data,
                ts: crate::unix_ms(),
                publisher: None,
                id: None,
            });
            r.history.push_back(Hist {
                offset,
                at: now,
                frame: frame.clone(),
            });
            r.prune(now, limits);
            let members: Vec<ConnId> = r.members.iter().copied().collect();
            if let Some(session) = state.sessions.get_mut(&session_key) {
                let dedupe = session.dedupe.get_or_insert_default();
                dedupe.ids.push_back(msg_id);
                dedupe.acked.insert(msg_id, offset);
                while dedupe.ids.len() > limits.dedupe_ids {
                    if let Some(old) = dedupe.ids.pop_front() {
                        dedupe.acked.remove(&old);
                    }
                }
            }
            tracing::trace!(conn = id, msg_id, offset, "published");
            state.reply(
                id,
                &ServerMsg::Ack {
                    id: msg_id,
                    offset,
                    duplicate: false,
                },
            );
            for member in members {
                state.deliver(member, Outbound::One(frame.clone()));
            }
        });
    }

    /// `list_rooms`.
    pub(crate) fn list_rooms(&self, id: ConnId) {
        self.with(|state, _, _| {
            let rooms = state.room_list();
            state.reply(id, &ServerMsg::Rooms { rooms });
        });
    }

    /// Forgets expired sessions and the expired history of empty rooms.
    pub(crate) fn sweep(&self) {
        self.with(|state, limits, now| {
            state.sessions.retain(|_, s| {
                s.attached > 0
                    || s.detached_at
                        .is_none_or(|at| now.saturating_duration_since(at) < limits.session_ttl)
            });
            state.rooms.retain(|_, r| {
                if r.members.is_empty() {
                    r.prune(now, limits);
                    !r.history.is_empty()
                } else {
                    true
                }
            });
            let State {
                rooms,
                presence_frames,
                ..
            } = &mut *state;
            presence_frames
                .retain(|room, _| rooms.get(room).is_some_and(|r| !r.members.is_empty()));
        });
    }

    /// Sweeps periodically until `shutdown` turns true.
    pub(crate) async fn sweep_until(self, mut shutdown: watch::Receiver<bool>) {
        let period = self
            .limits
            .session_ttl
            .min(self.limits.history_max_age)
            .checked_div(4)
            .unwrap_or_default()
            .clamp(Duration::from_millis(20), Duration::from_secs(5));
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sweep(),
                _ = crate::until_true(&mut shutdown) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(config: Config) -> Hub {
        Hub::new(&config)
    }

    fn drain_reg(hub: &Hub, reg: &mut Registration) -> Vec<ServerMsg> {
        let mut out = Vec::new();
        while let Ok(item) = reg.rx.try_recv() {
            let frames = hub.resolve(&reg.peer, item);
            for f in frames {
                out.push(serde_json::from_str(f.as_str()).unwrap());
            }
        }
        out
    }

    #[test]
    fn offsets_history_and_recovery() {
        let hub = hub(Config::default().history(3, Duration::from_secs(60)));
        let mut a = hub.register("a".into());
        hub.join(a.peer.id, "r".into(), None);
        let joined = drain_reg(&hub, &mut a);
        let ServerMsg::Joined {
            epoch,
            offset: 0,
            recovered: true,
            ..
        } = &joined[0]
        else {
            panic!("{joined:?}")
        };
        for i in 1..=5 {
            hub.publish(a.peer.id, "r".into(), i, serde_json::json!(i));
        }
        let msgs = drain_reg(&hub, &mut a);
        let offsets: Vec<u64> = msgs
            .iter()
            .filter_map(|m| match m {
                ServerMsg::Message { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
        assert_eq!(offsets, vec![1, 2, 3, 4, 5]);

        let mut b = hub.register("b".into());
        let since = |offset| {
            Some(Since {
                epoch: epoch.clone(),
                offset,
            })
        };
        // History holds 3..=5: a gap after 2 can be filled, one after 1 cannot.
        hub.join(b.peer.id, "r".into(), since(2));
        let got = drain_reg(&hub, &mut b);
        assert!(matches!(
            got[0],
            ServerMsg::Joined {
                recovered: true,
                offset: 5,
                ..
            }
        ));
        let replayed: Vec<u64> = got
            .iter()
            .filter_map(|m| match m {
                ServerMsg::Message { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
        assert_eq!(replayed, vec![3, 4, 5]);
        hub.join(b.peer.id, "r".into(), since(1));
        let got = drain_reg(&hub, &mut b);
        assert!(matches!(
            got[0],
            ServerMsg::Joined {
                recovered: false,
                ..
            }
        ));
        assert_eq!(got.len(), 1, "nothing partial: {got:?}");
        hub.join(
            b.peer.id,
            "r".into(),
            Some(Since {
                epoch: "other".into(),
                offset: 5,
            }),
        );
        let got = drain_reg(&hub, &mut b);
        assert!(matches!(
            got[0],
            ServerMsg::Joined {
                recovered: false,
                ..
            }
        ));
    }

    #[test]
    fn full_queue_evicts_with_1013_and_room_goes_on() {
        let hub = hub(Config::default().queue_capacity(4));
        let mut fast = hub.register("fast".into());
        let slow = hub.register("slow".into());
        hub.join(fast.peer.id, "r".into(), None);
        drain_reg(&hub, &mut fast);
        hub.join(slow.peer.id, "r".into(), None);
        drain_reg(&hub, &mut fast);
        // slow never drains; fast does after each publish.
        for i in 1..=5 {
            hub.publish(fast.peer.id, "r".into(), i, serde_json::json!(i));
            drain_reg(&hub, &mut fast);
        }
        assert_eq!(slow.peer.kick(), Some(Kick::Close(close::TRY_AGAIN_LATER)));
        assert_eq!(hub.lock().rooms["r"].members.len(), 1);
        hub.publish(fast.peer.id, "r".into(), 6, serde_json::json!(6));
        let got = drain_reg(&hub, &mut fast);
        assert!(
            got.iter()
                .any(|m| matches!(m, ServerMsg::Message { offset: 6, .. }))
        );
    }

    #[test]
    fn dedupe_survives_resume() {
        let hub = hub(Config::default());
        let mut a = hub.register("a".into());
        hub.hello(a.peer.id, None);
        let ServerMsg::Welcome {
            session,
            resumed: false,
            ..
        } = drain_reg(&hub, &mut a).remove(0)
        else {
            panic!()
        };
        hub.join(a.peer.id, "r".into(), None);
        hub.publish(a.peer.id, "r".into(), 7, serde_json::json!("x"));
        hub.disconnect(a.peer.id);
        let mut a2 = hub.register("a".into());
        hub.hello(a2.peer.id, Some(session.clone()));
        hub.join(a2.peer.id, "r".into(), None);
        hub.publish(a2.peer.id, "r".into(), 7, serde_json::json!("x"));
        let got = drain_reg(&hub, &mut a2);
        assert!(
            matches!(&got[0], ServerMsg::Welcome { resumed: true, session: s, .. } if *s == session)
        );
        assert!(got.contains(&ServerMsg::Ack {
            id: 7,
            offset: 1,
            duplicate: true
        }));
        assert!(!got.iter().any(|m| matches!(m, ServerMsg::Message { .. })));
    }

    #[test]
    fn empty_room_keeps_history_until_it_expires() {
        let hub = hub(Config::default().history(10, Duration::from_millis(0)));
        let mut a = hub.register("a".into());
        hub.join(a.peer.id, "r".into(), None);
        hub.publish(a.peer.id, "r".into(), 1, serde_json::json!(1));
        hub.leave(a.peer.id, "r".into());
        drain_reg(&hub, &mut a);
        std::thread::sleep(Duration::from_millis(2));
        hub.sweep();
        assert!(hub.lock().rooms.is_empty());
    }

    #[test]
    fn room_list_and_presence_are_coalesced_for_a_lagging_peer() {
        let hub = hub(Config::default().queue_capacity(4));
        let mut watcher = hub.register("watcher".into());
        hub.join(watcher.peer.id, "r".into(), None);
        drain_reg(&hub, &mut watcher);
        // 50 joins while the watcher reads nothing: one snapshot of each kind stays queued.
        let mut others = Vec::new();
        for i in 0..50 {
            let mut other = hub.register(format!("p{i:02}"));
            hub.join(other.peer.id, "r".into(), None);
            drain_reg(&hub, &mut other);
            others.push(other);
        }
        assert_eq!(watcher.peer.kick(), None, "not evicted");
        let got = drain_reg(&hub, &mut watcher);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got.iter()
                .any(|m| matches!(m, ServerMsg::Presence { members, .. } if members.len() == 51))
        );
        assert!(got.contains(&ServerMsg::Rooms {
            rooms: vec![RoomInfo {
                room: "r".into(),
                members: 51
            }]
        }));
        // A presence queued for a room the peer has left is not sent.
        hub.join(others[0].peer.id, "s".into(), None);
        hub.join(watcher.peer.id, "s".into(), None);
        drain_reg(&hub, &mut watcher);
        hub.join(others[1].peer.id, "s".into(), None);
        hub.leave(watcher.peer.id, "s".into());
        let got = drain_reg(&hub, &mut watcher);
        assert!(
            !got.iter()
                .any(|m| matches!(m, ServerMsg::Presence { room, .. } if room == "s")),
            "{got:?}"
        );
    }

    #[test]
    fn session_ids_read_back_only_as_written() {
        let id = SessionId(0xab);
        let text = id.to_string();
        assert_eq!(text, format!("{}ab", "0".repeat(30)));
        assert_eq!(SessionId::parse(&text), Some(id));
        let upper = text.to_uppercase();
        for bad in [
            "",
            "ab",
            &upper,
            &format!("{text}0"),
            &text.replace('a', "g"),
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn sessions_expire_after_their_ttl_and_are_bounded() {
        let hub = hub(Config::default().sessions(Duration::ZERO, 3));
        let mut a = hub.register("a".into());
        hub.hello(a.peer.id, None);
        let ServerMsg::Welcome { session, .. } = drain_reg(&hub, &mut a).remove(0) else {
            panic!()
        };
        hub.disconnect(a.peer.id);
        std::thread::sleep(Duration::from_millis(2));
        hub.sweep();
        let mut b = hub.register("a".into());
        hub.hello(b.peer.id, Some(session));
        assert!(matches!(
            drain_reg(&hub, &mut b)[0],
            ServerMsg::Welcome { resumed: false, .. }
        ));
        // At the cap, registering drops the longest-detached session first.
        let regs: Vec<_> = (0..5).map(|i| hub.register(format!("p{i}"))).collect();
        for r in &regs[..3] {
            hub.disconnect(r.peer.id);
        }
        let _more: Vec<_> = (0..3).map(|i| hub.register(format!("q{i}"))).collect();
        assert!(
            hub.lock().sessions.len() <= 3 + 3,
            "attached sessions are kept, detached dropped"
        );
        assert!(hub.lock().sessions.values().all(|s| s.attached > 0));
    }
}
