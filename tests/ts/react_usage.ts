// Type-level tests of `ws-lifeline/react` (client-wasm/js/react.d.ts). Compiled with
// `tsc --noEmit --strict` by `cargo xtask test`; never run (hooks outside a component).
// Covers: useLifelineSocket's url forms (string, URL, function, null) and options, its view's
// fields; useLifelineEvent's typed events; useRoom's typed messages, members, publish's ack
// and options; that wrong usage is rejected.
import type { ConnectionState, LifelineError, LifelineSocket, PublishAck, ReadyState } from "ws-lifeline";
import { useLifelineEvent, useLifelineSocket, useRoom } from "ws-lifeline/react";

export function component(): string {
  const view = useLifelineSocket("wss://example.com/ws", { protocols: "lifeline.v1", maxRetries: 5 });
  useLifelineSocket(new URL("wss://example.com/ws"));
  useLifelineSocket(async () => "wss://example.com/ws?ticket=t");
  useLifelineSocket(null);
  const socket: LifelineSocket | null = view.socket;
  const state: ConnectionState = view.state;
  const ready: ReadyState = view.readyState;
  const last: string | ArrayBuffer | Blob | undefined = view.lastMessage?.data;
  const error: LifelineError | Error | null = view.error;

  useLifelineEvent(socket, "close", (e) => console.log(e.code, e.reason));
  useLifelineEvent(socket, "roomMessage", (e) => console.log(e.room, e.offset, e.data));

  type Chat = { text: string };
  const room = useRoom<Chat>(socket, "lobby", { limit: 50 });
  const texts: string[] = room.messages.map((m) => m.data.text);
  const members: readonly string[] = room.members;
  const joined: boolean = room.joined;
  const ack: Promise<PublishAck> = room.publish({ text: "hi" });
  useRoom(socket, null);

  // @ts-expect-error: the url must be a string, URL or function
  useLifelineSocket(42);
  // @ts-expect-error: an unknown option
  useLifelineSocket("wss://example.com/ws", { retries: 3 });
  // @ts-expect-error: an unknown event type
  useLifelineEvent(socket, "mesage", () => {});
  // @ts-expect-error: the payload must match the room's message type
  room.publish({ txt: "hi" });
  // @ts-expect-error: limit is a number
  useRoom(socket, "lobby", { limit: "50" });

  return `${state} ${ready} ${String(last)} ${String(error)} ${texts} ${members} ${joined} ${String(ack)}`;
}
