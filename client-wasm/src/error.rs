//! The crate's error type.

use std::fmt;

use crate::machine::push_u64;

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
    InvalidUrl {
        /// The URL as supplied.
        supplied: String,
        /// Why it was refused.
        reason: String,
    },
    /// A close code the browser would refuse: only 1000 and 3000–4999 may be sent by a page
    /// ([MDN](https://developer.mozilla.org/en-US/docs/Web/API/WebSocket/close)).
    InvalidCloseCode {
        /// The code supplied.
        code: u16,
    },
    /// A close reason longer than the 123 bytes of UTF-8 a close frame can carry
    /// ([RFC 6455 §5.5](https://www.rfc-editor.org/rfc/rfc6455#section-5.5)).
    CloseReasonTooLong {
        /// The length of the supplied reason in bytes.
        bytes: usize,
    },
    /// The outbound queue cannot take the message; nothing was queued or dropped.
    QueueFull {
        /// The limit that would have been exceeded.
        limit: QueueLimit,
    },
    /// The message is larger than the server's advertised `max_message_bytes` (a server closes
    /// the connection with 1009 on such a frame); nothing was sent or queued.
    TooLarge {
        /// The message's size in bytes.
        size: usize,
        /// The server's limit in bytes.
        limit: usize,
    },
    /// The client was closed by the user, gave up, or was dropped; call `reconnect()` first.
    Closed,
    /// The operation needs an open socket (for example `send_preamble`).
    NotOpen,
    /// A value could not be serialized to JSON.
    Encode {
        /// The serializer's message.
        message: String,
    },
    /// The socket reported an error. Browsers hide the cause on purpose
    /// ([MDN](https://developer.mozilla.org/en-US/docs/Web/API/WebSocket/error_event)); a
    /// `Close` event always follows.
    Socket,
    /// The socket did not open within the connect timeout.
    ConnectTimeout {
        /// The timeout that elapsed, in milliseconds.
        after_ms: u64,
    },
    /// The URL provider failed; the attempt counts as failed and is retried.
    UrlProvider {
        /// The provider's error, as text.
        message: String,
    },
    /// The platform raised an exception (in the browser: a JS exception, converted in one place).
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
        let mut text = String::new();
        self.write_to(&mut text);
        f.write_str(&text)
    }
}

