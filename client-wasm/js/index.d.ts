// TypeScript declarations of the npm package `ws-lifeline`.
//
// Hand-written (wasm-bindgen's generated declarations cannot express an event map), except the
// event interfaces and maps, which `cargo xtask package` generates from the event table in
// `client-wasm/src/js/boundary.rs` (between the marker lines below: not to be edited by hand).
// Checked by `tests/ts/usage.ts` under `tsc --strict` and, at run time, by the browser tests in
// `tests/e2e/js_*.test.mjs`. The protocol v1 wire types come from `protocol.d.ts`, which is
// generated from the Rust serde types and kept equal to them by a Rust test.

import type { ErrorCode, JsonValue, RoomInfo } from "./protocol.js";

export type * from "./protocol.js";

// ---------------------------------------------------------------------------------------------
// Loading the WebAssembly module
// ---------------------------------------------------------------------------------------------

/** Anything `init()` can load the `.wasm` from. */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

/** The instantiated module's exports that are of use to JavaScript. */
export interface InitOutput {
  /** The module's linear memory (its `buffer.byteLength` is the wasm heap size). */
  readonly memory: WebAssembly.Memory;
}

/**
 * Loads and instantiates the WebAssembly module. Not needed for the package's own `.wasm`:
 * importing the package loads it (`ws_lifeline_bg.wasm` beside the JS file; under Node, read
 * from that file). For a `.wasm` served from elsewhere: if the import could not load its own,
 * it reported why, and this loads the one given. Once loaded, later calls return the same
 * module at once.
 *
 * ```js
 * import init, { LifelineSocket } from "ws-lifeline";
 * await init({ module_or_path: "/assets/ws_lifeline_bg.wasm" });
 * ```
 */
export default function init(
  options?: { module_or_path?: InitInput | Promise<InitInput> } | InitInput | Promise<InitInput>,
): Promise<InitOutput>;

/** Instantiates the module synchronously from bytes or a compiled module (workers, tests). */
export function initSync(options: { module: BufferSource | WebAssembly.Module }): InitOutput;

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/** Where to connect: a URL, or a function called before every attempt (it may be async). */
export type UrlProvider = string | URL | (() => string | URL | Promise<string | URL>);

/** The heartbeat's options. Giving any of them runs the heartbeat on every connection. */
export interface HeartbeatOptions {
  /** Time between pings in ms, > 0. Default: 25000. */
  interval?: number;
  /** How long a ping may go without any inbound frame, in ms, > 0. Default: 10000. */
  timeout?: number;
  /**
   * The ping text, or a function of the ping number (from 1) returning it. Default:
   * `{"type":"ping","id":N}`. A function that throws or returns no string is reported, and
   * the default ping goes out instead.
   */
  ping?: string | ((n: number) => string);
  /**
   * Which inbound text frames are pongs: they count as life and never reach `message`.
   * Default: protocol v1's `{"type":"pong",...}`. One that throws is reported and answers false.
   */
  isPong?: (data: string) => boolean;
}

/** Options of `new LifelineSocket(url, protocols?, options?)`. Every duration is in
 * milliseconds. */
