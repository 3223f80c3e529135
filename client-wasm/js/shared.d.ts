// TypeScript declarations of `ws-lifeline/shared`: the tab's side of a socket that a
// SharedWorker owns for every tab of the origin. The same API and events as `ws-lifeline`'s
// `LifelineSocket`, whose types it reuses; the options are those that can cross to the worker
// (no functions) and the URL is a string or a `URL`. Checked by `tests/ts/shared_usage.ts`.

import type { HeartbeatOptions, LifelineOptions, LifelineSocket as FullSocket } from "./index.js";

export type * from "./index.js";
export { isLifelineError } from "./index.js";

/** Options of a shared socket: the package's, without the ones that are functions (they
 * cannot cross to the worker), plus `share`. */
export interface SharedOptions
  extends Omit<LifelineOptions, "WebSocket" | "logger" | "isTerminalClose" | "heartbeat" | "diagnose"> {
  /** `true` or absent: this entry makes shared sockets only. */
  share?: true;
  /** As in the main entry, with `ping` as a string only and no `isPong`. */
  heartbeat?: false | Omit<HeartbeatOptions, "ping" | "isPong"> & { ping?: string };
  /** As in the main entry, without `isTerminal`: the default statuses stop it. */
  diagnose?: boolean | number | { after?: number };
}

/** The tab's side of a shared socket: `ws-lifeline`'s `LifelineSocket`, shared. */
export interface LifelineSocket extends FullSocket {}

/** `new LifelineSocket(url, { share: true, ...options })`. */
export declare const LifelineSocket: {
  new (url: string | URL, protocols?: string | string[] | null, options?: SharedOptions): LifelineSocket;
  new (url: string | URL, options?: SharedOptions): LifelineSocket;
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
