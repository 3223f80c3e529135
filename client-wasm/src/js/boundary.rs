//! The numbers that cross between the wasm (`src/js.rs`) and the JS shell (`js/index.js`),
//! written once. `cargo xtask package` generates `js/boundary.gen.js` from this file
//! (`xtask/src/npm/boundary_js.rs` reads the `numbered!` and `page_events!` tables below), and
//! `cargo test -p xtask` fails when the committed file is stale.
//!
//! In JS each variant is a constant named after its enum and itself (`Input::Text` is
//! `INPUT_TEXT`), and `<ENUM>_NAMES` lists the variants' names in lowerCamelCase by number
//! (`STATE_NAMES[1]` is `"open"`). Events also have `EVENT_FIELDS`: each kind's field names,
//! in the order [`PageEvent::emit`] hands over their values.

use wasm_bindgen::JsValue;

use super::Shell;

/// Declares fieldless `#[repr(u32)]` enums numbered from 0, each with `from_u32`.
macro_rules! numbered {
    ($($(#[doc = $doc:literal])* enum $name:ident {
        $($(#[doc = $variant_doc:literal])* $variant:ident,)*
    })*) => {$(
        $(#[doc = $doc])*
        #[repr(u32)]
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub(super) enum $name {
            $($(#[doc = $variant_doc])* $variant,)*
        }

        // Not every table is read back from a number in Rust.
        #[allow(dead_code)]
        impl $name {
            pub(super) fn from_u32(number: u32) -> Option<Self> {
                // Compiles to one range check, with no table in the wasm's data.
                match number {
                    $(n if n == Self::$variant as u32 => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    )*};
}

numbered! {
    /// What happened in the browser: `machine.__input(shell, input, conn, a, b, c)`.
    enum Input {
        /// The socket's `open`; `a` is the selected subprotocol.
        Opened,
        /// A text frame `a`.
        Text,
        /// A binary frame, `a` an `ArrayBuffer`.
        Bytes,
        /// The socket's `error`.
        Error,
        /// The socket's `close`: code `a`, reason `b`, `wasClean` `c`.
        Closed,
        /// The URL provider resolved with `a`.
        UrlResolved,
        /// The URL provider failed; `a` says why.
        UrlFailed,
        /// `new WebSocket(a)` threw an exception named `b` with message `c`.
        OpenFailed,
        /// `send` threw an exception named `b` with message `c`.
        SendFailed,
        /// The window's `online`.
        Online,
        /// The window's `offline`.
        Offline,
        /// The document became visible.
        Visible,
        /// The document became hidden.
        Hidden,
        /// The timer went off.
        Timer,
        /// Carry out what the session has decided since it was made: start connecting.
        Start,
    }

    /// The page's calls: `machine.__call(shell, call, a, b)`; errors are thrown.
    enum Call {
        /// Sends string `a`; answers a `SendResult`.
        SendText,
        /// Sends the bytes of `Uint8Array` `a`; answers a `SendResult`.
        SendBytes,
        /// Closes for good with code `a` and reason `b` (undefined when not given).
        Close,
        /// Connects again now.
        Reconnect,
        /// Releases everything the wasm holds for this socket.
        Dispose,
        /// Answers the `State`.
        State,
        /// Answers the URL of the current or last attempt.
        Url,
        /// Answers the selected subprotocol.
        Protocol,
        /// Answers the number of queued messages.
        Queued,
        /// Answers the number of publishes awaiting their ack.
        Unacked,
        /// Answers the heartbeat's round-trip time as `[last, smoothed]` in ms, or undefined.
        Rtt,
        /// Starts the rooms layer (protocol v1).
        StartRooms,
        /// Joins room `a`.
        Join,
        /// Leaves room `a`; answers whether it was joined.
        Leave,
        /// Publishes JSON text `b` to room `a`; answers the publish id, whose `ack` or
        /// `publishFailed` event settles the page's promise.
        Publish,
        /// Asks for the room list; answers whether it was asked.
        ListRooms,
    }

    /// What the shell must do: `shell.__do(command, conn, a, b)`, which answers a number.
    enum Command {
        /// Call the URL provider; `__input(UrlResolved | UrlFailed, conn, text)` follows.
        ResolveUrl,
        /// Open a `WebSocket` to `a` offering the page's subprotocols, and `lifeline.v1` after
        /// them when `b` is true, dropping any other socket. An exception goes to
        /// `__input(OpenFailed, conn, url, name, message)`.
        Open,
        /// Send `a` (a string or an `ArrayBuffer`) on connection `conn`, if it is still the socket.
        Send,
        /// Close connection `conn` with code `a` and reason `b`; its events still count.
        Close,
        /// As `Close`, and drop the socket at once: the session has moved on from it.
        Abandon,
        /// Answer connection `conn`'s `bufferedAmount`, or -1 if it is not the socket.
        Buffered,
        /// Set the one timer to `conn` milliseconds from now (replacing any), or clear it (-1).
        Timer,
        /// Sent after every drive: report connection `conn`'s frames as messages without
        /// `__input` (the session says that is all it would do with them); -1: hand all in.
        PassMessages,
    }

    /// The socket's state, as `ws.state` names it.
    enum State {
        Connecting,
        Open,
        Closing,
        Closed,
        Reconnecting,
    }

    /// What `send` did with a message, as `ws.send` answers it.
    enum SendResult {
        Sent,
        Queued,
    }

    /// The constructor's numbers (a `Float64Array`; NaN where an option is not given), checked
    /// by `index.js` to be non-negative. The slots up to `MaxUnacked` are named after their
    /// option.
    enum OptionSlot {
        MinDelay,
        MaxDelay,
        BackoffFactor,
        MaxRetries,
        ConnectTimeout,
        MinUptime,
        MaxQueuedMessages,
        MaxQueuedBytes,
        HighWaterMark,
        AckTimeout,
        MaxUnacked,
        /// `heartbeat.interval`.
        HeartbeatInterval,
        /// `heartbeat.timeout`.
        HeartbeatTimeout,
        /// 1 for `heartbeat: false`.
        NoHeartbeat,
        /// The backoff jitter's seed, as two 32-bit halves from `Math.random()`.
        SeedHigh,
        SeedLow,
        /// 1 when the browser is offline as the socket is made.
        Offline,
    }
}

/// Declares the [`PageEvent`] enum: each variant an event type, each field a property of the
/// event. `emit` hands the values over in the order the fields are declared.
macro_rules! page_events {
    ($(#[doc = $doc:literal])* enum PageEvent {
        $($(#[doc = $variant_doc:literal])* $(#[cfg($cfg:meta)])? $variant:ident { $($field:ident),* },)*
    }) => {
        $(#[doc = $doc])*
        pub(super) enum PageEvent {
            $($(#[doc = $variant_doc])* $(#[cfg($cfg)])? $variant { $($field: JsValue),* },)*
        }

        /// The event kinds by number, all of them in every build.
        #[repr(u32)]
        #[allow(dead_code)] // Without `rooms`, its events are never emitted.
        enum EventKind {
            $($variant,)*
        }

        impl PageEvent {
            /// Hands the event to the page: `shell.__emit(kind, ...values)`.
            pub(super) fn emit(self, shell: &Shell) {
                match self {
                    $($(#[cfg($cfg)])? Self::$variant { $($field),* } => {
                        shell.emit(EventKind::$variant as u32, &[$($field),*])
                    })*
                }
            }
        }
    };
}

page_events! {
    /// An event for the page. Its type is the variant's name in lowerCamelCase, as `EventTarget`
    /// names it; `index.js` builds a `MessageEvent`, `CloseEvent` or `Event` carrying the fields.
    enum PageEvent {
        /// The connection is open with subprotocol `protocol`.
        Open { protocol },
        /// A message: a string or an `ArrayBuffer`.
        Message { data },
        /// An error, thrown-shaped (see `js.rs`'s `crate_error`).
        Error { error },
        Close { code, reason, was_clean },
        /// Waiting `delay` ms before attempt `attempt`.
        Reconnecting { attempt, delay },
        /// `state` is a `State`.
        Statechange { state },
        Giveup {},
        Offline {},
        Online {},
        /// A heartbeat pong, `rtt` ms after its ping.
        Pong { rtt },
        #[cfg(feature = "rooms")]
        Welcome { resumed, name },
        #[cfg(feature = "rooms")]
        Joined { room, epoch, offset },
        #[cfg(feature = "rooms")]
        Recovery { room, recovered, since_epoch, since_offset, epoch, offset },
        #[cfg(feature = "rooms")]
        RoomMessage { room, epoch, offset, from, data, ts, publisher, id },
        #[cfg(feature = "rooms")]
        Left { room },
        #[cfg(feature = "rooms")]
        Ack { id, room, offset, duplicate },
        /// `error` is thrown-shaped (see `js.rs`'s `room_error`).
        #[cfg(feature = "rooms")]
        PublishFailed { id, room, error },
        #[cfg(feature = "rooms")]
        Presence { room, members },
        /// `rooms` lists `[room, members]` pairs.
        #[cfg(feature = "rooms")]
        Rooms { rooms },
        #[cfg(feature = "rooms")]
        ServerError { code, message },
        #[cfg(feature = "rooms")]
        BadFrame { raw, message },
    }
}
