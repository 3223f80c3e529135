//! The hub: connections, rooms and their members, presence and the room list; history,
//! epochs and sessions sit in a storage engine (`engine/`) that the hub drives.
//!
//! All state sits behind one mutex that is never held across an `.await`. Frames to peers go
//! through each peer's bounded queue with `try_send`, so a slow peer can never stall a room:
//! when its queue is full it is evicted and told to close with 1013 (the slow-consumer rule).
//! Queues are bounded in bytes too, each and all together: the per-connection budget is the
//! same rule, and above the server-wide one the connections with the most queued are closed
//! with 1013 first (see [`State::make_room`]).
//!
//! Memory is bounded whatever clients do: history and sessions by the engine's bounds (see
//! `engine/memory.rs`); the room list by one shared encoding per push interval, and at most
//! one queued per connection. [`Hub::memory`] reports what is accounted, for
//! `GET /api/health`.
//!
//! Presence and the room list stay here, not in the engine: they describe this process's
//! connections, which a restart ends anyway. Rules that need time take `now`, so tests need
//! no sleeps; the hub's tests run against every engine.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use protocol::{ErrorCode, MsgId, RoomInfo, ServerMsg, Since, close};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::{debug, warn};

use crate::Config;
use crate::engine::{
    self, Batch, Engine, LimitLog, Publish, Published, RoomName, SessionId, StorageError,
};
use crate::queue::{self, QueuedBytes, Weigh};

/// A connection's id, unique within one server run.
pub(crate) type ConnId = u64;

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

impl Weigh for Outbound {
    /// The frames it holds. Snapshots hold none of their own: the hub keeps one of each,
    /// counted in `room_list_bytes`, however many queues name it.
    fn weight(&self) -> usize {
        match self {
            Outbound::One(frame) => frame.len(),
            Outbound::Many(frames) => frames.iter().map(|f| f.len()).sum(),
            Outbound::Rooms | Outbound::Presence(_) => 0,
        }
    }
}

