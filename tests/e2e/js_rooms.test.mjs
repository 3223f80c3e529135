// LifelineSocket's protocol v1 part (rooms) from JavaScript, in headless Chromium, against a
// real server-dev (--no-auth; one page per member, so each has its own connection).
// Covers:
// - join, publish, ack (`{id, room, offset, duplicate}`) and receive (`roomMessage`, in
//   offset order, sender included) across two pages; a third page in another room receives
//   none of it; `welcome`, `joined`, `ack`, `presence` and `rooms` (pushed and `listRooms()`)
//   events with their fields and `event.target`;
// - typed errors: join of an invalid room throws ERR_INVALID_ROOM; publish rejects (never
//   throws) with ERR_NOT_JOINED, ERR_INVALID_ARGUMENT, ERR_TOO_MANY_UNACKED (maxUnacked),
//   ERR_PUBLISH_TIMEOUT (ackTimeout, against a server that never acks) and ERR_CLOSED (disposed
//   while waiting); publishes queued before the open are acked once it opens;
// - recovery: page B reconnects (`reconnect()`) while A publishes; B gets every message once
//   and in order, and one `recovery` event with `recovered: true`, room, since, epoch, offset;
// - rooms used from the start with default options (no `protocols`) negotiate lifeline.v1,
//   so the default heartbeat runs; rooms started after the open offer it on the next attempt;
// - on() returns an unsubscribe function and off() removes; after dispose() no room handler
//   fires, and the page holds no live sockets, listeners or timers.
// - rooms started on an open socket whose frames were reported without the wasm (no heartbeat,
//   no rooms yet): the very next frames, a pong and the welcome, go to the rooms layer and none
//   is a `message`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { jsSuite, openJsPage, wsUrl } from "./support/js_page.mjs";

const OPTIONS = { protocols: "lifeline.v1", minDelay: 100, maxDelay: 400, heartbeat: false };

const suite = jsSuite(["--no-auth", "--test-endpoints"]);

const wsAs = (name) => wsUrl(suite.server, `/ws?name=${encodeURIComponent(name)}`);

/**
 * A page with one socket (`window.m`: `{ws, log}` of socket events plus `rooms`, the room
 * event log) that joined `room` (when given) and saw its `joined`. With `reconnectAfter` (ms),
 * every attempt but the first waits that long in an async URL provider: a reconnect that is
 * away long enough to miss messages.
 */
async function member(name, room, options = {}, { reconnectAfter } = {}) {
  const { page, errors } = await openJsPage(suite.browser, suite.site);
  await page.evaluate(
    async ([url, room, options, reconnectAfter]) => {
      let attempts = 0;
      const slow = async () => {
        if (attempts++ > 0) await new Promise((r) => setTimeout(r, reconnectAfter));
        return url;
      };
      window.m = t.recorded(reconnectAfter ? slow : url, options);
      m.rooms = t.roomLog(m.ws).log;
      if (room) {
        m.ws.join(room);
        await t.until(m.rooms, (l) => l.some((e) => e.type === "joined" && e.room === room));
      }
    },
    [wsAs(name), room, { ...OPTIONS, ...options }, reconnectAfter],
  );
  return { page, errors };
}

const of = (log, type) => log.filter((e) => e.type === type);

