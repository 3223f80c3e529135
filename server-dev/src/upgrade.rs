//! `/ws`'s upgrade to a WebSocket, done here so that the connection gets tokio-tungstenite's
//! stream itself rather than axum's `WebSocket`, which hides it.
//!
//! Why: tungstenite keeps its write buffer at the capacity of the largest frame it has written,
//! for the connection's whole life, and offers no way to give it back. An idle connection that
//! was once sent the room list (about 3.5 KB on a 100-room server) kept 4 to 8 KB that way.
//! With the stream itself, the writer can send a large message as several frames of at most
//! [`crate::Config::max_write_frame`] (RFC 6455 §5.4 fragmentation, which every client
//! reassembles), so the buffer never grows past that; [`Coalesce`] then gathers the frames of
//! one flush into one write to the socket, in a buffer it frees when the flush is done.
//!
//! axum's `WebSocketUpgrade` still checks the request (and gives the same rejections): only the
//! response and the upgrade itself are done here, as axum does them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use axum::extract::FromRequestParts;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tracing::debug;

/// The socket a `/ws` connection runs on.
pub(crate) type Socket = WebSocketStream<Coalesce<TokioIo<hyper::upgrade::Upgraded>>>;

/// A checked WebSocket upgrade request for `/ws`.
#[derive(Debug)]
pub(crate) struct WsUpgrade {
    /// `Sec-WebSocket-Key` on HTTP/1.1; `None` on HTTP/2 (RFC 8441), which has no key.
    key: Option<HeaderValue>,
    on_upgrade: OnUpgrade,
    offered: Vec<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for WsUpgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // axum's extractor takes the upgrade out of the request; keep a handle to it first.
        let on_upgrade = parts.extensions.get::<OnUpgrade>().cloned();
        let checked = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let offered = checked.requested_protocols().cloned().collect();
        // Dropping `checked` without `on_upgrade` spawns nothing: only this handle waits.
        drop(checked);
        let on_upgrade = on_upgrade.ok_or_else(|| StatusCode::UPGRADE_REQUIRED.into_response())?;
        let key = if parts.version <= Version::HTTP_11 {
            parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned()
        } else {
            None
        };
        Ok(Self {
            key,
            on_upgrade,
            offered,
        })
    }
}

impl WsUpgrade {
    /// Whether the client offered the subprotocol `protocol`.
    pub(crate) fn offers(&self, protocol: &str) -> bool {
        self.offered
            .iter()
            .any(|p| p.as_bytes() == protocol.as_bytes())
    }

    /// Answers the request, selecting `protocol` if the client offered it, and once the
    /// connection is upgraded calls `callback` with the socket (in a task that ends there).
    pub(crate) fn on_upgrade<F>(
        self,
        protocol: &'static str,
        config: WebSocketConfig,
        callback: F,
    ) -> Response
    where
        F: FnOnce(Socket) + Send + 'static,
    {
        let selected = self.offers(protocol);
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = Coalesce::new(TokioIo::new(upgraded));
                    let socket =
                        WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                    callback(socket);
                }
                Err(err) => debug!(error = %err, "ws upgrade failed"),
            }
        });
        let mut response = match &self.key {
            Some(key) => {
                let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
                let headers = response.headers_mut();
                headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
                    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
                }
                response
            }
            // HTTP/2 (RFC 8441 §5): a 2xx to the extended CONNECT.
            None => StatusCode::OK.into_response(),
        };
        if selected {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        response
    }
}

/// Gathers what is written between two flushes into one write to `inner`, in a buffer that
/// exists only until the flush is done. Reads pass through.
///
/// A write past `LIMIT` buffered bytes first pushes the buffer out, so a peer that does not
/// read still blocks the writer (the slow-consumer rule relies on it). Dropping the wrapper
/// writes what is left, without waiting: tungstenite writes the reply to a peer's close
/// without flushing it.
#[derive(Debug)]
pub(crate) struct Coalesce<S: AsyncWrite + Unpin> {
    inner: S,
    buf: Vec<u8>,
    /// How much of `buf` is already written.
    written: usize,
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    const LIMIT: usize = 64 * 1024;

    fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            written: 0,
        }
    }

    /// Writes the buffer out, then frees it.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.buf.len() >= Self::LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncWrite + Unpin> Drop for Coalesce<S> {
    fn drop(&mut self) {
        if self.written < self.buf.len() {
            let mut cx = Context::from_waker(Waker::noop());
            let _ = self.poll_drain(&mut cx);
        }
    }
}