export interface LifelineOptions {
  /**
   * The `WebSocket` class each attempt constructs, as `new WebSocket(url, protocols)`: any
   * class with the browser's API (`addEventListener`, `binaryType = "arraybuffer"`, `send`,
   * `close`, `readyState`, `protocol`, `bufferedAmount`), such as the `ws` package's
   * `WebSocket` in Node before 22. Default: `globalThis.WebSocket`; without either the
   * constructor throws `ERR_INVALID_ARGUMENT`.
   */
  WebSocket?: new (url: string, protocols?: string | string[]) => unknown;
  /**
   * Called with each state change, connection attempt (`attempt`, with its `url`), reconnect
   * delay (`reconnecting`), heartbeat round trip (`pong`), queued send (`queued`), error,
   * close and room event: `(level, message, fields)`, where `message` is the event type and
   * `fields` its data. One that throws is reported. Default: none.
   */
  logger?: (level: "debug" | "info" | "warn" | "error", message: string, fields: Record<string, unknown>) => void;
  /** `true`: log as `logger` does, to the console (`console.debug` … `console.error`). */
  debug?: boolean;
  /**
   * After this many attempts in a row that failed before the handshake (`true`: 3), make one
   * plain HTTP request to the URL and report an error status (not 426) as an `error` event
   * with `ERR_HANDSHAKE` and its `status`; where `isTerminal(status)` (default: 401, 403,
   * 404) the socket closes instead of retrying. Same-origin, or a server that allows the page
   * by CORS: otherwise the status cannot be read and nothing is reported. Full entry only.
   * Default: off.
   */
  diagnose?: boolean | number | { after?: number; isTerminal?: (status: number) => boolean };
  /** Subprotocols offered in `Sec-WebSocket-Protocol`, for `new LifelineSocket(url, options)`;
   * not together with the `protocols` argument. Default: none. */
  protocols?: string | string[];
  /** Smallest delay before a reconnect attempt. Default: 1000. */
  minDelay?: number;
  /** Largest delay before a reconnect attempt. Default: 30000. */
  maxDelay?: number;
  /** Growth of the delay ceiling per failed attempt (full jitter below it). Default: 2. */
  backoffFactor?: number;
  /** Give up (event `giveup`) after this many failed retries in a row. Default: never. */
  maxRetries?: number;
  /** How long one attempt (URL provider plus handshake) may take. Default: 10000. */
  connectTimeout?: number;
  /** How long a connection must stay open before the retry counter resets. Default: 5000. */
  minUptime?: number;
  /**
   * The application-level heartbeat: a `{"type":"ping","id":N}` text frame every `interval`;
   * without any inbound frame within `timeout` the connection counts as half-open and is
   * closed with 4000 and reconnected. `false` turns it off. Default: `{ interval: 25000,
   * timeout: 10000 }`, run only where the server selected `lifeline.v1` (a server that speaks
   * no protocol may stay quiet while healthy); giving any of its options runs it on every
   * connection.
   */
  heartbeat?: false | HeartbeatOptions;
  /** Most messages the outbound queue holds while disconnected (or above `highWaterMark`).
   * Default: 1024. An open socket takes every send, as `WebSocket` does. */
  maxQueuedMessages?: number;
  /** Most bytes the outbound queue holds while disconnected (or above `highWaterMark`).
   * Default: 1048576 (1 MiB). */
  maxQueuedBytes?: number;
  /**
   * Backpressure, if you want it: above this `bufferedAmount` (bytes), sends wait in the
   * queue (within its bounds) until the socket drains. Default: none (`Infinity`): an open
   * socket hands every send to the browser, as `WebSocket` does.
   */
  highWaterMark?: number;
  /**
   * Whether a close code ends reconnecting. Default: 1008 (policy) and 4400–4499 stop; every
   * other code is retried.
   */
  isTerminalClose?: (code: number) => boolean;
  /**
   * Protocol v1: how long a `publish` may wait for its ack, counted from the call and across
   * reconnects; then its promise rejects with `ERR_PUBLISH_TIMEOUT`. Default: 30000.
   */
  ackTimeout?: number;
  /**
   * Protocol v1: most publishes awaiting their ack; one more rejects with
   * `ERR_TOO_MANY_UNACKED` (nothing is sent or dropped). Default: 1024.
   */
  maxUnacked?: number;
  /**
   * The persistent outbox, kept in IndexedDB under a store name (`true`: the socket's URL),
   * with its bounds as an object: only in the entry `ws-lifeline/persist`. This entry throws
   * `ERR_PERSIST_UNAVAILABLE` when it is given (other than `false`).
   */
  persist?: boolean | string | PersistOptions;
}

/** The option `persist` as an object (entry `ws-lifeline/persist`). */
export interface PersistOptions {
  /** The store name; default: the socket's URL (a URL provider needs a name). */
  store?: string;
  /** Most unacknowledged publishes kept; one more rejects with `ERR_OUTBOX_FULL` (nothing
   * is dropped). Default: 1024. */
  maxPublishes?: number;
  /** Most bytes of unacknowledged publish frames kept; past it, `ERR_OUTBOX_FULL`. Default:
   * 1048576 (1 MiB). */
  maxBytes?: number;
}

// ---------------------------------------------------------------------------------------------
// State and errors
// ---------------------------------------------------------------------------------------------

/** The connection state reported by `state` and the `statechange` event. */
export type ConnectionState = "connecting" | "open" | "closing" | "reconnecting" | "closed";

/** `readyState` values, as on `WebSocket`. */
export type ReadyState = 0 | 1 | 2 | 3;