test("join, publish, ack and receive across two pages; another room receives nothing", async () => {
  const ann = await member("ann", "lobby");
  const bob = await member("bob", "lobby");
  const cat = await member("cat", "other");
  const acks = await ann.page.evaluate(async () => {
    await t.until(m.rooms, (l) => l.some((e) => e.type === "presence" && e.members.length === 2));
    return Promise.all([m.ws.publish("lobby", { n: 1 }), m.ws.publish("lobby", "two"), m.ws.publish("lobby", [3])]);
  });
  assert.deepEqual(
    acks.map((a) => ({ ...a, id: typeof a.id })),
    [1, 2, 3].map((offset) => ({ id: "number", room: "lobby", offset, duplicate: false })),
  );
  assert.equal(new Set(acks.map((a) => a.id)).size, 3, "publish ids are distinct");

  const received = async (p) =>
    p.evaluate(async () => {
      await t.until(m.rooms, (l) => l.filter((e) => e.type === "roomMessage").length === 3);
      return m.rooms;
    });
  for (const [who, page] of [["bob", bob.page], ["ann", ann.page]]) {
    const log = await received(page);
    const messages = of(log, "roomMessage").map(({ room, offset, from, data }) => ({ room, offset, from, data }));
    assert.deepEqual(
      messages,
      [{ n: 1 }, "two", [3]].map((data, i) => ({ room: "lobby", offset: i + 1, from: "ann", data })),
      `${who} receives the room's messages in order`,
    );
    assert.ok(of(log, "roomMessage").every((e) => typeof e.ts === "number" && e.ts > 0));
    assert.ok(log.every((e) => e.sameTarget), "event.target is the socket");
    const [welcome] = of(log, "welcome");
    assert.deepEqual({ name: welcome.name, resumed: welcome.resumed }, { name: who, resumed: false });
    const [joined] = of(log, "joined");
    assert.equal(joined.room, "lobby");
    assert.equal(typeof joined.epoch, "string");
    assert.equal(joined.offset, 0);
  }
  const annLog = await ann.page.evaluate(() => m.rooms);
  assert.deepEqual(of(annLog, "ack").map((e) => e.offset), [1, 2, 3]);
  const presence = of(annLog, "presence").at(-1);
  assert.deepEqual([presence.room, presence.members], ["lobby", ["ann", "bob"]]);

  // Cat, in another room: no message of the lobby, its own presence, and the room list.
  const catView = await cat.page.evaluate(async () => {
    await new Promise((r) => setTimeout(r, 300));
    m.rooms.length = 0;
    const asked = m.ws.listRooms();
    await t.until(m.rooms, (l) => l.some((e) => e.type === "rooms"));
    return { asked, log: m.rooms };
  });
  const catLog = await cat.page.evaluate(() => m.rooms);
  assert.equal(catView.asked, true);
  assert.deepEqual(of(catView.log, "rooms")[0].rooms, [
    { room: "lobby", members: 2 },
    { room: "other", members: 1 },
  ]);
  assert.deepEqual(of(catLog, "roomMessage"), [], "a page in another room receives nothing");

  for (const p of [ann, bob, cat]) {
    await p.page.evaluate(() => m.ws.dispose());
    await p.page.close();
    assert.deepEqual(p.errors, []);
  }
});

test("presence and room lists follow members joining and leaving", async () => {
  const dan = await member("dan", "hall");
  const eve = await member("eve", "hall");
  await dan.page.evaluate(() =>
    t.until(m.rooms, (l) => l.some((e) => e.type === "presence" && e.room === "hall" && e.members.join() === "dan,eve")),
  );
  const left = await eve.page.evaluate(async () => {
    const result = m.ws.leave("hall");
    await t.until(m.rooms, (l) => l.some((e) => e.type === "left"));
    return { result, again: m.ws.leave("hall") };
  });
  assert.deepEqual(left, { result: true, again: false });
  const danLog = await dan.page.evaluate(async () => {
    await t.until(m.rooms, (l) => l.some((e) => e.type === "presence" && e.room === "hall" && e.members.join() === "dan"));
    await t.until(m.rooms, (l) => l.some((e) => e.type === "rooms" && e.rooms.some((r) => r.room === "hall" && r.members === 1)));
    return m.rooms;
  });
  const presence = of(danLog, "presence").filter((e) => e.room === "hall").map((e) => e.members);
  // Presence is a snapshot (docs/PROTOCOL.md): the same state may arrive twice in a row, and
  // the last one is the truth. After the last snapshot with eve, only dan is left.
  assert.deepEqual(presence.at(-1), ["dan"]);
  const withEve = presence.findLastIndex((m) => m.join() === "dan,eve");
  assert.ok(withEve >= 0, JSON.stringify(presence));
  assert.ok(presence.slice(withEve + 1).every((m) => m.join() === "dan"), JSON.stringify(presence));
  for (const p of [dan, eve]) {
    await p.page.evaluate(() => m.ws.dispose());
    await p.page.close();
    assert.deepEqual(p.errors, []);
  }
});

