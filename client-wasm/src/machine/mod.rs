//! The sans-IO core: every behaviour of the client as a deterministic state machine.
//!
//! It has no clock, no randomness of its own and no I/O. A shell (the browser one in `web`, on
//! wasm32, or the native one in `native`) feeds it what happened with [`Machine::handle`] and the
//! user's actions with [`Machine::send`], [`Machine::close`] and [`Machine::reconnect`], wakes
//! it at [`Machine::poll_timeout`] with [`Machine::handle_timeout`], carries out every [`Io`]
//! from [`Machine::poll_io`], in order, and hands every [`Event`] from [`Machine::poll_event`]
//! to the application: I/O commands and events are separate queues.
//!
//! ```
//! use ws_lifeline::machine::{Config, ConnId, Event, Input, Instant, Io, Machine, Target};
//!
//! let mut m = Machine::new(Config::default(), Target::Url("ws://127.0.0.1:9/echo".into()), 7, Instant(0)).unwrap();
//! let Some(Io::Open { conn, url, .. }) = m.poll_io() else { panic!() };
//! assert_eq!(url, "ws://127.0.0.1:9/echo");
//! m.send(Instant(5), "queued until open".into()).unwrap();
//! m.handle(Instant(10), Input::SocketOpened { conn, protocol: String::new() });
//! // The queue goes out with the open, so a send from the open event's listener follows it.
//! assert!(matches!(m.poll_io(), Some(Io::Transmit { .. })));
//! assert_eq!(m.poll_io(), None);
//! let events: Vec<Event> = std::iter::from_fn(|| m.poll_event()).collect();
//! assert_eq!(events.last(), Some(&Event::Open));
//! ```
//!
//! # Protocol layers
//!
//! The shells drive a [`session::Session`], which owns a `Machine` and the layer above it
//! (rooms, acks, recovery) and drives both the same way. It sees
//! every inbound frame as [`Event::Message`], and it may send frames of its own before the
//! queue is flushed: when the machine offers the layer's protocol ([`protocol::SUBPROTOCOL`],
//! see [`Machine::offer_protocol`]), after `poll_event` returns [`Event::Open`], frames given
//! to [`Machine::send_preamble`] go out before any queued message, because the queue is flushed
//! only when `poll_io` is called with no I/O and no event pending. Without a layer the
//! queue is flushed with the open, before the open event, as a `WebSocket` user with a queue
//! would.

#[cfg(feature = "rooms")]
mod client_frame;
mod config;
mod json;
mod pong;
#[cfg(feature = "rooms")]
pub mod rooms;
#[cfg(feature = "rooms")]
mod server_frame;
pub mod session;
#[cfg(feature = "rooms")]
pub(crate) mod sorted_map;
mod types;
mod url;

use std::collections::VecDeque;
use std::time::Duration;

#[cfg(feature = "shared")]
pub use config::Share;
pub use config::{
    Backoff, Config, Heartbeat, HeartbeatMode, PingBuilder, PongMatcher, TerminalRule,
    default_is_pong, default_ping, default_terminal,
};
pub(crate) use json::push_u64;
pub use json::{InvalidJson, RawJson};
pub use types::{CloseInfo, ConnId, Event, Input, Instant, Io, Message, Rtt, State};
pub use url::validate_url;

use crate::{Error, QueueLimit, Result};

/// A deadline checked this much after it was due means the timer was throttled or the page
/// was frozen; the heartbeat then re-checks once before declaring the connection dead.
pub const LATE_TIMER_SLACK: Duration = Duration::from_secs(1);

/// The close reason sent when the heartbeat finds the connection dead.
pub const HEARTBEAT_TIMEOUT_REASON: &str = "heartbeat timeout";

/// The reason of the 1006 close reported when the peer never answered `close()` within
/// [`Config::close_timeout`].
pub const CLOSE_TIMEOUT_REASON: &str = "close timeout";

/// Where the URL of each attempt comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One fixed URL, validated when the machine is created.
    Url(String),
    /// Ask the shell before every attempt with [`Io::ResolveUrl`].
    Provider,
}

/// What [`Machine::send`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sent {
    /// Handed to the socket at once.
    Transmitted,
    /// Held in the outbound queue; it goes out in order once the socket is open and drained.
    Queued,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Resolving,
    Opening,
    Open,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    phase: Phase,
    connect_deadline: Option<Instant>,
    opened_at: Instant,
    /// The user asked to close; waiting for the close event.
    closing: bool,
    /// When the peer's reply to our close is given up on.
    close_deadline: Option<Instant>,
    next_ping: Option<Instant>,
    /// When the oldest ping without any inbound frame since was sent.
    unanswered: Option<Instant>,
    /// When the latest ping without a pong since was sent: the start of the next RTT sample.
    ping_sent: Option<Instant>,
    grace_used: bool,
    /// Bytes handed to the socket and maybe not sent yet: an estimate that only grows between
    /// `BufferedAmount` reports, so it errs on the safe side.
    buffered: u64,
    drain_at: Option<Instant>,
    flush_pending: bool,
    /// A protocol layer's frames for this connection only ([`Machine::send_layer`]): they go
    /// out ahead of the queue and are dropped with the connection.
    layer: VecDeque<Message>,
    /// The pacing token bucket, in thousandths of a frame (see [`Machine::set_limits`]).
    tokens: i64,
    refilled_at: Instant,
    /// Frames handed to the socket on this connection.
    frames: u64,
    /// When the bucket next has a token for a frame that waits for one.
    pace_at: Option<Instant>,
}

