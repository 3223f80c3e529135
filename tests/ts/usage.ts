// Type-level tests of the npm package's declarations (client-wasm/js/index.d.ts).
// Compiled with `tsc --noEmit --strict` by `cargo xtask test`; never run.
// Covers: init forms; options (camelCase, milliseconds, async URL provider, terminal-close
// predicate); the event map (`addEventListener("close", e => e.code)`) and on… properties;
// send's argument and result types; typed errors; disposal (`using`, dispose, free); protocol
// v1 message types, including that a misspelt message type or a missing field is rejected;
// the rooms API (join, leave, publish's ack and error codes, on/off with typed room events,
// ackTimeout/maxUnacked), including that wrong usage is rejected.
import init, {
  initSync,
  isLifelineError,
  LifelineSocket,
  type ClientMsg,
  type ConnectionState,
  type ErrorCode,
  type LifelineCloseEvent,
  type LifelineError,
  type LifelineOptions,
  type LifelineRoomMessageEvent,
  type PublishAck,
  type RoomInfo,
  type SendResult,
  type Since,
  type ServerMsg,
} from "ws-lifeline";

export async function start(): Promise<void> {
  const out = await init();
  const bytes: number = out.memory.buffer.byteLength;
  await init({ module_or_path: new URL("./ws_lifeline_bg.wasm", import.meta.url) });
  initSync({ module: new Uint8Array(bytes) });
}

const options: LifelineOptions = {
  protocols: ["lifeline.v1"],
  minDelay: 500,
  maxDelay: 10_000,
  backoffFactor: 1.5,
  maxRetries: 20,
  connectTimeout: 5_000,
  minUptime: 2_000,
  heartbeat: { interval: 15_000, timeout: 5_000 },
  maxQueuedMessages: 100,
  maxQueuedBytes: 65_536,
  highWaterMark: 1 << 20,
  isTerminalClose: (code) => code === 4001 || code === 1008,
  ackTimeout: 10_000,
  maxUnacked: 256,
};
const noHeartbeat: LifelineOptions = { heartbeat: false, protocols: "lifeline.v1" };
const logged: LifelineOptions = {
  logger: (level, message, fields) => console[level](message, fields),
  debug: true,
};
// @ts-expect-error a logger's level is one of four
const badLevel: LifelineOptions = { logger: (level: "trace") => void level };
void [logged, badLevel];

// @ts-expect-error options are camelCase
const snake: LifelineOptions = { max_retries: 3 };
// @ts-expect-error durations are numbers of milliseconds
const text: LifelineOptions = { connectTimeout: "5s" };
// @ts-expect-error the ack timeout too
const ackText: LifelineOptions = { ackTimeout: "30s" };