test("room errors are typed LifelineErrors; publish rejects and never throws", async () => {
  const fay = await member("fay", "mine", { maxUnacked: 2, ackTimeout: 5_000 });
  const result = await fay.page.evaluate(async ([echo, unacked]) => {
    const out = {};
    out.invalidRoom = t.thrown(() => m.ws.join(""));
    out.badRoomType = t.thrown(() => m.ws.join(42));
    let threw = false;
    let notJoined;
    try {
      notJoined = m.ws.publish("elsewhere", "hi");
    } catch {
      threw = true;
    }
    out.threw = threw;
    out.notJoined = await t.settled(notJoined);
    out.undefinedData = await t.settled(m.ws.publish("mine", undefined));
    out.cyclic = await t.settled(m.ws.publish("mine", (() => { const o = {}; o.self = o; return o; })()));
    out.failedEvents = m.rooms.filter((e) => e.type === "publishFailed").length;

    // maxUnacked: 2 publishes wait for an open socket; a third is refused; the two are acked.
    const late = new t.LifelineSocket(unacked, { protocols: "lifeline.v1", heartbeat: false, maxUnacked: 2 });
    late.join("mine");
    const waiting = [late.publish("mine", 1), late.publish("mine", 2)];
    out.unacked = late.unackedPublishes;
    out.tooMany = await t.settled(late.publish("mine", 3));
    out.queuedAcks = (await Promise.all(waiting.map(t.settled))).map((s) => s.ok?.duplicate);
    late.dispose();

    // A server that never acks (/echo answers hello with hello): the publish times out.
    const deaf = new t.LifelineSocket(echo, { heartbeat: false, ackTimeout: 300 });
    const failed = [];
    deaf.on("publishFailed", (e) => failed.push(e.error.code));
    deaf.join("void");
    out.timeout = await t.settled(deaf.publish("void", "anyone?"));
    out.timeoutEvent = failed;
    deaf.dispose();

    // Disposed while waiting for the ack: the promise rejects with ERR_CLOSED.
    const gone = new t.LifelineSocket(echo, { heartbeat: false });
    gone.join("void");
    const pending = gone.publish("void", "never acked");
    gone.dispose();
    out.closed = await t.settled(pending);
    out.disposed = await t.settled(gone.publish("void", "after"));
    out.joinDisposed = t.thrown(() => gone.join("void"));
    return out;
  }, [wsUrl(suite.server, "/echo"), wsAs("fay2")]);

  const lifeline = (e, code) => {
    assert.ok(e, `${code} was raised`);
    assert.equal(e.name, "LifelineError", code);
    assert.equal(e.code, code);
    assert.ok(e.isLifeline && e.instanceofError, `${code} is an Error recognised by isLifelineError`);
    assert.ok(e.message.length > 0);
  };
  lifeline(result.invalidRoom, "ERR_INVALID_ROOM");
  lifeline(result.badRoomType, "ERR_INVALID_ARGUMENT");
  assert.equal(result.threw, false, "publish never throws");
  lifeline(result.notJoined.err, "ERR_NOT_JOINED");
  assert.equal(result.notJoined.err.room, "elsewhere");
  lifeline(result.undefinedData.err, "ERR_INVALID_ARGUMENT");
  lifeline(result.cyclic.err, "ERR_ENCODE");
  assert.equal(result.failedEvents, 0, "a publish refused up front is no publishFailed event");
  assert.equal(result.unacked, 2);
  lifeline(result.tooMany.err, "ERR_TOO_MANY_UNACKED");
  assert.deepEqual(result.tooMany.err.limit, { unacked: 2 });
  assert.deepEqual(result.queuedAcks, [false, false], "publishes made before the open are acked");
  lifeline(result.timeout.err, "ERR_PUBLISH_TIMEOUT");
  assert.equal(result.timeout.err.afterMs, 300);
  assert.equal(typeof result.timeout.err.publishId, "number");
  assert.deepEqual(result.timeoutEvent, ["ERR_PUBLISH_TIMEOUT"]);
  lifeline(result.closed.err, "ERR_CLOSED");
  lifeline(result.disposed.err, "ERR_DISPOSED");
  lifeline(result.joinDisposed, "ERR_DISPOSED");
  await fay.page.evaluate(() => m.ws.dispose());
  await fay.page.close();
  assert.deepEqual(fay.errors, []);
});

