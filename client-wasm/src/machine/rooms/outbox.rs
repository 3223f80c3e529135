//! The persistent outbox (feature `persist`): what of a [`Rooms`] layer must survive a page
//! reload, a crash or a discarded tab, as a serde value, and a layer started again from it.
//!
//! Sans-IO like the rest of the core: the layer says *what* to keep
//! ([`Rooms::poll_snapshot`] hands out an [`OutboxSnapshot`] whenever it changed) and a shell
//! decides *where* (IndexedDB, a file). A new page or process starts its layer with
//! [`Rooms::restore`] from the last snapshot it stored:
//!
//! - the same publisher id and the session token of the last `welcome`, so the first `hello`
//!   resumes the old session while the server still knows it (2 minutes in `server-dev`) and
//!   the server's `(session, id)` deduplication covers the resends;
//! - every unacknowledged publish, resent with its id after the first `welcome`, in id order;
//! - every room, rejoined with `since` its last position (recovery then replays what was
//!   missed);
//! - publishes go out only in a session that a stored snapshot names
//!   ([`Rooms::outbox_stored`]): after a `welcome` with a new session the resends wait for the
//!   shell to store a snapshot with it, so the next page can always resume the session that
//!   carried them;
//! - new publish ids start [`RESTORE_ID_GAP`] above the snapshot's last id, so an id used after
//!   the last stored snapshot (a shell stores asynchronously) is never used again for another
//!   publish.
//!
//! When the server acknowledges restored publishes, [`RoomEvent::OutboxDelivered`] names them
//! (after their [`RoomEvent::Acked`] events), once per frame that acknowledged some.
//!
//! The outbox is bounded ([`OutboxConfig`]): a publish that would take it past its count or
//! its bytes is refused with [`RoomError::OutboxFull`]; nothing is dropped.
//!
//! ```
//! use ws_lifeline::machine::rooms::outbox::{OutboxConfig, OutboxSnapshot};
//! use ws_lifeline::machine::rooms::{Rooms, RoomsConfig};
//! use ws_lifeline::machine::{Event, Instant};
//! use ws_lifeline::RawJson;
//!
//! let mut page = Rooms::new(RoomsConfig::default(), 7);
//! page.persist(OutboxConfig::default());
//! page.join(Instant(0), "lobby").unwrap();
//! page.publish(Instant(1), "lobby", RawJson::new(r#""hi""#).unwrap()).unwrap();
//! let stored = page.poll_snapshot().unwrap().to_json();
//! drop(page); // the page reloads before the server acknowledged "hi"
//!
//! let snapshot = OutboxSnapshot::from_json(&stored).unwrap();
//! let mut next = Rooms::restore(RoomsConfig::default(), OutboxConfig::default(), snapshot, Instant(0)).unwrap();
//! assert_eq!(next.unacked(), 1); // resent after the next `welcome`
//! assert_eq!(next.rooms().collect::<Vec<_>>(), ["lobby"]);
//! ```

use std::collections::BTreeSet;

use protocol::{ClientMsg, MsgId, Since};
use serde::{Deserialize, Serialize};

use super::{Pending, PublishId, RawJson, RoomError, RoomEvent, RoomState, Rooms, RoomsConfig};
use crate::machine::json::{Kind, MAX_DEPTH, Scanner, members, push_string, push_u64};
use crate::machine::server_frame::{BAD_JSON, Fields, FrameError, WRONG_TYPE, fields};
use crate::machine::{Instant, Message};

/// The snapshot format this client writes and reads.
pub const SNAPSHOT_VERSION: u32 = 1;

/// How far above a snapshot's last publish id a restored layer starts its ids. A shell stores
/// snapshots asynchronously, so the page may have used ids after the last one it stored; far
/// more than a page can publish between two stores, and small enough that a JavaScript number
/// holds the ids of 2^33 restores.
pub const RESTORE_ID_GAP: MsgId = 1 << 20;

/// Bounds of the persistent outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxConfig {
    /// Most unacknowledged publishes kept. Default: 1024 (as
    /// [`RoomsConfig::max_unacked`]).
    pub max_publishes: usize,
    /// Most bytes of unacknowledged publish frames kept. Default: 1 MiB.
    pub max_bytes: usize,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_publishes: 1024,
            max_bytes: 1 << 20,
        }
    }
}

impl OutboxConfig {
    /// Sets the bound on publishes kept.
    pub fn max_publishes(mut self, max: usize) -> Self {
        self.max_publishes = max;
        self
    }

    /// Sets the bound on bytes kept.
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }
}

