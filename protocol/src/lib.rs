//! Wire types of protocol v1, spoken between `ws-lifeline` clients and `server-dev`.
//!
//! One schema for every party: the client, the server and the demo all use these types, and the
//! TypeScript types of the npm package are checked against them. The format is documented for
//! other backends in `docs/PROTOCOL.md`.
//!
//! Every frame is a JSON text frame. A frame holds either one message object, tagged by its
//! `type`, or (server to client only) a JSON array of message objects, a *batch*, delivered in
//! array order.
//!
//! ```
//! use lifeline_protocol::{ClientMsg, ServerMsg};
//!
//! let join: ClientMsg = serde_json::from_str(r#"{"type":"join","room":"lobby"}"#).unwrap();
//! assert_eq!(join, ClientMsg::Join { room: "lobby".into(), since: None });
//!
//! let frame = r#"[{"type":"pong","id":1},{"type":"ack","id":7,"offset":3}]"#;
//! let msgs = lifeline_protocol::decode_server_frame(frame).unwrap();
//! assert_eq!(msgs.len(), 2);
//! ```
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

/// The WebSocket subprotocol name negotiated through `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "lifeline.v1";

/// Arbitrary application JSON carried by `publish` and `message`.
pub type Data = serde_json::Value;

/// A room offset: the first message published to a room has offset 1, and each publication
/// adds one. Offset 0 means "nothing seen yet".
pub type Offset = u64;

/// A client's message id. A client numbers its publishes from 1 upwards and never reuses an
/// id, so that with its publisher id it names one publication across sessions and restarts.
pub type MsgId = u64;

/// Checks a publisher id (`hello.publisher`): 8 to 64 characters, ASCII letters, digits, `-`
/// and `_`. A random id of 16 hex characters or more is what a client should choose.
pub fn valid_publisher_id(publisher: &str) -> bool {
    (8..=64).contains(&publisher.len())
        && publisher
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The limits a server enforces on one connection, advertised in `welcome` so that a client
/// paces itself to them and never meets a limit with its own traffic.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The largest text frame the server reads, in bytes; a larger one closes the connection
    /// with 1009.
    pub max_message_bytes: u32,
    /// Frames per second the server reads from one connection, sustained.
    pub rate_per_sec: u32,
    /// Frames the server reads at once before the rate applies (its token bucket's size).
    pub rate_burst: u32,
    /// How many publish ids the server remembers per session for deduplication. A client keeps
    /// at most this many publishes unacknowledged, so no resend falls out of the window.
    pub dedupe_window: u32,
}

/// The position a client last saw in a room, sent on rejoin so the server can replay the gap.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Since {
    /// The room's epoch the offset belongs to.
    pub epoch: String,
    /// The last offset delivered to the application.
    pub offset: Offset,
}

/// Messages from client to server. `D` is the type of `publish`'s data: any JSON
/// ([`Data`]) by default; a client may keep it as raw JSON text instead.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", ts(concrete(D = Data)))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg<D = Data> {
    /// Opens or resumes a session. Sent first on every connection; `session` is the resume token
    /// of an earlier `welcome`, so that publish deduplication survives a reconnect.
    Hello {
        /// The resume token from an earlier `welcome`, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// The client's publisher id, chosen once per client (see [`valid_publisher_id`]) and
        /// sent on every connection. The server stamps it on every `message` this client
        /// publishes, so receivers can drop a resend they have already delivered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        publisher: Option<String>,
    },
    /// Application-level heartbeat; the server answers `pong` with the same id.
    Ping {
        /// Echoed in the `pong`.
        id: u64,
    },
    /// Joins (or creates) a room. With `since`, asks for the messages missed after it.
    Join {
        /// Room name: 1 to 64 characters, no control characters.
        room: String,
        /// The last position seen, for recovery.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Since>,
    },
    /// Leaves a room.
    Leave {
        /// Room name.
        room: String,
    },
    /// Publishes `data` to a room. The server answers `ack {id}` once, even for a resent id.
    Publish {
        /// Room name; the sender must have joined it.
        room: String,
        /// Client message id, unique per session.
        id: MsgId,
        /// Any JSON.
        data: D,
    },
    /// Asks for the room list; the answer is `rooms`.
    ListRooms,
}

