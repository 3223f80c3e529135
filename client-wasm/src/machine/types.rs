//! Values that flow in and out of the [`Machine`](super::Machine).

use std::time::Duration;

use crate::Error;

/// A point in time, in whole milliseconds from an origin the shell chooses (in the browser:
/// [`performance.now()`](https://developer.mozilla.org/en-US/docs/Web/API/Performance/now)).
///
/// The machine never reads a clock; every call takes `now` from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

impl Instant {
    /// Milliseconds since the origin.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;

    /// Saturating: a huge duration gives the far future, not a panic.
    fn add(self, d: Duration) -> Instant {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }
}

/// Identifies one socket. Every attempt gets a fresh id, so events from an old socket that
/// arrive late are recognised and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// A WebSocket message: a text frame or a binary frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// A text frame.
    Text(String),
    /// A binary frame (an `ArrayBuffer` in the browser).
    Binary(Vec<u8>),
}

impl Message {
    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(s) => s.len(),
            Message::Binary(b) => b.len(),
        }
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text of a text frame.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(s) => Some(s),
            Message::Binary(_) => None,
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s)
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b)
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Self {
        Message::Binary(b.to_vec())
    }
}

/// The client's connection state, as reported by `state()` and [`Event::StateChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// An attempt is in flight: the URL is being resolved or the socket is opening.
    Connecting,
    /// The socket is open.
    Open,
    /// The user asked to close; waiting for the socket to finish closing.
    Closing,
    /// Closed for good: by the user, by a terminal close code, or after giving up.
    /// `reconnect()` starts again.
    Closed,
    /// Waiting before the next attempt (backoff), or waiting for the browser to come online.
    Reconnecting,
}

/// The heartbeat's round-trip time: from a ping's send to the pong after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rtt {
    /// The latest sample.
    pub last: Duration,
    /// Smoothed as TCP's SRTT ([RFC 6298](https://www.rfc-editor.org/rfc/rfc6298)):
    /// `smoothed += (last - smoothed) / 8`, starting at the first sample.
    pub smoothed: Duration,
}

/// How a socket closed ([`CloseEvent`](https://developer.mozilla.org/en-US/docs/Web/API/CloseEvent)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CloseInfo {
    /// The close code ([RFC 6455 §7.4](https://www.rfc-editor.org/rfc/rfc6455#section-7.4)).
    /// 1006 means the connection was lost without a close frame.
    pub code: u16,
    /// The close reason, possibly empty.
    pub reason: String,
    /// True when the closing handshake completed.
    pub was_clean: bool,
}

impl CloseInfo {
    /// A connection lost without a close frame (or without a close event): 1006, not clean
    /// ([RFC 6455 §7.1.5](https://www.rfc-editor.org/rfc/rfc6455#section-7.1.5)).
    pub fn abnormal(reason: impl Into<String>) -> Self {
        CloseInfo {
            code: 1006,
            reason: reason.into(),
            was_clean: false,
        }
    }

    /// The peer's close frame, which completed the handshake: its code and reason, or 1005
    /// for a frame without a status code.
    pub fn clean(frame: Option<(u16, String)>) -> Self {
        let (code, reason) = frame.unwrap_or((1005, String::new()));
        CloseInfo {
            code,
            reason,
            was_clean: true,
        }
    }
}

/// What the client reports to the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The socket opened. In the sans-IO core, frames passed to
    /// [`Machine::send_preamble`](super::Machine::send_preamble) right after this event is polled
    /// go out before the queued messages are flushed (when a protocol layer is offered).
    Open,
    /// A message arrived (heartbeat pongs are not reported unless configured).
    Message(Message),
    /// Something went wrong; the client keeps going unless a `Close`/`GaveUp` says otherwise.
    Error(Error),
    /// A socket closed (by the server, the network, the user, or the heartbeat).
    Close(CloseInfo),
    /// The next attempt starts after `delay`.
    Reconnecting {
        /// 1 for the first retry after a connection was lost, counting up while attempts fail.
        attempt: u32,
        /// The (jittered) wait before the attempt.
        delay: Duration,
    },
    /// The maximum number of attempts failed; the client is now `Closed`.
    GaveUp,
    /// The state changed to the given one.
    StateChange(State),
    /// The browser went offline; retries stop until it is online again.
    Offline,
    /// The browser came back online; a waiting retry starts at once.
    Online,
    /// A heartbeat pong arrived; `rtt` is the round trip it measured (see
    /// [`Machine::rtt`](super::Machine::rtt)).
    Pong {
        /// From the ping's send to this pong.
        rtt: Duration,
    },
}

