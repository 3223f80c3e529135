//! Protocol v1 above the core: rooms, publishes with acks, per-room offsets and recovery.
//!
//! [`Rooms`] is sans-IO like the [`Machine`](super::Machine) it sits on: no clock, no socket,
//! no randomness of its own (the publisher id comes from a seed). A shell feeds it every core
//! [`Event`] with [`Rooms::handle_event`], the user's actions with [`Rooms::join`],
//! [`Rooms::leave`] and [`Rooms::publish`], and time with [`Rooms::handle_timeout`]; it then
//! hands every [`Outgoing`] from [`Rooms::poll_transmit`] to the core with
//! [`Machine::send_outgoing`](super::Machine::send_outgoing) and every [`RoomEvent`] from
//! [`Rooms::poll_event`] to the application.
//!
//! What it guarantees (see `docs/PROTOCOL.md`, "Client duties"):
//! - On every open, before the core flushes its queue: `hello {session}`, then
//!   `join {room, since}` for each room. Once that connection's `welcome` arrives, every
//!   unacknowledged publish is sent again, in id order, ahead of any new one. (Not in the
//!   preamble: a publish that lands in a session whose `welcome` is then lost with the
//!   connection could not be deduplicated on the next connection, which would name an older
//!   session or none.)
//! - Every `hello` carries this client's publisher id, chosen once from the seed; publishes
//!   carry ids from one counter that never restarts, stay kept (bounded) until acked, are
//!   resent after a reconnect, and fail with [`RoomError::PublishTimeout`] after the ack timeout.
//! - After a `welcome` with `limits`: a publish over `max_message_bytes` fails with
//!   [`RoomError::TooLarge`] instead of being sent, at most `dedupe_window` publishes are in
//!   flight, and [`Outgoing::Limits`] tells the core to pace every frame to the server's rate.
//!   A close 1009 fails the largest publish in flight on that connection with `TooLarge`.
//! - Within a room and epoch, messages are delivered with offsets `last + 1, last + 2, ...`:
//!   duplicates are dropped and counted; a gap triggers a rejoin with `since` instead of an
//!   out-of-order delivery; a `joined {recovered: false}` is reported, never a silent gap.
//! - A message whose `(publisher, id)` is not above the highest delivered from that publisher
//!   in the room is a resend re-broadcast under a new offset (after a lost session or a server
//!   restart) and is dropped; the table is bounded per room, least recently seen out first.
//!
//! ```
//! use ws_lifeline::machine::rooms::{Outgoing, RoomEvent, Rooms, RoomsConfig};
//! use ws_lifeline::machine::{Event, Instant, Message};
//! use ws_lifeline::RawJson;
//!
//! let mut rooms = Rooms::new(RoomsConfig::default(), 7);
//! rooms.join(Instant(0), "lobby").unwrap();
//! let id = rooms.publish(Instant(1), "lobby", RawJson::new(r#""hi""#).unwrap()).unwrap();
//! // The socket opens: the preamble says hello and rejoins; the welcome releases the publish.
//! rooms.handle_event(Instant(2), &Event::Open);
//! assert_eq!(std::iter::from_fn(|| rooms.poll_transmit()).count(), 2);
//! let welcome = r#"{"type":"welcome","session":"s1","resumed":false,"name":"me"}"#;
//! rooms.handle_event(Instant(2), &Event::Message(Message::Text(welcome.into())));
//! // No `limits` in this welcome: the core is told not to pace.
//! assert_eq!(rooms.poll_transmit(), Some(Outgoing::Limits(None)));
//! assert!(matches!(rooms.poll_transmit(), Some(Outgoing::Send(_))));
//! assert!(matches!(rooms.poll_event(), Some(RoomEvent::Welcome { .. })));
//! let ack = format!(r#"{{"type":"ack","id":{},"offset":1}}"#, id.0);
//! assert!(rooms.handle_event(Instant(3), &Event::Message(Message::Text(ack))));
//! assert!(matches!(rooms.poll_event(), Some(RoomEvent::Acked { .. })));
//! ```

use std::collections::VecDeque;

use super::sorted_map::SortedMap;
use std::fmt;
use std::time::Duration;

use protocol::{ClientMsg, ErrorCode, Limits, MsgId, Offset, RoomInfo, ServerMsg, Since};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client_frame::{self, Outgoing as ClientFrame};
pub use super::json::RawJson;
use super::server_frame::Incoming;
use super::{Event, Instant, Message, push_u64};
use crate::typed::DecodeError;

#[cfg(feature = "persist")]
pub mod outbox;

/// Settings of the protocol v1 layer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomsConfig {
    /// How long a publish may wait for its `ack`, counted from [`Rooms::publish`] and across
    /// reconnects; then it fails with [`RoomError::PublishTimeout`] and is not resent.
    /// Default: 30 s.
    pub ack_timeout: Duration,
    /// Most publishes kept while waiting for their ack; one more is refused with
    /// [`RoomError::TooManyUnacked`] (never dropped silently). Default: 1024.
    pub max_unacked: usize,
    /// Most publishers remembered per room to drop re-broadcast resends; the least recently
    /// seen is forgotten first. Default: 1024.
    pub max_publishers: usize,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            ack_timeout: Duration::from_secs(30),
            max_unacked: 1024,
            max_publishers: 1024,
        }
    }
}