impl<D> ClientMsg<D> {
    /// The same message with `publish`'s data converted by `f` (for example between raw JSON
    /// text and a decoded value).
    pub fn map_data<E>(self, f: impl FnOnce(D) -> E) -> ClientMsg<E> {
        match self {
            ClientMsg::Hello { session, publisher } => ClientMsg::Hello { session, publisher },
            ClientMsg::Ping { id } => ClientMsg::Ping { id },
            ClientMsg::Join { room, since } => ClientMsg::Join { room, since },
            ClientMsg::Leave { room } => ClientMsg::Leave { room },
            ClientMsg::Publish { room, id, data } => ClientMsg::Publish {
                room,
                id,
                data: f(data),
            },
            ClientMsg::ListRooms => ClientMsg::ListRooms,
        }
    }
}

/// One entry of the room list.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// Room name.
    pub room: String,
    /// Number of members.
    pub members: u32,
}

/// Messages from server to client. `D` is the type of `message`'s data, as in [`ClientMsg`].
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", ts(concrete(D = Data)))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg<D = Data> {
    /// Answer to `hello`: the session's resume token and whether an earlier session was resumed.
    Welcome {
        /// Resume token to send in the next `hello`.
        session: String,
        /// True when the `hello` named a session the server still knew.
        resumed: bool,
        /// The display name the server knows this connection by.
        name: String,
        /// The server's limits for this connection; absent from servers that predate them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limits: Option<Limits>,
    },
    /// Answer to `ping`.
    Pong {
        /// The id of the `ping`.
        id: u64,
    },
    /// Answer to `join`. Replayed `message`s, if any, follow it in order.
    Joined {
        /// Room name.
        room: String,
        /// The room's current epoch; it changes whenever the room's history is lost.
        epoch: String,
        /// The room's latest offset (0 for a new room).
        offset: Offset,
        /// With `since`: true when every missed message follows; false when the gap cannot be
        /// filled. Without `since`: true.
        recovered: bool,
        /// When present, the replayed `message`s that follow start right after this offset of
        /// `epoch`, and the client continues from it instead of from `offset`. Sent when
        /// `since` names another epoch: the room's retained history of the current epoch is
        /// replayed from its first message (`resume_after` 0 when nothing was evicted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_after: Option<Offset>,
    },
    /// Answer to `leave`.
    Left {
        /// Room name.
        room: String,
    },
    /// A publication in a room the client has joined.
    Message {
        /// Room name.
        room: String,
        /// Offset of this message in the room; consecutive per room.
        offset: Offset,
        /// Display name of the publisher.
        from: String,
        /// The published JSON.
        data: D,
        /// Server time of publication, milliseconds since the Unix epoch.
        ts: u64,
        /// The publisher id the publisher sent in its `hello`, if it sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        publisher: Option<String>,
        /// The publisher's message id (its `publish.id`), sent with `publisher`. Together they
        /// name the publication across sessions and server restarts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<MsgId>,
    },
    /// A publish was accepted (or was a duplicate of one already accepted).
    Ack {
        /// The client message id.
        id: MsgId,
        /// The offset the message got in its room.
        offset: Offset,
        /// True when this id had been accepted before and was not broadcast again.
        #[serde(default)]
        duplicate: bool,
    },
    /// The room list; sent on `list_rooms` and pushed whenever membership changes.
    Rooms {
        /// Every room with its member count, sorted by name.
        rooms: Vec<RoomInfo>,
    },
    /// Who is in a room; pushed to its members whenever membership changes.
    Presence {
        /// Room name.
        room: String,
        /// Display names of the members, sorted.
        members: Vec<String>,
    },
    /// Something the client sent was refused. The connection stays open unless a close follows.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail (never echoes message contents).
        message: String,
        /// The id of the offending `publish`/`ping`, if it had one.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<u64>,
    },
}

