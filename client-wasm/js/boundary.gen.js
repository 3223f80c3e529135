// Generated from client-wasm/src/js/boundary.rs by `cargo xtask package`: do not edit.
// `cargo test -p xtask` fails when this file is stale.
/* global HAS_ROOMS, HAS_PERSIST */

// Input: What happened in the browser: `machine.__input(shell, input, conn, a, b, c)`.
/** The socket's `open`; `a` is the selected subprotocol. */
export const INPUT_OPENED = 0;
/** A text frame `a`. */
export const INPUT_TEXT = 1;
/** A binary frame, `a` an `ArrayBuffer`. */
export const INPUT_BYTES = 2;
/** The socket's `error`. */
export const INPUT_ERROR = 3;
/** The socket's `close`: code `a`, reason `b`, `wasClean` `c`. */
export const INPUT_CLOSED = 4;
/** The URL provider resolved with `a`. */
export const INPUT_URL_RESOLVED = 5;
/** The URL provider failed; `a` says why. */
export const INPUT_URL_FAILED = 6;
/** `new WebSocket(a)` threw an exception named `b` with message `c`. */
export const INPUT_OPEN_FAILED = 7;
/** `send` threw an exception named `b` with message `c`. */
export const INPUT_SEND_FAILED = 8;
/** The window's `online`. */
export const INPUT_ONLINE = 9;
/** The window's `offline`. */
export const INPUT_OFFLINE = 10;
/** The document became visible. */
export const INPUT_VISIBLE = 11;
/** The document became hidden. */
export const INPUT_HIDDEN = 12;
/** The timer went off. */
export const INPUT_TIMER = 13;
/** Carry out what the session has decided since it was made: start connecting. */
export const INPUT_START = 14;
/** The outbox snapshot `a` (JSON text, from `Command::StoreOutbox`) is stored. */
export const INPUT_OUTBOX_STORED = 15;
export const INPUT_NAMES = ["opened", "text", "bytes", "error", "closed", "urlResolved", "urlFailed", "openFailed", "sendFailed", "online", "offline", "visible", "hidden", "timer", "start", "outboxStored"];

// Call: The page's calls: `machine.__call(shell, call, a, b)`; errors are thrown.
/** Sends string `a`; answers a `SendResult`. */
export const CALL_SEND_TEXT = 0;
/** Sends the bytes of `Uint8Array` `a`; answers a `SendResult`. */
export const CALL_SEND_BYTES = 1;
/** Closes for good with code `a` and reason `b` (undefined when not given). */
export const CALL_CLOSE = 2;
/** Connects again now. */
export const CALL_RECONNECT = 3;
/** Releases everything the wasm holds for this socket. */
export const CALL_DISPOSE = 4;
/** Answers the `State`. */
export const CALL_STATE = 5;
/** Answers the URL of the current or last attempt. */
export const CALL_URL = 6;
/** Answers the selected subprotocol. */
export const CALL_PROTOCOL = 7;
/** Answers the number of queued messages. */
export const CALL_QUEUED = 8;
/** Answers the number of publishes awaiting their ack. */
export const CALL_UNACKED = 9;
/** Answers the heartbeat's round-trip time as `[last, smoothed]` in ms, or undefined. */
export const CALL_RTT = 10;
/** Starts the rooms layer (protocol v1). */
export const CALL_START_ROOMS = 11;
/** Joins room `a`. */
export const CALL_JOIN = 12;
/** Leaves room `a`; answers whether it was joined. */
export const CALL_LEAVE = 13;
/**
 * Publishes JSON text `b` to room `a`; answers the publish id, whose `ack` or `publishFailed` event
 * settles the page's promise.
 */
export const CALL_PUBLISH = 14;
/** Asks for the room list; answers whether it was asked. */
export const CALL_LIST_ROOMS = 15;
/**
 * Turns the persistent outbox on, restored from the stored snapshot `a` (JSON text) or, when `a` is
 * undefined, empty. Before the rooms layer starts.
 */
export const CALL_RESTORE_OUTBOX = 16;
/** Empties the persistent outbox: its publishes fail with `ERR_OUTBOX_CLEARED`. */
export const CALL_CLEAR_OUTBOX = 17;
/**
 * As `Publish`, with `b` = [JSON text, id]: under the id an earlier socket on the same store gave
 * it (shared mode's next hub), see `Session::publish_as`.
 */
export const CALL_PUBLISH_AS = 18;
export const CALL_NAMES = ["sendText", "sendBytes", "close", "reconnect", "dispose", "state", "url", "protocol", "queued", "unacked", "rtt", "startRooms", "join", "leave", "publish", "listRooms", "restoreOutbox", "clearOutbox", "publishAs"];