impl RoomsConfig {
    /// Sets the ack timeout.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Sets the bound on publishes awaiting an ack.
    pub fn max_unacked(mut self, max: usize) -> Self {
        self.max_unacked = max;
        self
    }

    /// Sets the bound on publishers remembered per room.
    pub fn max_publishers(mut self, max: usize) -> Self {
        self.max_publishers = max;
        self
    }
}

/// Why a room operation or a publish failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The room name is empty, longer than 64 characters or has control characters.
    InvalidRoom {
        /// The name supplied.
        room: String,
    },
    /// Publishing needs a joined room.
    NotJoined {
        /// The room.
        room: String,
    },
    /// Too many publishes await their ack; nothing was sent or dropped.
    TooManyUnacked {
        /// The bound ([`RoomsConfig::max_unacked`]).
        limit: usize,
    },
    /// No ack came within [`RoomsConfig::ack_timeout`]. The publish may or may not have
    /// reached the room; it is no longer resent.
    PublishTimeout {
        /// The publish.
        id: PublishId,
        /// The timeout, in milliseconds.
        after_ms: u64,
    },
    /// The server refused the publish.
    Refused {
        /// The publish.
        id: PublishId,
        /// The server's reason.
        code: ErrorCode,
        /// The server's detail.
        message: String,
    },
    /// The room was left before the publish was acknowledged; it is not resent.
    LeftRoom {
        /// The publish.
        id: PublishId,
        /// The room.
        room: String,
    },
    /// The publish frame is larger than the server's `max_message_bytes`: refused by
    /// [`Rooms::publish`] once the limit is known, failed at the `welcome` that announces it,
    /// or failed by a close 1009 on the connection that carried it. It is not sent (again).
    TooLarge {
        /// The frame's size in bytes.
        size: usize,
        /// The server's limit, when it advertised one.
        limit: Option<usize>,
    },
    /// The data could not be encoded as JSON.
    Encode {
        /// The serializer's message.
        message: String,
    },
    /// The client is gone.
    Closed,
    /// The persistent outbox holds as many publishes or bytes as its
    /// [`OutboxConfig`](outbox::OutboxConfig) allows; nothing was sent, kept or dropped.
    #[cfg(feature = "persist")]
    OutboxFull {
        /// The bound on publishes.
        max_publishes: usize,
        /// The bound on bytes of publish frames.
        max_bytes: usize,
    },
    /// The persistent outbox was cleared before the publish was acknowledged; it is not
    /// resent.
    #[cfg(feature = "persist")]
    OutboxCleared {
        /// The publish.
        id: PublishId,
    },
}

impl fmt::Display for RoomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl RoomError {
    /// The message `Display` writes, built by hand as [`crate::Error`]'s is: `#[error]` here
    /// and there costs the npm package 1,637 B gzip (measured; see `Error::message`).
    pub(crate) fn message(&self) -> String {
        let mut out = String::new();
        let quoted = |out: &mut String, room: &str| {
            out.push('"');
            out.push_str(room);
            out.push('"');
        };
        match self {
            RoomError::InvalidRoom { room } => {
                out.push_str("invalid room name ");
                quoted(&mut out, room);
                out.push_str(": 1 to 64 characters, no control characters");
            }
            RoomError::NotJoined { room } => {
                out.push_str("not joined to room ");
                quoted(&mut out, room);
                out.push_str(": join it before publishing");
            }
            RoomError::TooManyUnacked { limit } => {
                push_u64(&mut out, *limit as u64);
                out.push_str(" publishes await their ack: wait for some before publishing more");
            }
            RoomError::PublishTimeout { id, after_ms } => {
                out.push_str("publish ");
                push_u64(&mut out, id.0);
                out.push_str(" was not acknowledged within ");
                push_u64(&mut out, *after_ms);
                out.push_str(" ms");
            }
            RoomError::Refused { id, code, message } => {
                out.push_str("the server refused publish ");
                push_u64(&mut out, id.0);
                out.push_str(": ");
                out.push_str(code.as_str());
                out.push_str(": ");
                out.push_str(message);
            }
            RoomError::LeftRoom { id, room } => {
                out.push_str("room ");
                quoted(&mut out, room);
                out.push_str(" was left before publish ");
                push_u64(&mut out, id.0);
                out.push_str(" was acknowledged");
            }
            RoomError::TooLarge { size, limit } => {
                crate::error::too_large(&mut out, *size, *limit);
            }
            RoomError::Encode { message } => {
                out.push_str("could not encode the data as JSON: ");
                out.push_str(message);
            }
            RoomError::Closed => out.push_str("the client is closed"),
            #[cfg(feature = "persist")]
            RoomError::OutboxFull {
                max_publishes,
                max_bytes,
            } => {
                out.push_str("the outbox is full (at most ");
                push_u64(&mut out, *max_publishes as u64);
                out.push_str(" publishes and ");
                push_u64(&mut out, *max_bytes as u64);
                out.push_str(" bytes): wait for acks before publishing more");
            }
            #[cfg(feature = "persist")]
            RoomError::OutboxCleared { id } => {
                out.push_str("the outbox was cleared before publish ");
                push_u64(&mut out, id.0);
                out.push_str(" was acknowledged");
            }
        }
        out
    }
}

