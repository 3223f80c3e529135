//! The memory engine: rooms and sessions in this process, bounded whatever clients do.
//!
//! History is bounded by count, age and bytes per room and by bytes across rooms (a global
//! FIFO in publish order makes the global eviction O(evicted)); sessions by count and TTL
//! (detach-order queues, empty sessions evicted first) and their dedupe ids by a window per
//! session and a budget across sessions. A restart forgets all of it.
//!
//! The durable engine keeps these tables as its cache and asks for a [`Journal`] of what the
//! bounds forgot, to delete the same rows on disk.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use protocol::{MsgId, Offset, Since};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Bounds, Engine, Publish, Published, Recovery, RoomName, StorageError, Stored};

mod history;
mod sessions;

#[cfg(test)]
pub(crate) use history::Hist;
pub(crate) use history::{Ledger, Room};
pub(crate) use sessions::{Detached, Session, SessionId};

/// Rate-limits the warnings of one limit to one per second, counting what was not logged.
#[derive(Debug, Default)]
pub(crate) struct LimitLog {
    last: Option<Instant>,
    quiet: u64,
}

impl LimitLog {
    /// The number of hits since the last warning, if one should be logged now.
    pub(crate) fn hit(&mut self, now: Instant) -> Option<u64> {
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

/// The limit warnings, each rate-limited on its own.
#[derive(Debug, Default)]
struct LimitLogs {
    history_room: LimitLog,
    history_total: LimitLog,
    sessions: LimitLog,
    dedupe: LimitLog,
}

/// Something the bounds forgot, for a store that mirrors these tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Forget {
    /// `room`'s history up to and including `through`.
    History { room: RoomName, through: Offset },
    /// The room, its epoch and all its history.
    Room(RoomName),
    /// A session that had dedupe state, with all of it.
    Session(SessionId),
    /// One publish id of a session's dedupe window.
    Dedupe(SessionId, MsgId),
}

/// What the bounds forgot since the last [`Journal::take`]; records nothing unless enabled.
#[derive(Debug, Default)]
pub(crate) struct Journal(Option<Vec<Forget>>);

impl Journal {
    pub(crate) fn note(&mut self, forget: Forget) {
        if let Some(list) = &mut self.0 {
            list.push(forget);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(Vec::is_empty)
    }

    pub(crate) fn take(&mut self) -> Vec<Forget> {
        self.0.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

/// Rooms and sessions in memory.
#[derive(Debug)]
pub(crate) struct MemoryEngine {
    pub(crate) bounds: Bounds,
    pub(crate) rooms: BTreeMap<RoomName, Room>,
    pub(crate) history: Ledger,
    pub(crate) sessions: HashMap<SessionId, Session>,
    pub(crate) detached: Detached,
    pub(crate) sessions_peak: usize,
    /// Publish ids remembered across sessions.
    pub(crate) dedupe_entries: usize,
    logs: LimitLogs,
    pub(crate) journal: Journal,
}

impl MemoryEngine {
    pub(crate) fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            rooms: BTreeMap::new(),
            history: Ledger::default(),
            sessions: HashMap::new(),
            detached: Detached::default(),
            sessions_peak: 0,
            dedupe_entries: 0,
            logs: LimitLogs::default(),
            journal: Journal::default(),
        }
    }

    /// Notes what the bounds forget from now on, for [`Journal::take`].
    pub(crate) fn keep_journal(&mut self) {
        self.journal.0.get_or_insert_default();
    }

    /// Applies the dedupe budget, after sessions were read back from a store.
    pub(crate) fn bound(&mut self, now: Instant) {
        self.bound_dedupe(now);
    }

    /// The offset a session's earlier publish of `id` was given.
    pub(crate) fn acked(&self, session: SessionId, id: MsgId) -> Option<Offset> {
        self.sessions.get(&session).and_then(|s| s.acked(id))
    }

    /// Adds a room as it is made.
    pub(crate) fn insert_room(&mut self, name: RoomName, epoch: String, offset: Offset) {
        self.rooms.insert(name, Room::new(epoch, offset));
    }

    /// Adds a room as a store remembers it: kept for a session TTL even with no member and
    /// no history, the time its clients have to come back.
    pub(crate) fn restore_room(
        &mut self,
        name: RoomName,
        epoch: String,
        offset: Offset,
        now: Instant,
    ) {
        let mut room = Room::new(epoch, offset);
        room.kept_until = now.checked_add(self.bounds.session_ttl);
        self.rooms.insert(name, room);
    }

    /// Records the publish of `id` at `offset`: history, the room's offset, the session's
    /// dedupe entry, and every bound.
    pub(crate) fn apply_publish(
        &mut self,
        room: &RoomName,
        session: SessionId,
        id: MsgId,
        offset: Offset,
        frame: Utf8Bytes,
        now: Instant,
    ) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.offset = r.offset.max(offset);
        }
        self.record(room, offset, frame, now);
        self.remember(session, id, offset, now);
        self.bound_dedupe(now);
    }