impl<D> ServerMsg<D> {
    /// The same message with `message`'s data converted by `f`.
    pub fn map_data<E>(self, f: impl FnOnce(D) -> E) -> ServerMsg<E> {
        match self {
            ServerMsg::Message {
                room,
                offset,
                from,
                data,
                ts,
                publisher,
                id,
            } => ServerMsg::Message {
                room,
                offset,
                from,
                data: f(data),
                ts,
                publisher,
                id,
            },
            ServerMsg::Welcome {
                session,
                resumed,
                name,
                limits,
            } => ServerMsg::Welcome {
                session,
                resumed,
                name,
                limits,
            },
            ServerMsg::Pong { id } => ServerMsg::Pong { id },
            ServerMsg::Joined {
                room,
                epoch,
                offset,
                recovered,
                resume_after,
            } => ServerMsg::Joined {
                room,
                epoch,
                offset,
                recovered,
                resume_after,
            },
            ServerMsg::Left { room } => ServerMsg::Left { room },
            ServerMsg::Ack {
                id,
                offset,
                duplicate,
            } => ServerMsg::Ack {
                id,
                offset,
                duplicate,
            },
            ServerMsg::Rooms { rooms } => ServerMsg::Rooms { rooms },
            ServerMsg::Presence { room, members } => ServerMsg::Presence { room, members },
            ServerMsg::Error {
                code,
                message,
                reference,
            } => ServerMsg::Error {
                code,
                message,
                reference,
            },
        }
    }
}

/// Machine-readable error codes of `ServerMsg::Error`.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame was not valid JSON.
    BadJson,
    /// Valid JSON, but not a known message (unknown `type` or wrong fields).
    UnknownType,
    /// A binary frame; protocol v1 is text only.
    BinaryUnsupported,
    /// The room name is empty, too long or has control characters.
    InvalidRoom,
    /// `publish` to a room the client has not joined.
    NotJoined,
    /// Joining would exceed the per-connection room cap.
    TooManyRooms,
    /// The connection kept sending above the rate limit although the server had slowed its
    /// reading; a close 1013 (retryable) follows.
    RateLimited,
    /// `hello.publisher` is not a valid publisher id (see [`valid_publisher_id`]); the
    /// connection goes on without one.
    InvalidPublisher,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::BinaryUnsupported,
        ErrorCode::InvalidRoom,
        ErrorCode::NotJoined,
        ErrorCode::TooManyRooms,
        ErrorCode::RateLimited,
        ErrorCode::InvalidPublisher,
    ];

    /// The code as it is written on the wire, such as `"not_joined"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BinaryUnsupported => "binary_unsupported",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InvalidPublisher => "invalid_publisher",
        }
    }

    /// The code written `name` on the wire.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == name)
    }
}

/// Close codes used by protocol v1 (see RFC 6455 §7.4 and the IANA registry).
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Policy violation. Not retried by default; `server-dev` never sends it for traffic a
    /// well-behaved client generates (rate limiting slows reading and ends with 1013).
    pub const POLICY: u16 = 1008;
    /// A message or frame exceeded the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Try again later: the server is at its connection cap, this peer read too slowly and its
    /// outbound queue filled up (the slow-consumer rule), or it kept sending above the rate
    /// limit while the server throttled it. Retried by default.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Sent by a client that closes a connection whose heartbeat timed out (half-open).
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
}

/// Decodes one server text frame: a single message or a batch (a JSON array of messages).
pub fn decode_server_frame(text: &str) -> Result<Vec<ServerMsg>, serde_json::Error> {
    if text.trim_start().starts_with('[') {
        serde_json::from_str(text)
    } else {
        serde_json::from_str(text).map(|msg| vec![msg])
    }
}

