//! The JavaScript face of the library: the `#[wasm_bindgen]` surface of the npm package
//! (feature `js`).
//!
//! The npm package runs the sans-IO [`crate::machine::session::Session`] here and its browser
//! shell in `client-wasm/js/index.js`: the `WebSocket` and its listeners, the one timer, the
//! `online`/`offline`/`visibilitychange` listeners, the URL provider's promise and the publish
//! promises live there, where each costs a few bytes of JS instead of wasm imports, closures
//! and export shims (the Rust shell, [`crate::web`], serves Rust apps). The wasm decides
//! everything; the JS carries it out, checks arguments and options, and builds every event
//! object and every error.
//!
//! The boundary is these calls, each taking the socket's JS object (`shell`) so the wasm never
//! holds it. Their numbers are the enums of `src/js/boundary.rs`, from which
//! `cargo xtask package` generates `js/boundary.gen.js`:
//!
//! - [`LifelineSocket::input`] (`__input(shell, input, conn, a, b, c)`): what happened in the
//!   browser, an `Input`.
//! - [`LifelineSocket::call`] (`__call(shell, call, a, b)`): the page's calls, a `Call`.
//! - `shell.__do(command, conn, a, b)`: what the shell must do, a `Command`.
//! - `shell.__emit(kind, ...values)`: an event for the page, a `PageEvent`; messages go
//!   through `shell.__message(data)`, with `undefined` for the text frame being handled.
//!
//! The hot path skips the wasm: at the end of every drive the shell hears which connection's
//! frames the session would only report as messages (`Command::PassMessages`,
//! [`Session::message_passthrough`]: no heartbeat on it, no rooms layer, `close()` not called),
//! and `index.js` dispatches those frames itself. Every other frame comes in through `__input`.
//!
//! Errors are thrown (and `error` events carry them) as `[code, message, detail, bound]`
//! (`crate_error`, `room_error`); `index.js` turns that into an `Error` with
//! `name = "LifelineError"`, the `code` and the fields of that code.
//!
//! Re-entrancy: the shell's callbacks and the page's listeners may call back in (send from a
//! listener, `dispose` from a handler). No borrow is held while JS runs, and a call that
//! arrives while the drive loop runs leaves its work to that loop, as in the Rust shell.
//!
//! The persistent outbox (feature `persist`, the npm entry `ws-lifeline/persist`): the core
//! decides when a snapshot is due; at the end of a drive that changed it the shell hears
//! `Command::StoreOutbox` with its JSON, writes it to IndexedDB in order and answers
//! `Input::OutboxStored`, as the Rust shell does (`src/web/outbox.rs`). `index.js` loads the
//! stored snapshot before the first connection and hands it over with `Call::RestoreOutbox`;
//! `RoomEvent::OutboxDelivered` reaches the page as the `outboxDelivered` event.
//!
//! Protocol v1 (rooms) is started on first use: `join`, `leave`, `publish`, `listRooms`, or a
//! listener for a room event, which also offers `lifeline.v1` from the next attempt on. A
//! socket that never uses rooms speaks no protocol (the default heartbeat runs only where the
//! server selected `lifeline.v1`), so it works with any WebSocket server.

mod boundary;

use std::cell::{Cell, RefCell};
use std::time::Duration;

use js_sys::{Array, Function, Uint8Array};
use wasm_bindgen::prelude::*;

use self::boundary::{Call, Command, Input as ShellInput, OptionSlot, PageEvent, SendResult};
#[cfg(feature = "persist")]
use crate::machine::rooms::outbox::{OutboxConfig, OutboxError, OutboxSnapshot};
#[cfg(feature = "rooms")]
use crate::machine::rooms::{RawJson, RoomError, RoomEvent, RoomsConfig};
use crate::machine::session::{Io, Session, SessionEvent};
use crate::machine::{CloseInfo, ConnId, Input, Instant, Target, default_terminal};
use crate::{Config, Error, Event, Message, QueueLimit, Sent, State};

/// The result type of every exported function: a thrown `[code, message, detail, bound]`.
type JsResult<T> = std::result::Result<T, JsValue>;

// ---------------------------------------------------------------------------------------------
// Errors: the one place where errors become JS values.
// ---------------------------------------------------------------------------------------------

/// `[code, message, detail, bound]`, which `index.js` turns into a `LifelineError`.
fn thrown(code: &str, message: &str, detail: JsValue, bound: JsValue) -> JsValue {
    Array::of4(&code.into(), &message.into(), &detail, &bound).into()
}

fn number(n: impl Into<f64>) -> JsValue {
    JsValue::from_f64(n.into())
}

fn millis(duration: Duration) -> JsValue {
    number(duration.as_millis() as f64)
}