/// The id of a publish: the protocol's client message id, unique within this [`Rooms`] (with
/// its publisher id, unique across sessions and server restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublishId(pub MsgId);

// Hand-written: thiserror's `#[error]` is for error types, and this is only the number.
impl fmt::Display for PublishId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A publish the server accepted: what a publish handle resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAck {
    /// The publish.
    pub id: PublishId,
    /// Its room.
    pub room: String,
    /// The offset it got in the room.
    pub offset: Offset,
    /// True for a resend the server had already accepted (and did not broadcast again).
    pub duplicate: bool,
}

impl RoomEvent {
    /// What this event settles for a publish waiting on it: its ack, or its failure. Shells use
    /// it to resolve the future they handed out for that publish.
    pub fn publish_outcome(&self) -> Option<(PublishId, Result<PublishAck, RoomError>)> {
        match self {
            RoomEvent::Acked {
                id,
                room,
                offset,
                duplicate,
            } => Some((
                *id,
                Ok(PublishAck {
                    id: *id,
                    room: room.clone(),
                    offset: *offset,
                    duplicate: *duplicate,
                }),
            )),
            RoomEvent::PublishFailed { id, error, .. } => Some((*id, Err(error.clone()))),
            _ => None,
        }
    }
}

/// A message delivered in a room. `T` is the application's type; the layer delivers
/// [`RawJson`] (any JSON, as its text) and [`RoomMessage::decode`] turns it into `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomMessage<T = RawJson> {
    /// Room name.
    pub room: String,
    /// The room's epoch: offsets start again at 1 in a new one (after a server restart).
    pub epoch: String,
    /// Offset in the room: consecutive within an epoch.
    pub offset: Offset,
    /// Display name of the publisher.
    pub from: String,
    /// The published data.
    pub data: T,
    /// Server time of publication, milliseconds since the Unix epoch.
    pub ts: u64,
    /// The publisher's id, from a server that stamps it. With `id`, a key unique across
    /// sessions and server restarts (unlike `(epoch, offset)` of a re-broadcast resend).
    pub publisher: Option<String>,
    /// The publisher's publish id, sent with `publisher`.
    pub id: Option<MsgId>,
}

impl RoomMessage<RawJson> {
    /// Decodes the data into `T`; on failure the error carries the raw JSON.
    ///
    /// ```
    /// use ws_lifeline::machine::rooms::RoomMessage;
    /// use ws_lifeline::RawJson;
    /// let m = RoomMessage {
    ///     room: "r".into(), epoch: "e".into(), offset: 1, from: "a".into(),
    ///     data: RawJson::new("7").unwrap(), ts: 0, publisher: None, id: None,
    /// };
    /// assert_eq!(m.decode::<u32>().unwrap().data, 7);
    /// assert!(m.decode::<String>().is_err());
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> Result<RoomMessage<T>, DecodeError> {
        let data = self.data.decode().map_err(|e| DecodeError {
            raw: self.data.as_str().to_owned(),
            error: e.to_string(),
        })?;
        Ok(RoomMessage {
            room: self.room.clone(),
            epoch: self.epoch.clone(),
            offset: self.offset,
            from: self.from.clone(),
            data,
            ts: self.ts,
            publisher: self.publisher.clone(),
            id: self.id,
        })
    }
}

/// What the layer reports to the application, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RoomEvent {
    /// The server answered `hello`. `resumed: false` after an earlier session means the server
    /// forgot it (for example it restarted): publishes resent now may be delivered twice.
    Welcome {
        /// True when the previous session was resumed.
        resumed: bool,
        /// The display name the server knows this client by.
        name: String,
    },
    /// A first join: delivery starts after `offset` (history before it is not replayed).
    Joined {
        /// Room name.
        room: String,
        /// The room's epoch.
        epoch: String,
        /// The room's latest offset.
        offset: Offset,
    },
    /// The answer to a rejoin with `since` (after a reconnect or a gap).
    ///
    /// `recovered: true`: every missed message follows, in order. `recovered: false`: the gap
    /// after `since` cannot be filled (the epoch changed or the history is too short); delivery
    /// goes on from `offset` of `epoch`, and messages in between are lost to this client.
    Recovery {
        /// Room name.
        room: String,
        /// Whether everything missed follows.
        recovered: bool,
        /// The position the client asked to resume after.
        since: Since,
        /// The room's epoch now.
        epoch: String,
        /// The room's latest offset now.
        offset: Offset,
    },
    /// A message, in offset order, never twice. A resend the server re-broadcast under a new
    /// offset (same `publisher` and `id`) is skipped, so offsets may jump over it.
    Message(RoomMessage),
    /// The server confirmed a `leave`.
    Left {
        /// Room name.
        room: String,
    },
    /// A publish was accepted (`duplicate`: it had been accepted before, on an earlier
    /// connection, and was not broadcast again).
    Acked {
        /// The publish.
        id: PublishId,
        /// Its room.
        room: String,
        /// The offset it got.
        offset: Offset,
        /// True for a resend the server had already accepted.
        duplicate: bool,
    },
    /// A publish failed; it will not be resent.
    PublishFailed {
        /// The publish.
        id: PublishId,
        /// Its room.
        room: String,
        /// Why.
        error: RoomError,
    },
    /// Who is in a room now (sorted display names).
    Presence {
        /// Room name.
        room: String,
        /// Members' display names.
        members: Vec<String>,
    },
    /// The server's room list.
    Rooms(Vec<RoomInfo>),
    /// The server refused something that was not a publish (for example a join).
    ServerError {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// A text frame that is not protocol v1; the connection goes on.
    BadFrame(DecodeError),
    /// Publishes restored from an [`OutboxSnapshot`](outbox::OutboxSnapshot) (made by an
    /// earlier page or process) that the server has now acknowledged: they reached the room,
    /// once. Their [`Acked`](Self::Acked) events come first.
    #[cfg(feature = "persist")]
    OutboxDelivered {
        /// The publishes, in the order of their acks.
        ids: Vec<PublishId>,
    },
}

