// Type-level tests of the persist entry's declarations (client-wasm/js/persist.d.ts, checked as
// the package ships them in persist/index.d.ts). Compiled with `tsc --noEmit --strict` by
// `cargo xtask test`; never run.
// Covers: the `persist` option (true, a store name or { store, maxPublishes, maxBytes }); the `outboxDelivered`
// event with its ids through addEventListener and on; the package's events and room methods
// still typed; `clearOutbox`; `storedOutbox`'s snapshot; the outbox's error codes and fields.
import {
  isLifelineError,
  LifelineSocket,
  storedOutbox,
  type LifelineOptions,
  type OutboxSnapshot,
} from "ws-lifeline/persist";

export async function persisted(): Promise<number[]> {
  const ws = new LifelineSocket("ws://127.0.0.1:8080/ws", { protocols: "lifeline.v1", persist: true });
  const named = new LifelineSocket("ws://127.0.0.1:8080/ws", "lifeline.v1", { persist: "chat" });
  new LifelineSocket(() => "ws://127.0.0.1:8080/ws", {
    persist: { store: "bounded", maxPublishes: 100, maxBytes: 64 * 1024 },
  }).dispose();
  named.dispose();
  const delivered: number[] = [];
  ws.addEventListener("outboxDelivered", (e) => delivered.push(...e.ids));
  const stop = ws.on("outboxDelivered", (e) => {
    // @ts-expect-error the ids are read-only
    e.ids.push(1);
  });
  stop();
  ws.on("roomMessage", (m) => void m.room);
  ws.on("close", (e) => void e.code);
  ws.join("lobby");
  try {
    await ws.publish("lobby", { text: "hi" });
  } catch (e) {
    if (isLifelineError(e) && e.code === "ERR_OUTBOX_FULL") {
      const bounds: [number | undefined, number | undefined] = [e.maxPublishes, e.maxBytes];
      void bounds;
    }
    if (isLifelineError(e) && e.code === "ERR_OUTBOX_CLEARED") void e.publishId;
  }
  ws.clearOutbox();
  const snapshot: OutboxSnapshot | undefined = await storedOutbox("chat");
  const waiting: number[] = snapshot?.publishes.map((p) => p.id) ?? [];
  // @ts-expect-error `persist` is a boolean, a store name or its options
  const wrong: LifelineOptions = { persist: 1 };
  void wrong;
  // @ts-expect-error not an event of this socket
  ws.on("outboxDelivery", () => {});
  return [...delivered, ...waiting];
}
