// The persistent outbox's store (the `ws-lifeline/persist` entry only): the last snapshot of
// each store name, as the JSON text the wasm hands over, in IndexedDB through `idb` (bundled
// into the entry). The database, object store and keys are those of the Rust shell
// (`src/web/outbox.rs`), so either reads what the other wrote. What a snapshot holds and when
// one is taken is the core's (docs/PROTOCOL.md, "Persistent outbox").
import { openDB } from "idb";

const DATABASE = "ws-lifeline-outbox";
export const SNAPSHOTS = "snapshots";

/** Opens the database, creating its object store on first use (version 1, as in Rust). */
export function openOutbox() {
  return openDB(DATABASE, 1, { upgrade: (db) => db.createObjectStore(SNAPSHOTS) });
}

/** The snapshot the store `name` holds (what the next socket with `persist: name` restores),
 * parsed, or `undefined`: for example to show the publishes a previous page left
 * unacknowledged. Rejects where IndexedDB is missing or fails. */
export async function storedOutbox(name) {
  const db = await openOutbox();
  try {
    const text = await db.get(SNAPSHOTS, name);
    return typeof text === "string" ? JSON.parse(text) : undefined;
  } finally {
    db.close();
  }
}