/// What the shell hands to the core: [`Machine::send_outgoing`](super::Machine::send_outgoing)
/// does each.
///
/// Frames go out ahead of the core's queue, or not at all when the socket is not open. A layer
/// frame must never wait in the core's queue: it could outlive its connection and reach the
/// next one before that connection's `hello` and resends, so the server would see publish ids
/// out of order; frames waiting for the pace are dropped with their connection. A frame that
/// did not go out is not lost: joins are redone on the next open and publishes resent after
/// the next `welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Part of the open preamble (`hello`, rejoins).
    Preamble(Message),
    /// Any other frame of the layer (publishes, leaves, recovery joins, room-list requests),
    /// for [`Machine::send_layer`](super::Machine::send_layer).
    Send(Message),
    /// The limits of this connection's `welcome` (`None` from a server that advertises none),
    /// for [`Machine::set_limits`](super::Machine::set_limits). Comes before the frames it
    /// paces.
    Limits(Option<Limits>),
}

impl Outgoing {
    /// The frame, if it is one.
    pub fn message(&self) -> Option<&Message> {
        match self {
            Outgoing::Preamble(m) | Outgoing::Send(m) => Some(m),
            Outgoing::Limits(_) => None,
        }
    }
}

/// Counters, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomStats {
    /// Publishes accepted by [`Rooms::publish`].
    pub published: u64,
    /// Publish frames sent again on a new connection.
    pub resent: u64,
    /// Publishes acknowledged.
    pub acked: u64,
    /// Acks flagged `duplicate` (a resend the server had already accepted).
    pub duplicate_acks: u64,
    /// Publishes that failed (timeout, refused, room left).
    pub failed: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages dropped because their offset was already delivered.
    pub duplicates_dropped: u64,
    /// Messages dropped because their `(publisher, id)` was already delivered (a resend
    /// re-broadcast under a new offset).
    pub resends_dropped: u64,
    /// Messages dropped because offsets were skipped; each led to a rejoin with `since`.
    pub gaps: u64,
    /// Rejoins answered with `recovered: true`.
    pub recoveries: u64,
    /// Rejoins answered with `recovered: false`.
    pub recovery_failures: u64,
    /// Connections opened.
    pub opens: u64,
}

#[derive(Debug)]
struct RoomState {
    /// The last position delivered, once joined.
    position: Option<Since>,
    /// A `join` is in flight on this connection, sent with this `since`.
    joining: Option<Option<Since>>,
    /// A `joined {recovered: true}` arrived and its replay, up to this offset, follows it.
    replaying_until: Option<Offset>,
    /// Per publisher: the highest publish id delivered and when it was last seen (a tick).
    publishers: SortedMap<String, (MsgId, u64)>,
}

impl RoomState {
    fn new() -> Self {
        RoomState {
            position: None,
            joining: None,
            replaying_until: None,
            publishers: SortedMap::new(),
        }
    }
}

#[derive(Debug)]
struct Pending {
    room: String,
    frame: String,
    deadline: Instant,
    /// Sent on some connection.
    transmitted: bool,
    /// Handed to the core on this connection and so in flight.
    on_conn: bool,
}

/// The protocol v1 client layer. See the [module docs](self).
#[derive(Debug)]
pub struct Rooms {
    config: RoomsConfig,
    publisher: String,
    /// The last `welcome`'s limits.
    limits: Option<Limits>,
    /// Counts messages delivered, to find the least recently seen publisher.
    tick: u64,
    session: Option<String>,
    open: bool,
    /// This connection's `welcome` has arrived: publishes may go out.
    welcomed: bool,
    rooms: SortedMap<String, RoomState>,
    next_id: MsgId,
    /// Publishes awaiting their ack, in id (and so in deadline) order.
    unacked: SortedMap<MsgId, Pending>,
    out: VecDeque<Outgoing>,
    events: VecDeque<RoomEvent>,
    stats: RoomStats,
    /// The persistent outbox, when on.
    #[cfg(feature = "persist")]
    outbox: Option<outbox::Outbox>,
}

fn frame(msg: &ClientFrame) -> Message {
    Message::Text(client_frame::encode(msg))
}

