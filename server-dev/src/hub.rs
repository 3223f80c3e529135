//! The hub: connections, rooms with history and epochs, and sessions for deduplication.
//!
//! All state sits behind one mutex that is never held across an `.await`. Frames to peers go
//! through each peer's bounded queue with `try_send`, so a slow peer can never stall a room:
//! when its queue is full it is evicted and told to close with 1013 (the slow-consumer rule).
//!
//! Memory is bounded whatever clients do: history by count, age and bytes per room and by
//! bytes across rooms (a global FIFO in publish order makes the global eviction O(evicted));
//! sessions by count and TTL (detach-order queues, empty sessions evicted first); the room
//! list by one shared encoding per push interval, and at most one queued per connection.
//! [`Hub::memory`] reports what is accounted, for `GET /api/health`.
//!
//! `hub/history.rs` holds the history rules (bounds, ledger, recovery), `hub/sessions.rs` the
//! session rules (tokens, dedupe, detach order, eviction); this file the connections, rooms,
//! room list and presence. Rules that need time take `now`, so tests need no sleeps.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use protocol::{ErrorCode, MsgId, RoomInfo, ServerMsg, Since, close};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::{debug, warn};

use crate::Config;
use crate::queue;

mod history;
mod sessions;

use history::{Ledger, Room};
use sessions::{Detached, Session, SessionId};

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

    /// Asks the connection's writer for a protocol Ping, before its next batch.
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
    /// The publisher id of this connection's `hello`, stamped on what it publishes.
    publisher: Option<Arc<str>>,
}

/// Rate-limits the warnings of one limit to one per second, counting what was not logged.
#[derive(Debug, Default)]
struct LimitLog {
    last: Option<Instant>,
    quiet: u64,
}

impl LimitLog {
    /// The number of hits since the last warning, if one should be logged now.
    fn hit(&mut self, now: Instant) -> Option<u64> {
        self.quiet += 1;
        if self
            .last
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.quiet))
    }
}

/// What the hub holds on behalf of clients, as `GET /api/health` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Memory {
    /// Bytes of retained history (frames and bookkeeping), across rooms.
    pub(crate) history_bytes: usize,
    /// The most `history_bytes` ever was in this server run.
    pub(crate) history_bytes_peak: usize,
    /// Retained history entries across rooms.
    pub(crate) history_entries: usize,
    /// Rooms held, with members or retained history.
    pub(crate) rooms_held: usize,
    /// Sessions held, attached or not.
    pub(crate) sessions: usize,
    /// The most `sessions` ever was in this server run.
    pub(crate) sessions_peak: usize,
    /// Publish ids remembered for deduplication, across sessions.
    pub(crate) dedupe_entries: usize,
    /// Bytes of the shared room-list snapshot.
    pub(crate) room_list_bytes: usize,
    /// Items queued for connections to write.
    pub(crate) queued_items: usize,
    /// Bytes of the frames those items hold, each frame counted once however many queues
    /// share it (snapshots are in `room_list_bytes`; a message frame is shared with history).
    pub(crate) queued_bytes: usize,
}

#[derive(Debug, Clone)]
struct Limits {
    queue_capacity: usize,
    max_rooms_per_conn: usize,
    max_rooms: usize,
    history_len: usize,
    history_max_age: Duration,
    history_room_bytes: usize,
    history_total_bytes: usize,
    dedupe_ids: usize,
    session_ttl: Duration,
    max_sessions: usize,
    max_dedupe_entries: usize,
    rooms_push_interval: Duration,
    /// What `welcome` advertises.
    advertised: protocol::Limits,
}

/// The limit warnings, each rate-limited on its own.
#[derive(Debug, Default)]
struct LimitLogs {
    history_room: LimitLog,
    history_total: LimitLog,
    sessions: LimitLog,
    dedupe: LimitLog,
}