/// A crate error for JavaScript, with the refused input or the bound it broke.
fn crate_error(error: &Error) -> JsValue {
    let none = JsValue::UNDEFINED;
    let (code, detail, bound) = match error {
        Error::InvalidUrl { supplied, .. } => ("ERR_INVALID_URL", supplied.into(), none),
        Error::InvalidCloseCode { code } => ("ERR_INVALID_CLOSE_CODE", number(*code), none),
        Error::CloseReasonTooLong { bytes } => {
            ("ERR_CLOSE_REASON_TOO_LONG", number(*bytes as f64), none)
        }
        Error::QueueFull { limit } => {
            let (key, value) = match limit {
                QueueLimit::Messages(n) => ("messages", *n),
                QueueLimit::Bytes(n) => ("bytes", *n),
            };
            ("ERR_QUEUE_FULL", key.into(), number(value as f64))
        }
        Error::TooLarge { size, limit } => {
            ("ERR_TOO_LARGE", number(*size as f64), number(*limit as f64))
        }
        Error::Closed => ("ERR_CLOSED", none.clone(), none),
        Error::NotOpen => ("ERR_NOT_OPEN", none.clone(), none),
        Error::Encode { .. } => ("ERR_ENCODE", none.clone(), none),
        Error::Socket => ("ERR_SOCKET", none.clone(), none),
        Error::ConnectTimeout { after_ms } => {
            ("ERR_CONNECT_TIMEOUT", number(*after_ms as f64), none)
        }
        Error::UrlProvider { .. } => ("ERR_URL_PROVIDER", none.clone(), none),
        Error::Platform { .. } => ("ERR_PLATFORM", none.clone(), none),
    };
    thrown(code, &error.message(), detail, bound)
}

#[cfg(feature = "rooms")]
/// A protocol v1 error (a refused `join` or a failed `publish`) for JavaScript.
fn room_error(error: &RoomError) -> JsValue {
    let none = JsValue::UNDEFINED;
    let (code, detail, bound) = match error {
        RoomError::InvalidRoom { room } => ("ERR_INVALID_ROOM", room.into(), none),
        RoomError::NotJoined { room } => ("ERR_NOT_JOINED", room.into(), none),
        RoomError::TooManyUnacked { limit } => {
            ("ERR_TOO_MANY_UNACKED", number(*limit as f64), none)
        }
        RoomError::PublishTimeout { id, after_ms } => (
            "ERR_PUBLISH_TIMEOUT",
            number(id.0 as f64),
            number(*after_ms as f64),
        ),
        RoomError::Refused { id, code, .. } => (
            "ERR_PUBLISH_REFUSED",
            number(id.0 as f64),
            code.as_str().into(),
        ),
        RoomError::LeftRoom { id, room } => ("ERR_LEFT_ROOM", number(id.0 as f64), room.into()),
        RoomError::TooLarge { size, limit } => (
            "ERR_TOO_LARGE",
            number(*size as f64),
            limit.map_or(none, |l| number(l as f64)),
        ),
        RoomError::Encode { .. } => ("ERR_ENCODE", none.clone(), none),
        RoomError::Closed => ("ERR_CLOSED", none.clone(), none),
        #[cfg(feature = "persist")]
        RoomError::OutboxFull {
            max_publishes,
            max_bytes,
        } => (
            "ERR_OUTBOX_FULL",
            number(*max_publishes as f64),
            number(*max_bytes as f64),
        ),
        #[cfg(feature = "persist")]
        RoomError::OutboxCleared { id } => ("ERR_OUTBOX_CLEARED", number(id.0 as f64), none),
    };
    thrown(code, &error.message(), detail, bound)
}

#[cfg(feature = "persist")]
/// A persistent-outbox error for JavaScript: a stored snapshot this client cannot restore
/// (`index.js` restores before the rooms layer starts, so `AlreadyStarted` cannot happen).
fn outbox_error(error: &OutboxError) -> JsValue {
    let code = match error {
        OutboxError::Client(error) => return crate_error(error),
        OutboxError::Store { .. } => "ERR_OUTBOX_STORE",
        _ => "ERR_OUTBOX_SNAPSHOT",
    };
    thrown(
        code,
        &error.to_string(),
        JsValue::UNDEFINED,
        JsValue::UNDEFINED,
    )
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// The page's functions (`isTerminalClose`, the heartbeat's `ping` and `isPong`) by id.
    /// `Config` wants `Send + Sync` rules and JS functions are neither, so the rule holds the
    /// id and looks the function up here; the entry lives exactly as long as its socket
    /// ([`HeldFunction`]). A `Vec`: one entry per held function of a live socket, and no hash
    /// map in the wasm.
    static HELD_FUNCTIONS: RefCell<Vec<(u64, Function)>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

/// One of a socket's functions in [`HELD_FUNCTIONS`], removed when the socket goes.
#[derive(Debug)]
struct HeldFunction(u64);

impl HeldFunction {
    fn hold(function: Function) -> Self {
        let id = NEXT_ID.replace(NEXT_ID.get().wrapping_add(1));
        HELD_FUNCTIONS.with(|held| held.borrow_mut().push((id, function)));
        HeldFunction(id)
    }

    /// Calls the function with `arg`. `index.js` wraps the page's functions: an exception is
    /// reported there and answers `undefined`, which leaves the choice to the default.
    fn call(id: u64, arg: JsValue) -> JsValue {
        let function = HELD_FUNCTIONS.with(|held| {
            let held = held.borrow();
            held.iter()
                .find(|(key, _)| *key == id)
                .map(|(_, f)| f.clone())
        });
        function
            .and_then(|f| f.call1(&JsValue::UNDEFINED, &arg).ok())
            .unwrap_or(JsValue::UNDEFINED)
    }
}

impl Drop for HeldFunction {
    fn drop(&mut self) {
        HELD_FUNCTIONS.with(|held| held.borrow_mut().retain(|(id, _)| *id != self.0));
    }
}

/// The constructor's numbers, by [`OptionSlot`].
struct OptionNumbers<'a>(&'a [f64]);