/// Checks a room name: 1 to 64 characters and no control characters.
pub fn valid_room_name(room: &str) -> bool {
    let chars = room.chars().count();
    (1..=64).contains(&chars) && !room.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_use_documented_json() {
        let cases = [
            (
                ClientMsg::Hello {
                    session: None,
                    publisher: None,
                },
                r#"{"type":"hello"}"#,
            ),
            (
                ClientMsg::Hello {
                    session: Some("s1".into()),
                    publisher: Some("p0c0ffee12".into()),
                },
                r#"{"type":"hello","session":"s1","publisher":"p0c0ffee12"}"#,
            ),
            (ClientMsg::Ping { id: 3 }, r#"{"type":"ping","id":3}"#),
            (
                ClientMsg::Join {
                    room: "a".into(),
                    since: Some(Since {
                        epoch: "e1".into(),
                        offset: 4,
                    }),
                },
                r#"{"type":"join","room":"a","since":{"epoch":"e1","offset":4}}"#,
            ),
            (
                ClientMsg::Leave { room: "a".into() },
                r#"{"type":"leave","room":"a"}"#,
            ),
            (
                ClientMsg::Publish {
                    room: "a".into(),
                    id: 9,
                    data: serde_json::json!({"t":"hi"}),
                },
                r#"{"type":"publish","room":"a","id":9,"data":{"t":"hi"}}"#,
            ),
            (ClientMsg::ListRooms, r#"{"type":"list_rooms"}"#),
        ];
        for (msg, json) in cases {
            assert_eq!(serde_json::to_string(&msg).unwrap(), json);
            assert_eq!(serde_json::from_str::<ClientMsg>(json).unwrap(), msg);
        }
    }

    #[test]
    fn error_code_names_are_the_serde_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::from_name("nope"), None);
    }

    #[test]
    fn server_error_uses_ref_key() {
        let msg: ServerMsg = ServerMsg::Error {
            code: ErrorCode::NotJoined,
            message: "join first".into(),
            reference: Some(5),
        };
        let json = serde_json::to_string(&msg).unwrap();
        assert_eq!(
            json,
            r#"{"type":"error","code":"not_joined","message":"join first","ref":5}"#
        );
    }

    #[test]
    fn unknown_types_are_rejected_and_extra_fields_ignored() {
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"nope"}"#).is_err());
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"leave"}"#).is_err());
        // Extra fields are ignored so that later protocol versions can add them.
        let leave = serde_json::from_str::<ClientMsg>(r#"{"type":"leave","room":"a","x":1}"#);
        assert_eq!(leave.unwrap(), ClientMsg::Leave { room: "a".into() });
    }

    #[test]
    fn batch_and_single_frames_decode_in_order() {
        let one = decode_server_frame(r#"{"type":"pong","id":1}"#).unwrap();
        assert_eq!(one, vec![ServerMsg::Pong { id: 1 }]);
        let many =
            decode_server_frame(r#" [{"type":"pong","id":1},{"type":"pong","id":2}]"#).unwrap();
        assert_eq!(
            many,
            vec![ServerMsg::Pong { id: 1 }, ServerMsg::Pong { id: 2 }]
        );
        assert!(decode_server_frame("[{").is_err());
    }

    #[test]
    fn publisher_ids_are_bounded() {
        assert!(valid_publisher_id("0123abcd"));
        assert!(valid_publisher_id(&"a-_Z".repeat(16)));
        assert!(!valid_publisher_id("short"));
        assert!(!valid_publisher_id(&"a".repeat(65)));
        assert!(!valid_publisher_id("has space1"));
    }

    #[test]
    fn room_names_are_bounded() {
        assert!(valid_room_name("lobby"));
        assert!(valid_room_name(&"é".repeat(64)));
        assert!(!valid_room_name(""));
        assert!(!valid_room_name(&"a".repeat(65)));
        assert!(!valid_room_name("a\nb"));
    }

    // proptest does not build for wasm32-unknown-unknown (getrandom has no backend there).
    #[cfg(not(target_arch = "wasm32"))]
    mod round_trip {
        use super::*;
        use proptest::prelude::*;

        fn arb_data() -> impl Strategy<Value = Data> {
            prop_oneof![
                any::<i64>().prop_map(Data::from),
                ".{0,20}".prop_map(Data::from),
                any::<bool>().prop_map(Data::from),
            ]
        }

        proptest! {
            #[test]
            fn server_messages_round_trip(room in ".{1,20}", offset in any::<u64>(), from in ".{0,10}", data in arb_data(), ts in any::<u64>()) {
                let msg = ServerMsg::Message { room, offset, from, data, ts, publisher: None, id: None };
                let json = serde_json::to_string(&msg).unwrap();
                prop_assert_eq!(decode_server_frame(&json).unwrap(), vec![msg]);
            }
        }
    }
}
