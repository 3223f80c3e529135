// The examples/react app under StrictMode, in a harness the test drives through `window.harness`:
// re-render it, change its url or room, unmount and mount it; `window.probe` counts the mount effects
// of the app's subtree (two per mount under StrictMode).
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { liveResources } from "ws-lifeline";
import App from "../../../../examples/react/src/App.jsx";

const params = new URLSearchParams(location.search);
window.probe = { effectRuns: 0, liveResources };

function MountProbe() {
  useEffect(() => {
    probe.effectRuns++;
  }, []);
  return null;
}

function Harness() {
  const [url, setUrl] = useState(params.get("ws"));
  const [room, setRoom] = useState(params.get("room"));
  const [mounted, setMounted] = useState(true);
  const [, setRenders] = useState(0);
  useEffect(() => {
    window.harness = { rerender: () => setRenders((n) => n + 1), setUrl, setRoom, setMounted };
  }, []);
  if (!mounted) return <p id="unmounted">unmounted</p>;
  return (
    <>
      <MountProbe />
      <App url={url} room={room} />
    </>
  );
}

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <Harness />
  </StrictMode>,
);