/// A server's frame rate, as the token bucket it enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pace {
    /// Thousandths of a frame added per millisecond (= frames per second).
    per_ms: i64,
    /// Thousandths of a frame the bucket holds.
    cap: i64,
}

/// The client's state machine. See the [module docs](self).
#[derive(Debug)]
pub struct Machine {
    config: Config,
    target: Target,
    rng: fastrand::Rng,
    state: State,
    now: Instant,
    io: VecDeque<Io>,
    events: VecDeque<Event>,
    next_conn: u64,
    conn: Option<Conn>,
    /// Failed attempts in a row since the last connection that stayed up `min_uptime`.
    attempt: u32,
    retry_at: Option<Instant>,
    online: bool,
    visible: bool,
    queue: VecDeque<Message>,
    queue_bytes: usize,
    url: Option<String>,
    protocol: String,
    ping_id: u64,
    rtt: Option<Rtt>,
    pace: Option<Pace>,
    max_message: Option<usize>,
}

impl Machine {
    /// Creates a machine that starts its first attempt at once.
    ///
    /// `seed` seeds the backoff jitter; give each client a different one (the browser shell
    /// uses `Math.random`). A fixed [`Target::Url`] is validated here.
    pub fn new(config: Config, target: Target, seed: u64, now: Instant) -> Result<Self> {
        let url = match &target {
            Target::Url(u) => Some(validate_url(u)?),
            Target::Provider => None,
        };
        let mut m = Machine {
            config,
            target,
            rng: fastrand::Rng::with_seed(seed),
            state: State::Connecting,
            now,
            io: VecDeque::new(),
            events: VecDeque::new(),
            next_conn: 0,
            conn: None,
            attempt: 0,
            retry_at: None,
            online: true,
            visible: true,
            queue: VecDeque::new(),
            queue_bytes: 0,
            url,
            protocol: String::new(),
            ping_id: 0,
            rtt: None,
            pace: None,
            max_message: None,
        };
        m.start_attempt(now);
        Ok(m)
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The URL of the current or last attempt (after `http`→`ws` mapping).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The subprotocol the server selected on the last open, empty if none.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The heartbeat's round-trip time, once a pong has answered a ping (kept across
    /// reconnects).
    pub fn rtt(&self) -> Option<Rtt> {
        self.rtt
    }

    /// Adds `protocol` to the subprotocols offered from the next open on (including one not
    /// polled yet), unless offered already. A protocol layer started after the client calls it
    /// for its own protocol, so the server can select it (and the heartbeat in
    /// [`HeartbeatMode::Auto`] can run).
    pub fn offer_protocol(&mut self, protocol: &str) {
        self.config.offer_protocol(protocol);
        // An open the shell has not polled yet has not been carried out: it can still offer it.
        for io in &mut self.io {
            if let Io::Open { protocols, .. } = io
                && !protocols.iter().any(|p| p == protocol)
            {
                protocols.push(protocol.to_owned());
            }
        }
    }

    /// The socket currently opening or open.
    pub fn conn_id(&self) -> Option<ConnId> {
        self.conn.as_ref().map(|c| c.id)
    }

    /// The connection whose inbound frames [`handle`](Self::handle) would only report,
    /// unchanged, as [`Event::Message`]: open, `close()` not called, and no heartbeat on it (no
    /// pong to test, no liveness to note). A shell may then report them itself and skip the
    /// call, which is the JS shell's hot path; `None` when every frame must come in.
    pub fn message_passthrough(&self) -> Option<ConnId> {
        if self.heartbeat().is_some() {
            return None;
        }
        let c = self.conn.as_ref()?;
        (c.phase == Phase::Open && !c.closing).then_some(c.id)
    }

    /// Failed attempts in a row.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Messages waiting in the outbound queue.
    pub fn queued_messages(&self) -> usize {
        self.queue.len()
    }

    /// Bytes waiting in the outbound queue.
    pub fn queued_bytes(&self) -> usize {
        self.queue_bytes
    }

    /// False after an `offline` input until the next `online`.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// The next I/O command for the shell, in order.
    pub fn poll_io(&mut self) -> Option<Io> {
        if self.io.is_empty() && self.events.is_empty() {
            // Deferred until everything emitted with the open (the `Open` event included) has
            // been taken, so a layer above can send its preamble first.
            let now = self.now;
            if let Some(c) = self.conn.as_mut().filter(|c| c.flush_pending) {
                c.flush_pending = false;
                self.flush(now);
            }
        }
        self.io.pop_front()
    }

    /// The next event for the application (or the layer above), in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When the machine wants [`handle_timeout`](Self::handle_timeout) called; `None` means no
    /// timer is needed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.retry_at;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        };
        if let Some(c) = &self.conn {
            consider(c.connect_deadline);
            consider(c.close_deadline);
            consider(c.next_ping);
            consider(c.drain_at);
            consider(c.pace_at);
            if let Some(hb) = self.heartbeat() {
                consider(c.unanswered.map(|u| u + hb.timeout));
            }
        }
        t
    }

