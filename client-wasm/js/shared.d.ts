// TypeScript declarations of `ws-lifeline/shared`: the tab's side of a socket that a
// SharedWorker owns for every tab of the origin. The same API and events as `ws-lifeline`'s
// `LifelineSocket`, whose types it reuses; the options are those that can cross to the worker
// (no functions); a URL provider stays in its page and needs the socket's name. Checked by
// `tests/ts/shared_usage.ts`.

import type { HeartbeatOptions, LifelineOptions, LifelineSocket as FullSocket, UrlProvider } from "./index.js";

export type * from "./index.js";
export { isLifelineError } from "./index.js";

/** Options of a shared socket: the package's, without the ones that are functions (they
 * cannot cross to the worker), plus `share`. */
export interface SharedOptions
  extends Omit<LifelineOptions, "WebSocket" | "logger" | "isTerminalClose" | "heartbeat" | "diagnose"> {
  /** `true` or absent: the socket is shared by URL, subprotocols and options. A name: shared by
   * the name instead (with the same subprotocols and options), as a URL provider needs. This
   * entry makes shared sockets only. */
  share?: true | string;
  /** As in the main entry, with `ping` as a string only and no `isPong`. */
  heartbeat?: false | Omit<HeartbeatOptions, "ping" | "isPong"> & { ping?: string };
  /** As in the main entry, without `isTerminal`: the default statuses stop it. */
  diagnose?: boolean | number | { after?: number };
}

/** The tab's side of a shared socket: `ws-lifeline`'s `LifelineSocket`, shared. */
export interface LifelineSocket extends FullSocket {
  /** Empties the shared socket's outbox (and its store), for every tab: its publishes reject
   * with `ERR_OUTBOX_CLEARED` in the tabs that made them and are not resent. */
  clearOutbox(): void;
}

/** Options of a shared socket whose URL comes from a provider: named. */
export interface NamedSharedOptions extends SharedOptions {
  share: string;
}

/** `new LifelineSocket(url, { share: true, ...options })`, or with a URL provider (called in
 * the tab the hub asks, before each connection attempt) `{ share: "name", ...options }`. */
export declare const LifelineSocket: {
  new (url: string | URL, protocols?: string | string[] | null, options?: SharedOptions): LifelineSocket;
  new (url: string | URL, options?: SharedOptions): LifelineSocket;
  new (url: Exclude<UrlProvider, string | URL>, protocols: string | string[] | null | undefined, options: NamedSharedOptions): LifelineSocket;
  new (url: Exclude<UrlProvider, string | URL>, options: NamedSharedOptions): LifelineSocket;
  readonly prototype: LifelineSocket;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;
};

/** The version of the message format between a tab and the worker (README, "Shared mode"). */
export declare const PROTOCOL_VERSION: 1;

/** The prefix of the Web Lock each tab holds while attached: `${LOCK_PREFIX}${clientId}`. */
export declare const LOCK_PREFIX: string;
