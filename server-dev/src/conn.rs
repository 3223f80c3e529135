//! One `/ws` connection: reading client messages, writing (and batching) queued frames,
//! heartbeat, rate limit, and the close that ends it.
//!
//! [`run_connection`] is generic over the `Sink`/`Stream` pair, so tests can drive it through
//! channels instead of a socket.

use std::collections::VecDeque;
use std::fmt::Display;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use protocol::{ClientMsg, ErrorCode, ServerMsg, close};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes};
use tracing::{debug, info, warn};

use crate::hub::{Hub, Kick, Outbound, Peer, PeerState, Registration};
use crate::queue::Receiver;
use crate::rate::Bucket;
use crate::upgrade::Socket;
use crate::{AppState, Config};

/// How a connection ended, which decides the close it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// The peer sent a close frame: reply to it.
    PeerClosed,
    /// The stream ended or failed: nothing left to say.
    Gone,
    /// Nothing heard within heartbeat interval + pong timeout: drop without a close frame,
    /// since a half-open peer would never read it.
    Idle,
    /// A policy or size breach: flush what is queued (the error), then close with the code.
    Close(u16, &'static str),
    /// The hub evicted this peer (slow consumer), or a test endpoint cut it.
    Kicked(Kick),
    /// The server is shutting down.
    Shutdown,
    /// Writing failed.
    SinkFailed,
}

/// With [`Config::test_endpoints`], this exact text frame panics the connection's task: how
/// tests show that a panic ends that connection only.
const TEST_PANIC: &str = r#"{"type":"test_panic"}"#;

/// Runs a `/ws` connection on an upgraded socket in a task of its own until it ends, then
/// drops `hold` (what must live exactly as long as the connection).
///
/// The task's future is an async block that keeps what it is given in place and lends it out.
/// An async fn would not do: it keeps its arguments twice (as received, and moved into its
/// body), which for the socket alone is 360 B per connection.
pub(crate) fn spawn_socket<H: Send + 'static>(
    socket: Socket,
    state: AppState,
    name: String,
    hold: H,
) {
    let mut reg = state.hub().register(name);
    let socket = Mutex::new(socket);
    tokio::spawn(async move {
        // Unwind safe enough: after a panic only the hub is touched, whose lock recovers
        // from poisoning, and the socket is dropped unread.
        let conn = AssertUnwindSafe(run(Half(&socket), Half(&socket), &state, &mut reg));
        if conn.catch_unwind().await.is_err() {
            // This connection only ends: the hub forgets it and TCP ends without a close
            // frame, which clients retry like any dropped connection (1006).
            tracing::error!(conn = reg.peer.id, "connection task panicked, dropping it");
            state.hub().disconnect(reg.peer.id);
        }
        drop(hold);
    });
}

/// The reading or the writing half of a socket. Both halves are polled by the connection's
/// one task, so the mutex is never contended; unlike `StreamExt::split`, sharing the socket
/// this way costs no allocation and no slot for a message in flight.
#[derive(Debug)]
struct Half<'a>(&'a Mutex<Socket>);

impl Half<'_> {
    fn lock(&self) -> MutexGuard<'_, Socket> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Stream for Half<'_> {
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.lock().poll_next_unpin(cx)
    }
}

impl Sink<Message> for Half<'_> {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.lock().poll_ready_unpin(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        self.lock().start_send_unpin(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.lock().poll_flush_unpin(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.lock().poll_close_unpin(cx)
    }
}

/// Runs one protocol v1 connection for the client `name` on any message sink and stream.
///
/// Returns once the connection has ended and the hub has forgotten it. The stream yields
/// tungstenite's errors so that a size-limit breach can be told apart (it closes with 1009).
/// Messages longer than [`crate::Config::write_frame_size`] leave as several frames.
pub async fn run_connection<Si, St>(sink: Si, stream: St, state: AppState, name: String)
where
    Si: Sink<Message> + Unpin,
    Si::Error: Display,
    St: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let mut reg = state.hub().register(name);
    run(sink, stream, &state, &mut reg).await;
}

/// [`run_connection`] for a registered client.
///
/// This and the futures it runs live in the connection's task for its whole life, so they
/// take references, and are written as functions returning an async block: an async fn
/// keeps its arguments twice (as received and moved into its body), an async block once.
#[expect(clippy::manual_async_fn, reason = "async fn holds arguments twice")]
fn run<Si, St>(
    mut sink: Si,
    mut stream: St,
    state: &AppState,
    reg: &mut Registration,
) -> impl Future<Output = ()>
where
    Si: Sink<Message> + Unpin,
    Si::Error: Display,
    St: Stream<Item = Result<Message, WsError>> + Unpin,
{
    async move {
        info!(conn = reg.peer.id, "ws connected");
        let mut unsent = None;
        let exit = {
            let heard = Heard::new();
            let read = read_loop(&mut stream, &reg.peer, state, &heard);
            let write = write_loop(&mut sink, &mut reg.rx, &reg.peer, state, &mut unsent);
            let control = control(&reg.peer, state.config(), &heard);
            tokio::select! {
                // The reader goes first, so that frames already waiting are read (and heard)
                // before the heartbeat can take a late poll for silence.
                biased;
                exit = read => exit,
                exit = write => exit,
                exit = control => exit,
            }
        };
        state.hub().disconnect(reg.peer.id);
        // Boxed: an idle connection's task would otherwise hold room for these futures too.
        Box::pin(close(exit, sink, stream, unsent, state, reg)).await;
    }
}