/// Why a snapshot could not be read or restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The snapshot was written in a format this client does not read.
    #[error("outbox snapshot version {found} is not supported (this client reads version 1)")]
    UnsupportedVersion {
        /// The snapshot's version.
        found: u32,
    },
    /// The snapshot breaks a rule a layer keeps (a bad name, id or data): it was not written
    /// by this client or was changed since.
    #[error("invalid outbox snapshot: {reason}")]
    InvalidSnapshot {
        /// What is wrong.
        reason: String,
    },
    /// The stored text is not a snapshot.
    #[error("the outbox snapshot is not readable: {message}")]
    Decode {
        /// The decoder's message.
        message: String,
    },
    /// The rooms layer already runs (it may have said `hello` with another publisher id):
    /// restore before the first join, publish or connection.
    #[error("the rooms layer already runs: restore the outbox before using it")]
    AlreadyStarted,
    /// The shell's store failed (in the browser: IndexedDB).
    #[error("the outbox store failed: {message}")]
    Store {
        /// The store's message.
        message: String,
    },
    /// The client could not be made (a shell's constructor).
    #[error(transparent)]
    Client(#[from] crate::Error),
}

/// What must survive a reload: see the [module docs](self). Serialize it with any serde
/// format (JSON: [`to_json`](Self::to_json)); the field names are the stored format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutboxSnapshot {
    /// The format: [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// The client's publisher id.
    pub publisher: String,
    /// The session token of the last `welcome`, if one arrived.
    pub session: Option<String>,
    /// The highest publish id used when the snapshot was taken.
    pub last_id: MsgId,
    /// Every room joined (or being joined), by name.
    pub rooms: Vec<SavedRoom>,
    /// Every unacknowledged publish, in id order.
    pub publishes: Vec<SavedPublish>,
}

/// A joined room in an [`OutboxSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SavedRoom {
    /// Room name.
    pub room: String,
    /// The last position delivered to the application; `None` before the first `joined`.
    pub since: Option<Since>,
}

/// An unacknowledged publish in an [`OutboxSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SavedPublish {
    /// Its publish id.
    pub id: MsgId,
    /// Its room.
    pub room: String,
    /// The published JSON, as text.
    pub data: String,
}

// JSON by the client's own writer and scanner (`machine/json.rs`), as protocol frames are:
// serde_json's decoder took the npm persist entry's wasm from 47.3 to 73.7 KiB gzip. The text
// is what serde_json writes for the derived `Serialize`, and reading accepts what the derived
// `Deserialize` accepts from serde_json (unknown fields ignored, `null` or absent `Option`s);
// the tests below check both against serde_json.
impl OutboxSnapshot {
    /// The snapshot as JSON.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"version\":");
        push_u64(&mut out, u64::from(self.version));
        out.push_str(",\"publisher\":");
        push_string(&mut out, &self.publisher);
        out.push_str(",\"session\":");
        match &self.session {
            Some(session) => push_string(&mut out, session),
            None => out.push_str("null"),
        }
        out.push_str(",\"last_id\":");
        push_u64(&mut out, self.last_id);
        out.push_str(",\"rooms\":[");
        for (at, saved) in self.rooms.iter().enumerate() {
            out.push_str(if at == 0 { "{\"room\":" } else { ",{\"room\":" });
            push_string(&mut out, &saved.room);
            out.push_str(",\"since\":");
            match &saved.since {
                Some(since) => {
                    out.push_str("{\"epoch\":");
                    push_string(&mut out, &since.epoch);
                    out.push_str(",\"offset\":");
                    push_u64(&mut out, since.offset);
                    out.push('}');
                }
                None => out.push_str("null"),
            }
            out.push('}');
        }
        out.push_str("],\"publishes\":[");
        for (at, saved) in self.publishes.iter().enumerate() {
            out.push_str(if at == 0 { "{\"id\":" } else { ",{\"id\":" });
            push_u64(&mut out, saved.id);
            out.push_str(",\"room\":");
            push_string(&mut out, &saved.room);
            out.push_str(",\"data\":");
            push_string(&mut out, &saved.data);
            out.push('}');
        }
        out.push_str("]}");
        out
    }

    /// A snapshot stored with [`to_json`](Self::to_json).
    ///
    /// Errors: [`OutboxError::Decode`]. A wrong version is reported by [`Rooms::restore`].
    pub fn from_json(text: &str) -> Result<OutboxSnapshot, OutboxError> {
        read_snapshot(text).map_err(|e| OutboxError::Decode {
            message: e.text().to_owned(),
        })
    }
}

/// The object at `scan`'s cursor, which must be one.
fn object<'a>(mut scan: Scanner<'a>, kind: Kind) -> Result<Fields<'a>, FrameError> {
    if kind != Kind::Object {
        return Err(WRONG_TYPE);
    }
    fields(&mut scan, MAX_DEPTH + 1)
}

