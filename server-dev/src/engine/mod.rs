//! Storage engines: where the hub keeps what outlives a connection.
//!
//! The hub (`hub.rs`) owns the rules that need connections: membership, presence, the room
//! list, who is told what. Everything else a room or a session is made of sits behind
//! [`Engine`]: a room's epoch, its next offset and its history; sessions and the publish ids
//! each remembers for deduplication; and the bounds on all of them (count, age and bytes per
//! room, bytes across rooms, session TTL and cap, the dedupe window and budget).
//!
//! Three engines:
//! - [`memory::MemoryEngine`]: in this process only; a restart forgets everything.
//! - [`sqlite::SqliteEngine`]: one SQLite file; every publish is on disk before it is acked.
//!   It answers from the memory engine's tables, kept as its cache, and owes the file its
//!   writes: [`Batch`]es that the hub's syncer commits outside the hub's lock, while the hub
//!   holds back what depends on them.
//! - [`redis::RedisEngine`]: rooms and sessions in Redis, shared by every instance on it
//!   ([`Engine::shared`]). A publish is one Lua script per room (dedupe check, offset
//!   increment, `XADD` with a length cap, dedupe entry, `PUBLISH`); a join reads the stream.
//!   Its offsets come from Redis, so its calls wait for Redis's reply: blocking round trips
//!   on loopback through [`blocking`], a publish outside the hub's lock
//!   ([`Engine::publisher`]), the others under it. Publishes from every
//!   instance come back through pub/sub into [`crate::hub::Hub::fan_in`], beside this trait;
//!   the hub delivers them in offset order, reading a gap back with [`Engine::range`].
//!
//! Presence and the room list stay in the hub: they describe the connections of this one
//! process, which a restart ends anyway.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{MsgId, Offset, Since};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::Config;

pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod sqlite;

pub(crate) use memory::{Forget, LimitLog, SessionId};

/// A room's name, shared by every table that names the room.
pub(crate) type RoomName = Arc<str>;

/// Which engine a server keeps its rooms and sessions in:
/// `--engine memory | sqlite:PATH | redis://HOST:PORT`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineKind {
    /// In memory: a restart loses history, epochs and sessions. The default.
    #[default]
    Memory,
    /// One SQLite file at this path, created if absent: acknowledged publishes, epochs,
    /// offsets and sessions survive a restart or a `kill -9`. Its writes are committed by a
    /// task that [`crate::serve`] runs; acks wait for it.
    Sqlite(PathBuf),
    /// The Redis at this URL (`redis://HOST:PORT`), shared by every server started on it:
    /// several instances serve the same rooms, and a publish is acked once Redis replied.
    Redis(String),
}

impl std::str::FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "memory" => Ok(Self::Memory),
            Some(("sqlite", path)) if !path.is_empty() => Ok(Self::Sqlite(PathBuf::from(path))),
            Some(("redis", rest)) if rest.len() > 2 && rest.starts_with("//") => {
                Ok(Self::Redis(s.to_string()))
            }
            _ => Err(format!(
                "`{s}`: expected `memory`, `sqlite:PATH` or `redis://HOST:PORT`"
            )),
        }
    }
}

/// A store that failed: the operation changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage: {message}")]
pub(crate) struct StorageError {
    pub(crate) message: String,
}

impl From<rusqlite::Error> for StorageError {
    fn from(err: rusqlite::Error) -> Self {
        Self {
            message: err.to_string(),
        }
    }
}

/// The bounds every engine applies, from [`Config`].
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    pub(crate) history_len: usize,
    pub(crate) history_max_age: Duration,
    pub(crate) history_room_bytes: usize,
    pub(crate) history_total_bytes: usize,
    pub(crate) dedupe_ids: usize,
    pub(crate) session_ttl: Duration,
    pub(crate) max_sessions: usize,
    pub(crate) max_dedupe_entries: usize,
}

impl Bounds {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            history_len: config.history_len,
            history_max_age: config.history_max_age,
            history_room_bytes: config.history_room_bytes,
            history_total_bytes: config.history_total_bytes,
            dedupe_ids: config.dedupe_ids,
            session_ttl: config.session_ttl,
            max_sessions: config.max_sessions.max(1),
            max_dedupe_entries: config.max_dedupe_entries,
        }
    }
}