#[derive(Debug, Default)]
struct State {
    conns: HashMap<ConnId, ConnEntry>,
    rooms: BTreeMap<RoomName, Room>,
    sessions: HashMap<SessionId, Session>,
    next_id: ConnId,
    /// Peers whose queue overflowed during the current operation.
    evict: Vec<ConnId>,
    /// The latest room list, read by writers when they write an [`Outbound::Rooms`]. Encoded
    /// once per push and shared by every queue.
    rooms_frame: Option<Utf8Bytes>,
    /// `rooms_frame` is the current list: no membership change since it was encoded.
    rooms_fresh: bool,
    /// Membership changed since the room list was last pushed to everyone.
    rooms_dirty: bool,
    /// How many times the room list was encoded (at most once per change).
    rooms_encodes: u64,
    /// When the room list was last pushed; the next push waits for the interval.
    rooms_pushed_at: Option<Instant>,
    history: Ledger,
    detached: Detached,
    sessions_peak: usize,
    /// Publish ids remembered across sessions.
    dedupe_entries: usize,
    logs: LimitLogs,
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

/// `x` as a whole number for the wire: rounded down, negative or NaN as 0.
fn whole(x: f64) -> u32 {
    // A float-to-int `as` saturates, and the clamp states the intent.
    x.floor().clamp(0.0, f64::from(u32::MAX)) as u32
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

    /// Membership changed: push the room list now if the last push is an interval old, else
    /// leave it to [`Hub::tick_rooms`] (the latest state wins).
    fn rooms_changed(&mut self, now: Instant, limits: &Limits) {
        self.rooms_dirty = true;
        self.rooms_fresh = false;
        if self.rooms_push_due(now, limits) {
            self.push_rooms_to_all(now);
        }
    }

    fn rooms_push_due(&self, now: Instant, limits: &Limits) -> bool {
        self.rooms_pushed_at
            .is_none_or(|at| now.saturating_duration_since(at) >= limits.rooms_push_interval)
    }

    /// Encodes the room list unless the snapshot is already current: once per change, however
    /// many connections ask or are pushed to.
    fn refresh_rooms_frame(&mut self) {
        if self.rooms_fresh && self.rooms_frame.is_some() {
            return;
        }
        self.rooms_frame = Some(encode(&ServerMsg::Rooms {
            rooms: self.room_list(),
        }));
        self.rooms_fresh = true;
        self.rooms_encodes += 1;
    }

    fn push_rooms_to_all(&mut self, now: Instant) {
        // Update the snapshot before looking at the flags: a writer that clears its flag
        // afterwards then reads this frame or a newer one.
        self.refresh_rooms_frame();
        self.rooms_dirty = false;
        self.rooms_pushed_at = Some(now);
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
    fn remove_conn(&mut self, id: ConnId, now: Instant, limits: &Limits) {
        let Some(entry) = self.conns.remove(&id) else {
            return;
        };
        for room in &entry.rooms {
            if let Some(r) = self.rooms.get_mut(room) {
                r.members.remove(&id);
                if r.members.is_empty() && r.history.is_empty() {
                    self.drop_room(room);
                } else {
                    self.push_presence(room);
                }
            }
        }
        if !entry.rooms.is_empty() {
            self.rooms_changed(now, limits);
        }
        self.detach(entry.session, now);
    }

    /// Evicts every peer whose queue overflowed, which may overflow others in turn.
    fn flush_evictions(&mut self, now: Instant, limits: &Limits) {
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
                self.remove_conn(id, now, limits);
            }
        }
    }