impl OptionNumbers<'_> {
    fn get(&self, slot: OptionSlot) -> Option<f64> {
        self.0.get(slot as usize).copied().filter(|n| !n.is_nan())
    }

    fn millis(&self, slot: OptionSlot) -> Option<Duration> {
        // Saturating float→int: `Infinity` means "as long as possible".
        self.get(slot).map(|ms| Duration::from_millis(ms as u64))
    }
}

/// The page's functions among the options, each wrapped by `index.js`.
struct PageFunctions {
    is_terminal_close: Option<Function>,
    /// `(n) => string | undefined`: the heartbeat's `ping`.
    ping: Option<Function>,
    /// `(data) => boolean`: the heartbeat's `isPong`.
    is_pong: Option<Function>,
}

/// The [`Config`] of the options; the returned handles own the page's functions.
fn config_from(
    numbers: &OptionNumbers<'_>,
    functions: PageFunctions,
) -> (Config, Vec<HeldFunction>) {
    let mut held = Vec::new();
    let mut hold = |function| {
        let function = HeldFunction::hold(function);
        let id = function.0;
        held.push(function);
        id
    };
    let mut config = Config::default();
    if let Some(ms) = numbers.millis(OptionSlot::MinDelay) {
        config = config.backoff_min(ms);
    }
    if let Some(ms) = numbers.millis(OptionSlot::MaxDelay) {
        config = config.backoff_max(ms);
    }
    if let Some(factor) = numbers.get(OptionSlot::BackoffFactor) {
        config = config.backoff_factor(factor);
    }
    if let Some(n) = numbers.get(OptionSlot::MaxRetries) {
        config = config.max_attempts(n.is_finite().then_some(n as u32));
    }
    if let Some(ms) = numbers.millis(OptionSlot::ConnectTimeout) {
        config = config.connect_timeout(ms);
    }
    if let Some(ms) = numbers.millis(OptionSlot::MinUptime) {
        config = config.min_uptime(ms);
    }
    if numbers.get(OptionSlot::NoHeartbeat) == Some(1.0) {
        config = config.no_heartbeat();
    } else {
        if let Some(ms) = numbers.millis(OptionSlot::HeartbeatInterval) {
            config = config.heartbeat_interval(ms);
        }
        if let Some(ms) = numbers.millis(OptionSlot::HeartbeatTimeout) {
            config = config.heartbeat_timeout(ms);
        }
        if let Some(function) = functions.ping {
            let id = hold(function);
            config =
                config.ping(
                    move |n| match HeldFunction::call(id, (n as f64).into()).as_string() {
                        Some(text) => Message::Text(text),
                        None => crate::machine::default_ping(n),
                    },
                );
        }
        if let Some(function) = functions.is_pong {
            let id = hold(function);
            config = config.is_pong(move |text| HeldFunction::call(id, text.into()).is_truthy());
        }
    }
    let messages = numbers
        .get(OptionSlot::MaxQueuedMessages)
        .map(|n| n as usize);
    let bytes = numbers.get(OptionSlot::MaxQueuedBytes).map(|n| n as usize);
    if messages.is_some() || bytes.is_some() {
        let (default_messages, default_bytes) = (config.queue_max_messages, config.queue_max_bytes);
        config = config.queue_limits(
            messages.unwrap_or(default_messages),
            bytes.unwrap_or(default_bytes),
        );
    }
    if let Some(bytes) = numbers.get(OptionSlot::HighWaterMark) {
        config = config.high_water_mark(bytes as u64);
    }
    if let Some(function) = functions.is_terminal_close {
        let id = hold(function);
        config = config.terminal_close(move |code| {
            let verdict = HeldFunction::call(id, code.into());
            if verdict.is_undefined() {
                default_terminal(code)
            } else {
                verdict.is_truthy()
            }
        });
    }
    (config, held)
}

