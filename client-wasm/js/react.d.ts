// TypeScript declarations of `ws-lifeline/react` (react.js): React hooks over the package's
// `LifelineSocket`. Needs React 18 or later; no `@types/react` is needed to use them.

import type {
  ConnectionState,
  JsonValue,
  LifelineError,
  LifelineEventMap,
  LifelineMessageEvent,
  LifelineOptions,
  LifelineRoomMessageEvent,
  LifelineSocket,
  PublishAck,
  ReadyState,
  UrlProvider,
} from "./index.js";

/** What `useLifelineSocket` returns; a new object whenever one of its fields changes. */
export interface LifelineSocketView {
  /**
   * The component's socket: `null` while the wasm loads (first mount only), when `url` is
   * null, and when the socket could not be created (see `error`).
   */
  readonly socket: LifelineSocket | null;
  /** The socket's state; `"connecting"` while the wasm loads, `"closed"` without a socket. */
  readonly state: ConnectionState;
  /** As `WebSocket.readyState`; 0 while the wasm loads, 3 without a socket. */
  readonly readyState: ReadyState;
  /**
   * The latest `message` event. React may render once for several messages that arrive
   * close together: to see every message, use `useLifelineEvent(socket, "message", …)`.
   */
  readonly lastMessage: LifelineMessageEvent | null;
  /**
   * The latest problem, until the next open: an `error` event's `LifelineError`, the
   * `LifelineError` the constructor threw for a bad `url` or bad `options`, or the reason the
   * wasm failed to load.
   */
  readonly error: LifelineError | Error | null;
}

/**
 * Opens a socket for the calling component and disposes it on unmount. It loads the wasm
 * itself (`init()`, once per page): the first mount renders with `socket: null` until then.
 *
 * StrictMode's double mount opens one socket, not two. A re-render never reconnects: `options`
 * are read once, when the socket is created, so an inline object is fine. A new `url` (a
 * different string or URL text) disposes the socket and opens another; `null` disposes it and
 * opens none. A `url` function is called before every attempt, and the latest one given is
 * used without reconnecting. To apply new options, change `url` or the component's `key`.
 *
 * ```jsx
 * const { socket, state } = useLifelineSocket("wss://example.com/ws", { protocols: "lifeline.v1" });
 * ```
 */
export function useLifelineSocket(
  url: UrlProvider | null | undefined,
  options?: LifelineOptions,
): LifelineSocketView;

/**
 * Calls `listener` for each `type` event of `socket` while the component is mounted (nothing
 * while `socket` is null). A new listener function on every render does not re-subscribe.
 */
export function useLifelineEvent<K extends keyof LifelineEventMap>(
  socket: LifelineSocket | null | undefined,
  type: K,
  listener: (event: LifelineEventMap[K]) => void,
): void;

/** Options of `useRoom`. */
export interface RoomOptions {
  /** Most messages kept in `messages` (the oldest go first). Default: 100. */
  limit?: number;
}

/** What `useRoom` returns. */
export interface RoomView<T extends JsonValue = JsonValue> {
  /** True once the server confirmed the join (`joined` or `recovery` event). */
  readonly joined: boolean;
  /** The room's members' display names, sorted, from the latest `presence` event. */
  readonly members: readonly string[];
  /** The room's latest messages, oldest first (at most `limit`). */
  readonly messages: readonly LifelineRoomMessageEvent<T>[];
  /** Why the room could not be joined (`ERR_INVALID_ROOM`), else null. */
  readonly error: LifelineError | null;
  /**
   * `socket.publish(room, data)`: resolves with the server's ack. Rejects with
   * `ERR_NOT_JOINED` while there is no socket yet. The same function until `socket` or `room`
   * changes.
   */
  publish(data: T | { toJSON(): T }): Promise<PublishAck>;
}

/**
 * Joins `room` on `socket` while the component is mounted, and leaves it on unmount once no
 * other mounted `useRoom` uses that room of that socket. The socket rejoins by itself after a
 * reconnect, and recovers missed messages. Nothing happens while `socket` or `room` is null.
 *
 * ```jsx
 * const { messages, members, publish } = useRoom(socket, "lobby");
 * ```
 *
 * @throws {RangeError} when `limit` is not a number of at least 1.
 */
export function useRoom<T extends JsonValue = JsonValue>(
  socket: LifelineSocket | null | undefined,
  room: string | null | undefined,
  options?: RoomOptions,
): RoomView<T>;