/// Why a connection is closed as a slow consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    /// Its queue holds `queue_capacity` items.
    Items,
    /// Its queue would pass `queue_conn_bytes`.
    ConnBytes,
    /// All queues would pass `queue_total_bytes`, and it holds the most.
    TotalBytes,
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

    /// Bytes queued for this connection now.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.tx.queued_bytes()
    }

    /// Whether more than half its queue byte budget waits: its reader then waits too.
    pub(crate) fn backlogged(&self) -> bool {
        self.tx.backlogged()
    }

    /// Completes when its writer takes the queue down to half its byte budget (see
    /// [`queue::Sender::drained`]).
    pub(crate) async fn drained(&self) {
        self.tx.drained().await;
    }

    /// Queues `out`; why not when the peer is too slow.
    fn offer(&self, out: Outbound) -> Result<(), Overflow> {
        match self.tx.try_send(out) {
            Ok(()) => Ok(()),
            Err(queue::TrySendError::Full) => Err(Overflow::Items),
            Err(queue::TrySendError::OverBudget) => Err(Overflow::ConnBytes),
            // The connection task is already gone; its disconnect cleans up.
            Err(queue::TrySendError::Closed) => Ok(()),
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
    /// Bytes of the frames those items hold, counted once per queue a frame waits in (what
    /// `queue_total_bytes` bounds; snapshots are in `room_list_bytes`).
    pub(crate) queued_bytes: usize,
    /// The most `queued_bytes` ever was in this server run.
    pub(crate) queued_bytes_peak: usize,
    /// The most bytes one connection's queue holds now (what `queue_conn_bytes` bounds).
    pub(crate) queued_bytes_conn_max: usize,
}

#[derive(Debug, Clone)]
struct Limits {
    queue_capacity: usize,
    queue_conn_bytes: usize,
    max_rooms_per_conn: usize,
    max_rooms: usize,
    /// With `session_ttl`, sets how often the sweep runs.
    history_max_age: Duration,
    session_ttl: Duration,
    rooms_push_interval: Duration,
    /// What `welcome` advertises.
    advertised: protocol::Limits,
}

/// A room as the hub sees it: its members. The engine holds its epoch and history, under
/// the same name.
#[derive(Debug, Default)]
struct Room {
    members: BTreeSet<ConnId>,
    /// A shared engine's room: the epoch and the last offset delivered to the members here.
    /// Publishes reach this process in any order (its own at once, others' through pub/sub);
    /// they are delivered in offset order, a gap read back from the engine.
    told: Option<(String, protocol::Offset)>,
}

/// A publish as the hub hands it to the engine, read from the tables.
#[derive(Debug)]
struct Outgoing {
    name: RoomName,
    session: SessionId,
    from: String,
    publisher: Option<String>,
}

impl Outgoing {
    /// The `message` frame at `offset`.
    fn frame(&self, offset: protocol::Offset, data: protocol::Data, msg_id: MsgId) -> Utf8Bytes {
        // The publish id goes with a publisher id only: alone it names nothing.
        let id_on_wire = self.publisher.is_some().then_some(msg_id);
        encode(&ServerMsg::Message {
            room: self.name.to_string(),
            offset,
            from: self.from.clone(),
            data,
            ts: crate::unix_ms(),
            publisher: self.publisher.clone(),
            id: id_on_wire,
        })
    }
}

#[derive(Debug)]
struct State {
    conns: HashMap<ConnId, ConnEntry>,
    /// Every room the engine holds, and only those.
    rooms: BTreeMap<RoomName, Room>,
    engine: Box<dyn Engine>,
    /// Frames held back until the engine's write with this sequence number is durable, in
    /// order: nothing is told to anyone before what it depends on is on disk.
    held: VecDeque<(u64, ConnId, Outbound)>,
    next_id: ConnId,
    /// Peers whose queue overflowed during the current operation.
    evict: Vec<(ConnId, Overflow)>,
    /// Bytes queued across connections.
    queued: Arc<QueuedBytes>,
    /// The budget of `queued`, at least a connection's.
    queue_total_bytes: usize,
    /// Warnings of the queue limits (items, bytes per connection, bytes in all), rate-limited.
    queue_items_log: LimitLog,
    queue_conn_log: LimitLog,
    queue_total_log: LimitLog,
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
    /// Warnings of failed engine writes, rate-limited.
    storage_log: LimitLog,
    /// Warnings of the server room cap forgetting an idle room, rate-limited.
    room_cap_log: LimitLog,
    /// The latest presence of each room, read for [`Outbound::Presence`].
    presence_frames: HashMap<RoomName, Utf8Bytes>,
    /// Set by [`Hub::shutdown`]: connections registered from now on are asked to end.
    shutting_down: bool,
}

/// The rooms hub. Cloning shares it.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    state: Arc<Mutex<State>>,
    /// Bytes queued across connections, shared by every queue (and `State`).
    queued: Arc<QueuedBytes>,
    limits: Limits,
    /// Wakes [`Hub::sync_until`] when the engine owes its store writes.
    writes: Arc<Notify>,
    /// The engine's calls wait for another process (Redis) under the lock: every operation
    /// runs as blocking, so that a worker thread waiting for the lock hands its other tasks
    /// (the connections' writers) to another thread instead of stalling them.
    blocks: bool,
    /// A shared engine's publish, run outside the lock.
    publisher: Option<Arc<engine::redis::Publisher>>,
    /// Tests: commit inside each operation instead of in the syncer task.
    #[cfg(test)]
    inline_sync: bool,
}