    /// Runs everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.start_attempt(now);
            return;
        }
        let Some(c) = self.conn.as_mut() else { return };
        if c.close_deadline.is_some_and(|t| t <= now) {
            // The peer never answered our close: drop the socket and report what a browser
            // reports when the closing handshake times out, 1006.
            let conn = c.id;
            self.abandon(conn, CLOSE_TIMEOUT_REASON);
            self.socket_closed(now, CloseInfo::abnormal(CLOSE_TIMEOUT_REASON));
            return;
        }
        if c.connect_deadline.is_some_and(|t| t <= now) {
            let (id, phase) = (c.id, c.phase);
            self.conn = None;
            if phase == Phase::Opening {
                self.abandon(id, "connect timeout");
            }
            let after_ms =
                u64::try_from(self.config.connect_timeout.as_millis()).unwrap_or(u64::MAX);
            self.emit(Event::Error(Error::ConnectTimeout { after_ms }));
            self.fail_attempt(now);
            return;
        }
        if c.drain_at.is_some_and(|t| t <= now) {
            c.drain_at = None;
            let conn = c.id;
            self.io.push_back(Io::PollBuffered { conn });
        }
        if c.pace_at.is_some_and(|t| t <= now) {
            c.pace_at = None;
            self.flush(now);
        }
        let Some(timeout) = self.heartbeat().map(|h| h.timeout) else {
            return;
        };
        let Some(c) = self.conn.as_mut() else { return };
        if let Some(since) = c.unanswered {
            let deadline = since + timeout;
            if deadline <= now {
                if !c.grace_used && now.since(deadline) > LATE_TIMER_SLACK {
                    // We were asleep: inbound frames may still be waiting behind this timer.
                    c.grace_used = true;
                    c.unanswered = Some(now);
                    self.send_ping(now);
                } else {
                    self.heartbeat_dead(now);
                    return;
                }
            }
        }
        let Some(c) = self.conn.as_mut() else { return };
        if c.next_ping.is_some_and(|t| t <= now) {
            self.send_ping(now);
        }
    }

    /// Feeds one thing that happened in the environment.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.now = now;
        match input {
            Input::UrlResolved { conn, result } => {
                if !self.is_current(conn, |p| p == Phase::Resolving) {
                    return;
                }
                match result
                    .map_err(|message| Error::UrlProvider { message })
                    .and_then(|u| validate_url(&u))
                {
                    Ok(url) => {
                        self.url = Some(url.clone());
                        if let Some(c) = self.conn.as_mut() {
                            c.phase = Phase::Opening;
                        }
                        let protocols = self.config.protocols.clone();
                        self.io.push_back(Io::Open {
                            conn,
                            url,
                            protocols,
                        });
                    }
                    Err(e) => {
                        self.conn = None;
                        self.emit(Event::Error(e));
                        self.fail_attempt(now);
                    }
                }
            }
            Input::OpenFailed { conn, error } => {
                if !self.is_current(conn, |p| p != Phase::Open) {
                    return;
                }
                self.conn = None;
                self.emit(Event::Error(error));
                self.fail_attempt(now);
            }
            Input::SocketOpened { conn, protocol } => {
                if !self.is_current(conn, |p| p == Phase::Opening) {
                    return;
                }
                self.protocol = protocol;
                let interval = self.heartbeat().map(|h| h.interval);
                let full = self.pace.map_or(0, |p| p.cap);
                let layered = self.layered();
                if let Some(c) = self.conn.as_mut() {
                    // The server's bucket starts full on a new connection, and so does ours.
                    c.tokens = full;
                    c.refilled_at = now;
                    c.phase = Phase::Open;
                    c.connect_deadline = None;
                    c.opened_at = now;
                    c.next_ping = interval.map(|i| now + i);
                    c.flush_pending = layered;
                }
                self.set_state(State::Open);
                if !layered {
                    // As a `WebSocket` with a queue in front: the queue goes out before the open
                    // event, so a send from its listener goes to the socket at once, behind it.
                    self.flush(now);
                }
                self.emit(Event::Open);
            }
            Input::SocketMessage { conn, message } => {
                // As a browser's `WebSocket`: nothing more is reported once `close()` was called.
                if !self.is_current(conn, |p| p == Phase::Open)
                    || self.conn.as_ref().is_some_and(|c| c.closing)
                {
                    return;
                }
                if let Some(c) = self.conn.as_mut() {
                    c.unanswered = None;
                    c.grace_used = false;
                }
                let (pong, surface) = match (self.heartbeat(), &message) {
                    (Some(hb), Message::Text(t)) => ((hb.is_pong)(t), hb.surface_pongs),
                    _ => (false, true),
                };
                if pong {
                    self.measure(now);
                }
                if !pong || surface {
                    self.emit(Event::Message(message));
                }
            }
            Input::SocketError { conn } => {
                if !self.is_current(conn, |_| true) {
                    return;
                }
                self.emit(Event::Error(Error::Socket));
                // A failed handshake ends the attempt here, with the 1006 a browser reports
                // after it: some implementations (Node 20's `WebSocket`) report no close.
                if self.is_current(conn, |p| p == Phase::Opening) {
                    self.abandon(conn, "");
                    self.socket_closed(now, CloseInfo::abnormal(""));
                }
            }
            Input::SocketClosed { conn, info } => {
                if self.is_current(conn, |_| true) {
                    self.socket_closed(now, info);
                }
            }
            Input::BufferedAmount { conn, amount } => {
                if !self.is_current(conn, |p| p == Phase::Open) {
                    return;
                }
                if let Some(c) = self.conn.as_mut() {
                    c.buffered = amount;
                }
                self.flush(now);
            }
            Input::Online => {
                if self.online {
                    return;
                }
                self.online = true;
                self.emit(Event::Online);
                if self.state == State::Reconnecting && self.conn.is_none() {
                    self.retry_at = None;
                    self.start_attempt(now);
                }
            }
            Input::Offline => {
                if !self.online {
                    return;
                }
                self.online = false;
                self.emit(Event::Offline);
                self.retry_at = None;
                self.check_liveness(now);
            }
            Input::Visible => {
                self.visible = true;
                self.check_liveness(now);
            }
            Input::Hidden => self.visible = false,
        }
    }

    /// Sends a message, or queues it while the socket is not open or is above the high-water
    /// mark. Queued messages go out in order, before anything sent later.
    ///
    /// A send while the socket is open, also from a listener of its [`Event::Open`], is taken
    /// as a `WebSocket` takes it: never refused for the queue's bounds, which only hold what
    /// waits for a socket or for the socket to drain below the high-water mark.
    ///
    /// Errors: [`Error::Closed`] after `close()` or `GaveUp`; [`Error::QueueFull`] when the
    /// message must wait for a socket or a drain and the queue is at a bound (nothing is
    /// dropped).
    pub fn send(&mut self, now: Instant, message: Message) -> Result<Sent> {
        self.now = now;
        if matches!(self.state, State::Closed | State::Closing) {
            return Err(Error::Closed);
        }
        if let Some(limit) = self.max_message.filter(|&max| message.len() > max) {
            return Err(Error::TooLarge {
                size: message.len(),
                limit,
            });
        }
        let hw = self.config.high_water_mark;
        let direct = self.queue.is_empty()
            && self.conn.as_ref().is_some_and(|c| {
                c.phase == Phase::Open && !c.flush_pending && c.buffered <= hw && c.layer.is_empty()
            })
            && self.has_token(now);
        if direct {
            self.transmit(now, message);
            return Ok(Sent::Transmitted);
        }
        let open = self
            .conn
            .as_ref()
            .is_some_and(|c| c.phase == Phase::Open && !c.closing && c.buffered <= hw);
        if open {
            // Waits only behind the open's preamble, earlier messages or the pace.
            self.queue_bytes += message.len();
            self.queue.push_back(message);
            self.arm_pace(now);
            return Ok(Sent::Queued);
        }
        if self.queue.len() >= self.config.queue_max_messages {
            return Err(Error::QueueFull {
                limit: QueueLimit::Messages(self.config.queue_max_messages),
            });
        }
        if self.queue_bytes.saturating_add(message.len()) > self.config.queue_max_bytes {
            return Err(Error::QueueFull {
                limit: QueueLimit::Bytes(self.config.queue_max_bytes),
            });
        }
        self.queue_bytes += message.len();
        self.queue.push_back(message);
        self.arm_pace(now);
        Ok(Sent::Queued)
    }

    /// The first half of a [`send`](Self::send) that goes out at once, for a shell that hands
    /// the payload to socket `conn` itself: true when `send` would transmit now, on `conn`,
    /// with no command waiting before it. The `len` bytes are then accounted as sent and the
    /// shell sends them; on false nothing changed and the shell calls `send`.
    pub fn send_now(&mut self, now: Instant, conn: ConnId, len: usize) -> bool {
        let hw = self.config.high_water_mark;
        let direct = !matches!(self.state, State::Closed | State::Closing)
            && self.io.is_empty()
            && self.events.is_empty()
            && self.queue.is_empty()
            && self.max_message.is_none_or(|max| len <= max)
            && self.conn.as_ref().is_some_and(|c| {
                c.id == conn
                    && c.phase == Phase::Open
                    && !c.flush_pending
                    && c.buffered <= hw
                    && c.layer.is_empty()
            })
            && self.has_token(now);
        if direct {
            self.now = now;
            self.account(now, len);
        }
        direct
    }

    /// Sends a frame at once, ahead of the queue. Meant for a protocol layer's opening frames
    /// (a `hello`, rejoins): call it right after `poll_event` returned [`Event::Open`] and
    /// the frames precede every queued message.
    ///
    /// Errors: [`Error::NotOpen`] unless the socket is open.
    pub fn send_preamble(&mut self, now: Instant, message: Message) -> Result<()> {
        self.now = now;
        if self.state != State::Open {
            return Err(Error::NotOpen);
        }
        self.transmit(now, message);
        Ok(())
    }

    /// Sends a protocol layer's frame on this connection only: ahead of the queue and of any
    /// message sent later, paced as every frame is (see [`set_limits`](Self::set_limits)), and
    /// dropped if the connection ends first, so it never reaches the next connection before
    /// that connection's preamble.
    ///
    /// Errors: [`Error::NotOpen`] unless the socket is open.
    pub fn send_layer(&mut self, now: Instant, message: Message) -> Result<()> {
        self.now = now;
        let Some(c) = self
            .conn
            .as_mut()
            .filter(|c| c.phase == Phase::Open && !c.closing)
        else {
            return Err(Error::NotOpen);
        };
        c.layer.push_back(message);
        if !c.flush_pending {
            self.flush(now);
        }
        Ok(())
    }

    /// Carries out one output of the rooms layer: a preamble frame with
    /// [`send_preamble`](Self::send_preamble), another frame with
    /// [`send_layer`](Self::send_layer), limits with [`set_limits`](Self::set_limits). Every
    /// shell hands the layer's output over through here.
    ///
    /// Errors: [`Error::NotOpen`] for a frame while the socket is not open (the layer redoes
    /// it on the next connection).
    #[cfg(feature = "rooms")]
    pub fn send_outgoing(&mut self, now: Instant, out: rooms::Outgoing) -> Result<()> {
        match out {
            rooms::Outgoing::Preamble(m) => self.send_preamble(now, m),
            rooms::Outgoing::Send(m) => self.send_layer(now, m),
            rooms::Outgoing::Limits(limits) => {
                self.set_limits(now, limits.as_ref());
                Ok(())
            }
        }
    }

    /// Paces this client to a server's advertised limits, from now on and on every later
    /// connection: at most `rate_burst` frames at once and `rate_per_sec` a second after that
    /// (a token bucket like the server's, full on each open; preamble frames and pings spend
    /// tokens but never wait), and [`send`](Self::send) refuses a message over
    /// `max_message_bytes` with [`Error::TooLarge`]. `None` (a server that advertises no
    /// limits) turns both off. A rate of 0 is taken as no rate limit.
    pub fn set_limits(&mut self, now: Instant, limits: Option<&protocol::Limits>) {
        self.now = now;
        self.max_message = limits.map(|l| l.max_message_bytes as usize);
        self.pace = limits.filter(|l| l.rate_per_sec > 0).map(|l| Pace {
            per_ms: i64::from(l.rate_per_sec),
            cap: i64::from(l.rate_burst.max(1)) * 1000,
        });
        if let (Some(pace), Some(c)) = (self.pace, self.conn.as_mut()) {
            // What this connection sent already came out of the server's bucket.
            c.tokens = pace.cap - i64::try_from(c.frames).unwrap_or(i64::MAX / 2) * 1000;
            c.refilled_at = now;
            c.pace_at = None;
        }
        if self.conn.as_ref().is_some_and(|c| !c.flush_pending) {
            self.flush(now);
        }
    }

    /// The next number of the machine's random generator (seeded at [`new`](Self::new)), for a
    /// layer above that needs randomness, such as the rooms layer's publisher id.
    pub fn random(&mut self) -> u64 {
        self.rng.u64(..)
    }

    /// Closes the connection for good (until [`reconnect`](Self::reconnect)).
    ///
    /// `code` defaults to 1000 and must be 1000 or 3000–4999; `reason` must fit in 123 bytes
    /// of UTF-8 ([MDN](https://developer.mozilla.org/en-US/docs/Web/API/WebSocket/close)).
    /// Both are checked before anything happens. Closing an already closed client is a no-op.
    /// Queued messages stay queued and go out after a later `reconnect()`.
    pub fn close(&mut self, now: Instant, code: Option<u16>, reason: Option<&str>) -> Result<()> {
        self.now = now;
        let (code, reason) = check_close(code, reason)?;
        if matches!(self.state, State::Closed | State::Closing) {
            return Ok(());
        }
        self.retry_at = None;
        self.attempt = 0;
        match self.conn.as_mut() {
            Some(c) if c.phase == Phase::Open => {
                c.closing = true;
                c.close_deadline = Some(now + self.config.close_timeout);
                c.next_ping = None;
                c.unanswered = None;
                c.drain_at = None;
                c.flush_pending = false;
                let conn = c.id;
                self.io.push_back(Io::Close { conn, code, reason });
                self.set_state(State::Closing);
            }
            Some(c) => {
                let conn = c.id;
                if c.phase == Phase::Opening {
                    self.io.push_back(Io::Abandon { conn, code, reason });
                }
                self.conn = None;
                self.set_state(State::Closed);
            }
            None => self.set_state(State::Closed),
        }
        Ok(())
    }

    /// Connects again now: from `Closed` (after close, a terminal code or `GaveUp`), while
    /// waiting for a retry (skipping the wait), or while open (replacing the socket). The
    /// attempt counter starts over. A no-op while an attempt is in flight.
    pub fn reconnect(&mut self, now: Instant) {
        self.now = now;
        if self.state == State::Connecting {
            return;
        }
        if let Some(c) = self.conn.take()
            && c.phase == Phase::Open
            && !c.closing
        {
            let reason = "reconnect";
            self.abandon(c.id, reason);
            self.emit(Event::Close(CloseInfo {
                code: protocol::close::NORMAL,
                reason: reason.into(),
                was_clean: false,
            }));
        }
        self.retry_at = None;
        self.attempt = 0;
        self.start_attempt(now);
    }

    fn is_current(&self, conn: ConnId, phase: impl Fn(Phase) -> bool) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| c.id == conn && phase(c.phase))
    }

    fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    fn set_state(&mut self, state: State) {
        if self.state != state {
            self.state = state;
            self.emit(Event::StateChange(state));
        }
    }

    fn start_attempt(&mut self, now: Instant) {
        self.next_conn += 1;
        let id = ConnId(self.next_conn);
        let phase = match self.target {
            Target::Url(_) => Phase::Opening,
            Target::Provider => Phase::Resolving,
        };
        self.conn = Some(Conn {
            id,
            phase,
            connect_deadline: Some(now + self.config.connect_timeout),
            opened_at: now,
            closing: false,
            close_deadline: None,
            next_ping: None,
            unanswered: None,
            ping_sent: None,
            grace_used: false,
            buffered: 0,
            drain_at: None,
            flush_pending: false,
            layer: VecDeque::new(),
            tokens: 0,
            refilled_at: now,
            frames: 0,
            pace_at: None,
        });
        self.set_state(State::Connecting);
        match (phase, &self.url) {
            (Phase::Opening, Some(url)) => {
                let (url, protocols) = (url.clone(), self.config.protocols.clone());
                self.io.push_back(Io::Open {
                    conn: id,
                    url,
                    protocols,
                });
            }
            _ => self.io.push_back(Io::ResolveUrl { conn: id }),
        }
    }

    /// Drops socket `conn` at once (1000 and `reason`, if the platform wants a code).
    fn abandon(&mut self, conn: ConnId, reason: &str) {
        self.io.push_back(Io::Abandon {
            conn,
            code: protocol::close::NORMAL,
            reason: reason.into(),
        });
    }

    /// The current socket is gone with `info`: reported, then closed for good or retried.
    fn socket_closed(&mut self, now: Instant, info: CloseInfo) {
        let Some(c) = self.conn.take() else { return };
        let code = info.code;
        self.emit(Event::Close(info));
        if c.closing || (self.config.terminal_close)(code) {
            self.attempt = 0;
            self.set_state(State::Closed);
            return;
        }
        if c.phase == Phase::Open && now.since(c.opened_at) >= self.config.min_uptime {
            self.attempt = 0;
        }
        self.fail_attempt(now);
    }

    /// The current attempt failed or the connection was lost: wait, retry or give up.
    fn fail_attempt(&mut self, now: Instant) {
        self.conn = None;
        self.attempt = self.attempt.saturating_add(1);
        if self
            .config
            .backoff
            .max_attempts
            .is_some_and(|max| self.attempt > max)
        {
            self.attempt = 0;
            self.set_state(State::Closed);
            self.emit(Event::GaveUp);
            return;
        }
        self.set_state(State::Reconnecting);
        if !self.online {
            // Retried at once by the `online` input.
            return;
        }
        let delay = self.delay(self.attempt);
        self.retry_at = Some(now + delay);
        self.emit(Event::Reconnecting {
            attempt: self.attempt,
            delay,
        });
    }

    /// Full jitter above the floor: uniform in `[min, ceiling(attempt)]`.
    fn delay(&mut self, attempt: u32) -> Duration {
        let b = &self.config.backoff;
        let lo = u64::try_from(b.min.as_millis()).unwrap_or(u64::MAX);
        let hi = u64::try_from(b.ceiling(attempt).as_millis())
            .unwrap_or(u64::MAX)
            .max(lo);
        Duration::from_millis(self.rng.u64(lo..=hi))
    }

    fn transmit(&mut self, now: Instant, message: Message) {
        if let Some(conn) = self.account(now, message.len()) {
            self.io.push_back(Io::Transmit { conn, message });
        }
    }

    /// Refills the bucket up to `now`; true when a paced frame may go out.
    fn has_token(&mut self, now: Instant) -> bool {
        let (Some(pace), Some(c)) = (self.pace, self.conn.as_mut()) else {
            return true;
        };
        let elapsed = i64::try_from(now.0.saturating_sub(c.refilled_at.0)).unwrap_or(i64::MAX);
        c.tokens = c
            .tokens
            .saturating_add(elapsed.saturating_mul(pace.per_ms))
            .min(pace.cap);
        c.refilled_at = now;
        c.tokens >= 1000
    }

    /// Counts `len` bytes into the socket's buffer estimate and the frame out of the bucket;
    /// the connection they go out on.
    fn account(&mut self, now: Instant, len: usize) -> Option<ConnId> {
        let paced = self.pace.is_some();
        let c = self.conn.as_mut()?;
        c.frames += 1;
        if paced {
            c.tokens -= 1000;
        }
        c.buffered = c.buffered.saturating_add(len as u64);
        if c.buffered > self.config.high_water_mark && c.drain_at.is_none() {
            c.drain_at = Some(now + self.config.drain_poll);
        }
        Some(c.id)
    }

    /// Moves the layer's frames, then queued messages, to the socket while the bucket has
    /// tokens; queued messages also wait for the socket to drain below the high-water mark
    /// (the layer's frames never did).
    fn flush(&mut self, now: Instant) {
        let hw = self.config.high_water_mark;
        while self
            .conn
            .as_ref()
            .is_some_and(|c| c.phase == Phase::Open && !c.closing)
            && self.has_token(now)
        {
            let Some(c) = self.conn.as_mut() else { break };
            if let Some(m) = c.layer.pop_front() {
                self.transmit(now, m);
                continue;
            }
            if c.buffered > hw {
                break;
            }
            let Some(m) = self.queue.pop_front() else {
                break;
            };
            self.queue_bytes -= m.len();
            self.transmit(now, m);
        }
        self.arm_pace(now);
        let drain_poll = self.config.drain_poll;
        if let Some(c) = self
            .conn
            .as_mut()
            .filter(|c| c.phase == Phase::Open && !c.closing)
            && c.buffered > hw
            && c.drain_at.is_none()
        {
            c.drain_at = Some(now + drain_poll);
        }
    }

    /// Sets the pacing timer for when the bucket has a token again, if frames wait for one.
    fn arm_pace(&mut self, now: Instant) {
        let pending = !self.queue.is_empty();
        if let (Some(pace), Some(c)) = (self.pace, self.conn.as_mut())
            && c.phase == Phase::Open
            && !c.closing
            && (pending || !c.layer.is_empty())
            && c.tokens < 1000
            && c.pace_at.is_none()
        {
            // Ceiling division: the first millisecond at which a whole token is back.
            let wait = (1000 - c.tokens + pace.per_ms - 1) / pace.per_ms;
            c.pace_at = Some(Instant(now.0.saturating_add(wait.max(1) as u64)));
        }
    }

    /// Whether a protocol layer runs above (it offers [`protocol::SUBPROTOCOL`]): its preamble,
    /// said once the open event has been taken, must precede the queue, whose flush then
    /// waits for it (see [`poll_io`](Self::poll_io)).
    fn layered(&self) -> bool {
        self.config
            .protocols
            .iter()
            .any(|p| p == protocol::SUBPROTOCOL)
    }

    /// The heartbeat, if it runs on this connection (see [`HeartbeatMode`]).
    fn heartbeat(&self) -> Option<&Heartbeat> {
        self.config.heartbeat.as_ref().filter(|hb| match hb.mode {
            HeartbeatMode::On => true,
            HeartbeatMode::Auto => self.protocol == protocol::SUBPROTOCOL,
        })
    }

    fn send_ping(&mut self, now: Instant) {
        let id = self.ping_id + 1;
        let Some(hb) = self.heartbeat() else {
            return;
        };
        let (ping, interval) = ((hb.ping)(id), hb.interval);
        self.ping_id = id;
        if let Some(c) = self.conn.as_mut() {
            c.next_ping = Some(now + interval);
            c.unanswered.get_or_insert(now);
            c.ping_sent = Some(now);
        }
        self.transmit(now, ping);
    }

    /// A pong arrived: one RTT sample from the latest ping, if it was not answered yet.
    fn measure(&mut self, now: Instant) {
        let Some(sent) = self.conn.as_mut().and_then(|c| c.ping_sent.take()) else {
            return;
        };
        let last = now.since(sent);
        let smoothed = match self.rtt {
            // In whole ms, with the sign kept: α = 1/8.
            Some(rtt) => {
                let (s, l) = (rtt.smoothed.as_millis() as i64, last.as_millis() as i64);
                Duration::from_millis((s + (l - s) / 8).max(0) as u64)
            }
            None => last,
        };
        self.rtt = Some(Rtt { last, smoothed });
        self.emit(Event::Pong { rtt: last });
    }

    /// After a wake-up, visibility or network change: ping now and expect an answer within
    /// the timeout, unless an earlier deadline is still ahead.
    fn check_liveness(&mut self, now: Instant) {
        let Some(timeout) = self.heartbeat().map(|h| h.timeout) else {
            return;
        };
        let Some(c) = self
            .conn
            .as_mut()
            .filter(|c| c.phase == Phase::Open && !c.closing)
        else {
            return;
        };
        if c.unanswered.is_some_and(|u| u + timeout <= now) {
            c.unanswered = None;
        }
        c.grace_used = true;
        self.send_ping(now);
    }

    fn heartbeat_dead(&mut self, now: Instant) {
        let Some(c) = self.conn.take() else { return };
        let code = protocol::close::HEARTBEAT_TIMEOUT;
        let reason = HEARTBEAT_TIMEOUT_REASON.to_owned();
        self.io.push_back(Io::Abandon {
            conn: c.id,
            code,
            reason: reason.clone(),
        });
        self.emit(Event::Close(CloseInfo {
            code,
            reason,
            was_clean: false,
        }));
        if now.since(c.opened_at) >= self.config.min_uptime {
            self.attempt = 0;
        }
        self.fail_attempt(now);
    }
}