/// What a `join` answers about the gap after its `since`.
#[derive(Debug, PartialEq)]
pub(crate) struct Recovery {
    pub(crate) epoch: String,
    pub(crate) offset: Offset,
    pub(crate) recovered: bool,
    /// Set when the replay starts elsewhere than after `since` (another epoch).
    pub(crate) resume_after: Option<Offset>,
    pub(crate) frames: Vec<Utf8Bytes>,
}

/// A publish as the hub hands it to the engine.
pub(crate) struct Publish<'a> {
    pub(crate) room: &'a RoomName,
    pub(crate) session: SessionId,
    pub(crate) id: MsgId,
    /// Makes the `message` frame once the offset is known.
    pub(crate) frame: &'a mut dyn FnMut(Offset) -> Utf8Bytes,
}

impl fmt::Debug for Publish<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("room", &self.room)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What became of a publish.
#[derive(Debug, PartialEq)]
pub(crate) enum Published {
    /// New: recorded at this offset (durably, where the engine is durable).
    New { offset: Offset, frame: Utf8Bytes },
    /// The session already published this id, at this offset.
    Duplicate { offset: Offset },
    /// The engine holds no such room.
    NoRoom,
}

/// What an engine holds, as `GET /api/health` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) history_bytes: usize,
    pub(crate) history_bytes_peak: usize,
    pub(crate) history_entries: usize,
    pub(crate) sessions: usize,
    pub(crate) sessions_peak: usize,
    pub(crate) dedupe_entries: usize,
}

/// A write a durable engine owes its store, in the order its cache applied it.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// A room made with this epoch.
    Room { name: RoomName, epoch: String },
    /// A publish: its history entry, the room's offset and the session's dedupe entry.
    Publish {
        room: RoomName,
        offset: Offset,
        at_ms: u64,
        frame: Utf8Bytes,
        session: SessionId,
        id: MsgId,
    },
    /// Something the bounds forgot.
    Forget(Forget),
}

/// Where a durable engine's writes go, one batch per transaction, outside the hub's lock.
pub(crate) trait Store: Send + Sync + fmt::Debug {
    /// Makes `writes` durable, all or none.
    fn commit(&self, writes: &[Write]) -> Result<(), StorageError>;
}

/// Writes taken from an engine to be committed together (group commit): every publish made
/// while the previous batch was being fsynced goes in the next one.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) writes: Vec<Write>,
    /// The sequence number of its last write that the hub waits for.
    pub(crate) upto: u64,
    pub(crate) store: Arc<dyn Store>,
}

impl Batch {
    pub(crate) fn commit(&self) -> Result<(), StorageError> {
        self.store.commit(&self.writes)
    }
}