/// `data` as the JSON of a publish.
pub(crate) fn encode<T: Serialize + ?Sized>(data: &T) -> Result<RawJson, RoomError> {
    RawJson::from_serialize(data).map_err(|e| RoomError::Encode {
        message: e.to_string(),
    })
}

/// 16 lowercase hex digits of `n`: a valid publisher id.
fn hex_id(n: u64) -> String {
    (0..16)
        .map(|i| {
            let nibble = (n >> (60 - 4 * i)) & 0xf;
            char::from(b"0123456789abcdef"[nibble as usize])
        })
        .collect()
}

impl Rooms {
    /// A layer with no rooms and no session yet. `seed` picks this client's publisher id: give
    /// each client a different one (the shells take it from [`Machine::random`](super::Machine::random)).
    pub fn new(config: RoomsConfig, seed: u64) -> Self {
        Rooms {
            config,
            publisher: hex_id(fastrand::Rng::with_seed(seed).u64(..)),
            limits: None,
            tick: 0,
            session: None,
            open: false,
            welcomed: false,
            rooms: SortedMap::new(),
            next_id: 0,
            unacked: SortedMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: RoomStats::default(),
            #[cfg(feature = "persist")]
            outbox: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &RoomsConfig {
        &self.config
    }

    /// This client's publisher id, sent in every `hello`.
    pub fn publisher(&self) -> &str {
        &self.publisher
    }

    /// The limits of the last `welcome`, if the server advertised them.
    pub fn limits(&self) -> Option<&Limits> {
        self.limits.as_ref()
    }

    /// The session resume token of the last `welcome`.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Counters.
    pub fn stats(&self) -> RoomStats {
        self.stats
    }

    /// Publishes awaiting their ack.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// The rooms joined (or being joined), by name.
    pub fn rooms(&self) -> impl Iterator<Item = &str> {
        self.rooms.keys().map(String::as_str)
    }

    /// The last position delivered in `room`, once the server has answered the first join.
    pub fn position(&self, room: &str) -> Option<&Since> {
        self.rooms.get(room).and_then(|r| r.position.as_ref())
    }

    /// Joins `room` now if connected, and again after every reconnect, until
    /// [`leave`](Self::leave). Joining a room already joined does nothing.
    ///
    /// Errors: [`RoomError::InvalidRoom`].
    pub fn join(&mut self, _now: Instant, room: &str) -> Result<(), RoomError> {
        if !protocol::valid_room_name(room) {
            return Err(RoomError::InvalidRoom {
                room: room.to_owned(),
            });
        }
        if self.rooms.contains_key(room) {
            return Ok(());
        }
        let mut state = RoomState::new();
        if self.open {
            state.joining = Some(None);
            self.out.push_back(Outgoing::Send(frame(&ClientMsg::Join {
                room: room.to_owned(),
                since: None,
            })));
        }
        self.rooms.insert(room.to_owned(), state);
        Ok(())
    }

    /// Leaves `room`: no more rejoins, its later messages are ignored, and its publishes still
    /// awaiting an ack fail with [`RoomError::LeftRoom`]. Returns false if it was not joined.
    pub fn leave(&mut self, _now: Instant, room: &str) -> bool {
        if self.rooms.remove(room).is_none() {
            return false;
        }
        if self.open {
            self.out.push_back(Outgoing::Send(frame(&ClientMsg::Leave {
                room: room.to_owned(),
            })));
        }
        let ids: Vec<MsgId> = self
            .unacked
            .iter()
            .filter(|(_, p)| p.room == room)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.fail(id, |id, room| RoomError::LeftRoom { id, room });
        }
        true
    }

    /// Publishes `data` to a joined room. It is sent now if connected (and welcomed) and
    /// within the server's `dedupe_window`, else as soon as it is, and resent after every
    /// reconnect until acked, failed or timed out; the outcome arrives as
    /// [`RoomEvent::Acked`] or [`RoomEvent::PublishFailed`].
    ///
    /// Errors: [`RoomError::NotJoined`], [`RoomError::TooManyUnacked`] (nothing is queued),
    /// [`RoomError::TooLarge`] once the server's limit is known.
    pub fn publish(
        &mut self,
        now: Instant,
        room: &str,
        data: RawJson,
    ) -> Result<PublishId, RoomError> {
        self.check_publish(room)?;
        self.next_id += 1;
        self.enqueue(now, room, self.next_id, data, false)
    }

    /// Refuses a publish to `room` if it is not joined or too many await their ack.
    fn check_publish(&self, room: &str) -> Result<(), RoomError> {
        if !self.rooms.contains_key(room) {
            return Err(RoomError::NotJoined {
                room: room.to_owned(),
            });
        }
        if self.unacked.len() >= self.config.max_unacked {
            return Err(RoomError::TooManyUnacked {
                limit: self.config.max_unacked,
            });
        }
        Ok(())
    }

    /// Queues publish `id` of `data` to joined room `room` (checked by the caller), its size
    /// checked. `transmitted`: it may have reached the server already, so its next send counts
    /// as a resend.
    fn enqueue(
        &mut self,
        now: Instant,
        room: &str,
        id: MsgId,
        data: RawJson,
        transmitted: bool,
    ) -> Result<PublishId, RoomError> {
        let Message::Text(text) = frame(&ClientMsg::Publish {
            room: room.to_owned(),
            id,
            data,
        }) else {
            return Err(RoomError::Encode {
                message: "not text".into(),
            });
        };
        if let Some(limit) = self.max_message().filter(|&max| text.len() > max) {
            // The id is not used again: ids only have to grow.
            return Err(RoomError::TooLarge {
                size: text.len(),
                limit: Some(limit),
            });
        }
        #[cfg(feature = "persist")]
        self.check_outbox(text.len())?;
        self.unacked.insert(
            id,
            Pending {
                room: room.to_owned(),
                frame: text,
                deadline: now + self.config.ack_timeout,
                transmitted,
                on_conn: false,
            },
        );
        self.stats.published += 1;
        self.release();
        Ok(PublishId(id))
    }

    /// As [`publish`](Self::publish), encoding `data` with serde first.
    ///
    /// Errors: as `publish`, plus [`RoomError::Encode`].
    pub fn publish_json<T: Serialize + ?Sized>(
        &mut self,
        now: Instant,
        room: &str,
        data: &T,
    ) -> Result<PublishId, RoomError> {
        self.publish(now, room, encode(data)?)
    }

    /// Asks the server for the room list (answered with [`RoomEvent::Rooms`]); false when not
    /// connected.
    pub fn list_rooms(&mut self) -> bool {
        if self.open {
            self.out
                .push_back(Outgoing::Send(frame(&ClientMsg::ListRooms)));
        }
        self.open
    }

    /// Feeds a core event. Returns true when it was a protocol v1 frame this layer consumed
    /// (the shell need not show it as a raw message).
    pub fn handle_event(&mut self, now: Instant, event: &Event) -> bool {
        match event {
            Event::Open => {
                self.on_open();
                false
            }
            Event::Close(info) => {
                self.open = false;
                self.welcomed = false;
                // Before `on_conn` is cleared: it marks what that connection carried.
                if info.code == protocol::close::TOO_BIG {
                    self.fail_too_big();
                }
                for p in self.unacked.values_mut() {
                    p.on_conn = false;
                }
                for r in self.rooms.values_mut() {
                    r.joining = None;
                    r.replaying_until = None;
                }
                false
            }
            Event::Message(Message::Text(text)) => {
                self.handle_frame(now, text);
                true
            }
            _ => false,
        }
    }

    /// The earliest ack deadline, if any publish awaits its ack.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Ids grow with time and every publish gets the same timeout, so the lowest id has the
        // earliest deadline.
        self.unacked.first().map(|(_, p)| p.deadline)
    }

