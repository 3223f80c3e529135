//! The durable engine: one SQLite file, with the memory engine's tables as its cache.
//!
//! Durability: the file is in WAL mode with `synchronous=FULL`, so a transaction is on disk
//! (the WAL fsynced) when its commit returns, and a `kill -9` or a power cut after that loses
//! nothing of it. A publish is applied to the cache at once and owed to the file as a write
//! (history row, room offset, dedupe row); the hub's syncer commits every write owed as one
//! transaction (group commit: what arrives during an fsync goes in the next one), and the hub
//! sends the ack, the broadcast and any replay that depends on a write only after its commit.
//! A failed commit keeps the writes owed, in order, and is retried; nothing was told about
//! them, so a crash meanwhile loses nothing acked. A new room's epoch is written the same way
//! before its `joined` goes out.
//!
//! Reads (replay, dedupe checks) are served by the cache, which is exact because this process
//! is the file's only writer: the file is opened with `locking_mode=EXCLUSIVE`, so a second
//! server on the same file fails to start. What the bounds forget (history by count, age and
//! bytes; dedupe windows; expired sessions; dropped rooms) is deleted on disk in the next
//! batch, in order with the writes, so the file stays as bounded as memory. On open
//! the rows are read back in publish order and the same bounds applied again.
//!
//! Sessions reach the file with their first publish: one without dedupe state has nothing a
//! restart could lose (its client gets a new session, and nothing of its is deduplicated).
//! Detach times are not stored: the sessions read back start their TTL at the open.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use protocol::Since;
use rusqlite::{Connection, Transaction, params};
use tracing::info;

use super::memory::{Forget, MemoryEngine};
use super::{
    Batch, Bounds, Engine, Publish, Published, Recovery, RoomName, SessionId, StorageError, Store,
    Stored, Write,
};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS rooms (
        name TEXT PRIMARY KEY,
        epoch TEXT NOT NULL,
        offset INTEGER NOT NULL
    );
    -- seq: publish order across rooms, for the global byte budget when read back.
    CREATE TABLE IF NOT EXISTS history (
        seq INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        offset INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        frame TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS history_room ON history (room, offset);
    -- seq: the order of each session's dedupe window.
    CREATE TABLE IF NOT EXISTS dedupe (
        seq INTEGER PRIMARY KEY,
        session TEXT NOT NULL,
        id INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        UNIQUE (session, id)
    );
";

/// SQLite integers are signed 64-bit: offsets and ids are stored as their bits.
fn to_sql(n: u64) -> i64 {
    n as i64
}

fn from_sql(n: i64) -> u64 {
    n as u64
}

/// The file, written by one batch at a time.
#[derive(Debug)]
struct SqliteStore {
    db: Mutex<Connection>,
}

impl Store for SqliteStore {
    fn commit(&self, writes: &[Write]) -> Result<(), StorageError> {
        let mut db = self.db.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = db.transaction()?;
        for write in writes {
            apply(&tx, write)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Rooms and sessions in a SQLite file, cached in memory.
#[derive(Debug)]
pub(crate) struct SqliteEngine {
    mem: MemoryEngine,
    store: Arc<SqliteStore>,
    /// Writes applied to the cache and owed to the file, in order.
    pending: Vec<Write>,
    /// Sequence number of the last write the hub waits for, and of the last durable one.
    seq: u64,
    durable: u64,
}

impl SqliteEngine {
    /// Opens (or creates) the file at `path` and reads back what it holds.
    pub(crate) fn open(path: &Path, bounds: Bounds, now: Instant) -> Result<Self, StorageError> {
        let db = Connection::open(path)?;
        db.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))?;
        db.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        db.execute_batch("PRAGMA synchronous = FULL")?;
        // Takes the file's lock now: a second server on it fails here, not at its first write.
        db.execute_batch("BEGIN EXCLUSIVE; COMMIT;")?;
        db.execute_batch(SCHEMA)?;
        let mut mem = MemoryEngine::new(bounds);
        mem.keep_journal();
        load(&db, &mut mem, now)?;
        let mut engine = Self {
            mem,
            store: Arc::new(SqliteStore { db: Mutex::new(db) }),
            pending: Vec::new(),
            seq: 0,
            durable: 0,
        };
        // What the bounds forgot while reading back.
        if let Some(batch) = engine.take_batch() {
            batch.commit()?;
            engine.batch_done(batch, Ok(()));
        }
        let stored = engine.mem.stored();
        info!(
            path = %path.display(),
            rooms = engine.mem.rooms.len(),
            history = stored.history_entries,
            sessions = stored.sessions,
            "sqlite engine opened"
        );
        Ok(engine)
    }

    /// Moves what the bounds forgot so far into the writes owed, keeping their order.
    fn note_forgotten(&mut self) {
        self.pending
            .extend(self.mem.journal.take().into_iter().map(Write::Forget));
    }

    fn push(&mut self, write: Write) {
        self.pending.push(write);
        self.seq += 1;
    }
}

fn load(db: &Connection, mem: &mut MemoryEngine, now: Instant) -> Result<(), StorageError> {
    let unix_now = crate::unix_ms();
    let mut rooms = db.prepare("SELECT name, epoch, offset FROM rooms")?;
    let rows = rooms.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (name, epoch, offset) = row?;
        mem.restore_room(name.into(), epoch, from_sql(offset), now);
    }
    let mut history = db.prepare("SELECT room, offset, at_ms, frame FROM history ORDER BY seq")?;
    let rows = history.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, String>(3)?,
        ))
    })?;
    for row in rows {
        let (room, offset, at_ms, frame) = row?;
        let Some(name) = mem
            .rooms
            .get_key_value(room.as_str())
            .map(|(n, _)| n.clone())
        else {
            // A row whose room row is gone: deleted with the next write.
            mem.journal.note(Forget::Room(room.into()));
            continue;
        };
        let age = Duration::from_millis(unix_now.saturating_sub(from_sql(at_ms)));
        let at = now.checked_sub(age).unwrap_or(now);
        mem.record(&name, from_sql(offset), frame.into(), at);
    }
    let mut dedupe = db.prepare("SELECT session, id, offset FROM dedupe ORDER BY seq")?;
    let rows = dedupe.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (session, id, offset) = row?;
        if let Some(session) = SessionId::parse(&session) {
            mem.remember(session, from_sql(id), from_sql(offset), now);
        }
    }
    mem.bound(now);
    Ok(())
}

