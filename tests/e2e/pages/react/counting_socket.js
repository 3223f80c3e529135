// Stands in for the package's index.js under `ws-lifeline/react` (the test's Vite build swaps
// it in) and counts the LifelineSockets the hooks create, which the browser's count of
// WebSockets cannot tell apart: a socket disposed in the task that created it opens none.
import { LifelineSocket as Counted } from "ws-lifeline";

export * from "ws-lifeline";
export { default } from "ws-lifeline";

window.lifelineSocketsCreated = 0;

export class LifelineSocket extends Counted {
  constructor(...args) {
    super(...args);
    window.lifelineSocketsCreated++;
  }
}