    /// Adds `id` to a session's dedupe window, the session made detached if unknown (a
    /// store's sessions come back with no connection).
    pub(crate) fn remember(&mut self, session: SessionId, id: MsgId, offset: Offset, now: Instant) {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.sessions.entry(session) {
            // Read back from a store: no connection uses it, and its TTL starts now.
            entry.insert(Session {
                detached_at: Some(now),
                ..Session::default()
            });
            self.sessions_peak = self.sessions_peak.max(self.sessions.len());
        }
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let was_empty = s.dedupe.is_none();
        let dedupe = s.dedupe.get_or_insert_default();
        if dedupe.acked.insert(id, offset).is_none() {
            dedupe.ids.push_back(id);
            self.dedupe_entries += 1;
        }
        while dedupe.ids.len() > self.bounds.dedupe_ids {
            if let Some(old) = dedupe.ids.pop_front() {
                dedupe.acked.remove(&old);
                self.dedupe_entries = self.dedupe_entries.saturating_sub(1);
                self.journal.note(Forget::Dedupe(session, old));
            }
        }
        // A detached session that gains dedupe state moves to the queue it now belongs in.
        if was_empty
            && s.attached == 0
            && let Some(at) = s.detached_at
        {
            self.detached.full.push_back((session, at));
        }
    }
}

impl Engine for MemoryEngine {
    fn rooms(&self) -> Vec<RoomName> {
        self.rooms.keys().cloned().collect()
    }

    fn join(
        &mut self,
        room: &RoomName,
        since: Option<&Since>,
        now: Instant,
    ) -> Result<Recovery, StorageError> {
        let r = self
            .rooms
            .entry(room.clone())
            .or_insert_with(|| Room::new(crate::random_hex(8), 0));
        r.prune(
            room,
            now,
            &self.bounds,
            &mut self.history,
            &mut self.journal,
        );
        Ok(r.recover(since))
    }

    fn publish(&mut self, p: Publish<'_>, now: Instant) -> Result<Published, StorageError> {
        if let Some(offset) = self.acked(p.session, p.id) {
            return Ok(Published::Duplicate { offset });
        }
        let Some(r) = self.rooms.get(p.room) else {
            return Ok(Published::NoRoom);
        };
        let offset = r.offset + 1;
        let frame = (p.frame)(offset);
        self.apply_publish(p.room, p.session, p.id, offset, frame.clone(), now);
        Ok(Published::New { offset, frame })
    }

    fn history_empty(&self, room: &str) -> bool {
        self.rooms.get(room).is_none_or(|r| r.history.is_empty())
    }

    fn last_published(&self, room: &str) -> Option<Instant> {
        self.rooms.get(room)?.history.back().map(|h| h.at)
    }

    fn drop_room(&mut self, room: &RoomName) {
        if let Some(r) = self.rooms.remove(room) {
            for hist in &r.history {
                self.history.forget(hist);
            }
            self.journal.note(Forget::Room(room.clone()));
        }
    }

    fn new_session(&mut self, now: Instant) -> SessionId {
        self.create_session(now)
    }

    fn has_session(&self, session: SessionId) -> Result<bool, StorageError> {
        Ok(self.sessions.contains_key(&session))
    }

    fn session_unused(&self, session: SessionId) -> bool {
        self.sessions
            .get(&session)
            .is_some_and(|s| s.attached <= 1 && s.dedupe.is_none())
    }

    fn remove_session(&mut self, session: SessionId) {
        self.forget_session(&session);
    }

    fn attach(&mut self, session: SessionId) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.attached += 1;
            s.detached_at = None;
        }
    }

    fn detach(&mut self, session: SessionId, now: Instant) {
        self.detach_session(session, now);
    }

    fn sweep(&mut self, now: Instant, occupied: &dyn Fn(&RoomName) -> bool) -> Vec<RoomName> {
        self.expire_sessions(now);
        let Self {
            rooms,
            history,
            bounds,
            journal,
            ..
        } = self;
        let mut dropped = Vec::new();
        rooms.retain(|name, r| {
            r.prune(name, now, bounds, history, journal);
            let keep = !r.history.is_empty()
                || occupied(name)
                || r.kept_until.is_some_and(|until| now < until);
            if !keep {
                journal.note(Forget::Room(name.clone()));
                dropped.push(name.clone());
            }
            keep
        });
        history.compact(rooms);
        dropped
    }

    fn stored(&self) -> Stored {
        Stored {
            history_bytes: self.history.bytes,
            history_bytes_peak: self.history.peak_bytes,
            history_entries: self.history.entries,
            sessions: self.sessions.len(),
            sessions_peak: self.sessions_peak,
            dedupe_entries: self.dedupe_entries,
        }
    }

    #[cfg(test)]
    fn tables(&self) -> &MemoryEngine {
        self
    }
}
