//! Endpoints for the benchmark harness (`cargo xtask bench`, see BENCHMARKS.md), on only with
//! `--bench-endpoints`.
//!
//! Like the test endpoints they check neither origin nor ticket, and accept whatever
//! subprotocol the client offers first.
//!
//! - `/bench/send?n=N&bytes=B&batch=K`: sends `N` protocol-v1 `message` events, each with a
//!   `data` of about `B` bytes (default 100), as fast as the socket takes them. `K` (default 1)
//!   packs up to `K` events per frame as a protocol-v1 batch (a JSON array). Then it waits,
//!   bounded, for the client to close.
//! - `/bench/recv?n=N`: counts the protocol-v1 messages it receives (a batch frame counts each
//!   element). When the count reaches `N` it sends one `message` event with
//!   `data: {"received": N, "frames": F, "elapsed_us": T}`, `T` being the time from the first
//!   frame to the `N`th, and keeps counting until the client closes.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::any;
use futures::SinkExt;
use protocol::ServerMsg;
use serde::Deserialize;

use crate::AppState;
use crate::test_endpoints::upgrade;

/// The most events one `/bench/send` connection sends.
const MAX_EVENTS: u64 = 10_000_000;
/// The largest payload asked for.
const MAX_BYTES: usize = 64 * 1024;
/// How long an endpoint waits for the client to close once its work is done.
const LINGER: Duration = Duration::from_secs(120);

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/bench/send", any(send))
        .route("/bench/recv", any(recv))
}

#[derive(Debug, Deserialize)]
struct SendQuery {
    n: Option<u64>,
    bytes: Option<usize>,
    batch: Option<usize>,
}

fn event(offset: u64, pad: &str) -> String {
    let msg = ServerMsg::Message {
        room: "bench".into(),
        offset,
        from: "bench".into(),
        data: serde_json::json!({ "seq": offset, "pad": pad }),
        ts: crate::unix_ms(),
        publisher: None,
        id: None,
    };
    serde_json::to_string(&msg).unwrap_or_default()
}

async fn send(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Query(q): Query<SendQuery>,
) -> Response {
    let n = q.n.unwrap_or(1000).min(MAX_EVENTS);
    // `{"seq":N,"pad":""}` is about 20 bytes; the pad makes up the rest.
    let pad = "x".repeat(q.bytes.unwrap_or(100).min(MAX_BYTES).saturating_sub(20));
    let batch = q.batch.unwrap_or(1).clamp(1, 10_000);
    let guard = state.track();
    let mut shutdown = state.shutdown_signal();
    upgrade(ws, &state).on_upgrade(move |mut socket| async move {
        let _guard = guard;
        let work = async {
            let mut offset = 0;
            while offset < n {
                let take = (n - offset).min(batch as u64);
                let frame = if take == 1 {
                    offset += 1;
                    event(offset, &pad)
                } else {
                    let mut out = String::from("[");
                    for i in 0..take {
                        if i > 0 {
                            out.push(',');
                        }
                        offset += 1;
                        out.push_str(&event(offset, &pad));
                    }
                    out.push(']');
                    out
                };
                // Feed without a flush per frame, so one write carries many small frames;
                // the write buffer fills and the socket sets the pace.
                if socket
                    .feed(Message::Text(Utf8Bytes::from(frame)))
                    .await
                    .is_err()
                {
                    return;
                }
                if offset % 64 == 0 && socket.flush().await.is_err() {
                    return;
                }
            }
            if socket.flush().await.is_err() {
                return;
            }
            linger(&mut socket, |_| {}).await;
        };
        tokio::select! {
            _ = work => {}
            _ = crate::until_true(&mut shutdown) => {}
        }
    })
}

/// Reads until the client closes (bounded by [`LINGER`]), handing each text frame to `on_text`.
async fn linger(socket: &mut WebSocket, mut on_text: impl FnMut(&str)) {
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(msg)) = socket.recv().await {
            match msg {
                Message::Text(text) => on_text(text.as_str()),
                Message::Close(_) => break,
                _ => {}
            }
        }
    })
    .await;
}

#[derive(Debug, Deserialize)]
struct RecvQuery {
    n: Option<u64>,
}

/// Protocol-v1 messages in one text frame: each element of a batch, else one.
fn messages_in(text: &str) -> u64 {
    if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<serde_json::Value>>(text)
            .map(|v| v.len() as u64)
            .unwrap_or(0)
    } else {
        1
    }
}

async fn recv(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Query(q): Query<RecvQuery>,
) -> Response {
    let n = q.n.unwrap_or(1000).clamp(1, MAX_EVENTS);
    let guard = state.track();
    let mut shutdown = state.shutdown_signal();
    upgrade(ws, &state).on_upgrade(move |mut socket| async move {
        let _guard = guard;
        let work = async {
            let mut received = 0u64;
            let mut frames = 0u64;
            let mut first: Option<Instant> = None;
            let mut reported = false;
            let _ = tokio::time::timeout(LINGER, async {
                while let Some(Ok(msg)) = socket.recv().await {
                    let text = match msg {
                        Message::Text(text) => text,
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    let start = *first.get_or_insert_with(Instant::now);
                    frames += 1;
                    received += messages_in(text.as_str());
                    if !reported && received >= n {
                        reported = true;
                        let elapsed_us =
                            u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                        let report = ServerMsg::Message {
                            room: "bench".into(),
                            offset: 1,
                            from: "bench".into(),
                            data: serde_json::json!({
                                "received": received,
                                "frames": frames,
                                "elapsed_us": elapsed_us,
                            }),
                            ts: crate::unix_ms(),
                            publisher: None,
                            id: None,
                        };
                        let text = serde_json::to_string(&report).unwrap_or_default();
                        if socket
                            .send(Message::Text(Utf8Bytes::from(text)))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            })
            .await;
        };
        tokio::select! {
            _ = work => {}
            _ = crate::until_true(&mut shutdown) => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_protocol_v1_messages_of_the_asked_size() {
        let text = event(7, &"x".repeat(80));
        let msgs = protocol::decode_server_frame(&text).unwrap();
        assert!(matches!(msgs[0], ServerMsg::Message { offset: 7, .. }));
        assert_eq!(messages_in(&format!("[{text},{text}]")), 2);
        assert_eq!(messages_in(&text), 1);
    }
}
