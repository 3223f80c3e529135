//! The crate's error type.

use std::fmt;

/// Everything that can go wrong, as a value: no panics, no raw JS exceptions.
///
/// Variants carry the input that was refused, so a test can `assert_eq!` on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a usable WebSocket URL. `ws:` and `wss:` are accepted; `http:` and
    /// `https:` are mapped to `ws:` and `wss:` (as browsers have done since 2023, see
    /// [the WebSocket standard](https://websockets.spec.whatwg.org/#dom-websocket-websocket));
    /// everything else is rejected.
    #[error("invalid WebSocket URL \"{supplied}\": {reason}")]
    InvalidUrl {
        /// The URL as supplied.
        supplied: String,
        /// Why it was refused.
        reason: String,
    },
    /// A close code the browser would refuse: only 1000 and 3000–4999 may be sent by a page
    /// ([MDN](https://developer.mozilla.org/en-US/docs/Web/API/WebSocket/close)).
    #[error("invalid close code {code}: use 1000 or 3000-4999")]
    InvalidCloseCode {
        /// The code supplied.
        code: u16,
    },
    /// A close reason longer than the 123 bytes of UTF-8 a close frame can carry
    /// ([RFC 6455 §5.5](https://www.rfc-editor.org/rfc/rfc6455#section-5.5)).
    #[error("close reason is {bytes} bytes of UTF-8; at most 123 are allowed")]
    CloseReasonTooLong {
        /// The length of the supplied reason in bytes.
        bytes: usize,
    },
    /// The outbound queue cannot take the message; nothing was queued or dropped.
    #[error("outbound queue full: {limit}")]
    QueueFull {
        /// The limit that would have been exceeded.
        limit: QueueLimit,
    },
    /// The client was closed by the user, gave up, or was dropped; call `reconnect()` first.
    #[error("the client is closed")]
    Closed,
    /// The operation needs an open socket (for example `send_preamble`).
    #[error("the socket is not open")]
    NotOpen,
    /// A value could not be serialized to JSON.
    #[error("could not encode message as JSON: {message}")]
    Encode {
        /// The serializer's message.
        message: String,
    },
    /// The socket reported an error. Browsers hide the cause on purpose
    /// ([MDN](https://developer.mozilla.org/en-US/docs/Web/API/WebSocket/error_event)); a
    /// `Close` event always follows.
    #[error("the WebSocket reported an error")]
    Socket,
    /// The socket did not open within the connect timeout.
    #[error("the connection did not open within {after_ms} ms")]
    ConnectTimeout {
        /// The timeout that elapsed, in milliseconds.
        after_ms: u64,
    },
    /// The URL provider failed; the attempt counts as failed and is retried.
    #[error("the URL provider failed: {message}")]
    UrlProvider {
        /// The provider's error, as text.
        message: String,
    },
    /// The platform raised an exception (in the browser: a JS exception, converted in one place).
    #[error("platform error: {message}")]
    Platform {
        /// The exception's name and message.
        message: String,
    },
}

/// Which bound of the outbound queue a message would have broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueLimit {
    /// The queue already holds this many messages.
    Messages(usize),
    /// The message would take the queue past this many bytes.
    Bytes(usize),
}

impl fmt::Display for QueueLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueLimit::Messages(n) => write!(f, "at most {n} messages"),
            QueueLimit::Bytes(n) => write!(f, "at most {n} bytes"),
        }
    }
}

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