    /// Fails every publish whose ack deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let after_ms = u64::try_from(self.config.ack_timeout.as_millis()).unwrap_or(u64::MAX);
        while let Some((&id, p)) = self.unacked.first() {
            let deadline = p.deadline;
            if deadline > now {
                break;
            }
            self.fail(id, |id, _| RoomError::PublishTimeout { id, after_ms });
        }
    }

    /// The next frame to send, in order.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        self.out.pop_front()
    }

    /// The next event for the application, in order.
    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    fn fail(&mut self, id: MsgId, error: impl FnOnce(PublishId, String) -> RoomError) {
        if let Some(p) = self.unacked.remove(&id) {
            #[cfg(feature = "persist")]
            self.outbox_settled(id, false);
            self.stats.failed += 1;
            let error = error(PublishId(id), p.room.clone());
            self.events.push_back(RoomEvent::PublishFailed {
                id: PublishId(id),
                room: p.room,
                error,
            });
            self.release();
        }
    }

    fn max_message(&self) -> Option<usize> {
        self.limits.as_ref().map(|l| l.max_message_bytes as usize)
    }

    /// A close 1009: the server refused a frame as too large. The largest publish in flight
    /// on that connection is taken to be it and fails, so that it is not resent forever and
    /// the publishes behind it flow.
    fn fail_too_big(&mut self) {
        let largest = self
            .unacked
            .iter()
            .filter(|(_, p)| p.on_conn)
            .max_by_key(|(id, p)| (p.frame.len(), std::cmp::Reverse(**id)))
            .map(|(id, p)| (*id, p.frame.len()));
        if let Some((id, size)) = largest {
            let limit = self.max_message();
            self.fail(id, |_, _| RoomError::TooLarge { size, limit });
        }
    }

    /// Sends unacknowledged publishes, in id order, while this connection is welcomed and
    /// fewer than the server's `dedupe_window` are in flight: a resend outside the window
    /// could not be recognised as one.
    fn release(&mut self) {
        if !self.open || !self.welcomed {
            return;
        }
        #[cfg(feature = "persist")]
        if !self.outbox_allows_release() {
            return;
        }
        let window = self
            .limits
            .as_ref()
            .map_or(usize::MAX, |l| (l.dedupe_window as usize).max(1));
        let mut in_flight = self.unacked.values_mut().filter(|p| p.on_conn).count();
        for p in self.unacked.values_mut() {
            if in_flight >= window {
                break;
            }
            if p.on_conn {
                continue;
            }
            if p.transmitted {
                self.stats.resent += 1;
            }
            p.transmitted = true;
            p.on_conn = true;
            in_flight += 1;
            self.out
                .push_back(Outgoing::Send(Message::Text(p.frame.clone())));
        }
    }

    fn on_open(&mut self) {
        self.open = true;
        self.welcomed = false;
        self.stats.opens += 1;
        self.out
            .push_back(Outgoing::Preamble(frame(&ClientMsg::Hello {
                session: self.session.clone(),
                publisher: Some(self.publisher.clone()),
            })));
        for (room, r) in self.rooms.iter_mut() {
            r.joining = Some(r.position.clone());
            self.out
                .push_back(Outgoing::Preamble(frame(&ClientMsg::Join {
                    room: room.clone(),
                    since: r.position.clone(),
                })));
        }
    }

    fn on_welcome(&mut self, limits: Option<Limits>) {
        if !self.open || self.welcomed {
            return;
        }
        self.limits = limits;
        self.out.push_back(Outgoing::Limits(self.limits.clone()));
        if let Some(max) = self.max_message() {
            // Accepted before the limit was known: fail rather than send what the server
            // would answer with a close 1009.
            let big: Vec<(MsgId, usize)> = self
                .unacked
                .iter()
                .filter(|(_, p)| p.frame.len() > max)
                .map(|(id, p)| (*id, p.frame.len()))
                .collect();
            for (id, size) in big {
                self.fail(id, |_, _| RoomError::TooLarge {
                    size,
                    limit: Some(max),
                });
            }
        }
        self.welcomed = true;
        self.release();
    }

    fn handle_frame(&mut self, _now: Instant, text: &str) {
        match super::server_frame::decode(text) {
            Ok(msgs) => {
                for msg in msgs {
                    self.on_server(msg);
                }
                #[cfg(feature = "persist")]
                self.flush_delivered();
            }
            Err(e) => self.events.push_back(RoomEvent::BadFrame(DecodeError {
                raw: text.to_owned(),
                error: e.text().to_owned(),
            })),
        }
    }

    fn on_server(&mut self, msg: Incoming) {
        match msg {
            ServerMsg::Welcome {
                session,
                resumed,
                name,
                limits,
            } => {
                self.session = Some(session);
                self.on_welcome(limits);
                self.events.push_back(RoomEvent::Welcome { resumed, name });
            }
            ServerMsg::Pong { .. } => {}
            ServerMsg::Joined {
                room,
                epoch,
                offset,
                recovered,
                resume_after,
            } => self.on_joined(room, epoch, offset, recovered, resume_after),
            ServerMsg::Message {
                room,
                offset,
                from,
                data,
                ts,
                publisher,
                id,
            } => self.on_message(RoomMessage {
                room,
                // Set from the room's position when delivered.
                epoch: String::new(),
                offset,
                from,
                data,
                ts,
                publisher,
                id,
            }),
            ServerMsg::Left { room } => self.events.push_back(RoomEvent::Left { room }),
            ServerMsg::Ack {
                id,
                offset,
                duplicate,
            } => {
                // An ack for a publish that already failed (timed out) is ignored.
                if let Some(p) = self.unacked.remove(&id) {
                    #[cfg(feature = "persist")]
                    self.outbox_settled(id, true);
                    self.stats.acked += 1;
                    if duplicate {
                        self.stats.duplicate_acks += 1;
                    }
                    self.events.push_back(RoomEvent::Acked {
                        id: PublishId(id),
                        room: p.room,
                        offset,
                        duplicate,
                    });
                    self.release();
                }
            }
            ServerMsg::Rooms { rooms } => self.events.push_back(RoomEvent::Rooms(rooms)),
            ServerMsg::Presence { room, members } => {
                if self.rooms.contains_key(&room) {
                    self.events.push_back(RoomEvent::Presence { room, members });
                }
            }
            ServerMsg::Error {
                code,
                message,
                reference,
            } => match reference.filter(|id| self.unacked.contains_key(id)) {
                // A rate-limit error is followed by a close; the publish is resent later.
                Some(id) if code != ErrorCode::RateLimited => {
                    self.fail(id, |id, _| RoomError::Refused { id, code, message });
                }
                _ => self
                    .events
                    .push_back(RoomEvent::ServerError { code, message }),
            },
        }
    }

    fn on_joined(
        &mut self,
        room: String,
        epoch: String,
        offset: Offset,
        recovered: bool,
        resume_after: Option<Offset>,
    ) {
        // A room left meanwhile: its `joined` is stale.
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        let since = r.joining.take().unwrap_or_else(|| r.position.clone());
        match since {
            None => {
                r.position = Some(Since {
                    epoch: epoch.clone(),
                    offset,
                });
                self.events.push_back(RoomEvent::Joined {
                    room,
                    epoch,
                    offset,
                });
            }
            Some(since) => {
                let recovered = recovered && since.epoch == epoch;
                if recovered {
                    self.stats.recoveries += 1;
                    let behind = r.position.as_ref().is_some_and(|p| p.offset < offset);
                    r.replaying_until = behind.then_some(offset);
                } else {
                    self.stats.recovery_failures += 1;
                    // Same epoch (history too short): never go back, so nothing is delivered
                    // twice. New epoch: start from the server's latest offset, or from
                    // `resume_after` when the server replays the new epoch's history.
                    let start = resume_after.unwrap_or(offset);
                    let last = match &r.position {
                        Some(p) if p.epoch == epoch => p.offset.max(start),
                        _ => start,
                    };
                    r.replaying_until = (last < offset).then_some(offset);
                    r.position = Some(Since {
                        epoch: epoch.clone(),
                        offset: last,
                    });
                }
                self.events.push_back(RoomEvent::Recovery {
                    room,
                    recovered,
                    since,
                    epoch,
                    offset,
                });
            }
        }
    }

    fn on_message(&mut self, m: RoomMessage) {
        let Some(r) = self.rooms.get_mut(&m.room) else {
            return;
        };
        let Some(pos) = r.position.as_mut() else {
            // Not joined yet on any connection: nothing to order it against.
            return;
        };
        if m.offset <= pos.offset {
            self.stats.duplicates_dropped += 1;
        } else if m.offset == pos.offset + 1 {
            pos.offset = m.offset;
            if r.replaying_until.is_some_and(|until| pos.offset >= until) {
                r.replaying_until = None;
            }
            let epoch = pos.epoch.clone();
            self.tick += 1;
            if !seen_first(r, &m, self.tick, self.config.max_publishers) {
                self.stats.resends_dropped += 1;
                return;
            }
            self.stats.delivered += 1;
            self.events
                .push_back(RoomEvent::Message(RoomMessage { epoch, ..m }));
        } else if r.replaying_until.is_some_and(|until| m.offset <= until) {
            // Ahead of its turn while a replay is under way: the replay brings it in order,
            // so asking for recovery again would only repeat the replay.
            self.stats.duplicates_dropped += 1;
        } else {
            self.stats.gaps += 1;
            if r.joining.is_none() && self.open {
                let since = pos.clone();
                r.joining = Some(Some(since.clone()));
                self.out.push_back(Outgoing::Send(frame(&ClientMsg::Join {
                    room: m.room,
                    since: Some(since),
                })));
            }
        }
    }
}

