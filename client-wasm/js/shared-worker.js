// The SharedWorker of `ws-lifeline/shared`: one per origin, serving each tab that connects
// over its `MessagePort` with the hub (`shared-hub.js`), which owns the sockets.
import { holdWorkerLock, serve } from "./shared-hub.js";

holdWorkerLock();
addEventListener("connect", (event) => serve(event.ports[0]));
