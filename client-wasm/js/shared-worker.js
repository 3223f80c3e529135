// The SharedWorker of `ws-lifeline/shared`: one per origin, serving each tab that connects
// over its `MessagePort` with the hub (`shared-hub.js`), which owns the sockets.
import { serve } from "./shared-hub.js";

addEventListener("connect", (event) => serve(event.ports[0]));