fn read_snapshot(text: &str) -> Result<OutboxSnapshot, FrameError> {
    let mut scan = Scanner::new(text);
    scan.skip_ws();
    let start = scan.at;
    let kind = scan.value(MAX_DEPTH + 1).ok_or(BAD_JSON)?;
    scan.skip_ws();
    if !scan.at_end() {
        return Err(BAD_JSON);
    }
    let mut top = Scanner::new(text);
    top.at = start;
    let f = object(top, kind)?;
    let rooms = f.array("rooms")?.into_iter().map(|(element, kind)| {
        let r = object(element, kind)?;
        let since = match r.present("since")? {
            Some(m) => {
                let mut at = Scanner::new(text);
                at.at = m.start;
                let s = object(at, m.kind)?;
                Some(Since {
                    epoch: s.string("epoch")?,
                    offset: s.u64("offset")?,
                })
            }
            None => None,
        };
        Ok(SavedRoom {
            room: r.string("room")?,
            since,
        })
    });
    let rooms = rooms.collect::<Result<Vec<_>, FrameError>>()?;
    let publishes = f.array("publishes")?.into_iter().map(|(element, kind)| {
        let p = object(element, kind)?;
        Ok(SavedPublish {
            id: p.u64("id")?,
            room: p.string("room")?,
            data: p.string("data")?,
        })
    });
    let publishes = publishes.collect::<Result<Vec<_>, FrameError>>()?;
    Ok(OutboxSnapshot {
        version: f.u32("version")?,
        publisher: f.string("publisher")?,
        session: f.opt_string("session")?,
        last_id: f.u64("last_id")?,
        rooms,
        publishes,
    })
}

/// The data of a publish frame the layer built (`{"type":"publish",…,"data":…}`), as text.
fn publish_data(frame: &str) -> Option<&str> {
    let mut scan = Scanner::new(frame);
    let data = members(&mut scan, MAX_DEPTH + 1)?
        .into_iter()
        .find(|m| m.key == "data")?;
    frame.get(data.start..data.end)
}

/// What changes a snapshot, without the publishes' data (which never changes for an id).
type Key = (
    Option<String>,
    MsgId,
    Vec<MsgId>,
    Vec<(String, Option<Since>)>,
);

/// The outbox's state inside a [`Rooms`] layer.
#[derive(Debug)]
pub(super) struct Outbox {
    config: OutboxConfig,
    /// Restored publishes not yet acknowledged or failed.
    restored: BTreeSet<MsgId>,
    /// Restored publishes acknowledged by the frame being handled.
    delivered: Vec<PublishId>,
    /// What the last snapshot handed out held.
    last: Option<Key>,
    /// The session of the last snapshot the shell stored.
    stored_session: Option<String>,
    /// Restored from a snapshot: the first id this layer gives; the ids below it are the
    /// earlier layers' (see [`Rooms::publish_as`]).
    first_own_id: Option<MsgId>,
}

impl Outbox {
    fn new(config: OutboxConfig) -> Self {
        Outbox {
            config,
            restored: BTreeSet::new(),
            delivered: Vec::new(),
            last: None,
            stored_session: None,
            first_own_id: None,
        }
    }
}

fn invalid(reason: impl Into<String>) -> OutboxError {
    OutboxError::InvalidSnapshot {
        reason: reason.into(),
    }
}

impl Rooms {
    /// Turns the persistent outbox on for this layer (its publisher id and publishes so far
    /// included): from now on [`poll_snapshot`](Self::poll_snapshot) reports changes and
    /// publishes are bounded by `config`.
    pub fn persist(&mut self, config: OutboxConfig) {
        match &mut self.outbox {
            Some(outbox) => outbox.config = config,
            None => self.outbox = Some(Outbox::new(config)),
        }
    }