/** The `code` of every error this package throws or reports. */
export type LifelineErrorCode =
  | "ERR_INVALID_URL"
  | "ERR_INVALID_CLOSE_CODE"
  | "ERR_CLOSE_REASON_TOO_LONG"
  | "ERR_QUEUE_FULL"
  | "ERR_CLOSED"
  | "ERR_NOT_OPEN"
  | "ERR_ENCODE"
  | "ERR_SOCKET"
  | "ERR_CONNECT_TIMEOUT"
  | "ERR_URL_PROVIDER"
  | "ERR_PLATFORM"
  | "ERR_INVALID_ARGUMENT"
  | "ERR_DISPOSED"
  | "ERR_INVALID_ROOM"
  | "ERR_NOT_JOINED"
  | "ERR_TOO_MANY_UNACKED"
  | "ERR_PUBLISH_TIMEOUT"
  | "ERR_PUBLISH_REFUSED"
  | "ERR_LEFT_ROOM"
  | "ERR_TOO_LARGE"
  | "ERR_HANDSHAKE"
  | "ERR_PERSIST_UNAVAILABLE"
  | "ERR_OUTBOX_FULL"
  | "ERR_OUTBOX_CLEARED"
  | "ERR_OUTBOX_STORE"
  | "ERR_OUTBOX_SNAPSHOT";

/**
 * Every error the package throws (and the `error` of an `error` event): a real `Error` with
 * `name === "LifelineError"` and a machine-readable `code`. Test with `isLifelineError(e)`.
 */
export interface LifelineError extends Error {
  readonly name: "LifelineError";
  readonly code: LifelineErrorCode;
  /** `ERR_INVALID_URL`: the URL as supplied. */
  readonly supplied?: string;
  /** `ERR_QUEUE_FULL`, `ERR_TOO_MANY_UNACKED`: which bound was hit, and its value. */
  readonly limit?:
    | { readonly messages: number }
    | { readonly bytes: number }
    | { readonly unacked: number };
  /** `ERR_INVALID_CLOSE_CODE`: the refused code. */
  readonly closeCode?: number;
  /** `ERR_INVALID_ROOM`, `ERR_NOT_JOINED`, `ERR_LEFT_ROOM`: the room. */
  readonly room?: string;
  /** `ERR_PUBLISH_TIMEOUT`, `ERR_PUBLISH_REFUSED`, `ERR_LEFT_ROOM`, `ERR_OUTBOX_CLEARED`: the
   * publish's id. */
  readonly publishId?: number;
  /** `ERR_PUBLISH_TIMEOUT`, `ERR_CONNECT_TIMEOUT`: the timeout that ran out, in ms. */
  readonly afterMs?: number;
  /** `ERR_PUBLISH_REFUSED`: the server's reason. */
  readonly serverCode?: ErrorCode;
  /** `ERR_TOO_LARGE`: the frame's size in bytes. */
  readonly size?: number;
  /** `ERR_TOO_LARGE`: the server's `max_message_bytes`; absent when the server did not
   * advertise it and closed the connection with 1009 instead. */
  readonly maxMessageBytes?: number;
  /** `ERR_HANDSHAKE`: the HTTP status the server answers the URL with (see `diagnose`). */
  readonly status?: number;
  /** `ERR_OUTBOX_FULL`: the persistent outbox's bound on publishes (1024). */
  readonly maxPublishes?: number;
  /** `ERR_OUTBOX_FULL`: its bound on bytes of publish frames (1 MiB). */
  readonly maxBytes?: number;
}

/** True for errors thrown or reported by this package. */
export function isLifelineError(value: unknown): value is LifelineError;

/**
 * What the browser shell holds right now across all sockets: all zeros once every socket is
 * disposed. For leak checks in tests.
 */
export function liveResources(): {
  readonly sockets: number;
  readonly listeners: number;
  readonly timers: number;
  readonly predicates: number;
};

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/** Every event is a real `Event` (`message` a `MessageEvent`, `close` a `CloseEvent`),
 * created per dispatch, carrying its fields as properties. */
export interface LifelineEventBase<K extends string> extends Event {
  readonly type: K;
  readonly target: LifelineSocket;
}

// ---- generated from client-wasm/src/js/boundary.rs by `cargo xtask package` ----

