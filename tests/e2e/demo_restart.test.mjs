// The demo's own promise across server restarts, with server-dev's and the demo's defaults.
// Two users in #lobby; server-dev is stopped; ann types a message, which shows as queued; the
// server comes back on the same port. 20 runs in a row, alternating which user reconnects
// first (the other's login is held back until then):
// - ann first: her resend is the first message of the room's new epoch, before bob rejoins
//   with a position in the old epoch; bob must still get it (the new epoch's history is
//   replayed from its first message);
// - bob first: he is back in the room when ann's resend arrives live.
// Each time: bob receives the message exactly once, ann's line turns "acked", and in the end
// both pages show the same messages with no duplicate; no console errors.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  demoDist,
  launchChromium,
  startServer,
  withoutNetworkNoise,
} from "./support/harness.mjs";
import {
  expectState,
  loginToLobby,
  retryNow,
  say,
  texts,
  waitForOwnStatus,
  waitForText,
} from "./support/demo_page.mjs";

const RUNS = 20;

let server;
let browser;

before(async () => {
  server = await startServer(["--static-dir", demoDist()]);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const login = (name) => loginToLobby(browser, server, name);

test(`a message typed while the server is down reaches the other user once, ${RUNS} restarts, both reconnect orders`, async () => {
  const ann = await login("ann");
  const bob = await login("bob");
  const sent = [];
  for (let run = 1; run <= RUNS; run++) {
    const annFirst = run % 2 === 1;
    const text = `run ${run}: typed while the server was down (${annFirst ? "ann" : "bob"} back first)`;
    const port = server.port;
    await server.stop();
    await Promise.all([expectState(ann.page, "reconnecting", 40_000), expectState(bob.page, "reconnecting", 40_000)]);
    await say(ann, text);
    await waitForOwnStatus(ann, text, "queued");
    sent.push(text);

    const [first, second] = annFirst ? [ann, bob] : [bob, ann];
    // The second user's ticket requests fail (a flaky login service) until the first is back.
    await second.page.route("**/api/login", (route) => route.abort());
    server = await startServer(["--static-dir", demoDist()], { port });
    await retryNow(first);
    await expectState(first.page, "connected", 40_000);
    if (annFirst) await waitForOwnStatus(ann, text, "acked");
    await second.page.unroute("**/api/login");
    await retryNow(second);
    await expectState(second.page, "connected", 40_000);
    await waitForOwnStatus(ann, text, "acked");
    await waitForText(bob, text);
    const bobTexts = await texts(bob);
    assert.equal(bobTexts.filter((t) => t === text).length, 1, `run ${run}: bob got the message once`);
  }
  // Every message once on both pages; the demo sent nothing twice.
  const bobTexts = await texts(bob);
  const annTexts = await texts(ann);
  for (const text of sent) {
    assert.equal(bobTexts.filter((t) => t === text).length, 1, `bob: ${text}`);
    assert.equal(annTexts.filter((t) => t === text).length, 1, `ann: ${text}`);
  }
  for (const user of [ann, bob]) {
    assert.deepEqual(withoutNetworkNoise(user.errors), [], `console errors on ${user.name}'s page`);
    await user.context.close();
  }
});