/// Rooms (epoch, offsets, history) and sessions (dedupe state), with their bounds.
///
/// The hub keeps its room table's names equal to the engine's: it opens a room with
/// [`Engine::join`], drops it with [`Engine::drop_room`] (no members, no history), and
/// [`Engine::sweep`] tells it which rooms expired. Times are arguments, so rules with a clock
/// are tested without sleeps.
///
/// A durable engine answers from its cache at once and owes its store the writes: the hub
/// holds back every frame that depends on them (acks, broadcasts, replays) until the batch
/// holding them is committed ([`Engine::unsynced`], [`Engine::take_batch`],
/// [`Engine::batch_done`]), so nothing is told to anyone before it is durable.
pub(crate) trait Engine: Send + fmt::Debug {
    /// The rooms the engine holds, for a hub starting on a store that already has some.
    fn rooms(&self) -> Vec<RoomName>;
    /// Opens `room` (a new epoch) if the engine does not hold it, applies the history bounds,
    /// and answers the gap after `since`.
    fn join(
        &mut self,
        room: &RoomName,
        since: Option<&Since>,
        now: Instant,
    ) -> Result<Recovery, StorageError>;
    /// Deduplicates by (session, id), else gives the next offset and records the frame.
    /// `Ok(New)` means the publish may be acked.
    fn publish(&mut self, publish: Publish<'_>, now: Instant) -> Result<Published, StorageError>;
    /// Whether `room` has no retained history (true when the engine does not hold it).
    fn history_empty(&self, room: &str) -> bool;
    /// When `room` was last published to, if it has history: the idlest room goes first when
    /// the room cap is reached.
    fn last_published(&self, room: &str) -> Option<Instant>;
    /// Forgets `room` with its epoch and history.
    fn drop_room(&mut self, room: &RoomName);
    /// A new session, attached once.
    fn new_session(&mut self, now: Instant) -> SessionId;
    /// Whether the engine holds `session`; an error when the store cannot say.
    fn has_session(&self, session: SessionId) -> Result<bool, StorageError>;
    /// Whether `session` has at most one connection and no dedupe state: nothing is lost by
    /// forgetting it.
    fn session_unused(&self, session: SessionId) -> bool;
    fn remove_session(&mut self, session: SessionId);
    /// One more connection uses `session`: its TTL stops.
    fn attach(&mut self, session: SessionId);
    /// One connection fewer uses `session`; once none does, its TTL starts.
    fn detach(&mut self, session: SessionId, now: Instant);
    /// Expires sessions and history; drops the rooms left with neither history nor a member
    /// (`occupied`), and returns their names.
    fn sweep(&mut self, now: Instant, occupied: &dyn Fn(&RoomName) -> bool) -> Vec<RoomName>;
    fn stored(&self) -> Stored;
    /// The sequence number of the last write not yet durable, if any.
    fn unsynced(&self) -> Option<u64> {
        None
    }
    /// Whether writes (or deletions) wait for [`Engine::take_batch`].
    fn has_writes(&self) -> bool {
        false
    }
    /// Takes every write owed, to commit outside the hub's lock.
    fn take_batch(&mut self) -> Option<Batch> {
        None
    }
    /// The outcome of a batch's commit: on success its writes are durable; on failure they are
    /// owed again, ahead of anything newer, and retried.
    fn batch_done(&mut self, _batch: Batch, _result: Result<(), StorageError>) {}
    /// Whether other instances share the engine's rooms (Redis): their publishes come to the
    /// hub through [`crate::hub::Hub::fan_in`], in an order the hub restores by offset.
    fn shared(&self) -> bool {
        false
    }
    /// The frames of `room` after offset `after`, up to `upto`, for a shared engine's hub to
    /// fill a gap in what it delivered.
    fn range(
        &self,
        _room: &str,
        _after: Offset,
        _upto: Offset,
    ) -> Result<Vec<Utf8Bytes>, StorageError> {
        Ok(Vec::new())
    }
    /// A shared engine: connection `conn` of this instance, named `name`, is a member of
    /// `room` now, for the presence every instance sees.
    fn member_joined(&mut self, _room: &RoomName, _conn: u64, _name: &str) {}
    /// A shared engine: connection `conn` of this instance left `room`.
    fn member_left(&mut self, _room: &RoomName, _conn: u64) {}
    /// A shared engine: the names of `room`'s members on every live instance, sorted; `None`
    /// when presence is this process's own (or the store cannot say now).
    fn presence(&self, _room: &str) -> Option<Vec<String>> {
        None
    }
    /// A shared engine's publish, for the hub to run outside its lock.
    fn publisher(&self) -> Option<Arc<redis::Publisher>> {
        None
    }
    /// A shared engine's current epoch and offset of `room`, if it holds it.
    fn head(&self, _room: &str) -> Result<Option<(String, Offset)>, StorageError> {
        Ok(None)
    }
    /// The in-memory tables, for tests that look inside.
    #[cfg(test)]
    fn tables(&self) -> &memory::MemoryEngine;
}

/// Opens the engine `config` names.
pub(crate) fn open(config: &Config) -> Result<Box<dyn Engine>, StorageError> {
    let bounds = Bounds::new(config);
    Ok(match &config.engine {
        EngineKind::Memory => Box::new(memory::MemoryEngine::new(bounds)),
        EngineKind::Sqlite(path) => {
            Box::new(sqlite::SqliteEngine::open(path, bounds, Instant::now())?)
        }
        EngineKind::Redis(url) => Box::new(redis::RedisEngine::open(url, bounds)?),
    })
}

/// Runs `f`, which waits for the disk or for Redis, telling a multi-threaded tokio runtime
/// first, so that the other tasks of this worker move to another thread meanwhile.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::EngineKind;

    #[test]
    fn the_flag_names_an_engine_and_its_path() {
        assert_eq!("memory".parse(), Ok(EngineKind::Memory));
        assert_eq!(
            "sqlite:data/rooms.db".parse(),
            Ok(EngineKind::Sqlite("data/rooms.db".into()))
        );
        assert_eq!(
            "redis://127.0.0.1:6379".parse(),
            Ok(EngineKind::Redis("redis://127.0.0.1:6379".into()))
        );
        for bad in [
            "", "sqlite:", "sqlite", "redis", "redis:", "redis:x", "memory:x",
        ] {
            assert!(bad.parse::<EngineKind>().is_err(), "{bad}");
        }
    }
}