export function events(): LifelineSocket {
  const ws = new LifelineSocket("ws://127.0.0.1:8080/ws", options);
  const fromProvider = new LifelineSocket(async () => {
    const token = await Promise.resolve("t");
    return new URL(`ws://127.0.0.1:8080/ws?token=${token}`);
  }, noHeartbeat);
  fromProvider.dispose();

  ws.addEventListener("close", (e) => {
    const code: number = e.code;
    const reason: string = e.reason;
    const clean: boolean = e.wasClean;
    void [code, reason, clean];
  });
  ws.addEventListener("message", (e) => {
    if (typeof e.data === "string") {
      const msg = JSON.parse(e.data) as ServerMsg;
      if (msg.type === "message") {
        const offset: number = msg.offset;
        void offset;
      }
    } else if (e.data instanceof Blob) {
      void e.data.size;
    } else {
      const buffer: ArrayBuffer = e.data;
      void buffer;
    }
  });
  ws.addEventListener("reconnecting", (e) => void (e.attempt + e.delay));
  ws.addEventListener("statechange", (e) => {
    const state: ConnectionState = e.state;
    void state;
  });
  ws.addEventListener("error", (e) => {
    const code: LifelineError["code"] = e.error.code;
    void code;
  });
  ws.addEventListener("giveup", (e) => void e.target.reconnect());
  ws.addEventListener("open", { handleEvent: (e) => void e.protocol });
  const controller = new AbortController();
  ws.addEventListener("open", () => {}, { once: true, signal: controller.signal });

  const onClose = (e: LifelineCloseEvent) => void e.code;
  ws.addEventListener("close", onClose);
  ws.removeEventListener("close", onClose);

  // @ts-expect-error a close event has no `data`
  ws.addEventListener("close", (e) => e.data);
  // Any other type, as on EventTarget: a plain Event.
  ws.addEventListener("custom", (e: Event) => void e.type);
  ws.dispatchEvent(new Event("custom"));

  // Drop-in for WebSocket: (url, protocols, options), the constants on instances, binaryType.
  const dropIn: LifelineSocket = new LifelineSocket("/ws", ["a", "b"], { maxRetries: 3 });
  const open: 1 = dropIn.OPEN;
  dropIn.binaryType = "arraybuffer";
  // @ts-expect-error binaryType is "blob" or "arraybuffer"
  dropIn.binaryType = "text";
  const target: EventTarget = dropIn;
  void [open, target, dropIn.extensions, new LifelineSocket("/ws", null)];

  ws.onclose = (e) => void e.wasClean;
  ws.onmessage = null;
  ws.onopen = (e) => void e.protocol;
  ws.onreconnecting = (e) => void e.delay;
  ws.onstatechange = (e) => void e.state;
  ws.ongiveup = () => {};
  ws.onerror = (e) => void e.message;
  return ws;
}

export function sending(ws: LifelineSocket): SendResult[] {
  const results = [
    ws.send("text"),
    ws.send(new ArrayBuffer(8)),
    ws.send(new Uint8Array([1, 2, 3])),
  ];
  // @ts-expect-error objects must be serialised first
  ws.send({ type: "publish" });
  try {
    ws.send("x");
  } catch (e) {
    if (isLifelineError(e) && e.code === "ERR_QUEUE_FULL") {
      const limit = e.limit;
      void limit;
    }
  }
  const ready: 0 | 1 | 2 | 3 = ws.readyState;
  const open: boolean = ready === LifelineSocket.OPEN;
  const amount: number = ws.bufferedAmount + ws.queuedMessages;
  const url: string = ws.url;
  const protocol: string = ws.protocol;
  void [open, amount, url, protocol];
  ws.close();
  ws.close(4001, "bye");
  ws.reconnect();
  return results;
}

export function disposal(): boolean {
  {
    using ws = new LifelineSocket("ws://127.0.0.1:8080/ws");
    ws.send("scoped");
  }
  const ws = new LifelineSocket("ws://127.0.0.1:8080/ws");
  ws.dispose();
  ws.free();
  return ws.disposed;
}

export function protocolTypes(): ClientMsg[] {
  const join: ClientMsg = { type: "join", room: "lobby", since: { epoch: "e1", offset: 4 } };
  const publish: ClientMsg = { type: "publish", room: "lobby", id: 1, data: { text: "hi" } };
  // @ts-expect-error publish needs an id
  const noId: ClientMsg = { type: "publish", room: "lobby", data: 1 };
  // @ts-expect-error unknown message type
  const unknown: ClientMsg = { type: "subscribe", room: "lobby" };
  const err: ServerMsg = { type: "error", code: "not_joined", message: "join first", ref: 5 };
  // @ts-expect-error error codes are a closed set
  const badCode: ServerMsg = { type: "error", code: "nope", message: "" };
  void [snake, text, ackText, noId, unknown, err, badCode];
  return [join, publish];
}

type Chat = { text: string; mentions: string[] };