/** A socket opened. `protocol` is the subprotocol the server selected ("" if none). */
export interface LifelineOpenEvent extends LifelineEventBase<"open"> {
  readonly protocol: string;
}

/**
 * A message arrived (a `MessageEvent`): text frames as `string`, binary frames as a `Blob` or, with
 * `binaryType = "arraybuffer"`, an `ArrayBuffer`.
 */
export interface LifelineMessageEvent
  extends Omit<MessageEvent, "type" | "target" | "data">,
    LifelineEventBase<"message"> {
  readonly data: string | ArrayBuffer | Blob;
}

/**
 * Something went wrong; the client carries on unless a `close` or `giveup` says otherwise.
 * `message` is the error's.
 */
export interface LifelineErrorEvent
  extends Readonly<Pick<LifelineError, "message">>,
    LifelineEventBase<"error"> {
  readonly error: LifelineError;
}

/**
 * A socket closed ([CloseEvent](https://developer.mozilla.org/en-US/docs/Web/API/CloseEvent)). 1006
 * means the connection was lost without a close frame; 4000 that the heartbeat timed out.
 */
export interface LifelineCloseEvent
  extends Omit<CloseEvent, "type" | "target">,
    LifelineEventBase<"close"> {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
}

/** The next attempt starts after `delay` ms; `attempt` counts failed attempts from 1. */
export interface LifelineReconnectingEvent extends LifelineEventBase<"reconnecting"> {
  readonly attempt: number;
  readonly delay: number;
}

/** The state changed. */
export interface LifelineStateChangeEvent extends LifelineEventBase<"statechange"> {
  readonly state: ConnectionState;
}

/** `maxRetries` attempts failed in a row; the client is now closed. */
export interface LifelineGiveUpEvent extends LifelineEventBase<"giveup"> {}

/** The browser went offline (retries pause) or came back online (a waiting retry starts). */
export interface LifelineNetworkEvent extends LifelineEventBase<"offline" | "online"> {}

/** A heartbeat pong arrived. */
export interface LifelinePongEvent extends LifelineEventBase<"pong"> {
  /** The round trip it measured, from the latest ping's send, in ms. */
  readonly rtt: number;
}

/** The server answered this connection's `hello`. */
export interface LifelineWelcomeEvent extends LifelineEventBase<"welcome"> {
  /**
   * True when the previous session was resumed. False after an earlier session means the server
   * forgot it (it restarted, say): publishes resent now may be delivered twice.
   */
  readonly resumed: boolean;
  /** The display name the server knows this client by (`from` of its messages). */
  readonly name: string;
}

/** A first join: delivery starts after `offset` (earlier history is not replayed). */
export interface LifelineJoinedEvent extends LifelineEventBase<"joined"> {
  readonly room: string;
  /** The room's epoch: it changes whenever the room's history is lost. */
  readonly epoch: string;
  /** The room's latest offset. */
  readonly offset: number;
}

/**
 * The answer to a rejoin after a reconnect (or a gap). `recovered: true`: every message missed
 * since `since` follows, in order, before anything newer. `recovered: false`: the gap cannot be
 * filled (the epoch changed or the history is too short); delivery goes on after `offset` of
 * `epoch`, and the messages in between are lost to this client.
 */
export interface LifelineRecoveryEvent extends LifelineEventBase<"recovery"> {
  readonly room: string;
  readonly recovered: boolean;
  /** The position the client asked to resume after. */
  readonly since: { readonly epoch: string; readonly offset: number };
  /** The room's epoch now. */
  readonly epoch: string;
  /** The room's latest offset now. */
  readonly offset: number;
}

/**
 * A message in a joined room: in offset order, never twice, your own publishes included. A resend
 * the server re-broadcast under a new offset (same `publisher` and `id`, after a lost session or a
 * server restart) is skipped.
 */
export interface LifelineRoomMessageEvent<T extends JsonValue = JsonValue>
  extends LifelineEventBase<"roomMessage"> {
  readonly room: string;
  /** The room's epoch: offsets start again at 1 in a new one (after a server restart). */
  readonly epoch: string;
  /** Consecutive within an epoch (a skipped resend leaves a step out). */
  readonly offset: number;
  /** The publisher's display name. */
  readonly from: string;
  /** The published JSON. */
  readonly data: T;
  /** Server time of publication, ms since the Unix epoch. */
  readonly ts: number;
  /**
   * The publisher's id, from a server that stamps it. With `id` it names the publication across
   * sessions and server restarts: use `${publisher}:${id}` as a list key.
   */
  readonly publisher: string | undefined;
  /** The publisher's publish id, sent with `publisher`. */
  readonly id: number | undefined;
}

