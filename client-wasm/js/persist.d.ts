// TypeScript declarations of `ws-lifeline/persist`: the package's API with the persistent
// outbox (the option `persist`, the `outboxDelivered` event, `clearOutbox` and
// `storedOutbox`). Shipped as `persist/index.d.ts`, beside the package's own `index.d.ts`,
// whose types it widens.

import type {
  LifelineSocket as FullSocket,
  LifelineEventMap,
  LifelineOutboxEventMap,
  LifelineListener,
  LifelineListenerOptions,
  LifelineOptions,
  UrlProvider,
} from "../index.js";

export * from "../index.js";
export { default } from "../index.js";

/** The events of a socket of this entry: the package's and the outbox's. */
export interface PersistEventMap extends LifelineEventMap, LifelineOutboxEventMap {}

/**
 * The package's `LifelineSocket`, where the option `persist: true | "<store name>"` keeps the
 * unacknowledged publishes, the publisher id and each room's position in IndexedDB, and the
 * next page resends them with the same ids (the server delivers each once) and rejoins the
 * rooms where it left them. Without the option it is the package's `LifelineSocket`.
 *
 * ```js
 * import { LifelineSocket } from "ws-lifeline/persist";
 * const ws = new LifelineSocket(url, { protocols: "lifeline.v1", persist: "chat" });
 * ws.on("outboxDelivered", (e) => markDelivered(e.ids));
 * ```
 */
export declare class LifelineSocket extends FullSocket {
  /**
   * As the package's constructor; the stored outbox is loaded before the first connection.
   * Room calls made meanwhile are carried out once it is loaded, in order, after what it
   * restores (`leave` and `listRooms` then answer false).
   * @throws {LifelineError} `ERR_PERSIST_UNAVAILABLE` where IndexedDB is missing (Node,
   *   Deno); `ERR_INVALID_ARGUMENT` for a `persist` that is neither a boolean, a store name
   *   nor a `PersistOptions` (bounds that are not positive integers), or `true` with a URL
   *   provider (give a store name).
   */
  constructor(url: UrlProvider, protocols?: string | string[] | null, options?: LifelineOptions);
  constructor(url: UrlProvider, options?: LifelineOptions);

  addEventListener<K extends keyof PersistEventMap>(
    type: K,
    listener: LifelineListener<PersistEventMap[K]> | null,
    options?: boolean | LifelineListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | LifelineListenerOptions,
  ): void;
  removeEventListener<K extends keyof PersistEventMap>(
    type: K,
    listener: LifelineListener<PersistEventMap[K]> | null,
    options?: boolean | { capture?: boolean },
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | { capture?: boolean },
  ): void;
  on<K extends keyof PersistEventMap>(
    type: K,
    listener: LifelineListener<PersistEventMap[K]>,
    options?: LifelineListenerOptions,
  ): () => void;
  off<K extends keyof PersistEventMap>(type: K, listener: LifelineListener<PersistEventMap[K]>): void;

  /**
   * Empties the persistent outbox and its store: its publishes reject with
   * `ERR_OUTBOX_CLEARED` and are not resent. Does nothing without `persist`.
   */
  clearOutbox(): void;
}

/** What a store holds (docs/PROTOCOL.md, "Persistent outbox", snapshot format version 1). */
export interface OutboxSnapshot {
  readonly version: number;
  /** The publisher id sent in every `hello`. */
  readonly publisher: string;
  /** The session token of the last `welcome`. */
  readonly session: string | null;
  /** The highest publish id used. */
  readonly last_id: number;
  /** Every room joined, with its position. */
  readonly rooms: readonly {
    readonly room: string;
    readonly since: { readonly epoch: string; readonly offset: number } | null;
  }[];
  /** Unacknowledged publishes in id order; `data` is the published JSON as text. */
  readonly publishes: readonly { readonly id: number; readonly room: string; readonly data: string }[];
}

/**
 * The snapshot the store `name` holds (what the next socket with `persist: name` restores),
 * or `undefined`: for example to show the publishes a previous page left unacknowledged.
 * Rejects where IndexedDB is missing.
 */
export function storedOutbox(name: string): Promise<OutboxSnapshot | undefined>;
