// The peer server-dev is measured against: a Node `ws` broadcast server speaking the
// protocol-v1 subset the load generator uses (hello, ping, join, publish → ack + message to the
// room's members). No history, presence, limits or batching. Usage: node ws-broadcast.mjs [port]
import { WebSocketServer } from "ws";

const rooms = new Map(); // room name -> { offset, members: Set<WebSocket> }
let anon = 0;
const wss = new WebSocketServer({
  host: "127.0.0.1",
  port: Number(process.argv[2] ?? 0),
  maxPayload: 64 * 1024,
  perMessageDeflate: false,
  handleProtocols: (offered) => (offered.has("lifeline.v1") ? "lifeline.v1" : false),
});
const send = (ws, msg) => ws.send(JSON.stringify(msg));

wss.on("connection", (ws) => {
  const name = `anon-${++anon}`;
  const joined = new Set();
  ws.on("message", (raw) => {
    let msg;
    try { msg = JSON.parse(raw); } catch { return send(ws, { type: "error", code: "bad_json", message: "frame is not valid JSON" }); }
    if (msg.type === "hello") return send(ws, { type: "welcome", session: name, resumed: false, name });
    if (msg.type === "ping") return send(ws, { type: "pong", id: msg.id });
    if (msg.type === "join") {
      if (!rooms.has(msg.room)) rooms.set(msg.room, { offset: 0, members: new Set() });
      const room = rooms.get(msg.room);
      room.members.add(ws);
      joined.add(msg.room);
      return send(ws, { type: "joined", room: msg.room, epoch: "peer", offset: room.offset, recovered: true });
    }
    if (msg.type === "publish" && joined.has(msg.room)) {
      const room = rooms.get(msg.room);
      room.offset += 1;
      send(ws, { type: "ack", id: msg.id, offset: room.offset, duplicate: false });
      const frame = JSON.stringify({ type: "message", room: msg.room, offset: room.offset, from: name, data: msg.data, ts: Date.now() });
      for (const member of room.members) member.send(frame);
    }
  });
  ws.on("close", () => { for (const r of joined) rooms.get(r)?.members.delete(ws); });
});
// xtask waits for this line, like server-dev's.
wss.on("listening", () => console.log(`peer listening on http://127.0.0.1:${wss.address().port}`));