/** The server confirmed a `leave`. */
export interface LifelineLeftEvent extends LifelineEventBase<"left"> {
  readonly room: string;
}

/** A publish was acknowledged (its promise resolves with these fields: `PublishAck`). */
export interface LifelineAckEvent extends LifelineEventBase<"ack"> {
  /** The publish's id (unique within the socket). */
  readonly id: number;
  readonly room: string;
  /** The offset the message got in the room. */
  readonly offset: number;
  /** True for a resend the server had accepted before (and did not broadcast again). */
  readonly duplicate: boolean;
}

/** A publish failed and will not be resent (its promise rejects with the same `error`). */
export interface LifelinePublishFailedEvent extends LifelineEventBase<"publishFailed"> {
  readonly id: number;
  readonly room: string;
  readonly error: LifelineError;
}

/** Who is in a room now. */
export interface LifelinePresenceEvent extends LifelineEventBase<"presence"> {
  readonly room: string;
  /** Members' display names, sorted. */
  readonly members: readonly string[];
}

/** The server's room list: on `listRooms()` and whenever membership changes. */
export interface LifelineRoomsEvent extends LifelineEventBase<"rooms"> {
  /** Every room with its member count, sorted by name. */
  readonly rooms: readonly RoomInfo[];
}

/** The server refused something that was not a publish (a join, say). */
export interface LifelineServerErrorEvent extends LifelineEventBase<"serverError"> {
  readonly code: ErrorCode;
  readonly message: string;
}

/** A text frame that is not protocol v1; the connection goes on. */
export interface LifelineBadFrameEvent extends LifelineEventBase<"badFrame"> {
  /** The frame as received. */
  readonly raw: string;
  /** Why it did not decode. */
  readonly message: string;
}

/**
 * Publishes of an earlier page (restored from the persistent outbox) that the server has now
 * acknowledged: each reached its room once. Their `ack` events come first.
 */
export interface LifelineOutboxDeliveredEvent extends LifelineEventBase<"outboxDelivered"> {
  /** Their publish ids (the earlier page's), in the order of their acks. */
  readonly ids: readonly number[];
}

/** The socket's events by type: those of `WebSocket` and the resilience events. */
export interface LifelineSocketEventMap {
  open: LifelineOpenEvent;
  message: LifelineMessageEvent;
  error: LifelineErrorEvent;
  close: LifelineCloseEvent;
  reconnecting: LifelineReconnectingEvent;
  statechange: LifelineStateChangeEvent;
  giveup: LifelineGiveUpEvent;
  offline: LifelineNetworkEvent;
  online: LifelineNetworkEvent;
  pong: LifelinePongEvent;
}

/** Protocol v1 (rooms) event types and the event each one delivers. The first listener for any
 * of them starts the rooms layer, as do join, leave, publish and listRooms. */
export interface LifelineRoomEventMap {
  welcome: LifelineWelcomeEvent;
  joined: LifelineJoinedEvent;
  recovery: LifelineRecoveryEvent;
  roomMessage: LifelineRoomMessageEvent;
  left: LifelineLeftEvent;
  ack: LifelineAckEvent;
  publishFailed: LifelinePublishFailedEvent;
  presence: LifelinePresenceEvent;
  rooms: LifelineRoomsEvent;
  serverError: LifelineServerErrorEvent;
  badFrame: LifelineBadFrameEvent;
}

/** The persistent outbox's event types (the `ws-lifeline/persist` entry only). */
export interface LifelineOutboxEventMap {
  outboxDelivered: LifelineOutboxDeliveredEvent;
}

// ---- end of the generated part ----

/** The heartbeat's round-trip time in ms. */
export interface RoundTripTime {
  /** The latest sample. */
  readonly last: number;
  /** Smoothed as TCP's SRTT: `smoothed += (last - smoothed) / 8`. */
  readonly smoothed: number;
}

/** What `publish` resolves with: the server accepted the message. */
export type PublishAck = Pick<LifelineAckEvent, "id" | "room" | "offset" | "duplicate">;