#[cfg(feature = "rooms")]
/// The protocol v1 options: `ackTimeout` (ms) and `maxUnacked`.
fn rooms_config_from(numbers: &OptionNumbers<'_>) -> RoomsConfig {
    let mut config = RoomsConfig::default();
    if let Some(ms) = numbers.millis(OptionSlot::AckTimeout) {
        config = config.ack_timeout(ms);
    }
    if let Some(n) = numbers.get(OptionSlot::MaxUnacked) {
        config = config.max_unacked(n as usize);
    }
    config
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

fn send_result(sent: Sent) -> JsValue {
    number(match sent {
        Sent::Transmitted => SendResult::Sent,
        Sent::Queued => SendResult::Queued,
    } as u32)
}

fn state_number(state: State) -> JsValue {
    number(match state {
        State::Connecting => boundary::State::Connecting,
        State::Open => boundary::State::Open,
        State::Closing => boundary::State::Closing,
        State::Closed => boundary::State::Closed,
        State::Reconnecting => boundary::State::Reconnecting,
    } as u32)
}

/// A connection event for the page (`drive` hands messages over itself).
fn connection_event(event: &Event, protocol: impl FnOnce() -> String) -> PageEvent {
    match event {
        Event::Open => PageEvent::Open {
            protocol: protocol().into(),
        },
        Event::Message(message) => PageEvent::Message {
            data: message_data(message),
        },
        Event::Error(error) => PageEvent::Error {
            error: crate_error(error),
        },
        Event::Close(info) => PageEvent::Close {
            code: number(info.code),
            reason: info.reason.as_str().into(),
            was_clean: info.was_clean.into(),
        },
        Event::Reconnecting { attempt, delay } => PageEvent::Reconnecting {
            attempt: number(*attempt),
            delay: millis(*delay),
        },
        Event::StateChange(state) => PageEvent::Statechange {
            state: state_number(*state),
        },
        Event::GaveUp => PageEvent::Giveup {},
        Event::Offline => PageEvent::Offline {},
        Event::Online => PageEvent::Online {},
        Event::Pong { rtt } => PageEvent::Pong { rtt: millis(*rtt) },
    }
}

/// A message's data for the page: an `ArrayBuffer` (a copy out of the wasm), or `undefined`
/// for text. A text message is reported while `index.js` hands that very frame in (the session
/// reports a frame at once, as at most one message, unchanged): it dispatches its own string,
/// and no copy leaves the wasm.
fn message_data(message: &Message) -> JsValue {
    match message {
        Message::Text(_) => JsValue::UNDEFINED,
        Message::Binary(bytes) => Uint8Array::from(bytes.as_slice()).buffer().into(),
    }
}

/// A message as JS data: a string, or an `ArrayBuffer` (a copy out of the wasm).
fn bytes_or_text(message: Message) -> JsValue {
    match message {
        Message::Text(text) => text.into(),
        Message::Binary(bytes) => Uint8Array::from(bytes.as_slice()).buffer().into(),
    }
}

#[cfg(feature = "rooms")]
/// A protocol v1 event for the page.
fn room_event(event: RoomEvent) -> PageEvent {
    let optional = |n: Option<u64>| n.map_or(JsValue::UNDEFINED, |n| number(n as f64));
    match event {
        RoomEvent::Welcome { resumed, name } => PageEvent::Welcome {
            resumed: resumed.into(),
            name: name.into(),
        },
        RoomEvent::Joined {
            room,
            epoch,
            offset,
        } => PageEvent::Joined {
            room: room.into(),
            epoch: epoch.into(),
            offset: number(offset as f64),
        },
        RoomEvent::Recovery {
            room,
            recovered,
            since,
            epoch,
            offset,
        } => PageEvent::Recovery {
            room: room.into(),
            recovered: recovered.into(),
            since_epoch: since.epoch.into(),
            since_offset: number(since.offset as f64),
            epoch: epoch.into(),
            offset: number(offset as f64),
        },
        RoomEvent::Message(m) => PageEvent::RoomMessage {
            room: m.room.into(),
            epoch: m.epoch.into(),
            offset: number(m.offset as f64),
            from: m.from.into(),
            // JSON text, parsed by `index.js`.
            data: m.data.as_str().into(),
            ts: number(m.ts as f64),
            publisher: m.publisher.map_or(JsValue::UNDEFINED, JsValue::from),
            id: optional(m.id),
        },
        RoomEvent::Left { room } => PageEvent::Left { room: room.into() },
        RoomEvent::Acked {
            id,
            room,
            offset,
            duplicate,
        } => PageEvent::Ack {
            id: number(id.0 as f64),
            room: room.into(),
            offset: number(offset as f64),
            duplicate: duplicate.into(),
        },
        RoomEvent::PublishFailed { id, room, error } => PageEvent::PublishFailed {
            id: number(id.0 as f64),
            room: room.into(),
            error: room_error(&error),
        },
        RoomEvent::Presence { room, members } => PageEvent::Presence {
            room: room.into(),
            members: members.iter().map(JsValue::from).collect::<Array>().into(),
        },
        RoomEvent::Rooms(rooms) => PageEvent::Rooms {
            rooms: rooms
                .iter()
                .map(|info| Array::of2(&info.room.as_str().into(), &number(info.members)))
                .collect::<Array>()
                .into(),
        },
        RoomEvent::ServerError { code, message } => PageEvent::ServerError {
            code: code.as_str().into(),
            message: message.into(),
        },
        RoomEvent::BadFrame(bad) => PageEvent::BadFrame {
            raw: bad.raw.as_str().into(),
            message: bad.error.as_str().into(),
        },
        #[cfg(feature = "persist")]
        RoomEvent::OutboxDelivered { ids } => PageEvent::OutboxDelivered {
            ids: ids
                .iter()
                .map(|id| number(id.0 as f64))
                .collect::<Array>()
                .into(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The boundary with index.js
// ---------------------------------------------------------------------------------------------

#[wasm_bindgen]
extern "C" {
    /// The socket's object in `index.js`: the browser shell and the page's event target.
    pub type Shell;
    /// Builds the event of `kind` (a [`PageEvent`]) from its field values and dispatches it.
    #[wasm_bindgen(method, js_name = __emit, variadic)]
    fn emit(this: &Shell, kind: u32, values: &[JsValue]);
    /// Dispatches a `message` event with `data` (`undefined`: the text frame being handled).
    #[wasm_bindgen(method, js_name = __message)]
    fn emit_message(this: &Shell, data: JsValue);
    /// Carries out `command` (a [`Command`]) for connection `conn`.
    #[wasm_bindgen(method, js_name = __do)]
    fn run_command(this: &Shell, command: u32, conn: f64, a: JsValue, b: JsValue) -> f64;
    /// [`performance.now()`](https://developer.mozilla.org/en-US/docs/Web/API/Performance/now),
    /// which is monotonic, unlike `Date.now()`.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

impl Shell {
    fn run(&self, command: Command, conn: f64, a: JsValue, b: JsValue) -> f64 {
        self.run_command(command as u32, conn, a, b)
    }
}

fn now() -> Instant {
    Instant(performance_now().max(0.0) as u64)
}

fn string_of(value: &JsValue) -> String {
    value.as_string().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The socket
// ---------------------------------------------------------------------------------------------

/// Everything the wasm holds for a socket that is not disposed; dropping it releases all of it.
#[derive(Debug)]
struct Attached {
    session: Session,
    _functions: Vec<HeldFunction>,
}

/// The wasm half of a `LifelineSocket` of `index.js`, which owns it. See the module docs.
#[wasm_bindgen(skip_typescript)]
#[derive(Debug)]
pub struct LifelineSocket {
    /// `None` once disposed.
    attached: RefCell<Option<Attached>>,
    /// The deadline the shell's timer is set for.
    armed: Cell<Option<Instant>>,
    /// Set while the drive loop runs; calls from inside it leave their work to it.
    driving: Cell<bool>,
}

#[wasm_bindgen]
impl LifelineSocket {
    /// A socket for `url` (a string, or `undefined` when `index.js` holds a URL provider);
    /// `numbers` are the numeric options by `OptionSlot`; `is_terminal_close`, `ping` and
    /// `is_pong` the page's functions, wrapped. `index.js` has checked all of them. The page's
    /// subprotocols stay in `index.js` (a list of strings through the boundary cost about
    /// 1.3 KB of wasm); the session offers only what the rooms layer needs (see
    /// `Command::Open`). Nothing is carried out before `__input(Start)`, so that the page can
    /// add listeners first.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: Option<String>,
        numbers: &[f64],
        is_terminal_close: Option<Function>,
        ping: Option<Function>,
        is_pong: Option<Function>,
    ) -> JsResult<LifelineSocket> {
        let numbers = OptionNumbers(numbers);
        let functions = PageFunctions {
            is_terminal_close,
            ping,
            is_pong,
        };
        let (config, functions) = config_from(&numbers, functions);
        let half = |slot| numbers.get(slot).unwrap_or(0.0) as u32;
        let seed =
            (u64::from(half(OptionSlot::SeedHigh)) << 32) | u64::from(half(OptionSlot::SeedLow));
        let target = url.map_or(Target::Provider, Target::Url);
        let now = now();
        let mut session = Session::new(config, target, seed, now).map_err(|e| crate_error(&e))?;
        if numbers.get(OptionSlot::Offline) == Some(1.0) {
            session.handle(now, Input::Offline);
        }
        #[cfg(feature = "rooms")]
        session.set_rooms_config(rooms_config_from(&numbers));
        Ok(LifelineSocket {
            attached: RefCell::new(Some(Attached {
                session,
                _functions: functions,
            })),
            armed: Cell::new(None),
            driving: Cell::new(false),
        })
    }

    /// Feeds what happened in the browser (a boundary `Input`) and carries out the
    /// consequences.
    #[wasm_bindgen(js_name = __input)]
    pub fn input(&self, shell: &Shell, input: u32, conn: f64, a: JsValue, b: JsValue, c: JsValue) {
        let now = now();
        let conn = ConnId(conn as u64);
        let Some(input) = ShellInput::from_u32(input) else {
            return;
        };
        let input = match input {
            ShellInput::Opened => Input::SocketOpened {
                conn,
                protocol: string_of(&a),
            },
            ShellInput::Text => Input::SocketMessage {
                conn,
                message: Message::Text(string_of(&a)),
            },
            ShellInput::Bytes => Input::SocketMessage {
                conn,
                message: Message::Binary(Uint8Array::new(&a).to_vec()),
            },
            ShellInput::Error => Input::SocketError { conn },
            ShellInput::Closed => Input::SocketClosed {
                conn,
                info: CloseInfo {
                    code: a.as_f64().unwrap_or(1006.0) as u16,
                    reason: string_of(&b),
                    was_clean: c.is_truthy(),
                },
            },
            ShellInput::UrlResolved => Input::UrlResolved {
                conn,
                result: Ok(string_of(&a)),
            },
            ShellInput::UrlFailed => Input::UrlResolved {
                conn,
                result: Err(string_of(&a)),
            },
            ShellInput::OpenFailed => Input::OpenFailed {
                conn,
                error: Error::from_exception(&string_of(&b), string_of(&c), Some(&string_of(&a))),
            },
            ShellInput::SendFailed => {
                let error = Error::from_exception(&string_of(&b), string_of(&c), None);
                self.with_session(|session| session.transmit_failed(error));
                return self.drive(shell);
            }
            ShellInput::Online => Input::Online,
            ShellInput::Offline => Input::Offline,
            ShellInput::Visible => Input::Visible,
            ShellInput::Hidden => Input::Hidden,
            ShellInput::Timer => {
                self.armed.set(None);
                self.with_session(|session| session.handle_timeout(now));
                return self.drive(shell);
            }
            ShellInput::Start => return self.drive(shell),
            ShellInput::OutboxStored => {
                #[cfg(feature = "persist")]
                if let Ok(snapshot) = OutboxSnapshot::from_json(&string_of(&a)) {
                    self.with_session(|session| session.outbox_stored(now, &snapshot));
                }
                return self.drive(shell);
            }
        };
        self.with_session(|session| session.handle(now, input));
        self.drive(shell);
    }

    /// Carries out the page's call (a `Call`); throws `[code, message, detail, bound]`.
    #[wasm_bindgen(js_name = __call)]
    pub fn call(&self, shell: &Shell, call: u32, a: JsValue, b: JsValue) -> JsResult<JsValue> {
        let now = now();
        let Some(call) = Call::from_u32(call) else {
            return Ok(JsValue::UNDEFINED);
        };
        let answer = match call {
            Call::SendText => {
                let message = string_of(&a);
                // Straight to the socket when nothing waits before it: the session only counts
                // the bytes, and the page's own string is sent, not a copy out of the wasm.
                let direct = self
                    .with_session(|session| session.send_now(now, message.len()))
                    .flatten();
                send_result(match direct {
                    Some(conn) => {
                        shell.run(Command::Send, conn.0 as f64, a, JsValue::UNDEFINED);
                        Sent::Transmitted
                    }
                    None => self.send(now, Message::Text(message))?,
                })
            }
            Call::SendBytes => {
                send_result(self.send(now, Message::Binary(Uint8Array::new(&a).to_vec()))?)
            }
            Call::Close => {
                let code = a.as_f64().map(|c| c as u16);
                let reason = b.as_string();
                self.with_session(|session| session.close(now, code, reason.as_deref()))
                    .unwrap_or(Ok(()))
                    .map_err(|e| crate_error(&e))?;
                JsValue::UNDEFINED
            }
            Call::Reconnect => {
                self.with_session(|session| session.reconnect(now));
                JsValue::UNDEFINED
            }
            Call::Dispose => {
                // Dropped outside the borrow.
                let attached = self.attached.borrow_mut().take();
                drop(attached);
                return Ok(JsValue::UNDEFINED);
            }
            Call::State => {
                let state = self.with_session(|session| session.machine().state());
                return Ok(state_number(state.unwrap_or(State::Closed)));
            }
            Call::Url => {
                let url = self.with_session(|s| s.machine().url().map(str::to_owned));
                return Ok(url.flatten().unwrap_or_default().into());
            }
            Call::Protocol => return Ok(self.protocol().into()),
            Call::Rtt => {
                let rtt = self.with_session(|s| s.machine().rtt()).flatten();
                return Ok(rtt.map_or(JsValue::UNDEFINED, |rtt| {
                    Array::of2(&millis(rtt.last), &millis(rtt.smoothed)).into()
                }));
            }
            Call::Queued => {
                let queued = self.with_session(|s| s.machine().queued_messages());
                return Ok(number(queued.unwrap_or(0) as f64));
            }
            Call::Unacked => {
                #[cfg(feature = "rooms")]
                let unacked = self
                    .with_session(|s| s.rooms().map_or(0, |r| r.unacked()))
                    .unwrap_or(0);
                #[cfg(not(feature = "rooms"))]
                let unacked = 0;
                return Ok(number(unacked as f64));
            }
            #[cfg(feature = "rooms")]
            Call::StartRooms => {
                self.with_session(|session| session.start_rooms(now));
                JsValue::UNDEFINED
            }
            #[cfg(feature = "rooms")]
            Call::Join => {
                let room = string_of(&a);
                self.with_session(|session| session.join(now, &room))
                    .unwrap_or(Ok(()))
                    .map_err(|e| room_error(&e))?;
                JsValue::UNDEFINED
            }
            #[cfg(feature = "rooms")]
            Call::Leave => {
                let room = string_of(&a);
                let left = self.with_session(|session| session.leave(now, &room));
                left.unwrap_or(false).into()
            }
            #[cfg(feature = "rooms")]
            Call::Publish => self.publish(now, &a, &b, None)?,
            #[cfg(feature = "persist")]
            Call::PublishAs => {
                // `b`: [the JSON text, the earlier id]. A bad id publishes as new.
                let (json, id) = match b.dyn_ref::<Array>() {
                    Some(parts) => (parts.get(0), parts.get(1).as_f64().map(|id| id as u64)),
                    None => (JsValue::UNDEFINED, None),
                };
                self.publish(now, &a, &json, id.or(Some(0)))?
            }
            #[cfg(feature = "rooms")]
            Call::ListRooms => {
                let asked = self.with_session(|session| session.list_rooms(now));
                asked.unwrap_or(false).into()
            }
            #[cfg(not(feature = "rooms"))]
            Call::StartRooms | Call::Join | Call::Leave | Call::Publish | Call::ListRooms => {
                return Ok(JsValue::UNDEFINED);
            }
            #[cfg(feature = "persist")]
            Call::RestoreOutbox => {
                // `b`: [maxPublishes, maxBytes], each a positive integer (checked in index.js)
                // or undefined for the core's default.
                let bounds = b.dyn_ref::<Array>();
                let bound = |at| bounds.and_then(|b| b.get(at).as_f64()).map(|n| n as usize);
                let mut config = OutboxConfig::default();
                if let Some(max) = bound(0) {
                    config = config.max_publishes(max);
                }
                if let Some(max) = bound(1) {
                    config = config.max_bytes(max);
                }
                let snapshot = match a.as_string() {
                    Some(text) => {
                        Some(OutboxSnapshot::from_json(&text).map_err(|e| outbox_error(&e))?)
                    }
                    None => None,
                };
                self.with_session(|session| session.persist(now, config, snapshot))
                    .unwrap_or(Ok(()))
                    .map_err(|e| outbox_error(&e))?;
                JsValue::UNDEFINED
            }
            #[cfg(feature = "persist")]
            Call::ClearOutbox => {
                self.with_session(|session| session.clear_outbox(now));
                JsValue::UNDEFINED
            }
            #[cfg(not(feature = "persist"))]
            Call::RestoreOutbox | Call::ClearOutbox | Call::PublishAs => {
                return Ok(JsValue::UNDEFINED);
            }
        };
        self.drive(shell);
        Ok(answer)
    }

    /// Publishes JSON text `json` to room `room` (under the earlier layer's id `earlier`, see
    /// `Session::publish_as`); answers the publish id.
    #[cfg(feature = "rooms")]
    fn publish(
        &self,
        now: Instant,
        room: &JsValue,
        json: &JsValue,
        earlier: Option<u64>,
    ) -> JsResult<JsValue> {
        let room = string_of(room);
        // JSON.stringify writes a lone surrogate as a `\u` escape, which the server refuses.
        let data = RawJson::new(string_of(json)).map_err(|e| {
            room_error(&RoomError::Encode {
                message: e.to_string(),
            })
        })?;
        let id = self
            .with_session(|session| {
                #[cfg(feature = "persist")]
                if let Some(id) = earlier {
                    return session.publish_as(now, &room, data, id);
                }
                #[cfg(not(feature = "persist"))]
                let _ = earlier;
                session.publish(now, &room, data)
            })
            .unwrap_or(Err(RoomError::Closed))
            .map_err(|e| room_error(&e))?;
        Ok(number(id.0 as f64))
    }
}

impl LifelineSocket {
    /// Runs `f` on the session with the borrow held only for `f`, which must not call JS.
    /// `None` once disposed.
    fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> T) -> Option<T> {
        self.attached
            .borrow_mut()
            .as_mut()
            .map(|attached| f(&mut attached.session))
    }

    fn protocol(&self) -> String {
        self.with_session(|s| s.machine().protocol().to_owned())
            .unwrap_or_default()
    }

    fn send(&self, now: Instant, message: Message) -> JsResult<Sent> {
        self.with_session(|session| session.send(now, message))
            .unwrap_or(Err(Error::Closed))
            .map_err(|e| crate_error(&e))
    }

    /// Carries out the session's I/O and hands its events to the page until none is left,
    /// then keeps the shell's timer at the session's deadline.
    fn drive(&self, shell: &Shell) {
        if self.driving.replace(true) {
            return;
        }
        loop {
            if let Some(io) = self.with_session(Session::poll_io).flatten() {
                self.execute(shell, io);
                continue;
            }
            match self.with_session(Session::poll_event).flatten() {
                // The hot path through the wasm, without a kind or a list.
                Some(SessionEvent::Connection(Event::Message(message))) => {
                    shell.emit_message(message_data(&message));
                }
                Some(SessionEvent::Connection(event)) => {
                    connection_event(&event, || self.protocol()).emit(shell);
                }
                #[cfg(feature = "rooms")]
                Some(SessionEvent::Room(event)) => room_event(event).emit(shell),
                None => break,
            }
        }
        self.driving.set(false);
        // Once per drive, as the Rust shell stores once per run: the shell writes them in order.
        #[cfg(feature = "persist")]
        if let Some(snapshot) = self.with_session(Session::poll_outbox).flatten() {
            let none = JsValue::UNDEFINED;
            shell.run(Command::StoreOutbox, -1.0, snapshot.to_json().into(), none);
        }
        // Disposed: the shell has released its timer and socket itself.
        let Some((want, passthrough)) =
            self.with_session(|session| (session.poll_timeout(), session.message_passthrough()))
        else {
            return;
        };
        // After every input and call, so the shell knows before the next frame arrives; every
        // time, as remembering what it was told costs 35 B gzip more.
        let passing = passthrough.map_or(-1.0, |conn| conn.0 as f64);
        let none = JsValue::UNDEFINED;
        shell.run(Command::PassMessages, passing, none.clone(), none);
        if self.armed.replace(want) != want {
            let delay = want.map_or(-1.0, |at| {
                at.0.saturating_sub(now().0).min(i32::MAX as u64) as f64
            });
            shell.run(
                Command::Timer,
                delay,
                JsValue::UNDEFINED,
                JsValue::UNDEFINED,
            );
        }
    }

    fn execute(&self, shell: &Shell, io: Io) {
        let none = || JsValue::UNDEFINED;
        match io {
            Io::ResolveUrl { conn } => {
                shell.run(Command::ResolveUrl, conn.0 as f64, none(), none());
            }
            Io::Open {
                conn,
                url,
                protocols,
            } => {
                let v1 = protocols.iter().any(|p| p == protocol::SUBPROTOCOL);
                shell.run(Command::Open, conn.0 as f64, url.into(), v1.into());
            }
            Io::Transmit { conn, message } => {
                shell.run(Command::Send, conn.0 as f64, bytes_or_text(message), none());
            }
            Io::Close { conn, code, reason } => {
                shell.run(Command::Close, conn.0 as f64, number(code), reason.into());
            }
            Io::Abandon { conn, code, reason } => {
                shell.run(Command::Abandon, conn.0 as f64, number(code), reason.into());
            }
            Io::PollBuffered { conn } => {
                let amount = shell.run(Command::Buffered, conn.0 as f64, none(), none());
                if amount >= 0.0 {
                    let input = Input::BufferedAmount {
                        conn,
                        amount: amount as u64,
                    };
                    self.with_session(|session| session.handle(now(), input));
                }
            }
        }
    }
}

/// What the wasm holds right now across all sockets: the page's functions (`isTerminalClose`,
/// `ping`, `isPong`). The shell's sockets, listeners and timers are counted in `index.js`.
/// For leak checks.
#[wasm_bindgen(js_name = "__live", skip_typescript)]
pub fn live_resources() -> f64 {
    HELD_FUNCTIONS.with(|held| held.borrow().len()) as f64
}