impl QueueLimit {
    fn write_to(&self, out: &mut String) {
        let (n, unit) = match self {
            QueueLimit::Messages(n) => (n, " messages"),
            QueueLimit::Bytes(n) => (n, " bytes"),
        };
        out.push_str("at most ");
        push_u64(out, *n as u64);
        out.push_str(unit);
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl Error {
    /// The message `Display` writes. Built by hand rather than with thiserror's `#[error]`:
    /// `#[error]` on this enum and [`RoomError`](crate::machine::rooms::RoomError) (and
    /// `write!` for [`QueueLimit`]) made the npm package 1,637 B gzip larger (38,779 ->
    /// 40,416 B, `cargo xtask package`), as it brings in `core::fmt`.
    pub(crate) fn message(&self) -> String {
        let mut out = String::new();
        match self {
            Error::InvalidUrl { supplied, reason } => {
                out.push_str("invalid WebSocket URL \"");
                out.push_str(supplied);
                out.push_str("\": ");
                out.push_str(reason);
            }
            Error::InvalidCloseCode { code } => {
                out.push_str("invalid close code ");
                push_u64(&mut out, u64::from(*code));
                out.push_str(": use 1000 or 3000-4999");
            }
            Error::CloseReasonTooLong { bytes } => {
                out.push_str("close reason is ");
                push_u64(&mut out, *bytes as u64);
                out.push_str(" bytes of UTF-8; at most 123 are allowed");
            }
            Error::QueueFull { limit } => {
                out.push_str("outbound queue full: ");
                limit.write_to(&mut out);
            }
            Error::TooLarge { size, limit } => too_large(&mut out, *size, Some(*limit)),
            Error::Closed => out.push_str("the client is closed"),
            Error::NotOpen => out.push_str("the socket is not open"),
            Error::Encode { message } => {
                out.push_str("could not encode message as JSON: ");
                out.push_str(message);
            }
            Error::Socket => out.push_str("the WebSocket reported an error"),
            Error::ConnectTimeout { after_ms } => {
                out.push_str("the connection did not open within ");
                push_u64(&mut out, *after_ms);
                out.push_str(" ms");
            }
            Error::UrlProvider { message } => {
                out.push_str("the URL provider failed: ");
                out.push_str(message);
            }
            Error::Platform { message } => {
                out.push_str("platform error: ");
                out.push_str(message);
            }
        }
        out
    }
}

impl Error {
    /// The error for an exception the browser threw, from its `name` (empty when it was not an
    /// `Error`) and message. `SyntaxError` from the `WebSocket` constructor (`url` given) means
    /// a bad URL. Both browser shells (`web`, and `index.js` through `js`) convert here.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn from_exception(name: &str, message: String, url: Option<&str>) -> Error {
        match url {
            Some(url) if name == "SyntaxError" => Error::InvalidUrl {
                supplied: url.to_owned(),
                reason: message,
            },
            _ if name.is_empty() => Error::Platform { message },
            _ => {
                let mut text = name.to_owned();
                text.push_str(": ");
                text.push_str(&message);
                Error::Platform { message: text }
            }
        }
    }
}

/// The text of a `TooLarge` error, shared with the rooms layer's.
pub(crate) fn too_large(out: &mut String, size: usize, limit: Option<usize>) {
    out.push_str("the message is ");
    push_u64(out, size as u64);
    out.push_str(" bytes, over the server's limit");
    if let Some(limit) = limit {
        out.push_str(" of ");
        push_u64(out, limit as u64);
        out.push_str(" bytes");
    }
}

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::{Error, QueueLimit};

    /// The messages are written by hand (no `core::fmt`); these are their exact texts.
    #[test]
    fn every_message_reads_as_documented() {
        let cases = [
            (
                Error::InvalidUrl {
                    supplied: "ftp://x".into(),
                    reason: "the scheme must be ws, wss, http or https".into(),
                },
                "invalid WebSocket URL \"ftp://x\": the scheme must be ws, wss, http or https",
            ),
            (
                Error::InvalidCloseCode { code: 1001 },
                "invalid close code 1001: use 1000 or 3000-4999",
            ),
            (
                Error::CloseReasonTooLong { bytes: 124 },
                "close reason is 124 bytes of UTF-8; at most 123 are allowed",
            ),
            (
                Error::QueueFull {
                    limit: QueueLimit::Messages(0),
                },
                "outbound queue full: at most 0 messages",
            ),
            (
                Error::QueueFull {
                    limit: QueueLimit::Bytes(4_294_967_295),
                },
                "outbound queue full: at most 4294967295 bytes",
            ),
            (
                Error::TooLarge {
                    size: 2048,
                    limit: 1024,
                },
                "the message is 2048 bytes, over the server's limit of 1024 bytes",
            ),
            (Error::Closed, "the client is closed"),
            (Error::NotOpen, "the socket is not open"),
            (
                Error::Encode {
                    message: "key must be a string".into(),
                },
                "could not encode message as JSON: key must be a string",
            ),
            (Error::Socket, "the WebSocket reported an error"),
            (
                Error::ConnectTimeout { after_ms: 10_000 },
                "the connection did not open within 10000 ms",
            ),
            (
                Error::UrlProvider {
                    message: "TypeError: no ticket".into(),
                },
                "the URL provider failed: TypeError: no ticket",
            ),
            (
                Error::Platform {
                    message: "SecurityError: blocked".into(),
                },
                "platform error: SecurityError: blocked",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
            assert_eq!(error.message(), text);
        }
        assert_eq!(QueueLimit::Bytes(7).to_string(), "at most 7 bytes");
    }
}