/// Ends the connection as `exit` says, after the hub has forgotten it.
async fn close<Si, St>(
    exit: Exit,
    mut sink: Si,
    mut stream: St,
    mut unsent: Option<Fragments>,
    state: &AppState,
    reg: &mut Registration,
) where
    Si: Sink<Message> + Unpin,
    St: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let (hub, config, id) = (state.hub(), state.config(), reg.peer.id);
    let frame_max = config.write_frame_size.max(1);
    let grace = Duration::from_secs(1);
    let close_with = |code: u16, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code: code.into(),
            reason: Utf8Bytes::from_static(reason),
        }))
    };
    match exit {
        Exit::PeerClosed => {
            // Flushes tungstenite's automatic close reply.
            let _ = timeout(grace, sink.close()).await;
        }
        Exit::Close(code, reason) => {
            let _ = timeout(grace, async {
                finish(&mut sink, &mut unsent, frame_max)
                    .await
                    .map_err(|_| ())?;
                while let Ok(item) = reg.rx.try_recv() {
                    for frame in hub.resolve(&reg.peer, item) {
                        sink.feed(Message::Text(frame)).await.map_err(|_| ())?;
                    }
                }
                sink.send(close_with(code, reason)).await.map_err(|_| ())
            })
            .await;
        }
        Exit::Kicked(Kick::Close(code)) => {
            let _ = timeout(grace, async {
                finish(&mut sink, &mut unsent, frame_max).await?;
                sink.send(close_with(code, "slow consumer")).await
            })
            .await;
        }
        // Returning drops the socket: TCP ends without a close frame.
        Exit::Kicked(Kick::Drop) => {}
        Exit::Kicked(Kick::Silence) => {
            // Half-open: the hub has forgotten this peer; hold the socket without polling it
            // (polling would answer pings) until a real server would give up on it, then
            // drop it without a close frame, which a half-open peer would never read.
            debug!(
                conn = id,
                "silenced: holding the socket unread and unwritten"
            );
            let idle = idle(config);
            let mut shutdown = state.shutdown_signal();
            let _ = timeout(idle, crate::until_true(&mut shutdown)).await;
        }
        Exit::Shutdown | Exit::Kicked(Kick::Shutdown) => {
            let sent = timeout(grace, async {
                finish(&mut sink, &mut unsent, frame_max).await?;
                sink.send(close_with(close::GOING_AWAY, "server shutdown"))
                    .await
            });
            if matches!(sent.await, Ok(Ok(()))) {
                // Wait (bounded) for the peer's close reply so the handshake completes.
                let _ = timeout(grace, async {
                    while let Some(Ok(msg)) = stream.next().await {
                        if matches!(msg, Message::Close(_)) {
                            break;
                        }
                    }
                })
                .await;
            }
        }
        Exit::Gone | Exit::Idle | Exit::SinkFailed => {}
    }
    info!(conn = id, ?exit, "ws closed");
}

/// When the connection last heard from its peer (at first: when it started), written by the
/// reader and read by the heartbeat.
struct Heard {
    start: Instant,
    /// Since `start`.
    nanos: AtomicU64,
}

impl Heard {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            nanos: AtomicU64::new(0),
        }
    }

    fn note(&self, now: Instant) {
        let since = now.saturating_duration_since(self.start).as_nanos();
        let since = u64::try_from(since).unwrap_or(u64::MAX);
        self.nanos.store(since, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }
}

/// How often the heartbeat pings. A zero period would spin; the config setter already refuses
/// it, the field may not.
fn every(config: &Config) -> Duration {
    config.heartbeat_interval.max(Duration::from_millis(1))
}

/// How long a connection may stay silent.
fn idle(config: &Config) -> Duration {
    config.heartbeat_interval + config.pong_timeout
}

/// Ends the connection when the hub asks it to (a kick, or shutdown), or once nothing has been
/// heard for heartbeat interval + pong timeout; until then asks the writer for a protocol Ping
/// every heartbeat interval. One timer per connection, which frames read do not re-arm.
#[expect(clippy::manual_async_fn, reason = "async fn holds arguments twice")]
fn control(peer: &Peer, config: &Config, heard: &Heard) -> impl Future<Output = Exit> {
    async move {
        let mut next_ping = heard.start + every(config);
        let timer = tokio::time::sleep_until(next_ping.min(heard.start + idle(config)));
        let kicked = peer.kicked();
        tokio::pin!(timer, kicked);
        loop {
            // Not `select!`, which would make a new `kicked` future (and room for it) each round.
            let woke = std::future::poll_fn(|cx| match kicked.as_mut().poll(cx) {
                Poll::Ready(kick) => Poll::Ready(Some(kick)),
                Poll::Pending => timer.as_mut().poll(cx).map(|()| None),
            });
            if let Some(kick) = woke.await {
                return match kick {
                    Kick::Shutdown => Exit::Shutdown,
                    kick => Exit::Kicked(kick),
                };
            }
            let now = Instant::now();
            let idle_at = heard.last() + idle(config);
            if now >= idle_at {
                warn!(
                    conn = peer.id,
                    "heartbeat: nothing received within the pong timeout, dropping"
                );
                return Exit::Idle;
            }
            if now >= next_ping {
                peer.request_ping();
                next_ping = now + every(config);
            }
            timer.as_mut().reset(next_ping.min(idle_at));
        }
    }
}