    /// A layer that goes on where the one that wrote `snapshot` stopped (see the
    /// [module docs](self)), with the outbox on. Restored publishes get a new ack deadline
    /// (`config.ack_timeout` from `now`) and may take the outbox past its bounds (nothing
    /// stored is dropped; new publishes wait until it drains).
    ///
    /// Errors: [`OutboxError::UnsupportedVersion`], [`OutboxError::InvalidSnapshot`].
    pub fn restore(
        config: RoomsConfig,
        outbox: OutboxConfig,
        snapshot: OutboxSnapshot,
        now: Instant,
    ) -> Result<Rooms, OutboxError> {
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(OutboxError::UnsupportedVersion {
                found: snapshot.version,
            });
        }
        if !protocol::valid_publisher_id(&snapshot.publisher) {
            return Err(invalid(format!("publisher id {:?}", snapshot.publisher)));
        }
        let deadline = now + config.ack_timeout;
        let mut rooms = Rooms::new(config, 0);
        rooms.publisher = snapshot.publisher;
        rooms.session = snapshot.session;
        for saved in snapshot.rooms {
            if !protocol::valid_room_name(&saved.room) || rooms.rooms.contains_key(&saved.room) {
                return Err(invalid(format!("room {:?}", saved.room)));
            }
            let mut state = RoomState::new();
            state.position = saved.since;
            rooms.rooms.insert(saved.room, state);
        }
        let mut outbox = Outbox::new(outbox);
        outbox.stored_session.clone_from(&rooms.session);
        let mut last_id = snapshot.last_id;
        for p in snapshot.publishes {
            if outbox.restored.last().is_some_and(|&prev| p.id <= prev) {
                return Err(invalid(format!("publish {} out of order", p.id)));
            }
            if !rooms.rooms.contains_key(&p.room) {
                return Err(invalid(format!("publish {} to a room not joined", p.id)));
            }
            let data = RawJson::new(p.data)
                .map_err(|_| invalid(format!("publish {} data is not JSON", p.id)))?;
            let Message::Text(frame) = super::frame(&ClientMsg::Publish {
                room: p.room.clone(),
                id: p.id,
                data,
            }) else {
                return Err(invalid("publish frame"));
            };
            last_id = last_id.max(p.id);
            outbox.restored.insert(p.id);
            rooms.unacked.insert(
                p.id,
                Pending {
                    room: p.room,
                    frame,
                    deadline,
                    // It may have reached the server: its next send counts as a resend.
                    transmitted: true,
                    on_conn: false,
                },
            );
        }
        rooms.next_id = last_id.saturating_add(RESTORE_ID_GAP);
        outbox.first_own_id = Some(rooms.next_id.saturating_add(1));
        rooms.outbox = Some(outbox);
        Ok(rooms)
    }

    /// Publishes `data` to joined room `room` under `id`, the id an earlier layer on the same
    /// store gave a publish whose fate it never stored: sent (or even acknowledged) after the
    /// last snapshot it stored, its answer lost with it. Shared mode's next hub resumes a
    /// tab's publish so. The publish may have reached the server, so it goes out under its
    /// id, where the server's `(session, id)` deduplication or the receivers' `(publisher,
    /// id)` drop a repeat; a new id would make it a second message.
    ///
    /// Published as new (as [`publish`](Self::publish)) when this layer was not restored from
    /// a snapshot (an earlier layer's ids were another publisher's) or `id` is not below the
    /// ids it gives itself; `id` itself when it is still unacknowledged here (a restored
    /// publish).
    ///
    /// Errors: as `publish`.
    pub fn publish_as(
        &mut self,
        now: Instant,
        room: &str,
        data: RawJson,
        id: MsgId,
    ) -> Result<PublishId, RoomError> {
        let first_own_id = self.outbox.as_ref().and_then(|o| o.first_own_id);
        if !first_own_id.is_some_and(|first| id > 0 && id < first) {
            return self.publish(now, room, data);
        }
        if self.unacked.contains_key(&id) {
            return Ok(PublishId(id));
        }
        self.check_publish(room)?;
        self.enqueue(now, room, id, data, true)
    }

    /// The snapshot of this layer now; `None` while the outbox is off.
    pub fn snapshot(&self) -> Option<OutboxSnapshot> {
        self.outbox.as_ref()?;
        let publishes = self
            .unacked
            .iter()
            .map(|(&id, p)| SavedPublish {
                id,
                room: p.room.clone(),
                // The layer built the frame, so it always has its data.
                data: publish_data(&p.frame).unwrap_or("null").to_owned(),
            })
            .collect();
        let rooms = self
            .rooms
            .iter()
            .map(|(room, r)| SavedRoom {
                room: room.clone(),
                since: r.position.clone(),
            })
            .collect();
        Some(OutboxSnapshot {
            version: SNAPSHOT_VERSION,
            publisher: self.publisher.clone(),
            session: self.session.clone(),
            last_id: self.next_id,
            rooms,
            publishes,
        })
    }

    /// The snapshot, when it differs from the last one this returned (and the outbox is on).
    /// A shell calls it after each run of the layer and stores what it gets; a burst of
    /// changes within one run costs one snapshot. Room positions are part of it, so a
    /// delivered message changes it.
    pub fn poll_snapshot(&mut self) -> Option<OutboxSnapshot> {
        let key = self.outbox_key();
        let outbox = self.outbox.as_mut()?;
        if outbox.last.as_ref() == Some(&key) {
            return None;
        }
        outbox.last = Some(key);
        self.snapshot()
    }

    /// The shell has stored `snapshot` where the next page finds it. Publishes go out only in
    /// a session a stored snapshot names: were the page lost after a publish reached the
    /// server in a session no stored snapshot names, the next page could not resume that
    /// session, and the server could not recognise the resend.
    pub fn outbox_stored(&mut self, snapshot: &OutboxSnapshot) {
        if let Some(outbox) = self.outbox.as_mut() {
            outbox.stored_session.clone_from(&snapshot.session);
        }
        self.release();
    }

    /// Bytes of the unacknowledged publish frames: what [`OutboxConfig::max_bytes`] bounds.
    pub fn outbox_bytes(&self) -> usize {
        self.unacked.iter().map(|(_, p)| p.frame.len()).sum()
    }

    /// Empties the outbox: every unacknowledged publish fails with
    /// [`RoomError::OutboxCleared`] and is not resent. The publisher id, the session and the
    /// rooms stay.
    pub fn clear_outbox(&mut self) {
        let ids: Vec<MsgId> = self.unacked.keys().copied().collect();
        for id in ids {
            self.fail(id, |id, _| RoomError::OutboxCleared { id });
        }
        if let Some(outbox) = self.outbox.as_mut() {
            outbox.restored.clear();
        }
    }

    fn outbox_key(&self) -> Key {
        (
            self.session.clone(),
            self.next_id,
            self.unacked.keys().copied().collect(),
            (self.rooms.iter())
                .map(|(room, r)| (room.clone(), r.position.clone()))
                .collect(),
        )
    }

    /// Publishes may go out: the outbox is off, or a stored snapshot names this session.
    pub(super) fn outbox_allows_release(&self) -> bool {
        self.outbox.as_ref().is_none_or(|o| {
            o.stored_session.is_some() && o.stored_session.as_deref() == self.session.as_deref()
        })
    }

    /// Refuses a `size`-byte publish frame the outbox has no room for.
    pub(super) fn check_outbox(&self, size: usize) -> Result<(), RoomError> {
        let Some(outbox) = &self.outbox else {
            return Ok(());
        };
        let OutboxConfig {
            max_publishes,
            max_bytes,
        } = outbox.config;
        if self.unacked.len() >= max_publishes
            || self.outbox_bytes().saturating_add(size) > max_bytes
        {
            return Err(RoomError::OutboxFull {
                max_publishes,
                max_bytes,
            });
        }
        Ok(())
    }

    /// A publish was acknowledged or failed: a restored one acknowledged is delivered.
    pub(super) fn outbox_settled(&mut self, id: MsgId, acked: bool) {
        if let Some(outbox) = self.outbox.as_mut()
            && outbox.restored.remove(&id)
            && acked
        {
            outbox.delivered.push(PublishId(id));
        }
    }

    /// After a frame: names the restored publishes it acknowledged.
    pub(super) fn flush_delivered(&mut self) {
        if let Some(outbox) = self.outbox.as_mut()
            && !outbox.delivered.is_empty()
        {
            let ids = std::mem::take(&mut outbox.delivered);
            self.events.push_back(RoomEvent::OutboxDelivered { ids });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code panics by design
mod tests {
    use super::*;
    use crate::machine::Event;
    use protocol::ServerMsg;

    fn text(msg: &ServerMsg) -> Event {
        Event::Message(Message::Text(serde_json::to_string(msg).unwrap()))
    }

    fn sent(r: &mut Rooms) -> Vec<ClientMsg> {
        std::iter::from_fn(|| r.poll_transmit())
            .filter_map(|o| o.message().cloned())
            .map(|m| serde_json::from_str(m.as_text().unwrap()).unwrap())
            .collect()
    }

    fn welcome(session: &str) -> ServerMsg {
        ServerMsg::Welcome {
            session: session.into(),
            resumed: true,
            name: "me".into(),
            limits: None,
        }
    }

    fn data(n: u32) -> RawJson {
        RawJson::new(format!(r#"{{"n":{n}}}"#)).unwrap()
    }

    /// A layer with the outbox on, joined to `r` at offset 5 of epoch `e`, session `s1`.
    fn page() -> Rooms {
        let mut r = Rooms::new(RoomsConfig::default(), 3);
        r.persist(OutboxConfig::default());
        r.join(Instant(0), "r").unwrap();
        r.handle_event(Instant(0), &Event::Open);
        r.handle_event(Instant(0), &text(&welcome("s1")));
        let joined = ServerMsg::Joined {
            room: "r".into(),
            epoch: "e".into(),
            offset: 5,
            recovered: true,
            resume_after: None,
        };
        r.handle_event(Instant(0), &text(&joined));
        sent(&mut r);
        while r.poll_event().is_some() {}
        r
    }

    /// The ids of the publishes among the frames `r` sent since last asked, in order.
    fn published_ids(r: &mut Rooms) -> Vec<MsgId> {
        sent(r)
            .into_iter()
            .filter_map(|m| match m {
                ClientMsg::Publish { id, .. } => Some(id),
                _ => None,
            })
            .collect()
    }

    /// A layer restored at the defaults from `snapshot`.
    fn restored(snapshot: OutboxSnapshot) -> Rooms {
        Rooms::restore(
            RoomsConfig::default(),
            OutboxConfig::default(),
            snapshot,
            Instant(0),
        )
        .unwrap()
    }

    #[test]
    fn the_snapshot_holds_publisher_session_publishes_and_positions() {
        let mut r = page();
        let a = r.publish(Instant(1), "r", data(1)).unwrap();
        let b = r.publish(Instant(1), "r", data(2)).unwrap();
        let s = r.poll_snapshot().unwrap();
        assert_eq!(s.version, SNAPSHOT_VERSION);
        assert_eq!(s.publisher, r.publisher());
        assert_eq!(s.session.as_deref(), Some("s1"));
        assert_eq!(s.last_id, b.0);
        let since = Some(Since {
            epoch: "e".into(),
            offset: 5,
        });
        assert_eq!(
            s.rooms,
            vec![SavedRoom {
                room: "r".into(),
                since
            }]
        );
        let ids: Vec<(MsgId, &str)> = (s.publishes.iter())
            .map(|p| (p.id, p.data.as_str()))
            .collect();
        assert_eq!(ids, vec![(a.0, r#"{"n":1}"#), (b.0, r#"{"n":2}"#)]);
        assert_eq!(OutboxSnapshot::from_json(&s.to_json()).unwrap(), s);
        // Unchanged: nothing new to store.
        assert_eq!(r.poll_snapshot(), None);
        let ack = ServerMsg::Ack {
            id: a.0,
            offset: 6,
            duplicate: false,
        };
        r.handle_event(Instant(2), &text(&ack));
        let s = r.poll_snapshot().unwrap();
        assert_eq!(s.publishes.len(), 1);
    }

    #[test]
    fn publish_as_resumes_an_earlier_layers_id_the_snapshot_missed() {
        let mut r = page();
        let stored = r.publish(Instant(1), "r", data(1)).unwrap();
        let snapshot = r.poll_snapshot().unwrap();
        // Sent after the last snapshot stored, then the layer is gone: the next one must not
        // give it a new id.
        let unstored = r.publish(Instant(1), "r", data(2)).unwrap();
        drop(r);

        let mut r = restored(snapshot);
        assert_eq!(
            r.publish_as(Instant(0), "r", data(1), stored.0),
            Ok(stored),
            "a restored publish is itself"
        );
        assert_eq!(
            r.publish_as(Instant(0), "r", data(2), unstored.0),
            Ok(unstored)
        );
        assert_eq!(r.unacked(), 2);
        let own = r.publish(Instant(0), "r", data(3)).unwrap();
        assert_eq!(
            r.publish_as(Instant(0), "elsewhere", data(4), unstored.0 + 1),
            Err(RoomError::NotJoined {
                room: "elsewhere".into()
            })
        );
        // An id this layer could give itself is not an earlier layer's: published as new.
        let fresh = r.publish_as(Instant(0), "r", data(5), own.0 + 1).unwrap();
        assert_eq!(fresh.0, own.0 + 1);
        let again = r.publish_as(Instant(0), "r", data(6), own.0 + 1).unwrap();
        assert_eq!(
            again.0,
            own.0 + 2,
            "a used id of this layer's is not reused"
        );

        r.handle_event(Instant(0), &Event::Open);
        r.handle_event(Instant(1), &text(&welcome("s1")));
        let ids = published_ids(&mut r);
        assert_eq!(ids, vec![stored.0, unstored.0, own.0, fresh.0, again.0]);
        assert_eq!(r.stats().resent, 2, "both may have reached the server");
    }

    #[test]
    fn publish_as_without_a_restored_snapshot_publishes_as_new() {
        let mut r = page();
        let first = r.publish_as(Instant(1), "r", data(1), 7).unwrap();
        assert_eq!(
            first.0, 1,
            "an id of an unknown earlier layer is another publisher's"
        );
    }

    #[test]
    fn a_restored_layer_resumes_resends_and_reports_delivery() {
        let mut r = page();
        let a = r.publish(Instant(1), "r", data(1)).unwrap();
        let b = r.publish(Instant(1), "r", data(2)).unwrap();
        let snapshot = r.poll_snapshot().unwrap();
        let publisher = r.publisher().to_owned();
        drop(r);

        let mut r = restored(snapshot);
        r.handle_event(Instant(0), &Event::Open);
        let since = Some(Since {
            epoch: "e".into(),
            offset: 5,
        });
        assert_eq!(
            sent(&mut r),
            vec![
                ClientMsg::Hello {
                    session: Some("s1".into()),
                    publisher: Some(publisher)
                },
                ClientMsg::Join {
                    room: "r".into(),
                    since
                },
            ]
        );
        // A new publish waits behind the restored ones, with an id past the gap.
        let c = r.publish(Instant(1), "r", data(3)).unwrap();
        assert_eq!(c.0, b.0 + RESTORE_ID_GAP + 1);
        r.handle_event(Instant(1), &text(&welcome("s1")));
        let ids = published_ids(&mut r);
        assert_eq!(ids, vec![a.0, b.0, c.0]);
        while r.poll_event().is_some() {}
        let acks: [ServerMsg; 3] =
            [(a, true), (b, false), (c, false)].map(|(id, duplicate)| ServerMsg::Ack {
                id: id.0,
                offset: 6,
                duplicate,
            });
        let frame = Event::Message(Message::Text(serde_json::to_string(&acks).unwrap()));
        r.handle_event(Instant(2), &frame);
        let events: Vec<RoomEvent> = std::iter::from_fn(|| r.poll_event()).collect();
        assert_eq!(events.len(), 4, "{events:?}");
        assert_eq!(
            events[3],
            RoomEvent::OutboxDelivered { ids: vec![a, b] },
            "the new publish is not a restored one"
        );
        assert_eq!(r.stats().resent, 2);
    }

    #[test]
    fn publishes_wait_for_a_stored_snapshot_that_names_the_session() {
        let mut r = page();
        let a = r.publish(Instant(1), "r", data(1)).unwrap();
        assert_eq!(sent(&mut r), vec![], "session s1 is not stored yet");
        let s = r.poll_snapshot().unwrap();
        r.outbox_stored(&s);
        assert!(matches!(sent(&mut r)[..], [ClientMsg::Publish { id, .. }] if id == a.0));
        // A new session (the server forgot s1): the resend waits again.
        r.handle_event(
            Instant(2),
            &Event::Close(crate::machine::CloseInfo::abnormal("")),
        );
        r.handle_event(Instant(2), &Event::Open);
        r.handle_event(Instant(2), &text(&welcome("s2")));
        let publishes = |r: &mut Rooms| {
            sent(r)
                .into_iter()
                .filter(|m| matches!(m, ClientMsg::Publish { .. }))
                .count()
        };
        assert_eq!(publishes(&mut r), 0);
        let s = r.poll_snapshot().unwrap();
        assert_eq!(s.session.as_deref(), Some("s2"));
        r.outbox_stored(&s);
        assert_eq!(publishes(&mut r), 1);
    }

    // proptest is a native dev-dependency.
    #[cfg(not(target_arch = "wasm32"))]
    mod json_as_serde {
        use super::super::*;
        use proptest::prelude::*;

        fn snapshot() -> impl Strategy<Value = OutboxSnapshot> {
            // Any text, escapes and non-ASCII included.
            let text = || any::<String>();
            let room = (text(), proptest::option::of((text(), any::<u64>())));
            let publish = (any::<u64>(), text(), text());
            (
                (
                    any::<u32>(),
                    text(),
                    proptest::option::of(text()),
                    any::<u64>(),
                ),
                proptest::collection::vec(room, 0..3),
                proptest::collection::vec(publish, 0..3),
            )
                .prop_map(
                    |((version, publisher, session, last_id), rooms, publishes)| OutboxSnapshot {
                        version,
                        publisher,
                        session,
                        last_id,
                        rooms: rooms
                            .into_iter()
                            .map(|(room, since)| SavedRoom {
                                room,
                                since: since.map(|(epoch, offset)| Since { epoch, offset }),
                            })
                            .collect(),
                        publishes: publishes
                            .into_iter()
                            .map(|(id, room, data)| SavedPublish { id, room, data })
                            .collect(),
                    },
                )
        }

        proptest! {
            #[test]
            fn writes_what_serde_json_writes_and_reads_it_back(s in snapshot()) {
                let text = s.to_json();
                prop_assert_eq!(&text, &serde_json::to_string(&s).unwrap());
                prop_assert_eq!(OutboxSnapshot::from_json(&text), Ok(s.clone()));
                let pretty = serde_json::to_string_pretty(&s).unwrap();
                prop_assert_eq!(OutboxSnapshot::from_json(&pretty), Ok(s));
            }
        }

        /// Texts serde_json reads as a snapshot, and texts it refuses: the same verdicts here.
        #[test]
        fn reads_and_refuses_what_serde_json_does() {
            let ok = r#"{"version":1,"publisher":"p","last_id":2,"rooms":[],"publishes":[]}"#;
            let cases = [
                ok.to_owned(),
                ok.replace(r#""last_id""#, r#""extra":[{"x":null}],"last_id""#),
                ok.replace(r#""rooms":[]"#, r#""rooms":[{"room":"r","since":null}]"#),
                ok.replace(r#""rooms":[]"#, r#""rooms":[{"room":"r"}]"#),
                ok.replace(r#""publisher":"p""#, r#""publisher":"p","session":null"#),
                ok.replace(r#""last_id":2"#, r#""last_id":-2"#),
                ok.replace(r#""last_id":2"#, r#""last_id":2.5"#),
                ok.replace(r#""version":1"#, r#""version":4294967296"#),
                ok.replace(r#""publishes":[]"#, r#""publishes":[{"id":1,"room":"r"}]"#),
                ok.replace(
                    r#""publishes":[]"#,
                    r#""publishes":[{"id":1,"room":"r","data":7}]"#,
                ),
                ok.replace(
                    r#""rooms":[]"#,
                    r#""rooms":[{"room":"r","since":{"epoch":"e"}}]"#,
                ),
                ok.replace(r#""publisher":"p""#, r#""publisher":"p","publisher":"q""#),
                ok.replace(r#""publisher":"p","#, ""),
                format!("{ok} x"),
                format!(" {ok}\n"),
                "[]".to_owned(),
                "null".to_owned(),
                String::new(),
            ];
            for text in cases {
                let serde = serde_json::from_str::<OutboxSnapshot>(&text);
                let ours = OutboxSnapshot::from_json(&text);
                match (serde, ours) {
                    (Ok(serde), Ok(ours)) => assert_eq!(serde, ours, "{text}"),
                    (Err(_), Err(OutboxError::Decode { .. })) => {}
                    (serde, ours) => panic!("{text}: serde_json {serde:?}, ours {ours:?}"),
                }
            }
        }

        #[test]
        fn the_snapshot_holds_each_publishs_data_as_published() {
            let mut r = Rooms::new(RoomsConfig::default(), 7);
            r.persist(OutboxConfig::default());
            r.join(Instant(0), "r").unwrap();
            let data = r#"{"text":"a \"quoted\" word, é","n":[1,2.5,null]}"#;
            r.publish(Instant(1), "r", RawJson::new(data).unwrap())
                .unwrap();
            let snapshot = r.snapshot().unwrap();
            assert_eq!(snapshot.publishes[0].data, data);
        }
    }

    #[test]
    fn the_default_bounds_are_1024_publishes_and_1_mib() {
        // The npm persist entry uses these (it has no option for them); its e2e test fills
        // the 1 MiB.
        let config = OutboxConfig::default();
        assert_eq!((config.max_publishes, config.max_bytes), (1024, 1 << 20));
    }

    #[test]
    fn the_outbox_is_bounded_by_count_and_bytes_and_can_be_cleared() {
        let mut r = page();
        r.persist(OutboxConfig::default().max_publishes(2));
        r.publish(Instant(1), "r", data(1)).unwrap();
        let b = r.publish(Instant(1), "r", data(2)).unwrap();
        let full = RoomError::OutboxFull {
            max_publishes: 2,
            max_bytes: 1 << 20,
        };
        assert_eq!(r.publish(Instant(1), "r", data(3)), Err(full));
        let frame_len = r.outbox_bytes() / 2;
        r.persist(OutboxConfig::default().max_bytes(3 * frame_len - 1));
        let full = RoomError::OutboxFull {
            max_publishes: 1024,
            max_bytes: 3 * frame_len - 1,
        };
        assert_eq!(r.publish(Instant(1), "r", data(4)), Err(full));
        assert_eq!(r.unacked(), 2, "nothing dropped");
        r.clear_outbox();
        assert_eq!(r.unacked(), 0);
        let failed: Vec<RoomEvent> = std::iter::from_fn(|| r.poll_event()).collect();
        assert!(matches!(
            failed.last(),
            Some(RoomEvent::PublishFailed {
                error: RoomError::OutboxCleared { id },
                ..
            }) if *id == b
        ));
        assert!(r.poll_snapshot().unwrap().publishes.is_empty());
        assert!(r.publish(Instant(1), "r", data(5)).is_ok());
    }

    #[test]
    fn bad_snapshots_are_typed_errors() {
        let mut r = page();
        r.publish(Instant(1), "r", data(1)).unwrap();
        let good = r.snapshot().unwrap();
        let restore = |s: OutboxSnapshot| {
            Rooms::restore(
                RoomsConfig::default(),
                OutboxConfig::default(),
                s,
                Instant(0),
            )
            .map(|_| ())
        };
        assert_eq!(restore(good.clone()), Ok(()));
        let mut s = good.clone();
        s.version = 2;
        assert_eq!(
            restore(s),
            Err(OutboxError::UnsupportedVersion { found: 2 })
        );
        let mut s = good.clone();
        s.publisher = "no".into();
        assert!(matches!(
            restore(s),
            Err(OutboxError::InvalidSnapshot { .. })
        ));
        let mut s = good.clone();
        s.publishes[0].data = "{".into();
        assert!(matches!(
            restore(s),
            Err(OutboxError::InvalidSnapshot { .. })
        ));
        let mut s = good.clone();
        s.rooms.clear();
        assert!(matches!(
            restore(s),
            Err(OutboxError::InvalidSnapshot { .. })
        ));
        let mut s = good;
        s.publishes.push(s.publishes[0].clone());
        assert!(matches!(
            restore(s),
            Err(OutboxError::InvalidSnapshot { .. })
        ));
        assert!(matches!(
            OutboxSnapshot::from_json("{}"),
            Err(OutboxError::Decode { .. })
        ));
    }

    #[test]
    fn without_persist_nothing_is_snapshotted_or_bounded_by_the_outbox() {
        let mut r = Rooms::new(RoomsConfig::default(), 3);
        r.join(Instant(0), "r").unwrap();
        r.publish(Instant(0), "r", data(1)).unwrap();
        assert_eq!(r.poll_snapshot(), None);
        assert_eq!(r.snapshot(), None);
    }
}