/// Records `m`'s `(publisher, id)` in its room; false when that publisher's id was not above
/// the highest already delivered there (a resend). Messages without both are always new.
fn seen_first(r: &mut RoomState, m: &RoomMessage, tick: u64, max: usize) -> bool {
    let (Some(publisher), Some(id)) = (&m.publisher, m.id) else {
        return true;
    };
    if let Some((highest, seen)) = r.publishers.get_mut(publisher.as_str()) {
        *seen = tick;
        if id <= *highest {
            return false;
        }
        *highest = id;
        return true;
    }
    if r.publishers.len() >= max.max(1) {
        let oldest = r
            .publishers
            .iter()
            .min_by_key(|(_, (_, seen))| *seen)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            r.publishers.remove(&oldest);
        }
    }
    r.publishers.insert(publisher.clone(), (id, tick));
    true
}

#[cfg(test)]
mod message_tests {
    use super::{ErrorCode, PublishId, RoomError};

    /// The messages are written by hand (no `core::fmt`); these are their exact texts.
    #[test]
    fn every_room_error_reads_as_documented() {
        let cases = [
            (
                RoomError::InvalidRoom { room: "".into() },
                "invalid room name \"\": 1 to 64 characters, no control characters",
            ),
            (
                RoomError::NotJoined {
                    room: "lobby".into(),
                },
                "not joined to room \"lobby\": join it before publishing",
            ),
            (
                RoomError::TooManyUnacked { limit: 256 },
                "256 publishes await their ack: wait for some before publishing more",
            ),
            (
                RoomError::PublishTimeout {
                    id: PublishId(7),
                    after_ms: 10_000,
                },
                "publish 7 was not acknowledged within 10000 ms",
            ),
            (
                RoomError::Refused {
                    id: PublishId(u64::MAX),
                    code: ErrorCode::NotJoined,
                    message: "join first".into(),
                },
                "the server refused publish 18446744073709551615: not_joined: join first",
            ),
            (
                RoomError::LeftRoom {
                    id: PublishId(3),
                    room: "a".into(),
                },
                "room \"a\" was left before publish 3 was acknowledged",
            ),
            (
                RoomError::Encode {
                    message: "not a JSON value".into(),
                },
                "could not encode the data as JSON: not a JSON value",
            ),
            (
                RoomError::TooLarge {
                    size: 2048,
                    limit: Some(1024),
                },
                "the message is 2048 bytes, over the server's limit of 1024 bytes",
            ),
            (
                RoomError::TooLarge {
                    size: 70_000,
                    limit: None,
                },
                "the message is 70000 bytes, over the server's limit",
            ),
            (RoomError::Closed, "the client is closed"),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[cfg(feature = "persist")]
    #[test]
    fn the_outbox_errors_read_as_documented() {
        let full = RoomError::OutboxFull {
            max_publishes: 1024,
            max_bytes: 1_048_576,
        };
        assert_eq!(
            full.to_string(),
            "the outbox is full (at most 1024 publishes and 1048576 bytes): wait for acks \
             before publishing more"
        );
        let cleared = RoomError::OutboxCleared { id: PublishId(4) };
        assert_eq!(
            cleared.to_string(),
            "the outbox was cleared before publish 4 was acknowledged"
        );
    }
}