/// Reads client frames until the connection should end, noting in `heard` when each came.
#[expect(clippy::manual_async_fn, reason = "async fn holds arguments twice")]
fn read_loop<St>(
    stream: &mut St,
    peer: &Peer,
    state: &AppState,
    heard: &Heard,
) -> impl Future<Output = Exit>
where
    St: Stream<Item = Result<Message, WsError>> + Unpin,
{
    async move {
        let (hub, config) = (state.hub(), state.config());
        let mut throttle = Throttle {
            bucket: Bucket::new(config.rate_per_sec, config.rate_burst, Instant::now()),
            since: None,
            warned: false,
        };
        loop {
            // Flow control, not punishment: above the rate, the next frame is not read until
            // a token is there, and TCP backpressure slows the sender.
            match throttle.bucket.wait(Instant::now()) {
                None => throttle.since = None,
                Some(wait) => {
                    // Boxed: a connection never throttled holds no room for its timer.
                    let held = Box::pin(throttle.hold_back(wait, peer, state, heard));
                    if let Err(exit) = held.await {
                        return exit;
                    }
                }
            }
            if peer.backlogged() {
                // Boxed: a connection never backlogged holds no room for this wait.
                Box::pin(wait_for_writer(peer, heard)).await;
            }
            let msg = match stream.next().await {
                None => return Exit::Gone,
                Some(Err(err)) => return classify(peer, err),
                Some(Ok(msg)) => msg,
            };
            let now = Instant::now();
            heard.note(now);
            let text = match msg {
                Message::Text(text) => Some(text),
                Message::Binary(_) => None,
                // tungstenite answers pings itself, and reads never yield raw frames.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Close(_) => return Exit::PeerClosed,
            };
            // A token is there: the reader waited for one before reading.
            let _ = throttle.bucket.take(now);
            match text {
                Some(text) if config.test_endpoints && text.as_str() == TEST_PANIC => {
                    panic!("test endpoint: panic requested on connection {}", peer.id)
                }
                Some(text) => handle_text(text.as_str(), hub, peer),
                None => {
                    let msg = "protocol v1 uses text frames only";
                    hub.send(peer.id, &error(ErrorCode::BinaryUnsupported, msg, None));
                }
            }
            if hub.blocks() {
                // Each frame waited for Redis: let this connection's writer drain its queue
                // before the next, or a burst of reads fills it meanwhile.
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Flow control on what a connection asks for: while more than half its queue byte budget
/// waits, nothing more is read from it, so its own requests (a rejoin of many rooms, each
/// with a replay of up to a room's history) never pass the budget; what the room sends
/// meanwhile still can. Not idle while its writer makes progress: the peer reads, and its
/// Pongs wait unread behind the frames held back.
async fn wait_for_writer(peer: &Peer, heard: &Heard) {
    let mut before = peer.queued_bytes();
    while peer.backlogged() {
        let _ = timeout(Duration::from_secs(1), peer.drained()).await;
        let now = peer.queued_bytes();
        if now < before {
            heard.note(Instant::now());
        }
        before = now;
    }
}

/// The rate limit of one connection's reader.
#[derive(Debug)]
struct Throttle {
    bucket: Bucket,
    /// Since when the reader has found the bucket empty every time it was about to read;
    /// `None` while not throttled.
    since: Option<Instant>,
    /// Whether this connection was throttled before (logged at warn once, then at debug).
    warned: bool,
}

impl Throttle {
    /// Waits until a token is there, `wait` at first. Err once the connection has been
    /// throttled without a break for the whole abuse window: `error{rate_limited}` is queued
    /// and the connection is to close with 1013 (retryable).
    async fn hold_back(
        &mut self,
        mut wait: Duration,
        peer: &Peer,
        state: &AppState,
        heard: &Heard,
    ) -> Result<(), Exit> {
        let (hub, window) = (state.hub(), state.config().rate_abuse_window);
        let mut now = Instant::now();
        if self.since.is_none() {
            if self.warned {
                debug!(conn = peer.id, "rate limit reached again, reading slower");
            } else {
                self.warned = true;
                warn!(conn = peer.id, "rate limit reached, reading slower");
            }
        }
        let since = *self.since.get_or_insert(now);
        loop {
            let throttled_for = now.saturating_duration_since(since);
            if !window.is_zero() && throttled_for >= window {
                warn!(
                    conn = peer.id,
                    secs = throttled_for.as_secs(),
                    "rate limit: throttled for the whole abuse window, closing with 1013"
                );
                let msg = "kept sending above the rate limit";
                hub.send(peer.id, &error(ErrorCode::RateLimited, msg, None));
                return Err(Exit::Close(close::TRY_AGAIN_LATER, "rate limit exceeded"));
            }
            if !window.is_zero() {
                wait = wait.min(window - throttled_for);
            }
            let wake = now + wait;
            // Not idle: the peer was just heard, and what it sent since waits unread. The
            // heartbeat counts it as heard until the reader is back.
            heard.note(wake);
            tokio::time::sleep_until(wake).await;
            now = Instant::now();
            match self.bucket.wait(now) {
                None => return Ok(()),
                Some(next) => wait = next,
            }
        }
    }
}

fn classify(peer: &Peer, err: WsError) -> Exit {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match err {
        WsError::Capacity(_) => {
            warn!(
                conn = peer.id,
                "message or frame above the size limit, closing with 1009"
            );
            Exit::Close(close::TOO_BIG, "message too big")
        }
        // RFC 6455 §7.4.1: 1007 for a text frame that is not UTF-8, 1002 for a protocol error.
        WsError::Utf8(_) => {
            warn!(conn = peer.id, "text frame is not UTF-8, closing with 1007");
            Exit::Close(1007, "invalid utf-8")
        }
        // A peer that vanished without a close frame is not a protocol breach.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            debug!(conn = peer.id, "peer reset without closing handshake");
            Exit::Gone
        }
        WsError::Protocol(err) => {
            warn!(conn = peer.id, error = %err, "websocket protocol error, closing with 1002");
            Exit::Close(1002, "protocol error")
        }
        err => {
            debug!(conn = peer.id, error = %err, "ws read failed");
            Exit::Gone
        }
    }
}

fn error(code: ErrorCode, message: &str, reference: Option<u64>) -> ServerMsg {
    ServerMsg::Error {
        code,
        message: message.to_string(),
        reference,
    }
}

/// Handles one text frame. Bad input gets an `error`; the connection stays open.
fn handle_text(text: &str, hub: &Hub, peer: &Peer) {
    let msg = match serde_json::from_str::<ClientMsg>(text) {
        Ok(msg) => msg,
        Err(err) => {
            let (code, what) = if err.is_data() {
                (
                    ErrorCode::UnknownType,
                    "unknown message type or wrong fields",
                )
            } else {
                (ErrorCode::BadJson, "frame is not valid JSON")
            };
            // Point at the offending publish/ping when its id can be read.
            let reference = serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64));
            debug!(conn = peer.id, ?code, "refused a client frame");
            hub.send(peer.id, &error(code, what, reference));
            return;
        }
    };
    match msg {
        ClientMsg::Hello { session, publisher } => hub.hello(peer.id, session, publisher),
        ClientMsg::Ping { id } => hub.send(peer.id, &ServerMsg::Pong { id }),
        ClientMsg::Join { room, since } => hub.join(peer.id, room, since),
        ClientMsg::Leave { room } => hub.leave(peer.id, room),
        ClientMsg::Publish { room, id, data } => hub.publish(peer.id, room, id, data),
        ClientMsg::ListRooms => hub.list_rooms(peer.id),
    }
}

/// Writes queued frames, packing what is already queued into batch frames, and the protocol
/// Pings the heartbeat asks for, between batches. A message cut short by the
/// connection's end is left in `unsent`.
#[expect(clippy::manual_async_fn, reason = "async fn holds arguments twice")]
fn write_loop<Si>(
    sink: &mut Si,
    rx: &mut Receiver<Outbound, PeerState>,
    peer: &Peer,
    state: &AppState,
    unsent: &mut Option<Fragments>,
) -> impl Future<Output = Exit>
where
    Si: Sink<Message> + Unpin,
    Si::Error: Display,
{
    async move {
        let (hub, config) = (state.hub(), state.config());
        let mut pending: VecDeque<Utf8Bytes> = VecDeque::new();
        loop {
            if pending.is_empty() {
                // Idle connections hold no buffer between bursts.
                if pending.capacity() > 0 {
                    pending = VecDeque::new();
                }
                // The heartbeat's Ping goes out between batches, not only once the queue is
                // empty: a peer that only reads a busy room must still be asked for a Pong, or
                // it looks idle and is dropped.
                if peer.take_ping() {
                    if let Err(err) = sink.send(Message::Ping(Bytes::new())).await {
                        debug!(error = %err, "ping failed");
                        return Exit::SinkFailed;
                    }
                    continue;
                }
                let Ok(item) = rx.try_recv() else {
                    rx.wait().await;
                    continue;
                };
                // Exactly: most bursts are one frame, and a first push would make room for four.
                pending.reserve_exact(1);
                pending.extend(hub.resolve(peer, item));
                // Take what is already queued, up to one batch worth: the rest stays in the
                // bounded queue so that a slow reader still fills it and gets evicted.
                let mut bytes: usize = pending.iter().map(|f| f.as_str().len()).sum();
                while bytes < config.batch_max_bytes {
                    match rx.try_recv() {
                        Ok(item) => {
                            for frame in hub.resolve(peer, item) {
                                bytes += frame.as_str().len();
                                pending.push_back(frame);
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            let Some(frame) = next_frame(&mut pending, config.batch_max_bytes) else {
                continue;
            };
            // As `send_text` does, inline (its future would hold its arguments as well).
            *unsent = Some(Fragments::new(frame));
            if let Err(err) = finish(sink, unsent, config.write_frame_size.max(1)).await {
                debug!(error = %err, "write failed");
                return Exit::SinkFailed;
            }
        }
    }
}

/// A text message being written, possibly as several frames.
#[derive(Debug)]
struct Fragments {
    text: Utf8Bytes,
    /// How many bytes of `text` are written. The first frame has opcode text, the others are
    /// continuations.
    sent: usize,
}

impl Fragments {
    fn new(text: Utf8Bytes) -> Self {
        Self { text, sent: 0 }
    }
}

/// Writes `text` and flushes: as one frame, or if longer than `frame_max` as frames of at most
/// `frame_max` bytes (RFC 6455 §5.4). tungstenite's write buffer keeps the capacity of the
/// largest frame it has written for the connection's life, so this bounds it for every
/// connection, including idle ones that were once sent a long room list or batch.
#[cfg(test)]
async fn send_text<Si>(
    sink: &mut Si,
    text: Utf8Bytes,
    frame_max: usize,
    unsent: &mut Option<Fragments>,
) -> Result<(), Si::Error>
where
    Si: Sink<Message> + Unpin,
{
    *unsent = Some(Fragments::new(text));
    finish(sink, unsent, frame_max).await
}

/// Writes what is left of a message sent as several frames, if any, then flushes. Nothing
/// but control frames may come between the frames of one message, so a connection that
/// ends while one is under way finishes it before writing anything else.
#[expect(clippy::manual_async_fn, reason = "async fn holds arguments twice")]
fn finish<Si>(
    sink: &mut Si,
    unsent: &mut Option<Fragments>,
    frame_max: usize,
) -> impl Future<Output = Result<(), Si::Error>>
where
    Si: Sink<Message> + Unpin,
{
    async move {
        while let Some(out) = unsent.as_mut() {
            let total = out.text.len();
            let len = (total - out.sent).min(frame_max);
            let message = if len == total {
                Message::Text(out.text.clone())
            } else {
                let opcode = if out.sent == 0 {
                    OpCode::Data(Data::Text)
                } else {
                    OpCode::Data(Data::Continue)
                };
                let part = Bytes::from(out.text.clone()).slice(out.sent..out.sent + len);
                Message::Frame(Frame::message(part, opcode, out.sent + len == total))
            };
            sink.feed(message).await?;
            // Only once the frame is taken: a feed cut short has written nothing.
            out.sent += len;
            if out.sent == total {
                *unsent = None;
            }
        }
        sink.flush().await
    }
}

/// The next frame to write: a lone message as itself, or as many queued messages as fit in
/// `batch_max` bytes as one JSON array.
fn next_frame(pending: &mut VecDeque<Utf8Bytes>, batch_max: usize) -> Option<Utf8Bytes> {
    let first = pending.pop_front()?;
    let fits = |len: usize, add: usize| len + 1 + add < batch_max;
    let second_fits = pending
        .front()
        .is_some_and(|next| fits(first.as_str().len() + 1, next.as_str().len()));
    if !second_fits {
        return Some(first);
    }
    // Size the batch exactly: the frame's buffer lives until it is written, and a buffer
    // of `batch_max` per frame in flight is what idle connections were left fragmented by.
    let mut len = 1 + first.as_str().len();
    let mut count = 0;
    for next in pending.iter() {
        if !fits(len, next.as_str().len()) {
            break;
        }
        len += 1 + next.as_str().len();
        count += 1;
    }
    let mut out = String::with_capacity(len + 1);
    out.push('[');
    out.push_str(first.as_str());
    for next in pending.drain(..count) {
        out.push(',');
        out.push_str(next.as_str());
    }
    out.push(']');
    Some(Utf8Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use futures::channel::mpsc as fmpsc;

    fn frames(list: &[&str]) -> VecDeque<Utf8Bytes> {
        list.iter()
            .map(|s| Utf8Bytes::from(s.to_string()))
            .collect()
    }

    #[test]
    fn lone_message_is_not_wrapped_and_batches_respect_the_cap() {
        let mut one = frames(&[r#"{"a":1}"#]);
        assert_eq!(next_frame(&mut one, 100).unwrap().as_str(), r#"{"a":1}"#);
        let mut many = frames(&["{}", "{}", "{}"]);
        assert_eq!(next_frame(&mut many, 100).unwrap().as_str(), "[{},{},{}]");
        // "[{},{}" + "]" = 7 bytes; a cap of 8 fits two, not three.
        let mut capped = frames(&["{}", "{}", "{}"]);
        assert_eq!(next_frame(&mut capped, 8).unwrap().as_str(), "[{},{}]");
        assert_eq!(next_frame(&mut capped, 8).unwrap().as_str(), "{}");
        assert!(next_frame(&mut capped, 8).is_none());
    }

    #[tokio::test]
    async fn a_long_text_leaves_as_frames_of_at_most_the_limit() {
        let (mut sink, mut out) = fmpsc::unbounded::<Message>();
        let mut unsent = None;
        let text = "abcdefghij".repeat(25);
        send_text(&mut sink, text.clone().into(), 100, &mut unsent)
            .await
            .unwrap();
        assert!(unsent.is_none());
        let mut frames = Vec::new();
        while let Ok(Message::Frame(frame)) = out.try_recv() {
            let header = frame.header();
            frames.push((header.opcode, header.is_final, frame.into_payload()));
        }
        let text_op = OpCode::Data(Data::Text);
        let cont = OpCode::Data(Data::Continue);
        let shape: Vec<_> = frames
            .iter()
            .map(|(op, fin, p)| (*op, *fin, p.len()))
            .collect();
        assert_eq!(
            shape,
            [(text_op, false, 100), (cont, false, 100), (cont, true, 50)]
        );
        let joined: Vec<u8> = frames.iter().flat_map(|(_, _, p)| p.to_vec()).collect();
        assert_eq!(joined, text.as_bytes());
        // A message that fits leaves as one text message.
        send_text(&mut sink, "short".into(), 100, &mut unsent)
            .await
            .unwrap();
        assert!(matches!(out.try_recv(), Ok(Message::Text(t)) if t == "short"));
    }

    #[tokio::test]
    async fn a_message_cut_short_is_finished_before_anything_else() {
        // Room for one frame only: the writer stops after the first.
        let (mut sink, mut out) = fmpsc::channel::<Message>(0);
        let mut unsent = None;
        let text = Utf8Bytes::from("x".repeat(30));
        let cut = timeout(
            Duration::from_millis(50),
            send_text(&mut sink, text, 10, &mut unsent),
        )
        .await;
        assert!(cut.is_err(), "blocked after the first frame");
        let rest = unsent.as_ref().map(|f| f.text.len() - f.sent);
        assert_eq!(rest, Some(20));
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(Message::Frame(frame)) = out.next().await {
                let fin = frame.header().is_final;
                got.push((frame.header().opcode, frame.into_payload().len()));
                if fin {
                    break;
                }
            }
            got
        });
        finish(&mut sink, &mut unsent, 10).await.unwrap();
        assert!(unsent.is_none());
        let cont = OpCode::Data(Data::Continue);
        assert_eq!(
            reader.await.unwrap(),
            [(OpCode::Data(Data::Text), 10), (cont, 10), (cont, 10)]
        );
    }

    struct Harness {
        to_server: fmpsc::UnboundedSender<Result<Message, WsError>>,
        from_server: fmpsc::Receiver<Message>,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(config: Config) -> (Harness, AppState) {
        let state = AppState::new(config).unwrap();
        let (to_server, stream) = fmpsc::unbounded();
        // Capacity 0: the server's writer can run at most one frame ahead of the test.
        let (sink, from_server) = fmpsc::channel(0);
        let task = tokio::spawn(run_connection(sink, stream, state.clone(), "t".into()));
        (
            Harness {
                to_server,
                from_server,
                task,
            },
            state,
        )
    }

    fn send(h: &Harness, json: &str) {
        h.to_server
            .unbounded_send(Ok(Message::Text(json.to_string().into())))
            .unwrap();
    }

    /// The next text message, joined from its frames as a client would if it came as several.
    async fn recv_text(h: &mut Harness) -> String {
        let mut parts = Vec::new();
        loop {
            match h.from_server.next().await.unwrap() {
                Message::Text(t) if parts.is_empty() => return t.as_str().to_string(),
                Message::Frame(frame) => {
                    let last = frame.header().is_final;
                    parts.extend_from_slice(&frame.into_payload());
                    if last {
                        return String::from_utf8(parts).unwrap();
                    }
                }
                Message::Ping(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn answers_over_channels_and_reports_bad_input() {
        let (mut h, _state) = start(Config::default());
        send(&h, r#"{"type":"ping","id":4}"#);
        assert_eq!(recv_text(&mut h).await, r#"{"type":"pong","id":4}"#);
        send(&h, "{nope");
        assert!(recv_text(&mut h).await.contains(r#""code":"bad_json""#));
        send(&h, r#"{"type":"fly","id":2}"#);
        let text = recv_text(&mut h).await;
        assert!(
            text.contains(r#""code":"unknown_type""#) && text.contains(r#""ref":2"#),
            "{text}"
        );
        h.to_server
            .unbounded_send(Ok(Message::Binary(Bytes::from_static(b"x"))))
            .unwrap();
        assert!(recv_text(&mut h).await.contains("binary_unsupported"));
        h.to_server
            .unbounded_send(Ok(Message::Close(None)))
            .unwrap();
        timeout(Duration::from_secs(5), h.task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn queued_messages_leave_as_one_batch() {
        let (mut h, state) = start(Config::default());
        send(&h, r#"{"type":"join","room":"r"}"#);
        // joined + presence + rooms, queued together, leave together.
        let first = recv_text(&mut h).await;
        let msgs = protocol::decode_server_frame(&first).unwrap();
        assert!(first.starts_with('['), "{first}");
        assert!(matches!(msgs[0], ServerMsg::Joined { .. }));
        // Queue five messages from another member without yielding: they must come as one array.
        let hub = state.hub().clone();
        let other = hub.register("o".into());
        hub.join(other.peer.id, "r".into(), None);
        let presence = recv_text(&mut h).await;
        assert!(
            presence.contains("presence") || presence.contains("rooms"),
            "{presence}"
        );
        for i in 1..=5 {
            hub.publish(other.peer.id, "r".into(), i, serde_json::json!(i));
        }
        // Presence/room pushes may still be ahead; the five messages must share one frame.
        let batch = loop {
            let frame = recv_text(&mut h).await;
            let msgs = protocol::decode_server_frame(&frame).unwrap();
            if msgs.iter().any(|m| matches!(m, ServerMsg::Message { .. })) {
                break msgs;
            }
        };
        let offsets: Vec<u64> = batch
            .iter()
            .filter_map(|m| match m {
                ServerMsg::Message { offset, .. } => Some(*offset),
                _ => None,
            })
            .collect();
        assert_eq!(offsets, vec![1, 2, 3, 4, 5]);
        drop(h.to_server);
        timeout(Duration::from_secs(5), h.task)
            .await
            .unwrap()
            .unwrap();
    }

    /// Reads until the close frame, returning the messages before it and the close code.
    async fn until_close(h: &mut Harness) -> (Vec<ServerMsg>, u16) {
        let mut texts = Vec::new();
        loop {
            match h.from_server.next().await.unwrap() {
                Message::Text(t) => {
                    texts.extend(protocol::decode_server_frame(t.as_str()).unwrap())
                }
                Message::Close(frame) => return (texts, u16::from(frame.unwrap().code)),
                _ => {}
            }
        }
    }

    fn pong_ids(msgs: &[ServerMsg]) -> Vec<u64> {
        msgs.iter()
            .filter_map(|m| match m {
                ServerMsg::Pong { id } => Some(*id),
                _ => None,
            })
            .collect()
    }

    // Virtual time: the throttle's sleeps are what is measured.
    #[tokio::test(start_paused = true)]
    async fn a_backlog_above_the_rate_is_slowed_down_not_closed() {
        let config = Config::default()
            .rate_limit(1.0, 2.0)
            .rate_abuse_window(Duration::from_secs(10));
        let (mut h, _state) = start(config);
        let started = Instant::now();
        for i in 0..6 {
            send(&h, &format!(r#"{{"type":"ping","id":{i}}}"#));
        }
        let mut got = Vec::new();
        while got.len() < 6 {
            got.extend(pong_ids(
                &protocol::decode_server_frame(&recv_text(&mut h).await).unwrap(),
            ));
        }
        assert_eq!(got, [0, 1, 2, 3, 4, 5]);
        // Burst of 2, then one a second.
        assert!(
            started.elapsed() >= Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        h.to_server
            .unbounded_send(Ok(Message::Close(None)))
            .unwrap();
        timeout(Duration::from_secs(5), h.task)
            .await
            .unwrap()
            .unwrap();
    }

    // Virtual time; a 3 s window instead of the default keeps the backlog short.
    #[tokio::test(start_paused = true)]
    async fn sustained_abuse_gets_error_then_1013() {
        let window = Duration::from_secs(3);
        let config = Config::default()
            .rate_limit(1.0, 2.0)
            .rate_abuse_window(window);
        let (mut h, _state) = start(config);
        let started = Instant::now();
        for i in 0..20 {
            send(&h, &format!(r#"{{"type":"ping","id":{i}}}"#));
        }
        let (texts, code) = until_close(&mut h).await;
        assert_eq!(code, close::TRY_AGAIN_LATER);
        assert!(started.elapsed() >= window, "{:?}", started.elapsed());
        // The burst and what the rate allowed within the window are answered, in order.
        let pongs = pong_ids(&texts);
        assert_eq!(pongs, (0..pongs.len() as u64).collect::<Vec<_>>());
        assert!((4..=6).contains(&pongs.len()), "{texts:?}");
        assert!(
            matches!(
                texts.last(),
                Some(ServerMsg::Error {
                    code: ErrorCode::RateLimited,
                    ..
                })
            ),
            "{texts:?}"
        );
        timeout(Duration::from_secs(5), h.task)
            .await
            .unwrap()
            .unwrap();
    }

    // Virtual time; a heartbeat shorter than the throttle's waits is the case under test.
    #[tokio::test(start_paused = true)]
    async fn a_throttled_connection_is_not_idle_and_shutdown_still_ends_it() {
        let config = Config::default()
            .rate_limit(0.1, 1.0)
            .rate_abuse_window(Duration::ZERO)
            .heartbeat(Duration::from_secs(1), Duration::from_secs(1));
        let (mut h, state) = start(config);
        for i in 0..3 {
            send(&h, &format!(r#"{{"type":"ping","id":{i}}}"#));
        }
        // Each pong after the first waits 10 s for a token, five heartbeat timeouts' worth.
        let mut got = Vec::new();
        while got.len() < 3 {
            let msg = h.from_server.next().await.unwrap();
            if let Message::Text(t) = msg {
                got.extend(pong_ids(
                    &protocol::decode_server_frame(t.as_str()).unwrap(),
                ));
            }
        }
        assert_eq!(got, [0, 1, 2]);
        send(&h, r#"{"type":"ping","id":3}"#);
        send(&h, r#"{"type":"ping","id":4}"#);
        tokio::time::sleep(Duration::from_secs(1)).await;
        state.begin_shutdown();
        let (_, code) = until_close(&mut h).await;
        assert_eq!(code, close::GOING_AWAY);
        timeout(Duration::from_secs(5), h.task)
            .await
            .unwrap()
            .unwrap();
    }

    // Virtual time, default heartbeat: the room keeps this reader's queue busy for 60 s.
    #[tokio::test(start_paused = true)]
    async fn a_reader_of_a_busy_room_is_still_pinged_and_kept() {
        let (mut h, state) = start(Config::default());
        send(&h, r#"{"type":"join","room":"r"}"#);
        recv_text(&mut h).await;
        let hub = state.hub().clone();
        let other = hub.register("o".into());
        hub.join(other.peer.id, "r".into(), None);
        let pad = "x".repeat(10_000);
        let (mut pings, mut texts, mut id) = (0, 0, 0);
        for _ in 0..60 {
            // Three ~10 KB messages queued, two frames read: the queue is never empty.
            for _ in 0..3 {
                id += 1;
                hub.publish(other.peer.id, "r".into(), id, serde_json::json!(pad));
            }
            let mut read = 0;
            while read < 2 {
                match h.from_server.next().await {
                    Some(Message::Ping(_)) => {
                        pings += 1;
                        // What a browser does: answer at once.
                        h.to_server
                            .unbounded_send(Ok(Message::Pong(Bytes::new())))
                            .unwrap();
                    }
                    Some(Message::Text(_)) => read += 1,
                    Some(Message::Frame(frame)) => read += usize::from(frame.header().is_final),
                    other => panic!("the busy reader was dropped: {other:?}"),
                }
            }
            texts += read;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // 60 s at a 15 s interval: pinged about four times, and never dropped as idle.
        assert!(
            pings >= 3,
            "pinged {pings} times while reading {texts} frames"
        );
        assert!(!h.task.is_finished());
        h.task.abort();
    }

    /// Fuzzing the text-frame handler: arbitrary text, arbitrary JSON, and JSON shaped like
    /// client messages (right or wrong field types), several frames per case on one
    /// connection. Each frame gets well-formed answers (or none), and a refused one exactly
    /// one `error`. 256 cases by default; longer:
    /// `PROPTEST_CASES=100000 cargo test -p server-dev --lib fuzz`.
    mod fuzz {
        use super::*;
        use proptest::collection::{btree_map, vec};
        use proptest::prelude::*;
        use serde_json::Value;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                ".{0,12}".prop_map(Value::from),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    vec(inner.clone(), 0..4).prop_map(Value::Array),
                    btree_map(".{0,6}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// A field value: mostly of the right type for some message, sometimes anything.
        fn field() -> impl Strategy<Value = Value> {
            prop_oneof![
                any::<u64>().prop_map(Value::from),
                prop_oneof![Just("r".to_string()), Just("s".to_string()), ".{0,70}"]
                    .prop_map(Value::from),
                (".{0,8}", any::<u64>()).prop_map(
                    |(epoch, offset)| serde_json::json!({"epoch": epoch, "offset": offset})
                ),
                json(),
            ]
        }

        fn client_like() -> impl Strategy<Value = String> {
            let kind = prop_oneof![
                Just("hello".to_string()),
                Just("ping".to_string()),
                Just("join".to_string()),
                Just("leave".to_string()),
                Just("publish".to_string()),
                Just("list_rooms".to_string()),
                ".{0,10}",
            ];
            let keys = ["id", "room", "since", "data", "session", "publisher"];
            let fields = vec(proptest::option::of(field()), keys.len());
            (kind, fields).prop_map(move |(kind, fields)| {
                let mut obj = serde_json::Map::new();
                obj.insert("type".into(), Value::from(kind));
                for (key, value) in keys.iter().zip(fields) {
                    if let Some(value) = value {
                        obj.insert((*key).into(), value);
                    }
                }
                Value::Object(obj).to_string()
            })
        }

        fn frame() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                json().prop_map(|v| v.to_string()),
                client_like(),
                client_like(),
            ]
        }

        /// Everything queued for the connection, decoded; fails on a frame that is not a
        /// well-formed server message or batch.
        fn answers(hub: &Hub, reg: &mut Registration) -> Vec<ServerMsg> {
            let mut out = Vec::new();
            while let Ok(item) = reg.rx.try_recv() {
                for frame in hub.resolve(&reg.peer, item) {
                    let msgs = protocol::decode_server_frame(frame.as_str());
                    out.extend(msgs.unwrap_or_else(|e| panic!("{e}: {}", frame.as_str())));
                }
            }
            out
        }

        proptest! {
            #[test]
            fn every_client_frame_gets_a_well_formed_answer_or_none(frames in vec(frame(), 1..8)) {
                let state = AppState::new(Config::default()).unwrap();
                let hub = state.hub();
                let mut reg = hub.register("fuzz".into());
                for text in &frames {
                    handle_text(text, hub, &reg.peer);
                    let got = answers(hub, &mut reg);
                    match serde_json::from_str::<ClientMsg>(text) {
                        Err(_) => prop_assert!(
                            matches!(
                                got.as_slice(),
                                [ServerMsg::Error {
                                    code: ErrorCode::BadJson | ErrorCode::UnknownType,
                                    ..
                                }]
                            ),
                            "{text:?} got {got:?}"
                        ),
                        Ok(ClientMsg::Ping { id }) => {
                            prop_assert_eq!(got, vec![ServerMsg::Pong { id }]);
                        }
                        Ok(_) => {}
                    }
                }
                hub.disconnect(reg.peer.id);
            }
        }
    }
}