    fn memory(&self) -> Memory {
        let rooms_frame_len = self.rooms_frame.as_ref().map_or(0, |f| f.len());
        let (mut queued_items, mut queued_bytes) = (0, 0);
        // A frame broadcast to a room sits in every member's queue once, shared: count it once.
        let mut seen = std::collections::HashSet::new();
        let mut count = |frame: &Utf8Bytes| {
            if seen.insert(frame.as_str().as_ptr()) {
                queued_bytes += frame.len();
            }
        };
        for entry in self.conns.values() {
            entry.peer.tx.inspect(|item| {
                queued_items += 1;
                match item {
                    Outbound::One(frame) => count(frame),
                    Outbound::Many(frames) => frames.iter().for_each(&mut count),
                    // Snapshots are held once by the hub, whatever is queued.
                    Outbound::Rooms | Outbound::Presence(_) => {}
                }
            });
        }
        Memory {
            history_bytes: self.history.bytes,
            history_bytes_peak: self.history.peak_bytes,
            history_entries: self.history.entries,
            rooms_held: self.rooms.len(),
            sessions: self.sessions.len(),
            sessions_peak: self.sessions_peak,
            dedupe_entries: self.dedupe_entries,
            room_list_bytes: rooms_frame_len,
            queued_items,
            queued_bytes,
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
                history_room_bytes: config.history_room_bytes,
                history_total_bytes: config.history_total_bytes,
                dedupe_ids: config.dedupe_ids,
                session_ttl: config.session_ttl,
                max_sessions: config.max_sessions.max(1),
                max_dedupe_entries: config.max_dedupe_entries,
                rooms_push_interval: config.rooms_push_interval,
                advertised: protocol::Limits {
                    max_message_bytes: u32::try_from(config.max_message_size).unwrap_or(u32::MAX),
                    rate_per_sec: whole(config.rate_per_sec),
                    rate_burst: whole(config.rate_burst),
                    dedupe_window: u32::try_from(config.dedupe_ids).unwrap_or(u32::MAX),
                },
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
        self.with_at(Instant::now(), f)
    }

    /// [`Self::with`] at a given time, so that rules with a clock are tested without sleeps.
    fn with_at<R>(&self, now: Instant, f: impl FnOnce(&mut State, &Limits, Instant) -> R) -> R {
        let mut state = self.lock();
        let out = f(&mut state, &self.limits, now);
        state.flush_evictions(now, &self.limits);
        out
    }

    /// What the hub holds on behalf of clients now.
    pub(crate) fn memory(&self) -> Memory {
        self.lock().memory()
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
        self.with(|state, limits, now| {
            state.next_id += 1;
            let id = state.next_id;
            let peer = Peer { id, tx };
            if state.shutting_down {
                peer.set_kick(Kick::Shutdown, false);
            }
            let session = state.new_session(now, limits);
            state.conns.insert(
                id,
                ConnEntry {
                    peer: peer.clone(),
                    name,
                    rooms: Vec::new(),
                    session,
                    publisher: None,
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
        self.with(|state, limits, now| state.remove_conn(id, now, limits));
    }

    /// Queues `msg` for one connection.
    pub(crate) fn send(&self, id: ConnId, msg: &ServerMsg) {
        self.with(|state, _, _| state.reply(id, msg));
    }

    /// `hello`: resume the named session if the server still knows it, and remember the
    /// connection's publisher id.
    pub(crate) fn hello(&self, id: ConnId, wanted: Option<String>, publisher: Option<String>) {
        self.with(|state, limits, now| {
            let Some(entry) = state.conns.get_mut(&id) else {
                return;
            };
            let current = entry.session;
            let name = entry.name.clone();
            let invalid = publisher
                .as_deref()
                .is_some_and(|p| !protocol::valid_publisher_id(p));
            // An invalid id is refused, and the connection goes on without one.
            entry.publisher = publisher
                .filter(|p| protocol::valid_publisher_id(p))
                .map(Arc::from);
            if invalid {
                let msg = "publisher: 8 to 64 ASCII letters, digits, '-' or '_'";
                state.reply(id, &error_msg(ErrorCode::InvalidPublisher, msg, None));
            }
            let resumed = match wanted.as_deref().and_then(SessionId::parse) {
                Some(token) if token == current => true,
                Some(token) if state.sessions.contains_key(&token) => {
                    // Leave the current session: dropped at once if nothing was recorded in
                    // it, else detached so that its TTL and the cap apply to it.
                    let unused = state
                        .sessions
                        .get(&current)
                        .is_some_and(|s| s.attached <= 1 && s.dedupe.is_none());
                    if unused {
                        state.remove_session(&current);
                    } else {
                        state.detach(current, now);
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
                    limits: Some(limits.advertised.clone()),
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
                        state.drop_room(&name);
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
            r.prune(now, limits, &mut state.history);
            let recovery = r.recover(since.as_ref());
            let joined = ServerMsg::Joined {
                room: room.to_string(),
                epoch: r.epoch.clone(),
                offset: r.offset,
                recovered: recovery.recovered,
                resume_after: recovery.resume_after,
            };
            r.members.insert(id);
            let mut frames = Vec::with_capacity(recovery.frames.len() + 1);
            frames.push(encode(&joined));
            frames.extend(recovery.frames);
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
                state.rooms_changed(now, limits);
            }
        });
    }

    /// `leave`: answered with `left` even when not a member (leaving is idempotent).
    pub(crate) fn leave(&self, id: ConnId, room: String) {
        self.with(|state, limits, now| {
            let left = state.conns.get_mut(&id).and_then(|e| {
                let at = e.rooms.iter().position(|r| **r == *room)?;
                Some(e.rooms.swap_remove(at))
            });
            if let Some(name) = &left
                && let Some(r) = state.rooms.get_mut(name)
            {
                r.members.remove(&id);
                if r.members.is_empty() && r.history.is_empty() {
                    state.drop_room(name);
                }
            }
            state.reply(id, &ServerMsg::Left { room });
            if let Some(name) = left {
                state.push_presence(&name);
                state.rooms_changed(now, limits);
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
            let publisher = entry.publisher.as_deref().map(str::to_string);
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
            // The table's name for the room, shared by its history entries.
            let Some(name) = state
                .rooms
                .get_key_value(room.as_str())
                .map(|(n, _)| n.clone())
            else {
                return;
            };
            let Some(r) = state.rooms.get_mut(&name) else {
                return;
            };
            r.offset += 1;
            let offset = r.offset;
            // The publish id goes with a publisher id only: alone it names nothing.
            let id_on_wire = publisher.is_some().then_some(msg_id);
            let frame = encode(&ServerMsg::Message {
                room,
                offset,
                from,
                data,
                ts: crate::unix_ms(),
                publisher,
                id: id_on_wire,
            });
            let members: Vec<ConnId> = r.members.iter().copied().collect();
            state.record(&name, offset, frame.clone(), now, limits);
            if let Some(session) = state.sessions.get_mut(&session_key) {
                let dedupe = session.dedupe.get_or_insert_default();
                dedupe.ids.push_back(msg_id);
                dedupe.acked.insert(msg_id, offset);
                state.dedupe_entries += 1;
                while dedupe.ids.len() > limits.dedupe_ids {
                    if let Some(old) = dedupe.ids.pop_front() {
                        dedupe.acked.remove(&old);
                        state.dedupe_entries = state.dedupe_entries.saturating_sub(1);
                    }
                }
            }
            state.bound_dedupe(now, limits);
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

    /// `list_rooms`: answered with the shared snapshot, at most one queued per connection,
    /// so a client that asks without reading holds one list, not one per request.
    pub(crate) fn list_rooms(&self, id: ConnId) {
        self.with(|state, _, _| {
            // The answer is the current list; a push owed to the others still waits for the
            // interval.
            state.refresh_rooms_frame();
            let queue = state
                .conns
                .get(&id)
                .is_some_and(|c| !std::mem::replace(&mut c.peer.snaps().rooms, true));
            if queue {
                state.deliver(id, Outbound::Rooms);
            }
        });
    }

    /// Pushes the room list if membership changed and the last push is an interval old.
    pub(crate) fn tick_rooms(&self) {
        self.tick_rooms_at(Instant::now());
    }

    fn tick_rooms_at(&self, now: Instant) {
        self.with_at(now, |state, limits, now| {
            if state.rooms_dirty && state.rooms_push_due(now, limits) {
                state.push_rooms_to_all(now);
            }
        });
    }

    /// Forgets expired sessions, expired history, and rooms left with neither.
    pub(crate) fn sweep(&self) {
        self.sweep_at(Instant::now());
    }

    fn sweep_at(&self, now: Instant) {
        self.with_at(now, |state, limits, now| {
            state.expire_sessions(now, limits.session_ttl);
            let State { rooms, history, .. } = &mut *state;
            rooms.retain(|_, r| {
                r.prune(now, limits, history);
                !(r.members.is_empty() && r.history.is_empty())
            });
            history.compact(rooms);
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
        let mut rooms_tick = tokio::time::interval(
            self.limits
                .rooms_push_interval
                .max(Duration::from_millis(10)),
        );
        // A late tick is just late: catching up would push twice in a row.
        rooms_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sweep(),
                _ = rooms_tick.tick() => self.tick_rooms(),
                _ = crate::until_true(&mut shutdown) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::history::Hist;
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
        assert_eq!(offsets(&msgs), vec![1, 2, 3, 4, 5]);

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
        // Another epoch: not recovered, and what is retained of this epoch (3..=5) follows.
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
                offset: 5,
                resume_after: Some(2),
                ..
            }
        ));
        assert_eq!(offsets(&got), vec![3, 4, 5]);
    }

    fn offsets(msgs: &[ServerMsg]) -> Vec<u64> {
        msgs.iter()
            .filter_map(|m| match m {
                ServerMsg::Message { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn welcome_advertises_the_limits() {
        let config = Config::default()
            .rate_limit(12.9, 30.5)
            .max_message_size(1000)
            .dedupe_ids(77);
        let hub = hub(config);
        let mut a = hub.register("a".into());
        hub.hello(a.peer.id, None, None);
        let got = drain_reg(&hub, &mut a);
        let ServerMsg::Welcome { limits, .. } = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(
            limits.as_ref(),
            Some(&protocol::Limits {
                max_message_bytes: 1000,
                rate_per_sec: 12,
                rate_burst: 30,
                dedupe_window: 77,
            })
        );
        assert_eq!(
            (whole(-1.0), whole(f64::NAN), whole(1e20)),
            (0, 0, u32::MAX)
        );
    }

    #[test]
    fn publisher_and_publish_id_ride_on_live_and_replayed_messages() {
        let hub = hub(Config::default());
        let mut a = hub.register("a".into());
        hub.hello(a.peer.id, None, Some("pub-0123456789".into()));
        hub.join(a.peer.id, "r".into(), None);
        let got = drain_reg(&hub, &mut a);
        let ServerMsg::Joined { epoch, .. } = &got[1] else {
            panic!("{got:?}")
        };
        let epoch = epoch.clone();
        hub.publish(a.peer.id, "r".into(), 41, serde_json::json!("x"));
        let live = drain_reg(&hub, &mut a);
        let stamped = |m: &ServerMsg| {
            matches!(m, ServerMsg::Message { publisher: Some(p), id: Some(41), .. }
                if p == "pub-0123456789")
        };
        assert!(live.iter().any(stamped), "{live:?}");

        let mut b = hub.register("b".into());
        let since = Since { epoch, offset: 0 };
        hub.join(b.peer.id, "r".into(), Some(since));
        let replay = drain_reg(&hub, &mut b);
        assert!(replay.iter().any(stamped), "{replay:?}");

        // An invalid id is refused; the connection goes on, publishing without one.
        let mut c = hub.register("c".into());
        hub.hello(c.peer.id, None, Some("short".into()));
        let got = drain_reg(&hub, &mut c);
        assert!(matches!(
            got[0],
            ServerMsg::Error {
                code: ErrorCode::InvalidPublisher,
                ..
            }
        ));
        assert!(matches!(got[1], ServerMsg::Welcome { .. }));
        hub.join(c.peer.id, "r".into(), None);
        hub.publish(c.peer.id, "r".into(), 1, serde_json::json!("y"));
        let got = drain_reg(&hub, &mut c);
        assert!(got.iter().any(|m| matches!(
            m,
            ServerMsg::Message {
                publisher: None,
                id: None,
                offset: 2,
                ..
            }
        )));
    }

    #[test]
    fn another_epoch_replays_the_whole_retained_history() {
        let hub = hub(Config::default());
        let mut a = hub.register("a".into());
        hub.join(a.peer.id, "fresh".into(), None);
        hub.publish(a.peer.id, "fresh".into(), 1, serde_json::json!(1));
        hub.publish(a.peer.id, "fresh".into(), 2, serde_json::json!(2));
        drain_reg(&hub, &mut a);
        let mut b = hub.register("b".into());
        let old = Since {
            epoch: "from-before-a-restart".into(),
            offset: 9,
        };
        hub.join(b.peer.id, "fresh".into(), Some(old.clone()));
        let got = drain_reg(&hub, &mut b);
        assert!(
            matches!(
                got[0],
                ServerMsg::Joined {
                    recovered: false,
                    offset: 2,
                    resume_after: Some(0),
                    ..
                }
            ),
            "{got:?}"
        );
        assert_eq!(offsets(&got), vec![1, 2]);
        // A new room: nothing to replay, resume from 0.
        hub.join(b.peer.id, "empty".into(), Some(old));
        let got = drain_reg(&hub, &mut b);
        assert!(matches!(
            got[0],
            ServerMsg::Joined {
                recovered: false,
                offset: 0,
                resume_after: Some(0),
                ..
            }
        ));
        assert_eq!(offsets(&got), Vec::<u64>::new());
    }

    /// The ledger agrees with the rooms it accounts for.
    fn check_ledger(hub: &Hub) -> (usize, usize) {
        let state = hub.lock();
        let bytes: usize = state.rooms.values().map(|r| r.history_bytes).sum();
        let costs: usize = state
            .rooms
            .values()
            .flat_map(|r| r.history.iter().map(Hist::cost))
            .sum();
        let entries: usize = state.rooms.values().map(|r| r.history.len()).sum();
        assert_eq!((bytes, costs), (state.history.bytes, state.history.bytes));
        assert_eq!(entries, state.history.entries);
        assert!(state.history.fifo.len() <= 2 * entries + 1024 + 1);
        (state.history.bytes, state.history.fifo.len())
    }

    #[test]
    fn history_bytes_are_bounded_per_room_and_across_rooms() {
        // 1 KiB messages: a room keeps about 8, the hub about 32 across rooms.
        let hub = hub(Config::default().history_bytes(8 * 1024, 32 * 1024));
        let pad = "p".repeat(1000);
        let mut a = hub.register("a".into());
        let rooms: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
        let mut epoch0 = String::new();
        for room in &rooms {
            hub.join(a.peer.id, room.clone(), None);
            if let ServerMsg::Joined { epoch, .. } = &drain_reg(&hub, &mut a)[0]
                && room == "r0"
            {
                epoch0 = epoch.clone();
            }
        }
        let mut id = 0;
        for _ in 0..20 {
            for room in &rooms {
                id += 1;
                hub.publish(a.peer.id, room.clone(), id, serde_json::json!(pad));
                let (bytes, _) = check_ledger(&hub);
                assert!(bytes <= 32 * 1024, "{bytes}");
            }
            drain_reg(&hub, &mut a);
        }
        {
            let state = hub.lock();
            assert!(state.rooms.values().all(|r| r.history_bytes <= 8 * 1024));
            assert!(state.history.peak_bytes <= 32 * 1024);
            assert!(state.history.entries >= 20, "the budget is used");
        }
        // Evicted by the budget: a same-epoch gap from the start is not recovered.
        let mut b = hub.register("b".into());
        let since = Since {
            epoch: epoch0,
            offset: 0,
        };
        hub.join(b.peer.id, "r0".into(), Some(since));
        let got = drain_reg(&hub, &mut b);
        assert!(matches!(
            got[0],
            ServerMsg::Joined {
                recovered: false,
                resume_after: None,
                ..
            }
        ));
        assert_eq!(offsets(&got), Vec::<u64>::new());
        // Rooms dropped with history: their bytes leave the ledger.
        hub.disconnect(a.peer.id);
        hub.disconnect(b.peer.id);
        hub.sweep_at(Instant::now() + Duration::from_secs(3600));
        assert_eq!(check_ledger(&hub), (0, 0));
        assert!(hub.lock().rooms.is_empty());
    }

    #[test]
    fn the_global_fifo_stays_compact_when_rooms_evict_by_count() {
        // Count eviction in a busy room leaves stale FIFO entries behind a quiet room's.
        let hub = hub(Config::default().history(2, Duration::from_secs(600)));
        let mut a = hub.register("a".into());
        hub.join(a.peer.id, "quiet".into(), None);
        hub.join(a.peer.id, "busy".into(), None);
        hub.publish(a.peer.id, "quiet".into(), 1, serde_json::json!(0));
        for id in 2..20_000 {
            hub.publish(a.peer.id, "busy".into(), id, serde_json::json!(id));
            if id % 100 == 0 {
                drain_reg(&hub, &mut a);
            }
        }
        let (_, fifo) = check_ledger(&hub);
        assert!(fifo <= 2 * 3 + 1024 + 1, "{fifo}");
        assert_eq!(hub.lock().rooms["quiet"].history.len(), 1);
    }

    fn welcome_session(got: &[ServerMsg]) -> String {
        got.iter()
            .find_map(|m| match m {
                ServerMsg::Welcome { session, .. } => Some(session.clone()),
                _ => None,
            })
            .expect("welcome")
    }

    #[test]
    fn session_churn_stays_under_the_cap() {
        // Default cap (10 000) and TTL: 20 000 churns, half of them by switching sessions.
        let config = Config::default();
        let cap = config.max_sessions;
        let hub = hub(config);
        let mut keep = hub.register("keeper".into());
        hub.hello(keep.peer.id, None, None);
        let kept = welcome_session(&drain_reg(&hub, &mut keep));
        for i in 0..20_000u64 {
            let mut c = hub.register(format!("c{i}"));
            hub.hello(c.peer.id, None, None);
            hub.join(c.peer.id, "r".into(), None);
            hub.publish(c.peer.id, "r".into(), 1, serde_json::json!(i));
            if i % 2 == 0 {
                // Abandons a session with dedupe state for another one.
                hub.hello(c.peer.id, Some(kept.clone()), None);
            }
            drain_reg(&hub, &mut c);
            hub.disconnect(c.peer.id);
            drain_reg(&hub, &mut keep);
            let n = hub.lock().sessions.len();
            assert!(n <= cap + 1, "{n} sessions after {i} churns");
        }
        let memory = hub.memory();
        eprintln!("hub session churn (20 000): {memory:?}");
        let recount: usize = hub
            .lock()
            .sessions
            .values()
            .filter_map(|s| s.dedupe.as_ref())
            .map(|d| d.ids.len())
            .sum();
        assert_eq!(memory.dedupe_entries, recount, "the counter agrees");
        assert!(memory.sessions_peak <= cap + 1, "{memory:?}");
        assert!(memory.dedupe_entries <= cap + 1, "{memory:?}");
        // Detached entries are compacted too.
        let state = hub.lock();
        let queued = state.detached.empty.len() + state.detached.full.len();
        assert!(queued <= 2 * state.sessions.len() + 65, "{queued}");
    }

    #[test]
    fn a_session_abandoned_by_hello_expires_and_empty_ones_go_first() {
        let ttl = Duration::from_secs(60);
        let hub = hub(Config::default().sessions(ttl, 3));
        let t0 = Instant::now();
        let mut a = hub.register("a".into());
        hub.hello(a.peer.id, None, None);
        let first = welcome_session(&drain_reg(&hub, &mut a));
        hub.join(a.peer.id, "r".into(), None);
        hub.publish(a.peer.id, "r".into(), 1, serde_json::json!(1));
        // A second connection's session, then `a` switches to it: `first` is abandoned.
        let mut b = hub.register("b".into());
        hub.hello(b.peer.id, None, None);
        let second = welcome_session(&drain_reg(&hub, &mut b));
        hub.hello(a.peer.id, Some(second.clone()), None);
        let key = |s: &str| SessionId::parse(s).unwrap();
        {
            let state = hub.lock();
            let abandoned = &state.sessions[&key(&first)];
            assert_eq!(abandoned.attached, 0);
            assert!(abandoned.detached_at.is_some(), "its TTL runs");
        }
        hub.sweep_at(t0 + ttl + Duration::from_secs(1));
        assert!(!hub.lock().sessions.contains_key(&key(&first)), "expired");
        assert!(hub.lock().sessions.contains_key(&key(&second)), "attached");

        // At the cap, a detached empty session goes before an older one with dedupe state.
        hub.publish(a.peer.id, "r".into(), 2, serde_json::json!(2));
        hub.disconnect(a.peer.id);
        hub.disconnect(b.peer.id);
        let c = hub.register("c".into());
        hub.disconnect(c.peer.id);
        assert_eq!(hub.lock().sessions.len(), 2);
        let _d = hub.register("d".into());
        let _e = hub.register("e".into());
        let state = hub.lock();
        assert_eq!(state.sessions.len(), 3);
        assert!(
            state.sessions.contains_key(&key(&second)),
            "dedupe state kept"
        );
    }

    #[test]
    fn the_dedupe_budget_forgets_detached_sessions_never_attached_ones() {
        let hub = hub(Config::default().max_dedupe_entries(10));
        let mut a = hub.register("a".into());
        hub.hello(a.peer.id, None, None);
        let first = welcome_session(&drain_reg(&hub, &mut a));
        hub.join(a.peer.id, "r".into(), None);
        for id in 1..=8 {
            hub.publish(a.peer.id, "r".into(), id, serde_json::json!(id));
        }
        hub.disconnect(a.peer.id);
        assert_eq!(hub.memory().dedupe_entries, 8);
        let mut b = hub.register("b".into());
        hub.join(b.peer.id, "r".into(), None);
        for id in 1..=8 {
            hub.publish(b.peer.id, "r".into(), id, serde_json::json!(id));
        }
        // 16 > 10: the detached session goes, with its 8 ids.
        assert_eq!(hub.memory().dedupe_entries, 8);
        let key = SessionId::parse(&first).unwrap();
        assert!(!hub.lock().sessions.contains_key(&key));
        // An attached session alone may pass the budget; it is not forgotten under its user.
        for id in 9..=13 {
            hub.publish(b.peer.id, "r".into(), id, serde_json::json!(id));
        }
        assert_eq!(hub.memory().dedupe_entries, 13);
        hub.publish(b.peer.id, "r".into(), 13, serde_json::json!(13));
        let got = drain_reg(&hub, &mut b);
        assert!(got.contains(&ServerMsg::Ack {
            id: 13,
            offset: 21,
            duplicate: true
        }));
    }

    fn rooms_msgs(msgs: &[ServerMsg]) -> Vec<&Vec<RoomInfo>> {
        msgs.iter()
            .filter_map(|m| match m {
                ServerMsg::Rooms { rooms } => Some(rooms),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn room_list_pushes_wait_for_the_interval_and_the_latest_wins() {
        // An hour: however slow the machine, the joins below fall inside one interval.
        let hour = Duration::from_secs(3600);
        let hub = hub(Config::default().rooms_push_interval(hour));
        let mut watcher = hub.register("w".into());
        // The first change is pushed at once.
        let mut others = Vec::new();
        let joiner = hub.register("j0".into());
        hub.join(joiner.peer.id, "a".into(), None);
        others.push(joiner);
        assert_eq!(rooms_msgs(&drain_reg(&hub, &mut watcher)).len(), 1);
        // Changes within the interval wait, then leave as one push of the latest list.
        for i in 1..=5 {
            let j = hub.register(format!("j{i}"));
            hub.join(j.peer.id, format!("b{i}"), None);
            others.push(j);
        }
        assert_eq!(rooms_msgs(&drain_reg(&hub, &mut watcher)).len(), 0);
        hub.tick_rooms_at(Instant::now() + hour);
        let got = drain_reg(&hub, &mut watcher);
        let lists = rooms_msgs(&got);
        assert_eq!(lists.len(), 1, "{got:?}");
        assert_eq!(lists[0].len(), 6);
        // Nothing changed: the tick pushes nothing.
        hub.tick_rooms_at(Instant::now() + 3 * hour);
        assert!(drain_reg(&hub, &mut watcher).is_empty());
        // A change whose push waits: `list_rooms` still answers with the current list.
        let j = hub.register("j6".into());
        hub.join(j.peer.id, "c".into(), None);
        others.push(j);
        hub.list_rooms(watcher.peer.id);
        let got = drain_reg(&hub, &mut watcher);
        assert_eq!(rooms_msgs(&got).len(), 1, "{got:?}");
        assert_eq!(rooms_msgs(&got)[0].len(), 7);
    }

    #[test]
    fn list_rooms_spam_holds_one_snapshot_among_ten_thousand_rooms() {
        // 100 rooms per connection: the per-connection room cap is not what is tested.
        let hub = hub(Config::default().max_rooms_per_conn(100));
        let mut members = Vec::new();
        for c in 0..100 {
            let mut m = hub.register(format!("m{c}"));
            for r in 0..100 {
                hub.join(m.peer.id, format!("room-{c:03}-{r:03}"), None);
            }
            drain_reg(&hub, &mut m);
            members.push(m);
        }
        hub.tick_rooms_at(Instant::now() + Duration::from_secs(2));
        let mut spammer = hub.register("spam".into());
        let encodes = hub.lock().rooms_encodes;
        for _ in 0..10_000 {
            hub.list_rooms(spammer.peer.id);
        }
        assert_eq!(
            hub.lock().rooms_encodes,
            encodes,
            "encoded once per change, not per ask"
        );
        let memory = hub.memory();
        eprintln!("hub list_rooms spam (10 000 rooms): {memory:?}");
        assert_eq!(memory.rooms_held, 10_000);
        let list = memory.room_list_bytes;
        assert!(list > 300_000, "{memory:?}");
        // Every connection holds at most the one shared snapshot, never a copy per request.
        assert!(memory.queued_items <= 101, "{memory:?}");
        // Snapshots only: held once by the hub, none by the queues.
        assert_eq!(memory.queued_bytes, 0, "{memory:?}");
        assert!(spammer.peer.kick().is_none(), "not a slow consumer");
        let got = drain_reg(&hub, &mut spammer);
        assert_eq!(rooms_msgs(&got).len(), 1);
        assert_eq!(rooms_msgs(&got)[0].len(), 10_000);
        for m in &mut members {
            drain_reg(&hub, m);
        }
        assert_eq!(hub.memory().queued_items, 0);
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
        hub.hello(a.peer.id, None, None);
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
        hub.hello(a2.peer.id, Some(session.clone()), None);
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
        let hour = Duration::from_secs(3600);
        let hub = hub(Config::default()
            .queue_capacity(4)
            .rooms_push_interval(hour));
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
        // The room list waits for the push interval, then goes out once, with the latest state.
        hub.tick_rooms_at(Instant::now() + hour);
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
        hub.hello(a.peer.id, None, None);
        let ServerMsg::Welcome { session, .. } = drain_reg(&hub, &mut a).remove(0) else {
            panic!()
        };
        hub.disconnect(a.peer.id);
        std::thread::sleep(Duration::from_millis(2));
        hub.sweep();
        let mut b = hub.register("a".into());
        hub.hello(b.peer.id, Some(session), None);
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
