// React hooks for ws-lifeline (`ws-lifeline/react`). Written against the socket's public API
// only (listeners, `state`, `readyState`, `join`/`leave`/`publish`, `dispose`).
//
// In development, StrictMode mounts, unmounts and mounts again within one commit. Releasing a
// socket (or leaving a room) is therefore deferred by one task: a setup that runs again in the
// meantime takes the same socket back instead of opening a second one, and a real unmount
// releases it a task later.
import { useCallback, useEffect, useRef, useState } from "react";
import init, { LifelineSocket } from "./index.js";

/** `init()`'s promise, shared by every hook of the page; reset on failure to allow a retry. */
let wasm;
let wasmReady = false;

function loadWasm() {
  wasm ??= init().then(
    () => {
      wasmReady = true;
    },
    (error) => {
      wasm = undefined;
      throw error;
    },
  );
  return wasm;
}

/** Runs `release` a task later unless the count taken now is given back first. */
function releaseLater(entry, release) {
  setTimeout(() => {
    if (--entry.users === 0) release();
  });
}

const URL_FUNCTION = {};

/** What `useLifelineSocket` renders with no socket. */
function idle(url) {
  const connecting = url != null;
  return {
    socket: null,
    state: connecting ? "connecting" : "closed",
    readyState: connecting ? 0 : 3,
    lastMessage: null,
    error: null,
  };
}

/**
 * A socket owned by the calling component: created on mount (after the wasm is loaded), kept
 * across re-renders and StrictMode's double mount, disposed on unmount. Only a change of `url`
 * (by its text; `null` for none) replaces the socket; `options` are read when it is created.
 */
export function useLifelineSocket(url, options) {
  const key = url == null ? null : typeof url === "function" ? URL_FUNCTION : String(url);
  const latest = useRef({ url, options });
  const held = useRef(null);
  const [view, setView] = useState(() => idle(url));

  // Before the socket's effect, so that a socket created in this commit sees these options.
  useEffect(() => {
    latest.current = { url, options };
  });

  useEffect(() => {
    if (key === null) {
      setView(idle(null));
      return undefined;
    }
    let entry = held.current;
    if (entry?.key === key && entry.users > 0) {
      entry.users++;
    } else {
      entry = held.current = { key, socket: null, users: 1 };
      const create = () => {
        if (entry.users === 0 || held.current !== entry) return;
        const current = latest.current.url;
        // A URL function is called before every attempt: the latest one given is the one used.
        const target =
          typeof current === "function"
            ? () => {
                const provider = latest.current.url;
                return typeof provider === "function" ? provider() : provider;
              }
            : current;
        let socket;
        try {
          socket = new LifelineSocket(target, latest.current.options);
        } catch (error) {
          setView({ ...idle(null), error });
          return;
        }
        entry.socket = socket;
        // Events of a socket being replaced (url changed) must not reach the view.
        const update = (change) => held.current === entry && setView((v) => ({ ...v, ...change() }));
        const status = () => ({ socket, state: socket.state, readyState: socket.readyState });
        socket.addEventListener("statechange", () => update(status));
        socket.addEventListener("open", () => update(() => ({ error: null })));
        socket.addEventListener("message", (e) => update(() => ({ lastMessage: e })));
        socket.addEventListener("error", (e) => update(() => ({ error: e.error })));
        setView({ ...idle(url), ...status() });
      };
      if (wasmReady) create();
      else loadWasm().then(create, (error) => held.current === entry && setView({ ...idle(null), error }));
    }
    return () =>
      releaseLater(entry, () => {
        entry.socket?.dispose();
        if (held.current === entry) held.current = null;
      });
  }, [key]);

  return view;
}

/**
 * Calls `listener` for each `type` event of `socket` (none while `socket` is null). The
 * listener may change on every render without re-subscribing.
 */
export function useLifelineEvent(socket, type, listener) {
  const latest = useRef(listener);
  useEffect(() => {
    latest.current = listener;
  });
  useEffect(() => {
    if (!socket) return undefined;
    const handler = (event) => latest.current(event);
    socket.addEventListener(type, handler);
    return () => socket.removeEventListener(type, handler);
  }, [socket, type]);
}

/**
 * socket → room → `{ users, seen }`: how many mounted `useRoom`s use the room, so that the last
 * one leaves, and what they saw of it, for one that mounts after the `joined` event.
 */
const rooms = new WeakMap();

function joinRoom(socket, room) {
  let joined = rooms.get(socket);
  if (!joined) rooms.set(socket, (joined = new Map()));
  let entry = joined.get(room);
  if (!entry) {
    socket.join(room);
    joined.set(room, (entry = { users: 0, seen: { joined: false, members: [] } }));
  }
  entry.users++;
  const leave = () =>
    releaseLater(entry, () => {
      joined.delete(room);
      if (!socket.disposed) socket.leave(room);
    });
  return { seen: entry.seen, leave };
}

const NO_ROOM = { joined: false, members: [], messages: [], error: null };

/**
 * Joins `room` on `socket` while mounted (rejoined by the socket after every reconnect) and
 * returns its last `limit` messages, its members, and `publish(data)`.
 */
export function useRoom(socket, room, { limit = 100 } = {}) {
  if (typeof limit !== "number" || !(limit >= 1)) {
    throw new RangeError(`useRoom: limit must be a number of messages, at least 1; got ${String(limit)}`);
  }
  const [view, setView] = useState(NO_ROOM);

  useEffect(() => {
    if (!socket || room == null) {
      setView(NO_ROOM);
      return undefined;
    }
    let membership;
    try {
      membership = joinRoom(socket, room);
    } catch (error) {
      setView({ ...NO_ROOM, error });
      return undefined;
    }
    const { seen, leave } = membership;
    setView({ ...NO_ROOM, ...seen });
    const mine = (change) => (e) => {
      if (e.room !== room) return;
      if (e.type !== "roomMessage") Object.assign(seen, change(null, e));
      setView((v) => ({ ...v, ...change(v, e) }));
    };
    const listeners = {
      joined: mine(() => ({ joined: true })),
      recovery: mine(() => ({ joined: true })),
      left: mine(() => ({ joined: false, members: [] })),
      presence: mine((_, e) => ({ members: e.members })),
      roomMessage: mine((v, e) => ({ messages: [...v.messages, e].slice(-limit) })),
    };
    for (const [type, listener] of Object.entries(listeners)) socket.addEventListener(type, listener);
    return () => {
      for (const [type, listener] of Object.entries(listeners)) socket.removeEventListener(type, listener);
      leave();
    };
  }, [socket, room, limit]);

  const publish = useCallback(
    (data) =>
      socket
        ? socket.publish(room, data)
        : Promise.reject(
            Object.assign(new Error(`room "${room}" is not joined: the socket does not exist yet`), {
              name: "LifelineError",
              code: "ERR_NOT_JOINED",
              room,
            }),
          ),
    [socket, room],
  );

  return { ...view, publish };
}
