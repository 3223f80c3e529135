//! `/ws`'s upgrade to a WebSocket, done here so that the connection gets tokio-tungstenite's
//! stream itself rather than axum's `WebSocket`, which hides it.
//!
//! Why: tungstenite keeps its write buffer at the capacity of the largest frame it has written,
//! for the connection's whole life, and offers no way to give it back. An idle connection that
//! was once sent the room list (about 3.5 KB on a 100-room server) kept 4 to 8 KB that way.
//! With the stream itself, the writer can send a large message as several frames of at most
//! [`crate::Config::write_frame_size`] (RFC 6455 §5.4 fragmentation, which every client
//! reassembles), so the buffer never grows past that; [`Buffered`] then gathers the frames of
//! one flush into one write to the socket, in a buffer it frees when the flush is done. It
//! also reads ahead for tungstenite's small read buffer, the other buffer tungstenite keeps.
//!
//! axum's `WebSocketUpgrade` still checks the request (and gives the same rejections): only the
//! response and the upgrade itself are done here, as axum does them.

use std::io;
use std::mem::MaybeUninit;
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
pub(crate) type Socket = WebSocketStream<Buffered<TokioIo<hyper::upgrade::Upgraded>>>;

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
                    let io = Buffered::new(TokioIo::new(upgraded));
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

/// The socket under tungstenite: reads ahead, and gathers writes, in buffers that exist only
/// while they hold data.
///
/// Writes: what is written between two flushes goes out in one write to `inner`. A write
/// past `WRITE_LIMIT` buffered bytes first pushes the buffer out, so a peer that does not
/// read still blocks the writer (the slow-consumer rule relies on it). Dropping the wrapper
/// writes what is left, without waiting: tungstenite writes the reply to a peer's close
/// without flushing it.
///
/// Reads: tungstenite reads at most its read buffer's size at a time, and keeps that buffer
/// for the connection's life, so the buffer is small (see [`crate::Config::read_buffer_size`]).
/// A read asking for less than `READ_AHEAD` reads up to that much from `inner` and keeps what
/// was not asked for until the next reads take it: one syscall still brings in many frames.
#[derive(Debug)]
pub(crate) struct Buffered<S: AsyncWrite + Unpin> {
    inner: S,
    out: Vec<u8>,
    /// How much of `out` is already written.
    written: usize,
    ahead: Vec<u8>,
    /// How much of `ahead` is already read.
    taken: usize,
}

/// How much [`Buffered`] gathers before it writes without waiting for a flush.
const WRITE_LIMIT: usize = 64 * 1024;
/// How much [`Buffered`] reads at once for a smaller read.
const READ_AHEAD: usize = 4 * 1024;

impl<S: AsyncWrite + Unpin> Buffered<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            out: Vec::new(),
            written: 0,
            ahead: Vec::new(),
            taken: 0,
        }
    }

    /// Writes the buffer out, then frees it.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Buffered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.taken < this.ahead.len() {
            let rest = &this.ahead[this.taken..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.taken += n;
            if this.taken == this.ahead.len() {
                this.ahead = Vec::new();
                this.taken = 0;
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() >= READ_AHEAD {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let mut space = [MaybeUninit::<u8>::uninit(); READ_AHEAD];
        let mut read = ReadBuf::uninit(&mut space);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
        let got = read.filled();
        let n = got.len().min(buf.remaining());
        buf.put_slice(&got[..n]);
        if n < got.len() {
            this.ahead = got[n..].to_vec();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Buffered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.out.len() >= WRITE_LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        this.out.extend_from_slice(data);
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

impl<S: AsyncWrite + Unpin> Drop for Buffered<S> {
    fn drop(&mut self) {
        if self.written < self.out.len() {
            let mut cx = Context::from_waker(Waker::noop());
            let _ = self.poll_drain(&mut cx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_ahead_and_gathers_writes_holding_nothing_between() {
        let (near, mut far) = tokio::io::duplex(64 * 1024);
        let mut io = Buffered::new(near);

        // Small reads are served from one read ahead, in order; the rest is freed once taken.
        let sent: Vec<u8> = (0..100u8).collect();
        far.write_all(&sent).await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 7];
        while got.len() < sent.len() {
            let n = io.read(&mut chunk).await.unwrap();
            got.extend_from_slice(&chunk[..n]);
            if got.len() == 7 {
                assert_eq!(io.ahead.len(), 93, "one read brought in everything sent");
            }
        }
        assert_eq!(got, sent);
        assert_eq!(io.ahead.capacity(), 0, "taken: given back");

        // Writes wait for the flush, then leave together; the buffer is freed after.
        io.write_all(b"one ").await.unwrap();
        io.write_all(b"two").await.unwrap();
        assert_eq!(io.out.len(), 7);
        io.flush().await.unwrap();
        assert_eq!(io.out.capacity(), 0);
        let mut heard = [0u8; 7];
        far.read_exact(&mut heard).await.unwrap();
        assert_eq!(&heard, b"one two");

        // What was written but not flushed still leaves when the wrapper is dropped.
        io.write_all(b"bye").await.unwrap();
        drop(io);
        let mut rest = Vec::new();
        far.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"bye");
    }
}