fn apply(tx: &Transaction<'_>, write: &Write) -> rusqlite::Result<()> {
    match write {
        Write::Room { name, epoch } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO rooms (name, epoch, offset) VALUES (?1, ?2, 0)",
            )?
            .execute(params![&**name, epoch])?;
        }
        Write::Publish {
            room,
            offset,
            at_ms,
            frame,
            session,
            id,
        } => {
            tx.prepare_cached(
                "INSERT INTO history (room, offset, at_ms, frame) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                &**room,
                to_sql(*offset),
                to_sql(*at_ms),
                frame.as_str()
            ])?;
            tx.prepare_cached("UPDATE rooms SET offset = ?2 WHERE name = ?1")?
                .execute(params![&**room, to_sql(*offset)])?;
            // REPLACE: an id that left the window and came back takes a new place in it.
            tx.prepare_cached(
                "INSERT OR REPLACE INTO dedupe (session, id, offset) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![session.to_string(), to_sql(*id), to_sql(*offset)])?;
        }
        Write::Forget(Forget::History { room, through }) => {
            tx.prepare_cached("DELETE FROM history WHERE room = ?1 AND offset <= ?2")?
                .execute(params![&**room, to_sql(*through)])?;
        }
        Write::Forget(Forget::Room(room)) => {
            tx.prepare_cached("DELETE FROM history WHERE room = ?1")?
                .execute(params![&**room])?;
            tx.prepare_cached("DELETE FROM rooms WHERE name = ?1")?
                .execute(params![&**room])?;
        }
        Write::Forget(Forget::Session(session)) => {
            tx.prepare_cached("DELETE FROM dedupe WHERE session = ?1")?
                .execute(params![session.to_string()])?;
        }
        Write::Forget(Forget::Dedupe(session, id)) => {
            tx.prepare_cached("DELETE FROM dedupe WHERE session = ?1 AND id = ?2")?
                .execute(params![session.to_string(), to_sql(*id)])?;
        }
    }
    Ok(())
}

impl Engine for SqliteEngine {
    fn rooms(&self) -> Vec<RoomName> {
        self.mem.rooms()
    }

    fn join(
        &mut self,
        room: &RoomName,
        since: Option<&Since>,
        now: Instant,
    ) -> Result<Recovery, StorageError> {
        self.note_forgotten();
        if !self.mem.rooms.contains_key(room) {
            let epoch = crate::random_hex(8);
            self.mem.insert_room(room.clone(), epoch.clone(), 0);
            self.push(Write::Room {
                name: room.clone(),
                epoch,
            });
        }
        self.mem.join(room, since, now)
    }

