//! The Redis engine: rooms and sessions shared by every server-dev instance on one Redis.
//!
//! Keys (`{room}` and `{session}` as the client names them):
//! - `wsl:room:{room}`: a hash `epoch`, `offset`, with a TTL of the longer of the history age
//!   and the session TTL, refreshed by publishes, joins and the sweep of an instance with
//!   members in the room.
//! - `wsl:history:{room}`: a stream, entry id `OFFSET-0`, fields `at` (unix ms) and `frame`
//!   (the `message` frame), capped at `history_len` entries (`XADD MAXLEN`), same TTL.
//! - `wsl:session:{session}`, `wsl:dedupe:{session}` (hash publish id → offset) and
//!   `wsl:dedupe-order:{session}` (list, oldest first, at most `dedupe_ids`): TTL `session_ttl`,
//!   refreshed by the sweep of the instance a connection of the session is attached to, so the
//!   sessions of a dead instance expire a TTL after it stopped.
//! - `wsl:presence:{room}`: a hash `{instance}:{connection}` → member name, same TTL as the
//!   room; `wsl:instance:{instance}`: each instance's heartbeat, a key with a TTL of three
//!   sweep periods (15 s at the defaults), refreshed by its sweep. Presence lists the members
//!   of live instances only, so a killed instance's members disappear once its key expires.
//! - Channel `wsl:fanout`: every publish, `OFFSET\nEPOCH\nROOM\nFRAME`; channel
//!   `wsl:presence`: the name of a room whose members changed.
//!
//! A publish is one Lua script (dedupe check, offset increment, `XADD`, dedupe entry, `PUBLISH`),
//! atomic for its room, so offsets and the order of the fan-out agree on every instance. The
//! hub acks only once the script replied. Each instance subscribes to the channel
//! ([`fan_in_until`]) and hands what arrives to its hub, which delivers in offset order and
//! fills any gap (a lost pub/sub message, a reconnect) from the stream.
//!
//! The commands are blocking calls (loopback round trips; [`super::blocking`] lets tokio move
//! other tasks off the thread). A publish runs outside the hub's lock, on a connection of its
//! own ([`Publisher`]); the other calls are made where the hub calls the engine, under its
//! lock.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use protocol::{Offset, Since};
use redis::{Connection, RedisResult, Script};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::{info, warn};

use super::{
    Bounds, Engine, Publish, Published, Recovery, RoomName, SessionId, StorageError, Stored,
};
use crate::hub::Hub;

#[cfg(test)]
pub(crate) mod test_server;

/// The channel every publish is fanned out on.
const FANOUT: &str = "wsl:fanout";
/// The channel a room's name is published on when its members change.
const PRESENCE: &str = "wsl:presence";
/// How long an instance counts as live after its last heartbeat, in sweep periods.
const HEARTBEATS_TO_DEATH: u32 = 3;
/// At most this many fanned-out publishes go to the hub under one lock.
const FAN_IN_BATCH: usize = 256;
/// How long a command may take before the engine gives up on the connection.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// An offset no room reaches, written where the script puts the real one.
pub(crate) const OFFSET_MARK: Offset = Offset::MAX;

impl From<redis::RedisError> for StorageError {
    fn from(err: redis::RedisError) -> Self {
        Self {
            message: format!("redis: {err}"),
        }
    }
}

fn room_key(room: &str) -> String {
    format!("wsl:room:{room}")
}

fn history_key(room: &str) -> String {
    format!("wsl:history:{room}")
}

fn session_keys(session: SessionId) -> [String; 3] {
    [
        format!("wsl:session:{session}"),
        format!("wsl:dedupe:{session}"),
        format!("wsl:dedupe-order:{session}"),
    ]
}

fn presence_key(room: &str) -> String {
    format!("wsl:presence:{room}")
}