/**
 * Event types and the event each one delivers: the socket's, and protocol v1's. Once the
 * rooms layer runs, text frames are room events (`roomMessage` is a decoded room message) or
 * `badFrame`, never `message`; binary frames are still `message` events.
 */
export interface LifelineEventMap extends LifelineSocketEventMap, LifelineRoomEventMap {}

/** A listener: a function, or an object with `handleEvent` (as for `EventTarget`). */
export type LifelineListener<E> = ((event: E) => void) | { handleEvent(event: E): void };

/** Listener options, as for `EventTarget`. */
export interface LifelineListenerOptions {
  /** As for `EventTarget` (the socket has no parent, so it only tells listeners apart). */
  capture?: boolean;
  /** Remove the listener after its first call. */
  once?: boolean;
  /** Remove the listener when this signal aborts. */
  signal?: AbortSignal;
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/** What `send` did with the data. */
export type SendResult = "sent" | "queued";

/**
 * A WebSocket that stays connected: it reconnects with jittered exponential backoff, detects
 * half-open connections with a heartbeat, and queues what you send while it is away (bounded,
 * flushed in order on reconnect).
 *
 * It connects as soon as it is constructed. Keep a reference to it while you use it: it is
 * released when you call `dispose()` (or `free()`, or leave a `using` block), and, as a
 * fallback only, when it is garbage-collected.
 *
 * It is an `EventTarget` and can stand in for `WebSocket`: hand the class to a library that
 * takes a WebSocket implementation.
 *
 * ```js
 * import { LifelineSocket } from "ws-lifeline";
 * const ws = new LifelineSocket("wss://example.com/ws", { maxRetries: 10 });
 * ws.addEventListener("message", (e) => console.log(e.data));
 * ws.addEventListener("close", (e) => console.log("closed", e.code));
 * ws.send("hello"); // "queued" until the socket opens, then flushed
 * ```
 */
export class LifelineSocket extends EventTarget {
  /**
   * Starts connecting. `url` is resolved against the page as `WebSocket` resolves it
   * (relative, `http:` and `https:` URLs included).
   * @throws {LifelineError} `ERR_INVALID_URL` for a URL that is not `ws:`, `wss:`, `http:` or
   *   `https:`; `ERR_INVALID_ARGUMENT` for options of the wrong type, or subprotocols given
   *   both as an argument and as an option.
   */
  constructor(url: UrlProvider, protocols?: string | string[] | null, options?: LifelineOptions);
  constructor(url: UrlProvider, options?: LifelineOptions);

  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;

  /** How binary messages arrive: `"blob"` (default, as on `WebSocket`) or `"arraybuffer"`.
   * Other values are ignored. */
  binaryType: "blob" | "arraybuffer";
  /** The extensions the server selected on the current connection ("" if none). */
  readonly extensions: string;

  /** As on `WebSocket`: CONNECTING also while waiting to reconnect. */
  readonly readyState: ReadyState;
  /** The finer-grained state. */
  readonly state: ConnectionState;
  /** The URL of the current (or last) connection; "" before the first one is resolved. */
  readonly url: string;
  /** The subprotocol the server selected; "" if none or not open. */
  readonly protocol: string;
  /** The heartbeat's round-trip time; `undefined` before the first pong. */
  readonly rtt: RoundTripTime | undefined;
  /** The browser's `bufferedAmount` of the open socket: bytes handed over, not yet sent
   * (a send while open is handed over at once, also from an `open` listener). */
  readonly bufferedAmount: number;
  /** Messages waiting in this client's outbound queue (sent in order once open). */
  readonly queuedMessages: number;
  /** True once `dispose()` (or `free()`) ran. */
  readonly disposed: boolean;

  /**
   * Sends now if open, otherwise queues for the next connection.
   * @throws {LifelineError} `ERR_QUEUE_FULL` when the queue bound would be exceeded (nothing
   *   is queued or dropped); `ERR_CLOSED` after `close()`, `giveup` or a terminal close;
   *   `ERR_INVALID_ARGUMENT` for other data types; `ERR_DISPOSED` after `dispose()`.
   */
  send(data: string | ArrayBuffer | ArrayBufferView): SendResult;