    fn publish(&mut self, p: Publish<'_>, now: Instant) -> Result<Published, StorageError> {
        if let Some(offset) = self.mem.acked(p.session, p.id) {
            return Ok(Published::Duplicate { offset });
        }
        let Some(r) = self.mem.rooms.get(p.room) else {
            return Ok(Published::NoRoom);
        };
        let offset = r.offset + 1;
        let frame = (p.frame)(offset);
        self.note_forgotten();
        self.push(Write::Publish {
            room: p.room.clone(),
            offset,
            at_ms: crate::unix_ms(),
            frame: frame.clone(),
            session: p.session,
            id: p.id,
        });
        // The evictions this causes are noted after the publish's own write.
        self.mem
            .apply_publish(p.room, p.session, p.id, offset, frame.clone(), now);
        Ok(Published::New { offset, frame })
    }

    fn history_empty(&self, room: &str) -> bool {
        self.mem.history_empty(room)
    }

    fn last_published(&self, room: &str) -> Option<Instant> {
        self.mem.last_published(room)
    }

    fn drop_room(&mut self, room: &RoomName) {
        self.mem.drop_room(room);
    }

    fn new_session(&mut self, now: Instant) -> SessionId {
        self.mem.new_session(now)
    }

    fn has_session(&self, session: SessionId) -> Result<bool, StorageError> {
        self.mem.has_session(session)
    }

    fn session_unused(&self, session: SessionId) -> bool {
        self.mem.session_unused(session)
    }

    fn remove_session(&mut self, session: SessionId) {
        self.mem.remove_session(session);
    }

    fn attach(&mut self, session: SessionId) {
        self.mem.attach(session);
    }

    fn detach(&mut self, session: SessionId, now: Instant) {
        self.mem.detach(session, now);
    }

    fn sweep(&mut self, now: Instant, occupied: &dyn Fn(&RoomName) -> bool) -> Vec<RoomName> {
        self.mem.sweep(now, occupied)
    }

    fn stored(&self) -> Stored {
        self.mem.stored()
    }

    fn unsynced(&self) -> Option<u64> {
        (self.durable < self.seq).then_some(self.seq)
    }

    fn has_writes(&self) -> bool {
        !self.pending.is_empty() || !self.mem.journal.is_empty()
    }

    fn take_batch(&mut self) -> Option<Batch> {
        self.note_forgotten();
        if self.pending.is_empty() {
            return None;
        }
        Some(Batch {
            writes: std::mem::take(&mut self.pending),
            upto: self.seq,
            store: self.store.clone(),
        })
    }

    fn batch_done(&mut self, batch: Batch, result: Result<(), StorageError>) {
        match result {
            Ok(()) => self.durable = self.durable.max(batch.upto),
            Err(_) => {
                let mut writes = batch.writes;
                writes.append(&mut self.pending);
                self.pending = writes;
            }
        }
    }

    #[cfg(test)]
    fn tables(&self) -> &MemoryEngine {
        &self.mem
    }
}