fn instance_key(instance: &str) -> String {
    format!("wsl:instance:{instance}")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Opens the room if Redis does not hold it, and reads what a join needs: epoch, offset, the
/// first retained offset, and the entries after `since` (all of them in another epoch).
const JOIN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'offset', 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local offset = redis.call('HGET', KEYS[1], 'offset')
local out = {epoch, tostring(offset)}
if ARGV[3] == '' then return out end
local start = '-'
if ARGV[3] == epoch then start = '(' .. ARGV[4] .. '-0' end
for _, e in ipairs(redis.call('XRANGE', KEYS[2], start, '+')) do
  table.insert(out, e[1])
  table.insert(out, e[2][2])
  table.insert(out, e[2][4])
end
return out
";

/// Deduplicates, then gives the next offset, appends the frame, remembers the publish id and
/// fans the frame out: `{0, offset}` new, `{1, offset}` duplicate, `{2, 0}` no such room.
const PUBLISH: &str = r"
local dup = redis.call('HGET', KEYS[3], ARGV[1])
if dup then return {1, tonumber(dup)} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {2, 0} end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local frame = ARGV[2] .. offset .. ARGV[3]
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], offset .. '-0', 'at', ARGV[4], 'frame', frame)
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
redis.call('HSET', KEYS[3], ARGV[1], offset)
redis.call('RPUSH', KEYS[4], ARGV[1])
if redis.call('LLEN', KEYS[4]) > tonumber(ARGV[6]) then
  redis.call('HDEL', KEYS[3], redis.call('LPOP', KEYS[4]))
end
redis.call('PEXPIRE', KEYS[3], ARGV[7])
redis.call('PEXPIRE', KEYS[4], ARGV[7])
redis.call('SET', KEYS[5], 1, 'PX', ARGV[7])
redis.call('PUBLISH', ARGV[9], offset .. '\n' .. epoch .. '\n' .. ARGV[10] .. '\n' .. frame)
return {0, offset}
";

/// The members of live instances, in a room's presence hash; those of an instance whose
/// heartbeat expired are removed on the way. (Instance keys are named from the fields, which
/// a single Redis allows; a cluster would need them in `KEYS`.)
const PRESENCE_OF_LIVE: &str = r"
local names = {}
local alive = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local instance = string.match(flat[i], '^([^:]+):')
  if alive[instance] == nil then
    alive[instance] = redis.call('EXISTS', ARGV[1] .. instance) == 1
  end
  if alive[instance] then
    table.insert(names, flat[i + 1])
  else
    redis.call('HDEL', KEYS[1], flat[i])
  end
end
return names
";

/// One blocking connection to Redis, opened again after a failure.
struct Link {
    client: redis::Client,
    conn: Mutex<Option<Connection>>,
}

impl Link {
    fn new(client: redis::Client) -> Self {
        Self {
            client,
            conn: Mutex::new(None),
        }
    }

    fn connection(&self) -> MutexGuard<'_, Option<Connection>> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the connection (opened if needed); a failure drops the connection, so the
    /// next call opens a new one.
    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> Result<T, StorageError> {
        super::blocking(|| {
            let mut slot = self.connection();
            let conn = match &mut *slot {
                Some(conn) => conn,
                None => {
                    let conn = self.client.get_connection_with_timeout(COMMAND_TIMEOUT)?;
                    conn.set_read_timeout(Some(COMMAND_TIMEOUT))?;
                    conn.set_write_timeout(Some(COMMAND_TIMEOUT))?;
                    slot.insert(conn)
                }
            };
            let result = f(conn);
            if result.is_err() {
                *slot = None;
            }
            Ok(result?)
        })
    }
}

/// Runs the publish script on a connection of its own, so that the hub can call it outside
/// its lock ([`Engine::publisher`]): other connections' joins, fan-in and presence do not
/// wait for a publish's round trip.
pub(crate) struct Publisher {
    link: Link,
    script: Script,
    history_len: usize,
    dedupe_ids: usize,
    session_ttl_ms: u64,
    room_ttl_ms: u64,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    /// Publishes `marked` (a `message` frame whose offset is [`OFFSET_MARK`]) to `room` as
    /// publish `id` of `session`: the script puts the offset in.
    pub(crate) fn publish(
        &self,
        room: &str,
        session: SessionId,
        id: protocol::MsgId,
        marked: &str,
    ) -> Result<Published, StorageError> {
        let mark = format!("\"offset\":{OFFSET_MARK}");
        // The room name comes before the offset and is escaped JSON, so the first match is
        // the offset field.
        let Some(at) = marked.find(&mark) else {
            return Err(StorageError {
                message: "a message frame without an offset".into(),
            });
        };
        let prefix = &marked[..at + "\"offset\":".len()];
        let suffix = &marked[at + mark.len()..];
        let [session, dedupe, order] = session_keys(session);
        let (kind, offset): (u8, Offset) = self.link.run(|conn| {
            self.script
                .key(room_key(room))
                .key(history_key(room))
                .key(&dedupe)
                .key(&order)
                .key(&session)
                .arg(id)
                .arg(prefix)
                .arg(suffix)
                .arg(crate::unix_ms())
                .arg(self.history_len.max(1))
                .arg(self.dedupe_ids.max(1))
                .arg(self.session_ttl_ms)
                .arg(self.room_ttl_ms)
                .arg(FANOUT)
                .arg(room)
                .invoke(conn)
        })?;
        Ok(match kind {
            0 => Published::New {
                offset,
                frame: Utf8Bytes::from(format!("{prefix}{offset}{suffix}")),
            },
            1 => Published::Duplicate { offset },
            _ => Published::NoRoom,
        })
    }
}

