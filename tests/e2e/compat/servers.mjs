// The libraries' own servers on Node's `ws`, for tests/e2e/js_compat.test.mjs: a graphql-ws
// server (`graphql-ws/use/ws`) and a y-websocket server (`y-websocket/bin/utils`), on the
// loopback ports given as arguments (0: any). Prints `ready <graphql port> <yjs port>`; the test
// stops it by its pid and starts it again on the same ports.
import { createRequire } from "node:module";
import { buildSchema } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";

const require = createRequire(import.meta.url);
const { setupWSConnection } = require("y-websocket/bin/utils");

const [graphqlPort = 0, yjsPort = 0] = process.argv.slice(2).map(Number);

const schema = buildSchema(`
  type Query { hello: String }
  type Subscription { ticks: Int }
`);
const roots = {
  query: { hello: () => "world" },
  subscription: {
    // A tick every 50 ms for as long as the client stays subscribed.
    ticks: async function* () {
      for (let n = 1; ; n++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        yield { ticks: n };
      }
    },
  },
};

const listening = (server) => new Promise((resolve) => server.once("listening", resolve));
const graphql = new WebSocketServer({ host: "127.0.0.1", port: graphqlPort, path: "/graphql" });
useServer({ schema, roots }, graphql);
const yjs = new WebSocketServer({ host: "127.0.0.1", port: yjsPort });
yjs.on("connection", (conn, req) => setupWSConnection(conn, req));
await Promise.all([listening(graphql), listening(yjs)]);
console.log(`ready ${graphql.address().port} ${yjs.address().port}`);