test("recovery: B reconnects while A publishes, and gets every message once, in order", async () => {
  const COUNT = 40;
  const ann = await member("ann", "stream");
  const bob = await member("bob", "stream", {}, { reconnectAfter: 300 });
  await ann.page.evaluate(async () => {
    await t.until(m.rooms, (l) => l.some((e) => e.type === "presence" && e.members.length === 2));
    await m.ws.publish("stream", 0);
  });
  await bob.page.evaluate(() => t.until(m.rooms, (l) => l.some((e) => e.type === "roomMessage")));
  // A publishes a message every 10 ms; after the fifth, B drops its connection and comes back
  // 300 ms later, having missed a good many.
  const publishing = ann.page.evaluate(async (count) => {
    const acks = [];
    for (let i = 1; i < count; i++) {
      acks.push(m.ws.publish("stream", i));
      await new Promise((r) => setTimeout(r, 10));
    }
    return (await Promise.all(acks)).map((a) => a.offset);
  }, COUNT);
  await bob.page.evaluate(async () => {
    await t.until(m.rooms, (l) => l.filter((e) => e.type === "roomMessage").length >= 5);
    m.ws.reconnect();
  });
  const offsets = await publishing;
  assert.deepEqual(offsets, Array.from({ length: COUNT - 1 }, (_, i) => i + 2));
  const bobSaw = await bob.page.evaluate(async (count) => {
    await t.until(m.rooms, (l) => l.filter((e) => e.type === "roomMessage").length >= count, 15_000);
    await new Promise((r) => setTimeout(r, 300));
    return { rooms: m.rooms, socket: m.log.filter((e) => e.type === "open" || e.type === "close") };
  }, COUNT);
  const messages = of(bobSaw.rooms, "roomMessage");
  assert.deepEqual(messages.map((e) => e.data), Array.from({ length: COUNT }, (_, i) => i), "every message once, in order");
  assert.deepEqual(messages.map((e) => e.offset), Array.from({ length: COUNT }, (_, i) => i + 1));
  assert.deepEqual(bobSaw.socket.map((e) => e.type), ["open", "close", "open"], "B reconnected once");
  const recovery = of(bobSaw.rooms, "recovery");
  assert.equal(recovery.length, 1, JSON.stringify(recovery));
  const [r] = recovery;
  assert.equal(r.room, "stream");
  assert.equal(r.recovered, true);
  const [joined] = of(bobSaw.rooms, "joined");
  assert.equal(r.epoch, joined.epoch);
  assert.equal(r.since.epoch, joined.epoch);
  assert.ok(r.since.offset >= 5 && r.offset - r.since.offset >= 5, `missed messages replayed: ${JSON.stringify(r)}`);
  assert.ok(r.offset <= COUNT);
  const welcomes = of(bobSaw.rooms, "welcome");
  assert.equal(welcomes.length, 2);
  assert.equal(welcomes[1].resumed, true, "the session is resumed");
  for (const p of [ann, bob]) {
    await p.page.evaluate(() => m.ws.dispose());
    await p.page.close();
    assert.deepEqual(p.errors, []);
  }
});

test("on() unsubscribes, off() removes, and after dispose() no room handler fires", async () => {
  const ann = await member("ann", "quiet");
  const bob = await member("bob", "quiet");
  await bob.page.evaluate(() => {
    window.counts = { on: 0, stopped: 0, off: 0, once: 0 };
    m.ws.on("roomMessage", () => counts.on++);
    const stop = m.ws.on("roomMessage", () => counts.stopped++);
    stop();
    stop();
    const handler = () => counts.off++;
    m.ws.on("roomMessage", handler);
    m.ws.off("roomMessage", handler);
    m.ws.on("roomMessage", () => counts.once++, { once: true });
  });
  await ann.page.evaluate(() => Promise.all([m.ws.publish("quiet", "a"), m.ws.publish("quiet", "b")]));
  const before = await bob.page.evaluate(async () => {
    await t.until(m.rooms, (l) => l.filter((e) => e.type === "roomMessage").length === 2);
    const snapshot = { counts: { ...counts }, length: m.rooms.length };
    m.ws.dispose();
    return snapshot;
  });
  assert.deepEqual(before.counts, { on: 2, stopped: 0, off: 0, once: 1 });
  await ann.page.evaluate(async () => {
    await Promise.all([m.ws.publish("quiet", "c"), m.ws.publish("quiet", "d")]);
    await t.until(m.rooms, (l) => l.filter((e) => e.type === "roomMessage").length === 4);
  });
  await new Promise((r) => setTimeout(r, 500));
  const afterDispose = await bob.page.evaluate(() => ({
    counts: { ...counts },
    length: m.rooms.length,
    live: t.liveResources(),
    offAfter: t.thrown(() => m.ws.off("roomMessage", () => {})),
    onAfter: t.thrown(() => m.ws.on("roomMessage", () => {})),
  }));
  assert.deepEqual(afterDispose.counts, before.counts, "no room handler fired after dispose()");
  assert.equal(afterDispose.length, before.length, "no room event recorded after dispose()");
  assert.deepEqual(afterDispose.live, { sockets: 0, listeners: 0, timers: 0, predicates: 0 });
  assert.equal(afterDispose.offAfter, null, "off() after dispose() is a no-op");
  assert.equal(afterDispose.onAfter?.code, "ERR_DISPOSED");
  await ann.page.evaluate(() => m.ws.dispose());
  for (const p of [ann, bob]) {
    await p.page.close();
    assert.deepEqual(p.errors, []);
  }
});