export async function rooms(ws: LifelineSocket): Promise<number> {
  ws.join("lobby");
  const wasJoined: boolean = ws.leave("lobby");
  const asked: boolean = ws.listRooms();
  const waiting: number = ws.unackedPublishes;
  const chat: Chat = { text: "hi", mentions: [] };
  const ack: PublishAck = await ws.publish("lobby", chat);
  const { id, room, offset, duplicate } = ack;
  await ws.publish("lobby", [1, "two", null, { three: true }]);
  await ws.publish("lobby", new Date());
  try {
    await ws.publish("lobby", 1);
  } catch (e) {
    if (isLifelineError(e)) {
      switch (e.code) {
        case "ERR_NOT_JOINED":
        case "ERR_LEFT_ROOM": {
          const r: string | undefined = e.room;
          void r;
          break;
        }
        case "ERR_PUBLISH_TIMEOUT":
          void [e.publishId, e.afterMs];
          break;
        case "ERR_TOO_MANY_UNACKED":
          void e.limit;
          break;
        case "ERR_PUBLISH_REFUSED":
          void e.serverCode;
          break;
        case "ERR_TOO_LARGE": {
          const size: number | undefined = e.size;
          const max: number | undefined = e.maxMessageBytes;
          void [size, max];
          break;
        }
      }
    }
  }
  // @ts-expect-error room names are strings
  ws.join(7);
  // @ts-expect-error data must be JSON: not a function
  void ws.publish("lobby", () => 1);
  // @ts-expect-error data must be JSON: not undefined
  void ws.publish("lobby", undefined);
  // @ts-expect-error publish needs data
  void ws.publish("lobby");
  // @ts-expect-error the ack has no `data`
  void ack.data;
  void [wasJoined, asked, waiting, id, room, duplicate];
  return offset;
}

export function roomEvents(ws: LifelineSocket): Array<() => void> {
  const onMessage = (m: LifelineRoomMessageEvent) => {
    const where: string = m.room;
    const who: string = m.from;
    const at: number = m.offset + m.ts;
    const epoch: string = m.epoch;
    const key: string | undefined = m.publisher === undefined ? undefined : `${m.publisher}:${m.id}`;
    void [epoch, key];
    if (typeof m.data === "object" && m.data !== null && !Array.isArray(m.data)) {
      const text = m.data["text"];
      void text;
    }
    void [where, who, at];
  };
  const stops = [
    ws.on("roomMessage", onMessage),
    ws.on("welcome", (e) => void [e.name, e.resumed satisfies boolean]),
    ws.on("joined", (e) => void [e.room, e.epoch, e.offset satisfies number]),
    ws.on("recovery", (e) => {
      const recovered: boolean = e.recovered;
      const since: Since = e.since;
      void [recovered, since.epoch, since.offset, e.room, e.epoch, e.offset];
    }),
    ws.on("left", (e) => void e.room),
    ws.on("ack", (e) => void [e.id, e.room, e.offset, e.duplicate]),
    ws.on("publishFailed", (e) => void [e.id, e.room, e.error.code]),
    ws.on("presence", (e) => {
      const members: readonly string[] = e.members;
      void [e.room, members];
    }),
    ws.on("rooms", (e) => {
      const list: readonly RoomInfo[] = e.rooms;
      void list.map((r) => r.room + r.members);
    }),
    ws.on("serverError", (e) => void [e.code satisfies ErrorCode, e.message]),
    ws.on("badFrame", (e) => void [e.raw, e.message]),
    ws.on("close", (e) => void e.code),
    ws.on("roomMessage", { handleEvent: (e) => void e.data }, { once: true }),
  ];
  ws.addEventListener("presence", (e) => void e.members);
  ws.off("roomMessage", onMessage);
  // @ts-expect-error a room message has no `code`
  ws.on("roomMessage", (e) => e.code);
  // @ts-expect-error presence members are names, not numbers
  ws.on("presence", (e) => e.members.map((n: number) => n));
  // @ts-expect-error unknown room event
  ws.on("room:message", () => {});
  // @ts-expect-error recovery events have no members
  ws.on("recovery", (e) => e.members);
  // @ts-expect-error on returns an unsubscribe function, not a boolean
  const flag: boolean = ws.on("left", () => {});
  void flag;
  return stops;
}