/// How often the hub sweeps: a quarter of the shorter TTL, between 20 ms and 5 s.
pub(crate) fn sweep_period(session_ttl: Duration, history_max_age: Duration) -> Duration {
    session_ttl
        .min(history_max_age)
        .checked_div(4)
        .unwrap_or_default()
        .clamp(Duration::from_millis(20), Duration::from_secs(5))
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
        if let Some(seq) = self.engine.unsynced() {
            self.held.push_back((seq, id, out));
            return;
        }
        self.offer(id, out);
    }

    fn offer(&mut self, id: ConnId, out: Outbound) {
        let Some(entry) = self.conns.get(&id) else {
            return;
        };
        let weight = out.weight();
        // Its own budget first: no other connection is closed for an item that would not fit.
        if !entry.peer.tx.fits(weight) {
            self.evict.push((id, Overflow::ConnBytes));
            return;
        }
        if weight > 0 && !self.make_room(id, weight, matches!(out, Outbound::Many(_))) {
            self.evict.push((id, Overflow::TotalBytes));
            return;
        }
        if let Some(entry) = self.conns.get(&id)
            && let Err(overflow) = entry.peer.offer(out)
        {
            self.evict.push((id, overflow));
        }
    }

    /// The server-wide queue budget before `id` queues `weight` more bytes: while they would
    /// not fit, the connection with the most bytes queued is closed (its queue freed at once).
    /// `id` counts with the item, unless the item is its join's replay (`replay`): a
    /// connection is not closed only for its own replay while another holds bytes. False when
    /// `id` is the one to close. Ends: each round frees a queue that held bytes.
    fn make_room(&mut self, id: ConnId, weight: usize, replay: bool) -> bool {
        loop {
            if self.queued.now().saturating_add(weight) <= self.queue_total_bytes {
                return true;
            }
            let biggest = self
                .conns
                .iter()
                .map(|(conn, entry)| {
                    let mut bytes = entry.peer.tx.queued_bytes();
                    if *conn == id && !replay {
                        bytes += weight;
                    }
                    (bytes, *conn)
                })
                .max();
            match biggest {
                Some((bytes, victim)) if victim != id && bytes > 0 => {
                    if let Some(entry) = self.conns.get(&victim) {
                        entry.peer.tx.clear();
                    }
                    self.evict.push((victim, Overflow::TotalBytes));
                }
                _ => return false,
            }
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
        self.push_presence_if(room, false);
    }

    /// Pushes `room`'s presence to its members here; with `if_changed`, only when it differs
    /// from the last one pushed (a shared engine's presence changes on other instances too).
    fn push_presence_if(&mut self, room: &RoomName, if_changed: bool) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let members = match self.engine.presence(room) {
            Some(names) => names,
            None => {
                let mut members: Vec<String> = r
                    .members
                    .iter()
                    .filter_map(|id| self.conns.get(id).map(|c| c.name.clone()))
                    .collect();
                members.sort();
                members
            }
        };
        let frame = encode(&ServerMsg::Presence {
            room: room.to_string(),
            members,
        });
        if if_changed && self.presence_frames.get(room) == Some(&frame) {
            return;
        }
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
            self.engine.member_left(room, id);
            if let Some(r) = self.rooms.get_mut(room) {
                r.members.remove(&id);
                if r.members.is_empty() && self.engine.history_empty(room) {
                    self.drop_room(room);
                } else {
                    self.push_presence(room);
                }
            }
        }
        if !entry.rooms.is_empty() {
            self.rooms_changed(now, limits);
        }
        self.engine.detach(entry.session, now);
    }

    /// The outcome of a batch's commit: its frames go out, or, when the disk failed, every
    /// connection is closed with 1013 (the writes stay owed and are retried; the clients
    /// resend what was not acked).
    fn batch_done(&mut self, batch: Batch, result: Result<(), StorageError>, now: Instant) {
        let upto = batch.upto;
        self.engine.batch_done(batch, result.clone());
        match result {
            Ok(()) => {
                while self.held.front().is_some_and(|(seq, _, _)| *seq <= upto) {
                    if let Some((_, id, out)) = self.held.pop_front() {
                        self.offer(id, out);
                    }
                }
            }
            Err(err) => {
                if let Some(quiet) = self.storage_log.hit(now) {
                    warn!(hits = quiet, "{err}: closing every connection with 1013");
                }
                self.held.clear();
                for entry in self.conns.values() {
                    entry
                        .peer
                        .set_kick(Kick::Close(close::TRY_AGAIN_LATER), true);
                }
            }
        }
    }

    /// Commits every write owed, here and now: for tests, which have no syncer task.
    #[cfg(test)]
    fn sync_inline(&mut self, now: Instant) {
        while let Some(batch) = self.engine.take_batch() {
            let result = batch.commit();
            let failed = result.is_err();
            self.batch_done(batch, result, now);
            if failed {
                return;
            }
        }
    }

    /// A shared engine: delivers to `room`'s members here whatever it published after what
    /// they were told, up to `upto`, in order. In another epoch (the store lost the room)
    /// the members are closed with 1013 and rejoin in the new one.
    fn catch_up(&mut self, room: &RoomName, epoch: &str, upto: protocol::Offset, now: Instant) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let told = match &r.told {
            Some((e, told)) if e == epoch => *told,
            Some(_) => {
                warn!(room = %room, "the room has a new epoch in the store: closing its members with 1013");
                for id in &r.members {
                    if let Some(entry) = self.conns.get(id) {
                        entry
                            .peer
                            .set_kick(Kick::Close(close::TRY_AGAIN_LATER), true);
                    }
                }
                self.set_told(room, epoch, upto);
                return;
            }
            None => {
                self.set_told(room, epoch, upto);
                return;
            }
        };
        if told >= upto {
            return;
        }
        match self.engine.range(room, told, upto) {
            Ok(frames) => {
                for frame in frames {
                    self.deliver_to_members(room, &frame);
                }
                self.set_told(room, epoch, upto);
            }
            Err(err) => {
                // The members cannot be told what they missed: they rejoin and replay it.
                if let Some(quiet) = self.storage_log.hit(now) {
                    warn!(hits = quiet, "{err}: closing the room's members with 1013");
                }
                let members: Vec<ConnId> = r.members.iter().copied().collect();
                for id in members {
                    if let Some(entry) = self.conns.get(&id) {
                        entry
                            .peer
                            .set_kick(Kick::Close(close::TRY_AGAIN_LATER), true);
                    }
                }
            }
        }
    }

    fn set_told(&mut self, room: &RoomName, epoch: &str, offset: protocol::Offset) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.told = Some((epoch.to_string(), offset));
        }
    }

    fn deliver_to_members(&mut self, room: &RoomName, frame: &Utf8Bytes) {
        let members: Vec<ConnId> = self
            .rooms
            .get(room)
            .map(|r| r.members.iter().copied().collect())
            .unwrap_or_default();
        for member in members {
            self.deliver(member, Outbound::One(frame.clone()));
        }
    }

    /// A shared engine's publish at `offset` of `room` (in `epoch`, or the one the members
    /// were told when it is this process's own): delivered once, after every offset before it.
    fn fan_out(
        &mut self,
        room: &RoomName,
        epoch: Option<&str>,
        offset: protocol::Offset,
        frame: &Utf8Bytes,
        now: Instant,
    ) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let Some(epoch) = epoch
            .map(str::to_string)
            .or_else(|| r.told.as_ref().map(|(e, _)| e.clone()))
        else {
            return;
        };
        if let Some((e, told)) = &r.told
            && *e == epoch
            && *told >= offset
        {
            return;
        }
        self.catch_up(room, &epoch, offset.saturating_sub(1), now);
        let caught_up = self
            .rooms
            .get(room)
            .and_then(|r| r.told.as_ref())
            .is_some_and(|(e, told)| *e == epoch && *told + 1 == offset);
        if caught_up {
            self.deliver_to_members(room, frame);
            self.set_told(room, &epoch, offset);
        }
    }

    /// What a publish by `id` to `room` needs from the tables, if `id` is a member (else it
    /// is told so).
    fn outgoing(&mut self, id: ConnId, room: &str, msg_id: MsgId) -> Option<Outgoing> {
        let entry = self.conns.get(&id)?;
        if !entry.rooms.iter().any(|r| **r == *room) {
            let msg = "join the room before publishing to it";
            self.reply(id, &error_msg(ErrorCode::NotJoined, msg, Some(msg_id)));
            return None;
        }
        let from = entry.name.clone();
        let publisher = entry.publisher.as_deref().map(str::to_string);
        let session = entry.session;
        // The table's name for the room, shared by the engine's tables.
        let name = self.rooms.get_key_value(room).map(|(n, _)| n.clone())?;
        Some(Outgoing {
            name,
            session,
            from,
            publisher,
        })
    }

    /// The engine's answer to a publish: the ack (or a duplicate's), the broadcast, or the
    /// connection closed with 1013 when the store failed.
    fn published(
        &mut self,
        id: ConnId,
        msg_id: MsgId,
        name: &RoomName,
        result: Result<Published, StorageError>,
        now: Instant,
    ) {
        let (offset, frame) = match result {
            Ok(Published::New { offset, frame }) => (offset, frame),
            Ok(Published::Duplicate { offset }) => {
                debug!(
                    conn = id,
                    msg_id, offset, "duplicate publish acked without broadcast"
                );
                self.reply(
                    id,
                    &ServerMsg::Ack {
                        id: msg_id,
                        offset,
                        duplicate: true,
                    },
                );
                return;
            }
            Ok(Published::NoRoom) => return,
            Err(err) => {
                self.storage_failed(id, &err, now);
                return;
            }
        };
        tracing::trace!(conn = id, msg_id, offset, "published");
        self.reply(
            id,
            &ServerMsg::Ack {
                id: msg_id,
                offset,
                duplicate: false,
            },
        );
        if self.engine.shared() {
            self.fan_out(name, None, offset, &frame, now);
        } else {
            self.deliver_to_members(name, &frame);
        }
    }

    /// Drops `name` from the room table and from the engine, with its history.
    fn drop_room(&mut self, name: &RoomName) {
        self.rooms.remove(name);
        self.engine.drop_room(name);
    }

    /// A failed engine write: the connection is closed with 1013 without an answer, so that
    /// the client sends again (a publish keeps its id) once the store works again.
    fn storage_failed(&mut self, id: ConnId, err: &StorageError, now: Instant) {
        if let Some(quiet) = self.storage_log.hit(now) {
            warn!(conn = id, hits = quiet, "{err}: closing with 1013");
        }
        if let Some(entry) = self.conns.get(&id) {
            entry
                .peer
                .set_kick(Kick::Close(close::TRY_AGAIN_LATER), true);
        }
    }

    /// Evicts every peer whose queue overflowed, which may overflow others in turn.
    fn flush_evictions(&mut self, now: Instant, limits: &Limits) {
        // Each round removes a connection, so this ends after at most `conns.len()` rounds.
        while let Some((id, overflow)) = self.evict.pop() {
            let Some(entry) = self.conns.get(&id) else {
                continue;
            };
            // Closed without writing its queue: what it held is freed now.
            entry.peer.tx.clear();
            entry
                .peer
                .set_kick(Kick::Close(close::TRY_AGAIN_LATER), true);
            match overflow {
                Overflow::Items => {
                    if let Some(quiet) = self.queue_items_log.hit(now) {
                        warn!(
                            conn = id,
                            max = limits.queue_capacity,
                            hits = quiet,
                            "slow consumer: outbound queue full, closing with 1013"
                        );
                    }
                }
                Overflow::ConnBytes => {
                    if let Some(quiet) = self.queue_conn_log.hit(now) {
                        warn!(
                            conn = id,
                            max = limits.queue_conn_bytes,
                            hits = quiet,
                            "slow consumer: outbound queue byte budget reached, closing with 1013"
                        );
                    }
                }
                Overflow::TotalBytes => {
                    if let Some(quiet) = self.queue_total_log.hit(now) {
                        warn!(
                            conn = id,
                            max = self.queue_total_bytes,
                            hits = quiet,
                            "server-wide queue byte budget reached: the connection with the most queued closed with 1013"
                        );
                    }
                }
            }
            self.remove_conn(id, now, limits);
        }
    }

    fn memory(&self) -> Memory {
        let rooms_frame_len = self.rooms_frame.as_ref().map_or(0, |f| f.len());
        let (mut queued_items, mut queued_bytes_conn_max) = (0, 0);
        for entry in self.conns.values() {
            entry.peer.tx.inspect(|_| queued_items += 1);
            queued_bytes_conn_max = queued_bytes_conn_max.max(entry.peer.tx.queued_bytes());
        }
        let stored = self.engine.stored();
        Memory {
            history_bytes: stored.history_bytes,
            history_bytes_peak: stored.history_bytes_peak,
            history_entries: stored.history_entries,
            rooms_held: self.rooms.len(),
            sessions: stored.sessions,
            sessions_peak: stored.sessions_peak,
            dedupe_entries: stored.dedupe_entries,
            room_list_bytes: rooms_frame_len,
            queued_items: queued_items + self.held.len(),
            queued_bytes: self.queued.now(),
            queued_bytes_peak: self.queued.peak(),
            queued_bytes_conn_max,
        }
    }
}