/// Rooms and sessions in Redis; see the module's documentation.
pub(crate) struct RedisEngine {
    link: Link,
    publisher: std::sync::Arc<Publisher>,
    bounds: Bounds,
    /// Rooms this instance has joined members to, which its hub holds.
    local: HashSet<RoomName>,
    /// Sessions this instance's connections use, with how many connections.
    attached: HashMap<SessionId, usize>,
    join: Script,
    presence: Script,
    /// This process's name in presence fields and its heartbeat key.
    instance: String,
    /// Tests: what must live as long as the engine (the private redis-server).
    #[cfg(test)]
    keep: Option<Box<dyn Send + std::fmt::Debug>>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("local_rooms", &self.local.len())
            .field("attached", &self.attached.len())
            .finish_non_exhaustive()
    }
}

/// What an entry of the history stream holds.
struct Entry {
    offset: Offset,
    at_ms: u64,
    frame: String,
}

impl RedisEngine {
    /// An engine on the Redis at `url`, which must answer now.
    pub(crate) fn open(url: &str, bounds: Bounds) -> Result<Self, StorageError> {
        let client = redis::Client::open(url)?;
        let room_ttl_ms = millis(bounds.history_max_age.max(bounds.session_ttl));
        let publisher = std::sync::Arc::new(Publisher {
            link: Link::new(client.clone()),
            script: Script::new(PUBLISH),
            history_len: bounds.history_len,
            dedupe_ids: bounds.dedupe_ids,
            session_ttl_ms: millis(bounds.session_ttl),
            room_ttl_ms,
        });
        let engine = Self {
            link: Link::new(client),
            publisher,
            bounds,
            local: HashSet::new(),
            attached: HashMap::new(),
            join: Script::new(JOIN),
            presence: Script::new(PRESENCE_OF_LIVE),
            instance: crate::random_hex(8),
            #[cfg(test)]
            keep: None,
        };
        engine.run(|conn| redis::cmd("PING").query::<String>(conn))?;
        engine.heartbeat()?;
        Ok(engine)
    }

    /// Tests: keeps `owned` alive as long as the engine.
    #[cfg(test)]
    pub(crate) fn keeping(mut self, owned: Box<dyn Send + std::fmt::Debug>) -> Self {
        self.keep = Some(owned);
        self
    }

    fn run<T>(&self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> Result<T, StorageError> {
        self.link.run(f)
    }

    /// `SET key 1 PX ttl_ms`: a marker key that expires by itself.
    fn set_with_ttl(&self, key: &str, ttl_ms: u64) -> Result<(), StorageError> {
        self.run(|conn| {
            redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("PX")
                .arg(ttl_ms)
                .query::<()>(conn)
        })
    }

    /// Says this instance is live for [`HEARTBEATS_TO_DEATH`] sweep periods.
    fn heartbeat(&self) -> Result<(), StorageError> {
        let ttl = millis(
            crate::hub::sweep_period(self.bounds.session_ttl, self.bounds.history_max_age)
                * HEARTBEATS_TO_DEATH,
        );
        let key = instance_key(&self.instance);
        self.set_with_ttl(&key, ttl)
    }

    /// Writes a change of `room`'s members and tells every instance.
    fn members_changed(&self, room: &RoomName, change: impl FnOnce(&mut redis::Pipeline)) {
        let ttl = self.room_ttl();
        let changed = self.run(|conn| {
            let mut pipe = redis::pipe();
            change(&mut pipe);
            pipe.cmd("PEXPIRE")
                .arg(presence_key(room))
                .arg(ttl)
                .ignore();
            pipe.cmd("PUBLISH")
                .arg(PRESENCE)
                .arg(room.as_ref())
                .ignore();
            pipe.query::<()>(conn)
        });
        if let Err(err) = changed {
            warn!("{err}: presence of {room} not written");
        }
    }

    fn room_ttl(&self) -> u64 {
        millis(self.bounds.history_max_age.max(self.bounds.session_ttl))
    }

    fn session_ttl(&self) -> u64 {
        millis(self.bounds.session_ttl)
    }

    fn entries(fields: &[String]) -> Vec<Entry> {
        fields
            .chunks_exact(3)
            .filter_map(|e| {
                let offset = e[0].split_once('-')?.0.parse().ok()?;
                Some(Entry {
                    offset,
                    at_ms: e[1].parse().ok()?,
                    frame: e[2].clone(),
                })
            })
            .collect()
    }

    /// The room's epoch and offset, if Redis holds it.
    pub(crate) fn head(&self, room: &str) -> Result<Option<(String, Offset)>, StorageError> {
        let (epoch, offset): (Option<String>, Option<Offset>) = self.run(|conn| {
            redis::cmd("HMGET")
                .arg(room_key(room))
                .arg("epoch")
                .arg("offset")
                .query(conn)
        })?;
        Ok(epoch.zip(offset))
    }
}

impl Engine for RedisEngine {
    fn rooms(&self) -> Vec<RoomName> {
        // The hub holds the rooms its own connections joined; Redis holds the rest.
        Vec::new()
    }