/// What the shell must do, from [`Machine::poll_io`](super::Machine::poll_io) (and
/// [`Session::poll_io`](super::session::Session::poll_io)): the one I/O command type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Io {
    /// Run the URL provider and answer with [`Input::UrlResolved`] for `conn`.
    ResolveUrl {
        /// The attempt the URL is for.
        conn: ConnId,
    },
    /// Open a socket, dropping any other; answer with `Socket*` inputs (or
    /// [`Input::OpenFailed`]) for `conn`.
    Open {
        /// The id to tag this socket's events with.
        conn: ConnId,
        /// A validated `ws:`/`wss:` URL.
        url: String,
        /// Subprotocols to offer (`Sec-WebSocket-Protocol`).
        protocols: Vec<String>,
    },
    /// Send a frame on socket `conn`, if it is still the socket.
    Transmit {
        /// The socket.
        conn: ConnId,
        /// The frame.
        message: Message,
    },
    /// Close socket `conn` (the user's `close()`); its events still count.
    Close {
        /// The socket.
        conn: ConnId,
        /// A code the browser accepts (1000 or 3000–4999).
        code: u16,
        /// At most 123 bytes of UTF-8.
        reason: String,
    },
    /// Close socket `conn` and drop it now: the machine has moved on from it (heartbeat or
    /// connect timeout, reconnect, `close()` while opening), and a half-open peer would never
    /// answer.
    Abandon {
        /// The socket.
        conn: ConnId,
        /// As in `Close`.
        code: u16,
        /// As in `Close`.
        reason: String,
    },
    /// Report the socket's `bufferedAmount` with [`Input::BufferedAmount`].
    PollBuffered {
        /// The socket.
        conn: ConnId,
    },
}

/// What happened in the environment, fed to [`Machine::handle`](super::Machine::handle).
///
/// User actions (send, close, reconnect) are methods on the machine instead, because they
/// return a result to the caller.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Input {
    /// The URL provider finished for attempt `conn`.
    UrlResolved {
        /// The attempt.
        conn: ConnId,
        /// The URL, or the provider's error as text.
        result: Result<String, String>,
    },
    /// The socket could not even be created (for example the constructor threw).
    OpenFailed {
        /// The socket.
        conn: ConnId,
        /// Why.
        error: Error,
    },
    /// The socket's `open` event.
    SocketOpened {
        /// The socket.
        conn: ConnId,
        /// The subprotocol the server selected, empty if none.
        protocol: String,
    },
    /// The socket's `message` event.
    SocketMessage {
        /// The socket.
        conn: ConnId,
        /// The frame.
        message: Message,
    },
    /// The socket's `error` event.
    SocketError {
        /// The socket.
        conn: ConnId,
    },
    /// The socket's `close` event.
    SocketClosed {
        /// The socket.
        conn: ConnId,
        /// How it closed.
        info: CloseInfo,
    },
    /// The socket's current `bufferedAmount`, answering [`Io::PollBuffered`] (or sent
    /// unasked after a transmit).
    BufferedAmount {
        /// The socket.
        conn: ConnId,
        /// Bytes queued by the platform but not yet sent.
        amount: u64,
    },
    /// The browser's `online` event.
    Online,
    /// The browser's `offline` event.
    Offline,
    /// The page became visible (`visibilitychange`).
    Visible,
    /// The page became hidden.
    Hidden,
}
