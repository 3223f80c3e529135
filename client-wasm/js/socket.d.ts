// TypeScript declarations of `ws-lifeline/socket`: the raw resilient socket, the same
// `LifelineSocket` built without protocol v1 (no room methods, no room events). Shipped as
// `socket/index.d.ts`, beside the package's own `index.d.ts`, whose types it narrows.

import type {
  LifelineSocket as FullSocket,
  LifelineOptions,
  LifelineSocketEventMap,
  LifelineListener,
  LifelineListenerOptions,
  UrlProvider,
} from "../index.js";

export { default, initSync, isLifelineError, liveResources } from "../index.js";
/** The options of the socket entry: the package's, less `logger`, `debug` and `diagnose`,
 * which only the full entry has. */
export type SocketOptions = Omit<LifelineOptions, "logger" | "debug" | "diagnose">;

export type {
  InitInput,
  InitOutput,
  UrlProvider,
  HeartbeatOptions,
  LifelineOptions,
  ConnectionState,
  ReadyState,
  LifelineErrorCode,
  LifelineError,
  LifelineEventBase,
  RoundTripTime,
  LifelineListener,
  LifelineListenerOptions,
  SendResult,
} from "../index.js";
// ---- generated from client-wasm/src/js/boundary.rs by `cargo xtask package` ----
export type {
  LifelineOpenEvent,
  LifelineMessageEvent,
  LifelineErrorEvent,
  LifelineCloseEvent,
  LifelineReconnectingEvent,
  LifelineStateChangeEvent,
  LifelineGiveUpEvent,
  LifelineNetworkEvent,
  LifelinePongEvent,
  LifelineSocketEventMap,
} from "../index.js";
// ---- end of the generated part ----

type Room = "join" | "leave" | "publish" | "listRooms";
type Listening = "addEventListener" | "removeEventListener" | "on" | "off";

/** `ws-lifeline`'s `LifelineSocket` without protocol v1. */
export interface LifelineSocket extends Omit<FullSocket, Room | Listening> {
  addEventListener<K extends keyof LifelineSocketEventMap>(
    type: K,
    listener: LifelineListener<LifelineSocketEventMap[K]> | null,
    options?: boolean | LifelineListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof LifelineSocketEventMap>(
    type: K,
    listener: LifelineListener<LifelineSocketEventMap[K]> | null,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  /** `addEventListener` that returns an unsubscribe function. */
  on<K extends keyof LifelineSocketEventMap>(
    type: K,
    listener: LifelineListener<LifelineSocketEventMap[K]>,
    options?: LifelineListenerOptions,
  ): () => void;
  /** `removeEventListener`; does nothing once disposed. */
  off<K extends keyof LifelineSocketEventMap>(type: K, listener: LifelineListener<LifelineSocketEventMap[K]>): void;
}

/** `new LifelineSocket(url, protocols?, options?)`, as `new WebSocket(url, protocols)`. */
export declare const LifelineSocket: {
  new (url: UrlProvider, protocols?: string | string[] | null, options?: SocketOptions): LifelineSocket;
  new (url: UrlProvider, options?: SocketOptions): LifelineSocket;
  readonly prototype: LifelineSocket;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;
};