    fn join(
        &mut self,
        room: &RoomName,
        since: Option<&Since>,
        _now: Instant,
    ) -> Result<Recovery, StorageError> {
        let (since_epoch, since_offset) =
            since.map_or((String::new(), 0), |s| (s.epoch.clone(), s.offset));
        let new_epoch = crate::random_hex(8);
        let ttl = self.room_ttl();
        let reply: Vec<String> = self.run(|conn| {
            self.join
                .key(room_key(room))
                .key(history_key(room))
                .arg(&new_epoch)
                .arg(ttl)
                .arg(&since_epoch)
                .arg(since_offset)
                .invoke(conn)
        })?;
        let bad = || StorageError {
            message: "redis: unexpected reply to the join script".into(),
        };
        let [epoch, offset, rest @ ..] = reply.as_slice() else {
            return Err(bad());
        };
        let offset: Offset = offset.parse().map_err(|_| bad())?;
        self.local.insert(room.clone());
        let plain = |recovered| Recovery {
            epoch: epoch.clone(),
            offset,
            recovered,
            resume_after: None,
            frames: Vec::new(),
        };
        let Some(since) = since else {
            return Ok(plain(true));
        };
        // History older than the age bound is not replayed: the stream trims by count only.
        let oldest_ms = crate::unix_ms().saturating_sub(millis(self.bounds.history_max_age));
        let entries: Vec<Entry> = Self::entries(rest)
            .into_iter()
            .skip_while(|e| e.at_ms < oldest_ms)
            .collect();
        let frames = |entries: &[Entry]| {
            entries
                .iter()
                .map(|e| Utf8Bytes::from(e.frame.clone()))
                .collect()
        };
        if since.epoch != *epoch {
            let resume_after = entries
                .first()
                .map_or(offset, |e| e.offset.saturating_sub(1));
            return Ok(Recovery {
                epoch: epoch.clone(),
                offset,
                recovered: false,
                resume_after: Some(resume_after),
                frames: frames(&entries),
            });
        }
        if since.offset > offset {
            return Ok(plain(false));
        }
        if since.offset == offset {
            return Ok(plain(true));
        }
        // In the room's epoch a gap is replayed whole or not at all.
        match entries.first() {
            Some(first) if first.offset == since.offset + 1 => Ok(Recovery {
                frames: frames(&entries),
                ..plain(true)
            }),
            _ => Ok(plain(false)),
        }
    }

    fn publish(&mut self, p: Publish<'_>, _now: Instant) -> Result<Published, StorageError> {
        let marked = (p.frame)(OFFSET_MARK);
        self.publisher
            .publish(p.room, p.session, p.id, marked.as_str())
    }

    fn publisher(&self) -> Option<std::sync::Arc<Publisher>> {
        Some(std::sync::Arc::clone(&self.publisher))
    }

    fn history_empty(&self, _room: &str) -> bool {
        // The history lives in Redis for every instance: a room without members here is
        // forgotten here only.
        true
    }

    fn last_published(&self, _room: &str) -> Option<Instant> {
        None
    }

