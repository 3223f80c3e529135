// One socket (App) and one room (Room): state, retries, members, messages, and a form that
// publishes and shows the ack.
import { useState } from "react";
import { useLifelineEvent, useLifelineSocket, useRoom } from "ws-lifeline/react";

export default function App({ url, room }) {
  // A new options object on every render is fine: the hook reads it once, when it connects.
  const { socket, state, error } = useLifelineSocket(url, { protocols: "lifeline.v1", maxDelay: 5000 });
  const [retry, setRetry] = useState(null);
  useLifelineEvent(socket, "reconnecting", (e) => setRetry(`attempt ${e.attempt} after ${e.delay} ms`));
  return (
    <main data-state={state}>
      <h1>ws-lifeline + React</h1>
      <p>
        State: <output id="state">{state}</output>
        {error && <output id="error"> ({error.code ?? error.message})</output>}
        {retry && <output id="retry"> (last retry: {retry})</output>}
      </p>
      {/* Keyed by room: another room starts with a fresh form and message list. */}
      {socket && <Room key={room} socket={socket} room={room} />}
    </main>
  );
}

function Room({ socket, room }) {
  const { joined, members, messages, publish } = useRoom(socket, room);
  const [text, setText] = useState("hello");
  const [acked, setAcked] = useState(null);

  async function send(event) {
    event.preventDefault();
    try {
      const ack = await publish({ text });
      setAcked(`#${ack.offset}`);
    } catch (e) {
      setAcked(`failed: ${e.code}`);
    }
  }

  return (
    <section data-joined={joined} data-acked={acked ?? ""}>
      <p>
        {room}: <output id="members">{members.join(", ")}</output>
      </p>
      <form onSubmit={send}>
        <input id="text" value={text} onChange={(e) => setText(e.target.value)} autoComplete="off" />
        <button disabled={!joined}>publish</button> <output id="acked">{acked}</output>
      </form>
      <ol id="messages">
        {messages.map((m) => (
          <li key={`${m.epoch}:${m.offset}`}>
            {m.from}: {typeof m.data?.text === "string" ? m.data.text : JSON.stringify(m.data)}
          </li>
        ))}
      </ol>
    </section>
  );
}
