// Type-level tests of `ws-lifeline/shared` (client-wasm/js/shared.d.ts). Compiled with
// `tsc --noEmit --strict` by `cargo xtask test`; never run.
// Covers: the constructor forms, `share: true` and a named socket with a URL provider; the options that cannot cross to the worker
// (functions) are rejected; the same events, room methods and publish ack as the main entry;
// a shared socket where a `LifelineSocket` of the main entry is expected; the format constants.
import {
  isLifelineError,
  LifelineSocket,
  LOCK_PREFIX,
  PROTOCOL_VERSION,
  type LifelineRoomMessageEvent,
  type PublishAck,
  type SharedOptions,
} from "ws-lifeline/shared";
import type { LifelineSocket as FullSocket } from "ws-lifeline";

export async function shared(): Promise<void> {
  const ws = new LifelineSocket("/ws", { share: true, protocols: "lifeline.v1", maxRetries: 10 });
  const withProtocols = new LifelineSocket(new URL("wss://example.com/ws"), ["lifeline.v1"], { share: true });
  withProtocols.dispose();
  const options: SharedOptions = { share: true, heartbeat: { interval: 1_000, timeout: 500, ping: "ping" } };
  new LifelineSocket("/ws", options).close(1000, "bye");

  ws.addEventListener("close", (e) => console.log(e.code, e.reason, e.wasClean));
  ws.on("roomMessage", (e: LifelineRoomMessageEvent) => console.log(e.room, e.offset, e.data));
  ws.join("lobby");
  const left: boolean = ws.leave("lobby");
  const ack: PublishAck = await ws.publish("lobby", { text: "hi" });
  ws.clearOutbox();
  const state: "connecting" | "open" | "closing" | "reconnecting" | "closed" = ws.state;
  const full: FullSocket = ws;
  const version: 1 = PROTOCOL_VERSION;
  const prefix: string = LOCK_PREFIX;
  console.log(left, ack.offset, state, full.readyState, version, prefix, isLifelineError(ack));

  // A URL provider stays in its tab: the socket is shared by name.
  new LifelineSocket(async () => new URL("/ws?ticket=t", location.href), "lifeline.v1", { share: "chat" }).dispose();
  new LifelineSocket(() => "/ws", { share: "chat", maxRetries: 3 }).dispose();
  // @ts-expect-error a URL provider needs the socket's name
  new LifelineSocket(() => "/ws", { share: true });
  // @ts-expect-error functions cannot cross to the worker
  new LifelineSocket("/ws", { share: true, isTerminalClose: (code: number) => code === 4001 });
  // @ts-expect-error nor can a WebSocket class
  new LifelineSocket("/ws", { share: true, WebSocket });
  // @ts-expect-error this entry makes shared sockets only
  new LifelineSocket("/ws", { share: false });
}