// Command: What the shell must do: `shell.__do(command, conn, a, b)`, which answers a number.
/** Call the URL provider; `__input(UrlResolved | UrlFailed, conn, text)` follows. */
export const COMMAND_RESOLVE_URL = 0;
/**
 * Open a `WebSocket` to `a` offering the page's subprotocols, and `lifeline.v1` after them when `b`
 * is true, dropping any other socket. An exception goes to `__input(OpenFailed, conn, url, name,
 * message)`.
 */
export const COMMAND_OPEN = 1;
/** Send `a` (a string or an `ArrayBuffer`) on connection `conn`, if it is still the socket. */
export const COMMAND_SEND = 2;
/** Close connection `conn` with code `a` and reason `b`; its events still count. */
export const COMMAND_CLOSE = 3;
/** As `Close`, and drop the socket at once: the session has moved on from it. */
export const COMMAND_ABANDON = 4;
/** Answer connection `conn`'s `bufferedAmount`, or -1 if it is not the socket. */
export const COMMAND_BUFFERED = 5;
/** Set the one timer to `conn` milliseconds from now (replacing any), or clear it (-1). */
export const COMMAND_TIMER = 6;
/**
 * Sent after every drive: report connection `conn`'s frames as messages without `__input` (the
 * session says that is all it would do with them); -1: hand all in.
 */
export const COMMAND_PASS_MESSAGES = 7;
/**
 * Store the outbox snapshot `a` (JSON text), after every earlier one; then `__input(OutboxStored,
 * 0, a)`.
 */
export const COMMAND_STORE_OUTBOX = 8;
export const COMMAND_NAMES = ["resolveUrl", "open", "send", "close", "abandon", "buffered", "timer", "passMessages", "storeOutbox"];

// State: The socket's state, as `ws.state` names it.
export const STATE_CONNECTING = 0;
export const STATE_OPEN = 1;
export const STATE_CLOSING = 2;
export const STATE_CLOSED = 3;
export const STATE_RECONNECTING = 4;
export const STATE_NAMES = ["connecting", "open", "closing", "closed", "reconnecting"];

// SendResult: What `send` did with a message, as `ws.send` answers it.
export const SEND_RESULT_SENT = 0;
export const SEND_RESULT_QUEUED = 1;
export const SEND_RESULT_NAMES = ["sent", "queued"];

// OptionSlot: The constructor's numbers (a `Float64Array`; NaN where an option is not given),
// checked by `index.js` to be non-negative. The slots up to `MaxUnacked` are named after their
// option; `index.js` fills the others by number.
export const OPTION_SLOT_MIN_DELAY = 0;
export const OPTION_SLOT_MAX_DELAY = 1;
export const OPTION_SLOT_BACKOFF_FACTOR = 2;
export const OPTION_SLOT_MAX_RETRIES = 3;
export const OPTION_SLOT_CONNECT_TIMEOUT = 4;
export const OPTION_SLOT_MIN_UPTIME = 5;
export const OPTION_SLOT_MAX_QUEUED_MESSAGES = 6;
export const OPTION_SLOT_MAX_QUEUED_BYTES = 7;
export const OPTION_SLOT_HIGH_WATER_MARK = 8;
export const OPTION_SLOT_ACK_TIMEOUT = 9;
export const OPTION_SLOT_MAX_UNACKED = 10;
/** `heartbeat.interval`. */
export const OPTION_SLOT_HEARTBEAT_INTERVAL = 11;
/** `heartbeat.timeout`. */
export const OPTION_SLOT_HEARTBEAT_TIMEOUT = 12;
/** 1 for `heartbeat: false`. */
export const OPTION_SLOT_NO_HEARTBEAT = 13;
/** The backoff jitter's seed, as two 32-bit halves from `Math.random()`. */
export const OPTION_SLOT_SEED_HIGH = 14;
export const OPTION_SLOT_SEED_LOW = 15;
/** 1 when the browser is offline as the socket is made. */
export const OPTION_SLOT_OFFLINE = 16;
export const OPTION_SLOT_NAMES = ["minDelay", "maxDelay", "backoffFactor", "maxRetries", "connectTimeout", "minUptime", "maxQueuedMessages", "maxQueuedBytes", "highWaterMark", "ackTimeout", "maxUnacked", null, null, null, null, null, null];

