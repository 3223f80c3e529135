// A dedicated module worker that imports the package entry named by `?entry=` and opens one
// socket, with the default options, to `?url=`. Every socket event goes to the page as a plain
// object; the page's commands: `{ send }`, `{ dispose }` (then it reports `liveResources()`).
const params = new URL(import.meta.url).searchParams;
const { LifelineSocket, liveResources } = await import(params.get("entry"));

const ws = new LifelineSocket(params.get("url"));
postMessage({ type: "started", window: typeof window, document: typeof document, scope: self.constructor.name });
for (const type of ["open", "message", "close", "reconnecting", "error"]) {
  ws.addEventListener(type, (e) => {
    postMessage({ type, data: e.data, code: e.code, attempt: e.attempt, error: e.error?.code });
  });
}
onmessage = ({ data: command }) => {
  if ("send" in command) postMessage({ type: "sent", result: ws.send(command.send) });
  if (command.dispose) {
    ws.dispose();
    postMessage({ type: "disposed", live: liveResources() });
  }
};
