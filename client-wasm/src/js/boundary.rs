//! The numbers that cross between the wasm (`src/js.rs`) and the JS shell (`js/index.js`),
//! written once. `cargo xtask package` generates `js/boundary.gen.js` from this file
//! (`xtask/src/npm/boundary_js.rs` reads the `numbered!` and `page_events!` tables below) and
//! the event part of `js/index.d.ts` from the `page_events!` table
//! (`xtask/src/npm/boundary_ts.rs`); `cargo test -p xtask` fails when either is stale.
//!
//! In JS each variant is a constant named after its enum and itself (`Input::Text` is
//! `INPUT_TEXT`), and `<ENUM>_NAMES` lists the variants' names in lowerCamelCase by number
//! (`STATE_NAMES[1]` is `"open"`; `null` for a variant marked `#[unnamed]`, whose name
//! `index.js` never looks up). Events also have `EVENT_FIELDS`: each kind's field names,
//! in the order [`PageEvent::emit`] hands over their values.

use wasm_bindgen::JsValue;

use super::Shell;

/// Declares fieldless `#[repr(u32)]` enums numbered from 0, each with `from_u32`. A
/// variant's `#[unnamed]` only keeps its name out of the generated JS.
macro_rules! numbered {
    ($($(#[doc = $doc:literal])* enum $name:ident {
        $($(#[doc = $variant_doc:literal])* $(#[unnamed])? $variant:ident,)*
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
        /// The outbox snapshot `a` (JSON text, from `Command::StoreOutbox`) is stored.
        OutboxStored,
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
        /// Turns the persistent outbox on, restored from the stored snapshot `a` (JSON text)
        /// or, when `a` is undefined, empty. Before the rooms layer starts.
        RestoreOutbox,
        /// Empties the persistent outbox: its publishes fail with `ERR_OUTBOX_CLEARED`.
        ClearOutbox,
        /// As `Publish`, with `b` = [JSON text, id]: under the id an earlier socket on the same
        /// store gave it (shared mode's next hub), see `Session::publish_as`.
        PublishAs,
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
        /// Store the outbox snapshot `a` (JSON text), after every earlier one; then
        /// `__input(OutboxStored, 0, a)`.
        StoreOutbox,
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
    /// option; `index.js` fills the others by number.
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
        #[unnamed]
        HeartbeatInterval,
        /// `heartbeat.timeout`.
        #[unnamed]
        HeartbeatTimeout,
        /// 1 for `heartbeat: false`.
        #[unnamed]
        NoHeartbeat,
        /// The backoff jitter's seed, as two 32-bit halves from `Math.random()`.
        #[unnamed]
        SeedHigh,
        #[unnamed]
        SeedLow,
        /// 1 when the browser is offline as the socket is made.
        #[unnamed]
        Offline,
    }
}

/// Declares the [`PageEvent`] enum: each variant an event type, each field a property of the
/// event. `emit` hands the values over in the order the fields are declared.
///
/// The table is also the event part of `js/index.d.ts` and `js/socket.d.ts` (between their
/// `generated` markers): each variant is an interface `Lifeline<Variant>Event` (re-exported by
/// the socket entry unless rooms-only) and each field a `readonly` property of the
/// TypeScript type in its string, as the page sees it after `index.js` reshapes it. A variant's
/// `#[ts(...)]` may rename the interface (`interface`; variants that share one are merged),
/// add what it `extends`, or give it a `generic` parameter. A field's `#[ts(into = "a.b")]`
/// says that `index.js` hands it to the page as property `b` of object `a`.
macro_rules! page_events {
    ($(#[doc = $doc:literal])* enum PageEvent {
        $(
            $(#[doc = $variant_doc:literal])*
            $(#[cfg($cfg:meta)])?
            $(#[ts($($variant_ts:tt)*)])?
            $variant:ident {
                $(
                    $(#[doc = $field_doc:literal])*
                    $(#[ts($($field_ts:tt)*)])?
                    $field:ident: $ts:literal
                ),*
                $(,)?
            },
        )*
    }) => {
        $(#[doc = $doc])*
        pub(super) enum PageEvent {
            $(
                $(#[doc = $variant_doc])*
                $(#[cfg($cfg)])?
                $variant { $($(#[doc = $field_doc])* $field: JsValue),* },
            )*
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
        /// A socket opened. `protocol` is the subprotocol the server selected ("" if none).
        Open { protocol: "string" },
        /// A message arrived (a `MessageEvent`): text frames as `string`, binary frames as a
        /// `Blob` or, with `binaryType = "arraybuffer"`, an `ArrayBuffer`.
        #[ts(extends = r#"Omit<MessageEvent, "type" | "target" | "data">"#)]
        Message { data: "string | ArrayBuffer | Blob" },
        /// Something went wrong; the client carries on unless a `close` or `giveup` says
        /// otherwise. `message` is the error's.
        #[ts(extends = r#"Readonly<Pick<LifelineError, "message">>"#)]
        Error {
            // The wasm hands over a thrown-shaped value (see `js.rs`'s `crate_error`).
            error: "LifelineError",
        },
        /// A socket closed
        /// ([CloseEvent](https://developer.mozilla.org/en-US/docs/Web/API/CloseEvent)). 1006 means the connection was lost without a close frame; 4000 that the heartbeat
        /// timed out.
        #[ts(extends = r#"Omit<CloseEvent, "type" | "target">"#)]
        Close { code: "number", reason: "string", was_clean: "boolean" },
        /// The next attempt starts after `delay` ms; `attempt` counts failed attempts from 1.
        Reconnecting { attempt: "number", delay: "number" },
        /// The state changed.
        #[ts(interface = "LifelineStateChangeEvent")]
        Statechange { state: "ConnectionState" },
        /// `maxRetries` attempts failed in a row; the client is now closed.
        #[ts(interface = "LifelineGiveUpEvent")]
        Giveup {},
        /// The browser went offline (retries pause) or came back online (a waiting retry
        /// starts).
        #[ts(interface = "LifelineNetworkEvent")]
        Offline {},
        #[ts(interface = "LifelineNetworkEvent")]
        Online {},
        /// A heartbeat pong arrived.
        Pong {
            /// The round trip it measured, from the latest ping's send, in ms.
            rtt: "number",
        },
        /// The server answered this connection's `hello`.
        #[cfg(feature = "rooms")]
        Welcome {
            /// True when the previous session was resumed. False after an earlier session
            /// means the server forgot it (it restarted, say): publishes resent now may be
            /// delivered twice.
            resumed: "boolean",
            /// The display name the server knows this client by (`from` of its messages).
            name: "string",
        },
        /// A first join: delivery starts after `offset` (earlier history is not replayed).
        #[cfg(feature = "rooms")]
        Joined {
            room: "string",
            /// The room's epoch: it changes whenever the room's history is lost.
            epoch: "string",
            /// The room's latest offset.
            offset: "number",
        },
        /// The answer to a rejoin after a reconnect (or a gap). `recovered: true`: every
        /// message missed since `since` follows, in order, before anything newer.
        /// `recovered: false`: the gap cannot be filled (the epoch changed or the history is
        /// too short); delivery goes on after `offset` of `epoch`, and the messages in between
        /// are lost to this client.
        #[cfg(feature = "rooms")]
        Recovery {
            room: "string",
            recovered: "boolean",
            /// The position the client asked to resume after.
            #[ts(into = "since.epoch")]
            since_epoch: "string",
            #[ts(into = "since.offset")]
            since_offset: "number",
            /// The room's epoch now.
            epoch: "string",
            /// The room's latest offset now.
            offset: "number",
        },
        /// A message in a joined room: in offset order, never twice, your own publishes
        /// included. A resend the server re-broadcast under a new offset (same `publisher` and
        /// `id`, after a lost session or a server restart) is skipped.
        #[cfg(feature = "rooms")]
        #[ts(generic = "T extends JsonValue = JsonValue")]
        RoomMessage {
            room: "string",
            /// The room's epoch: offsets start again at 1 in a new one (after a server
            /// restart).
            epoch: "string",
            /// Consecutive within an epoch (a skipped resend leaves a step out).
            offset: "number",
            /// The publisher's display name.
            from: "string",
            /// The published JSON.
            data: "T",
            /// Server time of publication, ms since the Unix epoch.
            ts: "number",
            /// The publisher's id, from a server that stamps it. With `id` it names the
            /// publication across sessions and server restarts: use `${publisher}:${id}` as a
            /// list key.
            publisher: "string | undefined",
            /// The publisher's publish id, sent with `publisher`.
            id: "number | undefined",
        },
        /// The server confirmed a `leave`.
        #[cfg(feature = "rooms")]
        Left { room: "string" },
        /// A publish was acknowledged (its promise resolves with these fields: `PublishAck`).
        #[cfg(feature = "rooms")]
        Ack {
            /// The publish's id (unique within the socket).
            id: "number",
            room: "string",
            /// The offset the message got in the room.
            offset: "number",
            /// True for a resend the server had accepted before (and did not broadcast again).
            duplicate: "boolean",
        },
        /// A publish failed and will not be resent (its promise rejects with the same `error`).
        #[cfg(feature = "rooms")]
        PublishFailed {
            id: "number",
            room: "string",
            // Thrown-shaped from the wasm (see `js.rs`'s `room_error`).
            error: "LifelineError",
        },
        /// Who is in a room now.
        #[cfg(feature = "rooms")]
        Presence {
            room: "string",
            /// Members' display names, sorted.
            members: "readonly string[]",
        },
        /// The server's room list: on `listRooms()` and whenever membership changes.
        #[cfg(feature = "rooms")]
        Rooms {
            /// Every room with its member count, sorted by name.
            // The wasm hands over `[room, members]` pairs.
            rooms: "readonly RoomInfo[]",
        },
        /// The server refused something that was not a publish (a join, say).
        #[cfg(feature = "rooms")]
        ServerError { code: "ErrorCode", message: "string" },
        /// A text frame that is not protocol v1; the connection goes on.
        #[cfg(feature = "rooms")]
        BadFrame {
            /// The frame as received.
            raw: "string",
            /// Why it did not decode.
            message: "string",
        },
        /// Publishes of an earlier page (restored from the persistent outbox) that the server
        /// has now acknowledged: each reached its room once. Their `ack` events come first.
        #[cfg(feature = "persist")]
        OutboxDelivered {
            /// Their publish ids (the earlier page's), in the order of their acks.
            ids: "readonly number[]",
        },
    }
}
