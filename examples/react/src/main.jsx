// `?ws=ws://host:port/ws?name=you` picks the server (default: server-dev on port 8080 with
// `--no-auth`, see the README), `&room=` the room.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import App from "./App.jsx";

const params = new URLSearchParams(location.search);
const url = params.get("ws") ?? `ws://127.0.0.1:8080/ws?name=guest-${Math.floor(Math.random() * 1000)}`;

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <App url={url} room={params.get("room") ?? "lobby"} />
  </StrictMode>,
);