/// Applies the browser's rules for `close()`; returns the code and reason to send.
pub fn check_close(code: Option<u16>, reason: Option<&str>) -> Result<(u16, String)> {
    let code = code.unwrap_or(protocol::close::NORMAL);
    if code != protocol::close::NORMAL && !(3000..=4999).contains(&code) {
        return Err(Error::InvalidCloseCode { code });
    }
    let reason = reason.unwrap_or_default();
    if reason.len() > 123 {
        return Err(Error::CloseReasonTooLong {
            bytes: reason.len(),
        });
    }
    Ok((code, reason.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code panics by design
mod send_now_tests {
    use super::*;

    fn connected(config: Config) -> (Machine, ConnId) {
        let mut m = Machine::new(
            config,
            Target::Url("ws://127.0.0.1:1/".into()),
            1,
            Instant(0),
        )
        .unwrap();
        let conn = std::iter::from_fn(|| m.poll_io())
            .find_map(|c| match c {
                Io::Open { conn, .. } => Some(conn),
                _ => None,
            })
            .unwrap();
        m.handle(
            Instant(0),
            Input::SocketOpened {
                conn,
                protocol: String::new(),
            },
        );
        (m, conn)
    }

    #[test]
    fn send_now_only_when_send_would_transmit_at_once() {
        let config = Config::default()
            .no_heartbeat()
            .high_water_mark(10)
            .drain_poll(Duration::from_millis(50));
        let (mut m, conn) = connected(config);
        // The open's events (and the deferred flush) are still waiting: not now.
        assert!(!m.send_now(Instant(0), conn, 1));
        while m.poll_io().is_some() || m.poll_event().is_some() {}
        assert!(
            !m.send_now(Instant(0), ConnId(conn.0 + 1), 1),
            "another socket"
        );
        // As `send`: 11 bytes go out (estimate 11 > 10), then nothing more at once.
        assert!(m.send_now(Instant(0), conn, 11));
        assert_eq!(m.poll_io(), None, "the shell sends the bytes itself");
        assert_eq!(
            m.poll_timeout(),
            Some(Instant(50)),
            "drain poll armed as by send"
        );
        assert!(!m.send_now(Instant(1), conn, 1));
        assert_eq!(
            m.send(Instant(1), Message::Text("b".into())),
            Ok(Sent::Queued)
        );
        m.handle(Instant(2), Input::BufferedAmount { conn, amount: 0 });
        // "b" waits in the queue or as a command: still not now.
        assert!(!m.send_now(Instant(2), conn, 1));
        while m.poll_io().is_some() || m.poll_event().is_some() {}
        assert!(m.send_now(Instant(2), conn, 1));
        m.close(Instant(3), None, None).unwrap();
        assert!(!m.send_now(Instant(3), conn, 1), "closing");
    }
}
