//! Endpoints for the library's browser tests, on only with `--test-endpoints`.
//!
//! They check neither origin nor ticket: browser test runners serve from random localhost
//! origins. Each stands for one behaviour of a real server or network. `POST /test/cut` cuts
//! live `/ws` connections from the outside, through the hub's per-connection kick; it answers
//! CORS for loopback origins (the `/api` rule), so a test page on another port can call it.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router, middleware};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::AppState;
use crate::hub::Kick;

pub(crate) fn router(state: &AppState) -> Router<AppState> {
    let cut = Router::new()
        .route("/test/cut", post(cut))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::routes::cors,
        ));
    Router::new()
        .merge(cut)
        .route("/echo", any(echo))
        .route("/close", any(close))
        .route("/drop", any(drop_after))
        .route("/silent", any(silent))
        .route("/reject", any(reject))
}

pub(crate) fn upgrade(mut ws: WebSocketUpgrade, state: &AppState) -> WebSocketUpgrade {
    // Accept whatever subprotocol the client offers first, so that a client that always asks
    // for `lifeline.v1` can use these endpoints too.
    let first = ws.requested_protocols().next().cloned();
    if let Some(first) = first {
        ws.set_selected_protocol(first);
    }
    let c = state.config();
    // Reads of at least 4 KiB: these endpoints read without `/ws`'s read-ahead (see
    // `Config::read_buffer_size`), there are few of them at a time, and the browser
    // throughput benchmark sends through `/bench/recv`.
    ws.max_message_size(c.max_message_size)
        .max_frame_size(c.max_frame_size)
        .read_buffer_size(c.read_buffer_size.max(4 * 1024))
        .write_buffer_size(c.write_buffer_size)
}

async fn send_going_away(socket: &mut WebSocket) {
    let frame = CloseFrame {
        code: protocol::close::GOING_AWAY,
        reason: "server shutdown".into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}

/// After the peer's close frame: keep polling (bounded) so tungstenite flushes its close
/// reply, which makes the close clean (1000/wasClean) on the browser side.
async fn finish_close(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}

/// Echoes text and binary frames back until the peer closes.
async fn echo(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    let guard = state.track();
    let mut shutdown = state.shutdown_signal();
    upgrade(ws, &state).on_upgrade(move |mut socket| async move {
        let _guard = guard;
        loop {
            tokio::select! {
                _ = crate::until_true(&mut shutdown) => {
                    send_going_away(&mut socket).await;
                    break;
                }
                msg = socket.recv() => match msg {
                    Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                        if socket.send(msg).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) => {
                        finish_close(&mut socket).await;
                        break;
                    }
                    Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    })
}

#[derive(Debug, Deserialize)]
struct CloseQuery {
    code: Option<u16>,
    reason: Option<String>,
}

/// Accepts, then closes at once with `code` (default 1000) and `reason`.
async fn close(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Query(q): Query<CloseQuery>,
) -> Response {
    let code = q.code.unwrap_or(protocol::close::NORMAL);
    // A close reason must fit a control frame (123 bytes); cut at a char boundary.
    let mut reason = q.reason.unwrap_or_default();
    while reason.len() > 123 {
        reason.pop();
    }
    let guard = state.track();
    upgrade(ws, &state).on_upgrade(move |mut socket| async move {
        let _guard = guard;
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        if socket.send(Message::Close(Some(frame))).await.is_ok() {
            // Wait (bounded) for the peer's close reply, so the handshake completes cleanly.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(msg)) = socket.recv().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    })
}

#[derive(Debug, Deserialize)]
struct DropQuery {
    after_ms: Option<u64>,
}

/// Accepts, then after `after_ms` (default 0) drops the TCP connection without a close frame.
async fn drop_after(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Query(q): Query<DropQuery>,
) -> Response {
    let after = Duration::from_millis(q.after_ms.unwrap_or(0).min(600_000));
    let guard = state.track();
    let mut shutdown = state.shutdown_signal();
    upgrade(ws, &state).on_upgrade(move |mut socket| async move {
        let _guard = guard;
        let deadline = tokio::time::sleep(after);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                _ = crate::until_true(&mut shutdown) => break,
                // Keep reading so pings are answered until the cut, like a live server.
                msg = socket.recv() => match msg {
                    Some(Ok(Message::Close(_))) => return finish_close(&mut socket).await,
                    None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
        debug!("drop: cutting the connection without a close frame");
        // Dropping the socket closes TCP without a WebSocket close frame.
        drop(socket);
    })
}

/// Accepts and then does nothing: no reads (so no pongs), no writes. A half-open peer.
async fn silent(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    let guard = state.track();
    let mut shutdown = state.shutdown_signal();
    let hold = state.config().silent_hold;
    upgrade(ws, &state).on_upgrade(move |socket| async move {
        let _guard = guard;
        // Never poll the socket: polling would make tungstenite answer pings.
        let _ = tokio::time::timeout(hold, crate::until_true(&mut shutdown)).await;
        drop(socket);
    })
}

#[derive(Debug, Deserialize)]
struct RejectQuery {
    status: Option<u16>,
}

/// Refuses the upgrade with `status` (default 403).
async fn reject(Query(q): Query<RejectQuery>) -> Response {
    let status = q
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(|s| !s.is_informational())
        .unwrap_or(StatusCode::FORBIDDEN);
    (status, "rejected by /reject").into_response()
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CutMode {
    Drop,
    Silence,
}

#[derive(Debug, Deserialize)]
struct CutQuery {
    name: String,
    mode: CutMode,
}

#[derive(Debug, Serialize)]
struct CutReply {
    cut: usize,
}

/// `POST /test/cut?name=&mode=drop|silence`: cuts every live `/ws` connection of the client
/// `name`. `drop` ends TCP without a close frame; `silence` stops all reading and writing but
/// keeps TCP open (half-open). Answers `{"cut": n}`, the number of connections cut.
async fn cut(
    State(state): State<AppState>,
    q: Result<Query<CutQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return (
            StatusCode::BAD_REQUEST,
            "expected ?name=<display name>&mode=drop|silence",
        )
            .into_response();
    };
    let kick = match q.mode {
        CutMode::Drop => Kick::Drop,
        CutMode::Silence => Kick::Silence,
    };
    let cut = state.hub().cut(&q.name, kick);
    info!(mode = ?q.mode, cut, "test cut");
    Json(CutReply { cut }).into_response()
}
