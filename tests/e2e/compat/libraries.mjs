// The libraries the compatibility tests hand LifelineSocket to, bundled for the page by
// tests/e2e/js_compat.test.mjs (rolldown) and loaded from /compat/libraries.js.
export { createClient } from "graphql-ws/client";
export { WebsocketProvider } from "y-websocket";
export * as Y from "yjs";
export { default as ReconnectingWebSocket } from "reconnecting-websocket";
export { WebSocket as PartySocket } from "partysocket";