test("rooms offer lifeline.v1 themselves, from the start or from the next attempt", async () => {
  const { page, errors } = await openJsPage(suite.browser, suite.site);
  const result = await page.evaluate(async ([early, late]) => {
    const first = t.recorded(early);
    first.ws.join("offered");
    const second = t.recorded(late);
    await t.until(first.log, (l) => l.some((e) => e.type === "open"));
    await t.until(second.log, (l) => l.some((e) => e.type === "open"));
    const before = second.ws.protocol;
    second.ws.join("offered");
    second.ws.reconnect();
    await t.until(second.log, (l) => l.filter((e) => e.type === "open").length === 2);
    const out = { first: first.ws.protocol, before, after: second.ws.protocol };
    first.ws.dispose();
    second.ws.dispose();
    return out;
  }, [wsAs("early"), wsAs("late")]);
  assert.deepEqual(result, { first: "lifeline.v1", before: "", after: "lifeline.v1" });
  await page.close();
  assert.deepEqual(errors, []);
});

test("with rooms on, protocol v1 frames are room events, never `message`; other text is badFrame, binary a message", async () => {
  const { page, errors } = await openJsPage(suite.browser, suite.site);
  const result = await page.evaluate(async ([v1, echo, options]) => {
    const a = t.recorded(v1, options);
    const aRooms = t.roomLog(a.ws).log;
    const room = `frames-${Math.random()}`;
    a.ws.join(room);
    await a.ws.publish(room, "hi");
    await t.until(aRooms, (l) => l.some((e) => e.type === "roomMessage" && e.data === "hi"));
    await new Promise((r) => setTimeout(r, 200));
    // roomLog's listeners start the rooms layer on a socket to a server without protocol v1.
    const b = t.recorded(echo, options);
    const bRooms = t.roomLog(b.ws).log;
    b.ws.send("plain text");
    b.ws.send(new Uint8Array([1, 2, 3]));
    await t.until(bRooms, (l) => l.some((e) => e.type === "badFrame" && e.raw === "plain text"));
    await t.until(b.log, (l) => l.some((e) => e.type === "message"));
    await new Promise((r) => setTimeout(r, 100));
    const out = {
      aTypes: [...new Set(aRooms.map((e) => e.type))].sort(),
      aMessages: a.log.filter((e) => e.type === "message").map((e) => e.data),
      bMessages: b.log.filter((e) => e.type === "message").map((e) => e.data),
    };
    a.ws.dispose();
    b.ws.dispose();
    return out;
  }, [wsAs("frames"), wsUrl(suite.server, "/echo"), OPTIONS]);
  for (const type of ["ack", "joined", "roomMessage", "welcome"]) {
    assert.ok(result.aTypes.includes(type), `${type} in ${result.aTypes}`);
  }
  assert.deepEqual(result.aMessages, [], "no protocol v1 frame is a message");
  assert.deepEqual(result.bMessages, [[1, 2, 3]], "other text frames are badFrame; binary frames are messages");
  await page.close();
  assert.deepEqual(errors, []);
});

test("rooms started on an open socket read the very next frames: no pong or welcome is a `message`", async () => {
  const { page, errors } = await openJsPage(suite.browser, suite.site);
  const result = await page.evaluate(async ([url, options]) => {
    // No heartbeat and no rooms layer yet: the session lets the shell report frames itself.
    const a = t.recorded(url, options);
    await t.until(a.log, (l) => l.some((e) => e.type === "open"));
    a.ws.send(JSON.stringify({ type: "ping", id: 7 }));
    await t.until(a.log, (l) => l.some((e) => e.type === "message"));
    // In one task: the rooms layer starts (its hello goes out at once), then a ping; the
    // server's welcome and pong are the first frames after the switch.
    const rooms = t.roomLog(a.ws).log;
    a.ws.send(JSON.stringify({ type: "ping", id: 8 }));
    const room = `switch-${Math.random()}`;
    a.ws.join(room);
    await t.until(rooms, (l) => l.some((e) => e.type === "joined" && e.room === room));
    await new Promise((r) => setTimeout(r, 200));
    const out = {
      messages: a.log.filter((e) => e.type === "message").map((e) => e.data),
      roomTypes: rooms.map((e) => e.type),
    };
    a.ws.dispose();
    return out;
  }, [wsAs("switch"), OPTIONS]);
  assert.deepEqual(result.messages, ['{"type":"pong","id":7}'], "only the pong before the switch");
  assert.deepEqual(result.roomTypes.slice(0, 2), ["welcome", "joined"]);
  await page.close();
  assert.deepEqual(errors, []);
});