// PageEvent: An event for the page. Its type is the variant's name in lowerCamelCase, as
// `EventTarget` names it; `index.js` builds a `MessageEvent`, `CloseEvent` or `Event` carrying the
// fields.
/** A socket opened. `protocol` is the subprotocol the server selected ("" if none). */
export const PAGE_EVENT_OPEN = 0;
/**
 * A message arrived (a `MessageEvent`): text frames as `string`, binary frames as a `Blob` or, with
 * `binaryType = "arraybuffer"`, an `ArrayBuffer`.
 */
export const PAGE_EVENT_MESSAGE = 1;
/**
 * Something went wrong; the client carries on unless a `close` or `giveup` says otherwise.
 * `message` is the error's.
 */
export const PAGE_EVENT_ERROR = 2;
/**
 * A socket closed ([CloseEvent](https://developer.mozilla.org/en-US/docs/Web/API/CloseEvent)). 1006
 * means the connection was lost without a close frame; 4000 that the heartbeat timed out.
 */
export const PAGE_EVENT_CLOSE = 3;
/** The next attempt starts after `delay` ms; `attempt` counts failed attempts from 1. */
export const PAGE_EVENT_RECONNECTING = 4;
/** The state changed. */
export const PAGE_EVENT_STATECHANGE = 5;
/** `maxRetries` attempts failed in a row; the client is now closed. */
export const PAGE_EVENT_GIVEUP = 6;
/** The browser went offline (retries pause) or came back online (a waiting retry starts). */
export const PAGE_EVENT_OFFLINE = 7;
export const PAGE_EVENT_ONLINE = 8;
/** A heartbeat pong arrived. */
export const PAGE_EVENT_PONG = 9;
/** The server answered this connection's `hello`. */
export const PAGE_EVENT_WELCOME = 10;
/** A first join: delivery starts after `offset` (earlier history is not replayed). */
export const PAGE_EVENT_JOINED = 11;
/**
 * The answer to a rejoin after a reconnect (or a gap). `recovered: true`: every message missed
 * since `since` follows, in order, before anything newer. `recovered: false`: the gap cannot be
 * filled (the epoch changed or the history is too short); delivery goes on after `offset` of
 * `epoch`, and the messages in between are lost to this client.
 */
export const PAGE_EVENT_RECOVERY = 12;
/**
 * A message in a joined room: in offset order, never twice, your own publishes included. A resend
 * the server re-broadcast under a new offset (same `publisher` and `id`, after a lost session or a
 * server restart) is skipped.
 */
export const PAGE_EVENT_ROOM_MESSAGE = 13;
/** The server confirmed a `leave`. */
export const PAGE_EVENT_LEFT = 14;
/** A publish was acknowledged (its promise resolves with these fields: `PublishAck`). */
export const PAGE_EVENT_ACK = 15;
/** A publish failed and will not be resent (its promise rejects with the same `error`). */
export const PAGE_EVENT_PUBLISH_FAILED = 16;
/** Who is in a room now. */
export const PAGE_EVENT_PRESENCE = 17;
/** The server's room list: on `listRooms()` and whenever membership changes. */
export const PAGE_EVENT_ROOMS = 18;
/** The server refused something that was not a publish (a join, say). */
export const PAGE_EVENT_SERVER_ERROR = 19;
/** A text frame that is not protocol v1; the connection goes on. */
export const PAGE_EVENT_BAD_FRAME = 20;
/**
 * Publishes of an earlier page (restored from the persistent outbox) that the server has now
 * acknowledged: each reached its room once. Their `ack` events come first.
 */
export const PAGE_EVENT_OUTBOX_DELIVERED = 21;
export const PAGE_EVENT_NAMES = ["open", "message", "error", "close", "reconnecting", "statechange", "giveup", "offline", "online", "pong", ...(HAS_ROOMS ? ["welcome", "joined", "recovery", "roomMessage", "left", "ack", "publishFailed", "presence", "rooms", "serverError", "badFrame"] : []), ...(HAS_PERSIST ? ["outboxDelivered"] : [])];
export const PAGE_EVENT_FIELDS = [
  ["protocol"],
  ["data"],
  ["error"],
  ["code", "reason", "wasClean"],
  ["attempt", "delay"],
  ["state"],
  [],
  [],
  [],
  ["rtt"],
  ...(HAS_ROOMS ? [
    ["resumed", "name"],
    ["room", "epoch", "offset"],
    ["room", "recovered", "sinceEpoch", "sinceOffset", "epoch", "offset"],
    ["room", "epoch", "offset", "from", "data", "ts", "publisher", "id"],
    ["room"],
    ["id", "room", "offset", "duplicate"],
    ["id", "room", "error"],
    ["room", "members"],
    ["rooms"],
    ["code", "message"],
    ["raw", "message"],
  ] : []),
  ...(HAS_PERSIST ? [
    ["ids"],
  ] : []),
];