#[cfg(test)]
impl SqliteEngine {
    /// Breaks (true) or heals (false) the file as a full disk would: while broken, commits
    /// fail, since the table publishes write to is gone.
    pub(crate) fn disk_switch(&self) -> impl Fn(bool) + use<> {
        let store = self.store.clone();
        move |broken| {
            let db = store.db.lock().unwrap_or_else(PoisonError::into_inner);
            let sql = if broken { "DROP TABLE history" } else { SCHEMA };
            assert_eq!(db.execute_batch(sql), Ok(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use protocol::{MsgId, Offset};
    use tokio_tungstenite::tungstenite::Utf8Bytes;

    use super::*;
    use crate::Config;

    fn bounds() -> Bounds {
        Bounds::new(&Config::default().history(3, Duration::from_secs(60)))
    }

    fn publish(
        engine: &mut SqliteEngine,
        room: &RoomName,
        session: SessionId,
        id: MsgId,
    ) -> Published {
        let mut frame = |offset: Offset| Utf8Bytes::from(format!("m{offset}"));
        let p = Publish {
            room,
            session,
            id,
            frame: &mut frame,
        };
        engine.publish(p, Instant::now()).unwrap()
    }

    /// What the hub's syncer does: commit every write owed.
    fn sync(engine: &mut SqliteEngine) {
        let batch = engine.take_batch().unwrap();
        let result = batch.commit();
        assert_eq!(result, Ok(()));
        engine.batch_done(batch, result);
        assert_eq!(engine.unsynced(), None);
    }

    /// Covers: what was committed is read back (epoch, offset, history, dedupe), bounded as in
    /// memory; a write not yet committed (so never acked) is not.
    #[test]
    fn what_was_committed_is_read_back_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let room: RoomName = "r".into();
        let session = SessionId(7);
        let epoch = {
            let mut engine = SqliteEngine::open(&path, bounds(), Instant::now()).unwrap();
            let epoch = engine.join(&room, None, Instant::now()).unwrap().epoch;
            assert_eq!(engine.unsynced(), Some(1), "the room's epoch is owed");
            for id in 1..=5 {
                assert!(matches!(
                    publish(&mut engine, &room, session, id),
                    Published::New { .. }
                ));
            }
            sync(&mut engine);
            // Never committed, so never acked: lost with the process, as it may be.
            publish(&mut engine, &room, session, 6);
            assert_eq!(engine.unsynced(), Some(7));
            epoch
        };
        let mut engine = SqliteEngine::open(&path, bounds(), Instant::now()).unwrap();
        let since = Since {
            epoch: epoch.clone(),
            offset: 2,
        };
        let got = engine.join(&room, Some(&since), Instant::now()).unwrap();
        assert_eq!((got.epoch, got.offset, got.recovered), (epoch, 5, true));
        let frames: Vec<&str> = got.frames.iter().map(|f| f.as_str()).collect();
        assert_eq!(frames, ["m3", "m4", "m5"]);
        assert_eq!(
            publish(&mut engine, &room, session, 4),
            Published::Duplicate { offset: 4 }
        );
        assert_eq!(engine.has_session(session), Ok(true));
        // The rows beyond the count bound are gone from the file too.
        let rows: i64 = engine
            .store
            .db
            .lock()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 3);
    }

    /// Covers: a failed commit keeps its writes owed, ahead of newer ones, and nothing counts
    /// as durable until a retry succeeds.
    #[test]
    fn a_failed_commit_is_retried_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let room: RoomName = "r".into();
        let session = SessionId(9);
        {
            let mut engine = SqliteEngine::open(&path, bounds(), Instant::now()).unwrap();
            engine.join(&room, None, Instant::now()).unwrap();
            sync(&mut engine);
            let db = |engine: &SqliteEngine, sql: &str| {
                engine.store.db.lock().unwrap().execute_batch(sql).unwrap();
            };
            // The disk "fails": the table the publish writes to is gone.
            db(&engine, "DROP TABLE history");
            publish(&mut engine, &room, session, 1);
            let batch = engine.take_batch().unwrap();
            let result = batch.commit();
            assert!(result.is_err());
            engine.batch_done(batch, result);
            assert_eq!(engine.unsynced(), Some(2), "still owed");
            publish(&mut engine, &room, session, 2);
            db(&engine, SCHEMA);
            sync(&mut engine);
        }
        let mut engine = SqliteEngine::open(&path, bounds(), Instant::now()).unwrap();
        let got = engine.join(&room, None, Instant::now()).unwrap();
        assert_eq!(got.offset, 2);
        assert_eq!(
            publish(&mut engine, &room, session, 1),
            Published::Duplicate { offset: 1 }
        );
    }

    /// Covers: a room with no history keeps its epoch across a restart for a session TTL, so
    /// its clients rejoin with `recovered: true`; after that it goes like any empty room.
    #[test]
    fn an_empty_room_waits_a_session_ttl_for_its_clients() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let room: RoomName = "quiet".into();
        let epoch = {
            let mut engine = SqliteEngine::open(&path, bounds(), Instant::now()).unwrap();
            let epoch = engine.join(&room, None, Instant::now()).unwrap().epoch;
            sync(&mut engine);
            epoch
        };
        let t0 = Instant::now();
        let mut engine = SqliteEngine::open(&path, bounds(), t0).unwrap();
        let nobody = |_: &RoomName| false;
        assert!(engine.sweep(t0, &nobody).is_empty(), "kept");
        let since = Since { epoch, offset: 0 };
        let got = engine.join(&room, Some(&since), t0).unwrap();
        assert!(got.recovered);
        let ttl = Config::default().session_ttl;
        assert_eq!(engine.sweep(t0 + ttl, &nobody), vec![room]);
    }

    #[test]
    fn a_second_server_on_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let _first = SqliteEngine::open(&path, bounds(), Instant::now()).unwrap();
        assert!(SqliteEngine::open(&path, bounds(), Instant::now()).is_err());
    }
}