impl Hub {
    /// A hub on the engine `config` names, with the rooms that engine already holds.
    pub(crate) fn new(config: &Config) -> Result<Self, StorageError> {
        Ok(Self::with_engine(config, engine::open(config)?))
    }

    pub(crate) fn with_engine(config: &Config, engine: Box<dyn Engine>) -> Self {
        let rooms = engine
            .rooms()
            .into_iter()
            .map(|name| (name, Room::default()))
            .collect();
        let blocks = engine.shared();
        let publisher = engine.publisher();
        let queued = Arc::new(QueuedBytes::default());
        let state = State {
            conns: HashMap::new(),
            rooms,
            engine,
            held: VecDeque::new(),
            next_id: 0,
            evict: Vec::new(),
            queued: Arc::clone(&queued),
            queue_total_bytes: config.queue_total_bytes.max(config.queue_conn_bytes),
            queue_items_log: LimitLog::default(),
            queue_conn_log: LimitLog::default(),
            queue_total_log: LimitLog::default(),
            rooms_frame: None,
            rooms_fresh: false,
            rooms_dirty: false,
            rooms_encodes: 0,
            rooms_pushed_at: None,
            storage_log: LimitLog::default(),
            room_cap_log: LimitLog::default(),
            presence_frames: HashMap::new(),
            shutting_down: false,
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            queued,
            writes: Arc::new(Notify::new()),
            blocks,
            publisher,
            #[cfg(test)]
            inline_sync: false,
            limits: Limits {
                queue_capacity: config.queue_capacity.max(1),
                queue_conn_bytes: config.queue_conn_bytes,
                max_rooms_per_conn: config.max_rooms_per_conn,
                max_rooms: config.max_rooms,
                history_max_age: config.history_max_age,
                session_ttl: config.session_ttl,
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

    /// Tests: every operation commits what it owes before it returns.
    #[cfg(test)]
    fn inline_sync(mut self) -> Self {
        self.inline_sync = true;
        self
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
        if self.blocks {
            engine::blocking(|| self.locked_at(now, f))
        } else {
            self.locked_at(now, f)
        }
    }

    fn locked_at<R>(&self, now: Instant, f: impl FnOnce(&mut State, &Limits, Instant) -> R) -> R {
        let mut state = self.lock();
        let out = f(&mut state, &self.limits, now);
        #[cfg(test)]
        if self.inline_sync {
            state.sync_inline(now);
        }
        if state.engine.has_writes() {
            self.writes.notify_one();
        }
        state.flush_evictions(now, &self.limits);
        out
    }

    /// Commits what the engine owes its store, batch after batch, until `shutdown` turns
    /// true, then commits what is left. Frames held for a batch go out once it is durable.
    pub(crate) async fn sync_until(self, mut shutdown: watch::Receiver<bool>) {
        // After a failed commit, wait before trying again, doubling up to a second.
        let mut pause = Duration::from_millis(10);
        loop {
            let stop = tokio::select! {
                _ = self.writes.notified() => false,
                _ = crate::until_true(&mut shutdown) => true,
            };
            loop {
                // Its own statement: the lock is released before the commit.
                let batch = self.lock().engine.take_batch();
                let Some(batch) = batch else { break };
                let result = engine::blocking(|| batch.commit());
                let failed = result.is_err();
                self.with(|state, _, now| state.batch_done(batch, result, now));
                if failed {
                    if stop {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                } else {
                    pause = Duration::from_millis(10);
                }
            }
            if stop {
                return;
            }
        }
    }

    /// Whether an operation may wait for another process (a shared engine).
    pub(crate) fn blocks(&self) -> bool {
        self.blocks
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
        let (tx, rx) = queue::bounded(
            self.limits.queue_capacity,
            self.limits.queue_conn_bytes,
            Arc::clone(&self.queued),
            PeerState::default(),
        );
        self.with(|state, _, now| {
            state.next_id += 1;
            let id = state.next_id;
            let peer = Peer { id, tx };
            if state.shutting_down {
                peer.set_kick(Kick::Shutdown, false);
            }
            let session = state.engine.new_session(now);
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
            let wanted = wanted.as_deref().and_then(SessionId::parse);
            let known = match wanted {
                Some(token) if token != current => match state.engine.has_session(token) {
                    Ok(known) => known,
                    Err(err) => {
                        // Answering `resumed: false` would lose the session's dedupe state:
                        // the client asks again once the store answers.
                        state.storage_failed(id, &err, now);
                        return;
                    }
                },
                _ => false,
            };
            let resumed = match wanted {
                Some(token) if token == current => true,
                Some(token) if known => {
                    // Leave the current session: dropped at once if nothing was recorded in
                    // it, else detached so that its TTL and the cap apply to it.
                    if state.engine.session_unused(current) {
                        state.engine.remove_session(current);
                    } else {
                        state.engine.detach(current, now);
                    }
                    state.engine.attach(token);
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
                    .min_by_key(|(name, _)| state.engine.last_published(name))
                    .map(|(name, _)| name.clone());
                match idle {
                    Some(name) => {
                        if let Some(quiet) = state.room_cap_log.hit(now) {
                            warn!(
                                max = limits.max_rooms,
                                hits = quiet,
                                "server room cap reached: the longest-idle empty room forgotten"
                            );
                        }
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
            let recovery = match state.engine.join(&room, since.as_ref(), now) {
                Ok(recovery) => recovery,
                Err(err) => {
                    state.storage_failed(id, &err, now);
                    return;
                }
            };
            let joined = ServerMsg::Joined {
                room: room.to_string(),
                epoch: recovery.epoch.clone(),
                offset: recovery.offset,
                recovered: recovery.recovered,
                resume_after: recovery.resume_after,
            };
            state.rooms.entry(room.clone()).or_default();
            if state.engine.shared() {
                // What the members here were not told yet goes to them, not to this joiner,
                // whose replay ends at this offset.
                state.catch_up(&room, &recovery.epoch, recovery.offset, now);
            }
            let r = state.rooms.entry(room.clone()).or_default();
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
                if let Some(entry) = state.conns.get(&id) {
                    let name = entry.name.clone();
                    state.engine.member_joined(&room, id, &name);
                }
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
            if let Some(name) = &left {
                state.engine.member_left(name, id);
            }
            if let Some(name) = &left
                && let Some(r) = state.rooms.get_mut(name)
            {
                r.members.remove(&id);
                if r.members.is_empty() && state.engine.history_empty(name) {
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
        if let Some(publisher) = &self.publisher {
            // A shared engine's publish waits for Redis: outside the lock, so that the other
            // connections, the fan-in and presence go on meanwhile. This connection's next
            // frame waits (its reader is here), so its acks stay in order.
            let prepared = self.with(|state, _, _| state.outgoing(id, &room, msg_id));
            let Some(out) = prepared else { return };
            let marked = out.frame(engine::redis::OFFSET_MARK, data, msg_id);
            let result =
                engine::blocking(|| publisher.publish(&out.name, out.session, msg_id, &marked));
            self.with(|state, _, now| state.published(id, msg_id, &out.name, result, now));
            return;
        }
        self.with(|state, _, now| {
            let Some(out) = state.outgoing(id, &room, msg_id) else {
                return;
            };
            let mut data = Some(data);
            let mut frame = |offset| out.frame(offset, data.take().unwrap_or_default(), msg_id);
            let publish = Publish {
                room: &out.name,
                session: out.session,
                id: msg_id,
                frame: &mut frame,
            };
            let result = state.engine.publish(publish, now);
            state.published(id, msg_id, &out.name, result, now);
        });
    }

    /// A shared engine's publishes, from any instance, as its fan-out channel brought them,
    /// in order.
    pub(crate) fn fan_in(&self, outs: Vec<engine::redis::FannedOut>) {
        if outs.is_empty() {
            return;
        }
        self.with(|state, _, now| {
            for out in outs {
                let Some(name) = state
                    .rooms
                    .get_key_value(out.room.as_str())
                    .map(|(n, _)| n.clone())
                else {
                    continue;
                };
                state.fan_out(&name, Some(&out.epoch), out.offset, &out.frame, now);
            }
        });
    }

    /// A shared engine: `room`'s members changed on some instance; its presence goes to the
    /// members here if it changed.
    pub(crate) fn presence_changed(&self, room: &str) {
        self.with(|state, _, _| {
            let Some(name) = state.rooms.get_key_value(room).map(|(n, _)| n.clone()) else {
                return;
            };
            state.push_presence_if(&name, true);
        });
    }

    /// A shared engine: after the fan-out channel was (re)subscribed, delivers what every
    /// room here missed meanwhile.
    pub(crate) fn catch_up_all(&self) {
        self.with(|state, _, now| {
            let names: Vec<RoomName> = state.rooms.keys().cloned().collect();
            for name in names {
                match state.engine.head(&name) {
                    Ok(Some((epoch, offset))) => state.catch_up(&name, &epoch, offset, now),
                    Ok(None) => {}
                    Err(err) => {
                        warn!("{err}: room {name} not caught up");
                    }
                }
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
        self.with_at(now, |state, _, now| {
            let State { rooms, engine, .. } = &mut *state;
            let occupied = |name: &RoomName| rooms.get(name).is_some_and(|r| !r.members.is_empty());
            for name in engine.sweep(now, &occupied) {
                rooms.remove(&name);
            }
            let State {
                rooms,
                presence_frames,
                ..
            } = &mut *state;
            presence_frames
                .retain(|room, _| rooms.get(room).is_some_and(|r| !r.members.is_empty()));
            if state.engine.shared() {
                // Members of an instance whose heartbeat stopped leave the presence now.
                let occupied: Vec<RoomName> = state
                    .rooms
                    .iter()
                    .filter(|(_, r)| !r.members.is_empty())
                    .map(|(n, _)| n.clone())
                    .collect();
                for room in occupied {
                    state.push_presence_if(&room, true);
                }
            }
        });
    }

    /// Sweeps periodically until `shutdown` turns true.
    pub(crate) async fn sweep_until(self, mut shutdown: watch::Receiver<bool>) {
        let period = sweep_period(self.limits.session_ttl, self.limits.history_max_age);
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
mod tests;
