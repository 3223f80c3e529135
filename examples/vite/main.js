// Connects to an echo endpoint (server-dev with --test-endpoints by default; `?ws=` overrides),
// shows the connection state and every message, and keeps sending through reconnects.
import { LifelineSocket } from "ws-lifeline";

const url = new URLSearchParams(location.search).get("ws") ?? "ws://127.0.0.1:8080/echo";
const ws = new LifelineSocket(url, { minDelay: 250, maxDelay: 5_000 });

const state = document.querySelector("#state");
const log = document.querySelector("#log");
const line = (text) => log.append(Object.assign(document.createElement("li"), { textContent: text }));

ws.addEventListener("statechange", (e) => {
  state.value = e.state;
  document.body.dataset.state = e.state;
});
ws.addEventListener("message", (e) => {
  line(`← ${e.data}`);
  document.body.dataset.lastMessage = String(e.data);
});
ws.addEventListener("reconnecting", (e) => line(`reconnecting in ${e.delay} ms (attempt ${e.attempt})`));
ws.addEventListener("close", (e) => line(`closed ${e.code} ${e.reason}`));

document.querySelector("#form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = document.querySelector("#text").value;
  line(`→ ${text} (${ws.send(text)})`);
});

// Release the socket with the page (Vite's HMR too).
import.meta.hot?.dispose(() => ws.dispose());
document.body.dataset.ready = "1";