  /**
   * Closes for good (no reconnect). Queued messages are dropped.
   * @throws {LifelineError} `ERR_INVALID_CLOSE_CODE` unless `code` is 1000 or 3000–4999;
   *   `ERR_CLOSE_REASON_TOO_LONG` past 123 bytes of UTF-8.
   */
  close(code?: number, reason?: string): void;

  /** Connects again now: after `close()`, `giveup` or a terminal close, or to skip a wait. */
  reconnect(): void;

  addEventListener<K extends keyof LifelineEventMap>(
    type: K,
    listener: LifelineListener<LifelineEventMap[K]> | null,
    options?: boolean | LifelineListenerOptions,
  ): void;
  /** Any other type, as on `EventTarget` (for events you `dispatchEvent` yourself). */
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | LifelineListenerOptions,
  ): void;
  removeEventListener<K extends keyof LifelineEventMap>(
    type: K,
    listener: LifelineListener<LifelineEventMap[K]> | null,
    options?: boolean | { capture?: boolean },
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | { capture?: boolean },
  ): void;

  /**
   * `addEventListener` that returns a function removing the listener again (which releases
   * it). Takes socket events and protocol v1 events alike.
   *
   * ```js
   * const stop = ws.on("roomMessage", (m) => console.log(m.room, m.from, m.data));
   * stop();
   * ```
   */
  on<K extends keyof LifelineEventMap>(
    type: K,
    listener: LifelineListener<LifelineEventMap[K]>,
    options?: LifelineListenerOptions,
  ): () => void;
  /** `removeEventListener`; does nothing once disposed. */
  off<K extends keyof LifelineEventMap>(
    type: K,
    listener: LifelineListener<LifelineEventMap[K]>,
  ): void;

  // Protocol v1 (rooms): the server must speak protocol v1 (docs/PROTOCOL.md); offer
  // `protocols: "lifeline.v1"`. The first call starts the layer: it says `hello` on every
  // open, rejoins every joined room with recovery, and resends unacknowledged publishes.

  /**
   * Joins a room, now if open and again after every reconnect (asking for what was missed:
   * see the `recovery` event). Joining before the socket opens is fine.
   * @throws {LifelineError} `ERR_INVALID_ROOM` unless 1 to 64 characters without control
   *   characters; `ERR_DISPOSED`.
   */
  join(room: string): void;
  /** Leaves a room; false if it was not joined. Its unacknowledged publishes fail. */
  leave(room: string): boolean;
  /**
   * Publishes `data` (anything `JSON.stringify` takes) to a joined room. Publishes made while
   * disconnected are sent after the reconnect, in order, and deduplicated by the server.
   * Never throws: the promise resolves when the server acknowledges, and rejects with a
   * `LifelineError`: `ERR_NOT_JOINED`, `ERR_TOO_MANY_UNACKED`, `ERR_PUBLISH_TIMEOUT`
   * (`ackTimeout`), `ERR_PUBLISH_REFUSED`, `ERR_LEFT_ROOM`, `ERR_ENCODE`,
   * `ERR_INVALID_ARGUMENT`, `ERR_CLOSED` (disposed while waiting) or `ERR_DISPOSED`.
   */
  publish(room: string, data: JsonValue | { toJSON(): JsonValue }): Promise<PublishAck>;
  /** Asks the server for the room list (a `rooms` event); false when not connected. */
  listRooms(): boolean;
  /** Publishes awaiting their ack. */
  readonly unackedPublishes: number;

  onopen: ((event: LifelineOpenEvent) => void) | null;
  onmessage: ((event: LifelineMessageEvent) => void) | null;
  onerror: ((event: LifelineErrorEvent) => void) | null;
  onclose: ((event: LifelineCloseEvent) => void) | null;
  onreconnecting: ((event: LifelineReconnectingEvent) => void) | null;
  onstatechange: ((event: LifelineStateChangeEvent) => void) | null;
  ongiveup: ((event: LifelineGiveUpEvent) => void) | null;

  /**
   * Closes the socket, cancels every timer and releases every listener and the wasm state.
   * No listener fires afterwards; pending publishes reject with `ERR_CLOSED`. Idempotent.
   */
  dispose(): void;
  /** `using ws = new LifelineSocket(...)` disposes at the end of the block. */
  [Symbol.dispose](): void;
  /** The same as `dispose()` (wasm-bindgen's name for it). */
  free(): void;
}

/** Any JSON value: `publish` payloads and room message data. */
export type Json = JsonValue;
