// Protocol v1 wire types, generated from the Rust crate `lifeline-protocol` by ts-rs.
// Do not edit: `cargo test -p lifeline-protocol --features ts` checks this file, and
// `UPDATE_TS_TYPES=1` with the same command rewrites it.
// u64 fields (ids, offsets, timestamps) are JSON numbers, exact up to 2^53 - 1.

export type JsonValue = number | string | boolean | Array<JsonValue> | { [key in string]: JsonValue } | null;

export type Since = { 
/**
 * The room's epoch the offset belongs to.
 */
epoch: string, 
/**
 * The last offset delivered to the application.
 */
offset: number, };

export type ClientMsg = { "type": "hello", 
/**
 * The resume token from an earlier `welcome`, if any.
 */
session?: string | null, 
/**
 * The client's publisher id, chosen once per client (see [`valid_publisher_id`]) and
 * sent on every connection. The server stamps it on every `message` this client
 * publishes, so receivers can drop a resend they have already delivered.
 */
publisher?: string | null, } | { "type": "ping", 
/**
 * Echoed in the `pong`.
 */
id: number, } | { "type": "join", 
/**
 * Room name: 1 to 64 characters, no control characters.
 */
room: string, 
/**
 * The last position seen, for recovery.
 */
since?: Since | null, } | { "type": "leave", 
/**
 * Room name.
 */
room: string, } | { "type": "publish", 
/**
 * Room name; the sender must have joined it.
 */
room: string, 
/**
 * Client message id, unique per session.
 */
id: number, 
/**
 * Any JSON.
 */
data: JsonValue, } | { "type": "list_rooms" };

export type RoomInfo = { 
/**
 * Room name.
 */
room: string, 
/**
 * Number of members.
 */
members: number, };

export type Limits = { 
/**
 * The largest text frame the server reads, in bytes; a larger one closes the connection
 * with 1009.
 */
max_message_bytes: number, 
/**
 * Frames per second the server reads from one connection, sustained.
 */
rate_per_sec: number, 
/**
 * Frames the server reads at once before the rate applies (its token bucket's size).
 */
rate_burst: number, 
/**
 * How many publish ids the server remembers per session for deduplication. A client keeps
 * at most this many publishes unacknowledged, so no resend falls out of the window.
 */
dedupe_window: number, };

export type ErrorCode = "bad_json" | "unknown_type" | "binary_unsupported" | "invalid_room" | "not_joined" | "too_many_rooms" | "rate_limited" | "invalid_publisher";

export type ServerMsg = { "type": "welcome", 
/**
 * Resume token to send in the next `hello`.
 */
session: string, 
/**
 * True when the `hello` named a session the server still knew.
 */
resumed: boolean, 
/**
 * The display name the server knows this connection by.
 */
name: string, 
/**
 * The server's limits for this connection; absent from servers that predate them.
 */
limits?: Limits | null, } | { "type": "pong", 
/**
 * The id of the `ping`.
 */
id: number, } | { "type": "joined", 
/**
 * Room name.
 */
room: string, 
/**
 * The room's current epoch; it changes whenever the room's history is lost.
 */
epoch: string, 
/**
 * The room's latest offset (0 for a new room).
 */
offset: number, 
/**
 * With `since`: true when every missed message follows; false when the gap cannot be
 * filled. Without `since`: true.
 */
recovered: boolean, 
/**
 * When present, the replayed `message`s that follow start right after this offset of
 * `epoch`, and the client continues from it instead of from `offset`. Sent when
 * `since` names another epoch: the room's retained history of the current epoch is
 * replayed from its first message (`resume_after` 0 when nothing was evicted).
 */
resume_after?: number | null, } | { "type": "left", 
/**
 * Room name.
 */
room: string, } | { "type": "message", 
/**
 * Room name.
 */
room: string, 
/**
 * Offset of this message in the room; consecutive per room.
 */
offset: number, 
/**
 * Display name of the publisher.
 */
from: string, 
/**
 * The published JSON.
 */
data: JsonValue, 
/**
 * Server time of publication, milliseconds since the Unix epoch.
 */
ts: number, 
/**
 * The publisher id the publisher sent in its `hello`, if it sent one.
 */
publisher?: string | null, 
/**
 * The publisher's message id (its `publish.id`), sent with `publisher`. Together they
 * name the publication across sessions and server restarts.
 */
id?: number | null, } | { "type": "ack", 
/**
 * The client message id.
 */
id: number, 
/**
 * The offset the message got in its room.
 */
offset: number, 
/**
 * True when this id had been accepted before and was not broadcast again.
 */
duplicate: boolean, } | { "type": "rooms", 
/**
 * Every room with its member count, sorted by name.
 */
rooms: Array<RoomInfo>, } | { "type": "presence", 
/**
 * Room name.
 */
room: string, 
/**
 * Display names of the members, sorted.
 */
members: Array<string>, } | { "type": "error", 
/**
 * Machine-readable reason.
 */
code: ErrorCode, 
/**
 * Human-readable detail (never echoes message contents).
 */
message: string, 
/**
 * The id of the offending `publish`/`ping`, if it had one.
 */
ref?: number | null, };