    fn drop_room(&mut self, room: &RoomName) {
        self.local.remove(room);
    }

    fn new_session(&mut self, _now: Instant) -> SessionId {
        let session = SessionId::random();
        let [key, ..] = session_keys(session);
        let ttl = self.session_ttl();
        let made = self.set_with_ttl(&key, ttl);
        if let Err(err) = made {
            // The connection's next command fails the same way and closes it with 1013.
            warn!("{err}: a new session not written");
        }
        self.attached.insert(session, 1);
        session
    }

    fn has_session(&self, session: SessionId) -> Result<bool, StorageError> {
        let [key, ..] = session_keys(session);
        self.run(|conn| redis::cmd("EXISTS").arg(&key).query::<bool>(conn))
    }

    fn session_unused(&self, session: SessionId) -> bool {
        if self.attached.get(&session).is_some_and(|n| *n > 1) {
            return false;
        }
        let [_, dedupe, _] = session_keys(session);
        self.run(|conn| redis::cmd("EXISTS").arg(&dedupe).query::<bool>(conn))
            .is_ok_and(|exists| !exists)
    }

    fn remove_session(&mut self, session: SessionId) {
        self.attached.remove(&session);
        let keys = session_keys(session);
        if let Err(err) = self.run(|conn| redis::cmd("DEL").arg(&keys).query::<()>(conn)) {
            warn!("{err}: a session not deleted (it expires)");
        }
    }

    fn attach(&mut self, session: SessionId) {
        *self.attached.entry(session).or_default() += 1;
        self.refresh_sessions(&[session]);
    }

    fn detach(&mut self, session: SessionId, _now: Instant) {
        if let Some(n) = self.attached.get_mut(&session) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.attached.remove(&session);
            }
        }
        // Its TTL starts now.
        self.refresh_sessions(&[session]);
    }

    fn sweep(&mut self, _now: Instant, occupied: &dyn Fn(&RoomName) -> bool) -> Vec<RoomName> {
        let gone: Vec<RoomName> = self
            .local
            .iter()
            .filter(|r| !occupied(r))
            .cloned()
            .collect();
        for room in &gone {
            self.local.remove(room);
        }
        // The heartbeat: this instance, its sessions and its rooms live on while it does.
        if let Err(err) = self.heartbeat() {
            warn!("{err}: heartbeat not written");
        }
        let sessions: Vec<SessionId> = self.attached.keys().copied().collect();
        self.refresh_sessions(&sessions);
        let ttl = self.room_ttl();
        if self.local.is_empty() {
            return gone;
        }
        let refreshed = self.run(|conn| {
            let mut pipe = redis::pipe();
            for room in &self.local {
                pipe.cmd("PEXPIRE").arg(room_key(room)).arg(ttl).ignore();
                pipe.cmd("PEXPIRE").arg(history_key(room)).arg(ttl).ignore();
                pipe.cmd("PEXPIRE")
                    .arg(presence_key(room))
                    .arg(ttl)
                    .ignore();
            }
            pipe.query::<()>(conn)
        });
        if let Err(err) = refreshed {
            warn!("{err}: room TTLs not refreshed");
        }
        gone
    }

    fn stored(&self) -> Stored {
        // What this instance holds; the history and the dedupe tables are Redis's.
        Stored {
            sessions: self.attached.len(),
            sessions_peak: self.attached.len(),
            ..Stored::default()
        }
    }

    fn shared(&self) -> bool {
        true
    }

    fn range(
        &self,
        room: &str,
        after: Offset,
        upto: Offset,
    ) -> Result<Vec<Utf8Bytes>, StorageError> {
        let entries: Vec<(String, Vec<String>)> = self.run(|conn| {
            redis::cmd("XRANGE")
                .arg(history_key(room))
                .arg(format!("({after}-0"))
                .arg(format!("{upto}-0"))
                .query(conn)
        })?;
        Ok(entries
            .into_iter()
            .filter_map(|(_, fields)| fields.into_iter().nth(3).map(Utf8Bytes::from))
            .collect())
    }

    fn head(&self, room: &str) -> Result<Option<(String, Offset)>, StorageError> {
        RedisEngine::head(self, room)
    }

    fn member_joined(&mut self, room: &RoomName, conn: u64, name: &str) {
        let field = format!("{}:{conn}", self.instance);
        self.members_changed(room, |pipe| {
            pipe.cmd("HSET")
                .arg(presence_key(room))
                .arg(&field)
                .arg(name)
                .ignore();
        });
    }

    fn member_left(&mut self, room: &RoomName, conn: u64) {
        let field = format!("{}:{conn}", self.instance);
        self.members_changed(room, |pipe| {
            pipe.cmd("HDEL")
                .arg(presence_key(room))
                .arg(&field)
                .ignore();
        });
    }

    fn presence(&self, room: &str) -> Option<Vec<String>> {
        let names = self.run(|conn| {
            self.presence
                .key(presence_key(room))
                .arg(instance_key(""))
                .invoke::<Vec<String>>(conn)
        });
        match names {
            Ok(mut names) => {
                names.sort();
                Some(names)
            }
            Err(err) => {
                warn!("{err}: presence of {room} from this instance only");
                None
            }
        }
    }

    #[cfg(test)]
    fn tables(&self) -> &super::memory::MemoryEngine {
        panic!("the Redis engine keeps its tables in Redis: this test looks inside memory tables")
    }
}

impl RedisEngine {
    /// Restarts the TTL of `sessions`' keys.
    fn refresh_sessions(&self, sessions: &[SessionId]) {
        if sessions.is_empty() {
            return;
        }
        let ttl = self.session_ttl();
        let refreshed = self.run(|conn| {
            let mut pipe = redis::pipe();
            for session in sessions {
                for key in session_keys(*session) {
                    pipe.cmd("PEXPIRE").arg(key).arg(ttl).ignore();
                }
            }
            pipe.query::<()>(conn)
        });
        if let Err(err) = refreshed {
            warn!("{err}: session TTLs not refreshed");
        }
    }
}

/// One message of the fan-out channel.
#[derive(Debug)]
pub(crate) struct FannedOut {
    pub(crate) room: String,
    pub(crate) epoch: String,
    pub(crate) offset: Offset,
    pub(crate) frame: Utf8Bytes,
}

impl FannedOut {
    fn parse(payload: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(payload).ok()?;
        let mut parts = text.splitn(4, '\n');
        let offset = parts.next()?.parse().ok()?;
        let epoch = parts.next()?.to_string();
        let room = parts.next()?.to_string();
        let frame = Utf8Bytes::from(parts.next()?.to_string());
        Some(Self {
            room,
            epoch,
            offset,
            frame,
        })
    }
}

/// Subscribes to the fan-out channel and hands every publish, from any instance, to `hub`,
/// until `shutdown` turns true. After each (re)subscription the hub fills what it missed
/// from the streams.
pub(crate) async fn fan_in_until(url: String, hub: Hub, mut shutdown: watch::Receiver<bool>) {
    let mut pause = Duration::from_millis(10);
    loop {
        let subscribed = async {
            let client = redis::Client::open(url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&[FANOUT, PRESENCE]).await?;
            RedisResult::Ok(pubsub)
        };
        match subscribed.await {
            Ok(mut pubsub) => {
                info!("subscribed to {FANOUT}");
                pause = Duration::from_millis(10);
                hub.catch_up_all();
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        msg = messages.next() => {
                            let Some(first) = msg else { break };
                            // Everything already received goes to the hub under one lock, so
                            // each member's writer finds several messages to send in one
                            // frame, as it does for this instance's own publishes.
                            let mut fanned = Vec::new();
                            let mut next = Some(first);
                            while let Some(msg) = next {
                                if msg.get_channel_name() == PRESENCE {
                                    hub.fan_in(std::mem::take(&mut fanned));
                                    match std::str::from_utf8(msg.get_payload_bytes()) {
                                        Ok(room) => hub.presence_changed(room),
                                        Err(_) => warn!("an unreadable message on {PRESENCE}"),
                                    }
                                } else {
                                    match FannedOut::parse(msg.get_payload_bytes()) {
                                        Some(out) => fanned.push(out),
                                        None => warn!("an unreadable message on {FANOUT}"),
                                    }
                                }
                                next = if fanned.len() < FAN_IN_BATCH {
                                    messages.next().now_or_never().flatten()
                                } else {
                                    None
                                };
                            }
                            hub.fan_in(fanned);
                        },
                        _ = crate::until_true(&mut shutdown) => return,
                    }
                }
                warn!("the subscription to {FANOUT} ended: subscribing again");
            }
            Err(err) => warn!("redis: cannot subscribe to {FANOUT}: {err}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = crate::until_true(&mut shutdown) => return,
        }
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
