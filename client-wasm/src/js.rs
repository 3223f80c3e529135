//! The JavaScript face of the library: the `#[wasm_bindgen]` surface of the npm package
//! (feature `js`).
//!
//! The npm package runs the sans-IO [`crate::machine::session::Session`] (the machine and,
//! with `rooms`, the rooms layer) here, and its browser shell in `client-wasm/js/index.js`: the `WebSocket` and its listeners, the
//! one timer, the `online`/`offline`/`visibilitychange` listeners, the URL provider's promise
//! and the publish promises live there, where each costs a few bytes of JS instead of wasm
//! imports, closures and export shims (the Rust shell, [`crate::web`], serves Rust apps). The
//! wasm decides everything; the JS only carries it out. `index.js` also checks the arguments
//! and options, and builds every event object and every error.
//!
//! The boundary is four calls, each taking the socket's JS object (`shell`) so the wasm never
//! holds it:
//!
//! - [`LifelineSocket::input`] (`__input(shell, kind, conn, a, b, c)`): what happened in the
//!   browser; `kind` is one of the `IN_*` constants, mirrored in `index.js`.
//! - [`LifelineSocket::call`] (`__call(shell, op, a, b)`): the page's calls (`send`, `close`,
//!   `join`, …); `op` is one of the `OP_*` constants.
//! - `shell.__do(action, conn, a, b)`: what the shell must do (open a socket, send a frame,
//!   set the timer, …); `action` is one of the `DO_*` constants. Answers a number.
//! - `shell.__emit(kind, a, …, f)`: an event for the page; `kind` indexes `TYPES` in
//!   `index.js`, which also names the fields `a`..`f` of each kind.
//!
//! Errors are thrown (and `error` events carry them) as `[code, message, a, b]`
//! (`crate_error`, `room_error`); `index.js` turns that into an `Error` with
//! `name = "LifelineError"`, the `code` and the fields of that code.
//!
//! Re-entrancy: the shell's callbacks and the page's listeners may call back in (send from a
//! listener, `dispose` from a handler). No borrow is held while JS runs, and a call that
//! arrives while the drive loop runs leaves its work to that loop, as in the Rust shell.
//!
//! Protocol v1 (rooms) is started on first use: `join`, `leave`, `publish`, `listRooms`, or a
//! listener for a room event, which also offers `lifeline.v1` from the next attempt on. A
//! socket that never uses rooms speaks no protocol (the default heartbeat runs only where the
//! server selected `lifeline.v1`), so it works with any WebSocket server.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use js_sys::{Array, Function, Uint8Array};
use wasm_bindgen::prelude::*;

#[cfg(feature = "rooms")]
use crate::machine::rooms::{RawJson, RoomError, RoomEvent, RoomsConfig};
use crate::machine::session::{Io, Session, SessionEvent};
use crate::machine::{CloseInfo, ConnId, Input, Instant, Target, default_terminal};
use crate::{Config, Error, Event, Message, QueueLimit, Sent, State};

/// The result type of every exported function: a thrown `[code, message, a, b]` on failure.
type JsResult<T> = std::result::Result<T, JsValue>;

// ---------------------------------------------------------------------------------------------
// Errors: the one place where errors become JS values.
// ---------------------------------------------------------------------------------------------

/// `[code, message, a, b]`, which `index.js` turns into a `LifelineError`.
fn thrown(code: &str, message: &str, a: JsValue, b: JsValue) -> JsValue {
    Array::of4(&code.into(), &message.into(), &a, &b).into()
}

fn num(n: impl Into<f64>) -> JsValue {
    JsValue::from_f64(n.into())
}

/// A crate error for JavaScript; `a` and `b` are the refused input or the bound.
fn crate_error(error: &Error) -> JsValue {
    let none = JsValue::UNDEFINED;
    let (code, a, b) = match error {
        Error::InvalidUrl { supplied, .. } => ("ERR_INVALID_URL", supplied.into(), none),
        Error::InvalidCloseCode { code } => ("ERR_INVALID_CLOSE_CODE", num(*code), none),
        Error::CloseReasonTooLong { bytes } => {
            ("ERR_CLOSE_REASON_TOO_LONG", num(*bytes as f64), none)
        }
        Error::QueueFull { limit } => {
            let (key, value) = match limit {
                QueueLimit::Messages(n) => ("messages", *n),
                QueueLimit::Bytes(n) => ("bytes", *n),
            };
            ("ERR_QUEUE_FULL", key.into(), num(value as f64))
        }
        Error::TooLarge { size, limit } => ("ERR_TOO_LARGE", num(*size as f64), num(*limit as f64)),
        Error::Closed => ("ERR_CLOSED", none.clone(), none),
        Error::NotOpen => ("ERR_NOT_OPEN", none.clone(), none),
        Error::Encode { .. } => ("ERR_ENCODE", none.clone(), none),
        Error::Socket => ("ERR_SOCKET", none.clone(), none),
        Error::ConnectTimeout { after_ms } => ("ERR_CONNECT_TIMEOUT", num(*after_ms as f64), none),
        Error::UrlProvider { .. } => ("ERR_URL_PROVIDER", none.clone(), none),
        Error::Platform { .. } => ("ERR_PLATFORM", none.clone(), none),
    };
    thrown(code, &error.message(), a, b)
}

#[cfg(feature = "rooms")]
/// A protocol v1 error (a refused `join` or a failed `publish`) for JavaScript.
fn room_error(error: &RoomError) -> JsValue {
    let none = JsValue::UNDEFINED;
    let (code, a, b) = match error {
        RoomError::InvalidRoom { room } => ("ERR_INVALID_ROOM", room.into(), none),
        RoomError::NotJoined { room } => ("ERR_NOT_JOINED", room.into(), none),
        RoomError::TooManyUnacked { limit } => ("ERR_TOO_MANY_UNACKED", num(*limit as f64), none),
        RoomError::PublishTimeout { id, after_ms } => (
            "ERR_PUBLISH_TIMEOUT",
            num(id.0 as f64),
            num(*after_ms as f64),
        ),
        RoomError::Refused { id, code, .. } => (
            "ERR_PUBLISH_REFUSED",
            num(id.0 as f64),
            code.as_str().into(),
        ),
        RoomError::LeftRoom { id, room } => ("ERR_LEFT_ROOM", num(id.0 as f64), room.into()),
        RoomError::TooLarge { size, limit } => (
            "ERR_TOO_LARGE",
            num(*size as f64),
            limit.map_or(none, |l| num(l as f64)),
        ),
        RoomError::Encode { .. } => ("ERR_ENCODE", none.clone(), none),
        RoomError::Closed => ("ERR_CLOSED", none.clone(), none),
    };
    thrown(code, &error.message(), a, b)
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// The page's functions (`isTerminalClose`, the heartbeat's `ping` and `isPong`) by id.
    /// `Config` wants `Send + Sync` rules and JS functions are neither, so the rule holds the
    /// id and looks the function up here; the entry lives exactly as long as its socket
    /// ([`PredicateSlot`]).
    /// A `Vec`: one entry per held function of a live socket, and no hash map in the wasm.
    static PREDICATES: RefCell<Vec<(u64, Function)>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

fn next_id() -> u64 {
    NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id.wrapping_add(1));
        id
    })
}

/// Removes one of a socket's functions when the socket goes.
struct PredicateSlot(u64);

/// Holds `function` until the slot pushed to `slots` is dropped; returns its id.
fn hold(slots: &mut Vec<PredicateSlot>, function: Function) -> u64 {
    let id = next_id();
    PREDICATES.with(|p| p.borrow_mut().push((id, function)));
    slots.push(PredicateSlot(id));
    id
}

/// Calls the function held under `id` with `arg`. `index.js` wraps the page's functions: an
/// exception is reported there and answers `undefined`, which leaves the choice to the default.
fn call_held(id: u64, arg: JsValue) -> JsValue {
    let function = PREDICATES.with(|p| {
        p.borrow()
            .iter()
            .find(|(key, _)| *key == id)
            .map(|(_, f)| f.clone())
    });
    function
        .and_then(|f| f.call1(&JsValue::UNDEFINED, &arg).ok())
        .unwrap_or(JsValue::UNDEFINED)
}

impl Drop for PredicateSlot {
    fn drop(&mut self) {
        PREDICATES.with(|p| p.borrow_mut().retain(|(id, _)| *id != self.0));
    }
}

/// The numeric options, in the order `index.js` passes them; NaN where one is not given.
/// `index.js` has checked each is a non-negative number. Then come the jitter seed and the
/// browser's state.
#[derive(Clone, Copy)]
enum Num {
    MinDelay = 0,
    MaxDelay = 1,
    BackoffFactor = 2,
    MaxRetries = 3,
    ConnectTimeout = 4,
    MinUptime = 5,
    /// 1 when `heartbeat: false`.
    NoHeartbeat = 6,
    HeartbeatInterval = 7,
    HeartbeatTimeout = 8,
    MaxQueuedMessages = 9,
    MaxQueuedBytes = 10,
    HighWaterMark = 11,
    #[cfg(feature = "rooms")]
    AckTimeout = 12,
    #[cfg(feature = "rooms")]
    MaxUnacked = 13,
    /// Two 32-bit halves of the seed, from `Math.random()`.
    SeedHigh = 14,
    SeedLow = 15,
    /// 1 when the browser is offline as the socket is made.
    Offline = 16,
}

struct Numbers<'a>(&'a [f64]);

impl Numbers<'_> {
    fn get(&self, which: Num) -> Option<f64> {
        self.0.get(which as usize).copied().filter(|n| !n.is_nan())
    }

    fn millis(&self, which: Num) -> Option<Duration> {
        // Saturating float→int: `Infinity` means "as long as possible".
        self.get(which).map(|ms| Duration::from_millis(ms as u64))
    }
}

/// The page's functions among the options, each wrapped by `index.js`.
struct Functions {
    terminal: Option<Function>,
    /// `(n) => string | undefined`: the heartbeat's `ping`.
    ping: Option<Function>,
    /// `(data) => boolean`: the heartbeat's `isPong`.
    is_pong: Option<Function>,
}

/// The [`Config`] of the options; the returned slots own the page's functions.
fn config_from(numbers: &Numbers<'_>, functions: Functions) -> (Config, Vec<PredicateSlot>) {
    let mut slots = Vec::new();
    let mut config = Config::default();
    if let Some(ms) = numbers.millis(Num::MinDelay) {
        config = config.backoff_min(ms);
    }
    if let Some(ms) = numbers.millis(Num::MaxDelay) {
        config = config.backoff_max(ms);
    }
    if let Some(factor) = numbers.get(Num::BackoffFactor) {
        config = config.backoff_factor(factor);
    }
    if let Some(n) = numbers.get(Num::MaxRetries) {
        config = config.max_attempts(n.is_finite().then_some(n as u32));
    }
    if let Some(ms) = numbers.millis(Num::ConnectTimeout) {
        config = config.connect_timeout(ms);
    }
    if let Some(ms) = numbers.millis(Num::MinUptime) {
        config = config.min_uptime(ms);
    }
    if numbers.get(Num::NoHeartbeat) == Some(1.0) {
        config = config.no_heartbeat();
    } else {
        if let Some(ms) = numbers.millis(Num::HeartbeatInterval) {
            config = config.heartbeat_interval(ms);
        }
        if let Some(ms) = numbers.millis(Num::HeartbeatTimeout) {
            config = config.heartbeat_timeout(ms);
        }
        if let Some(function) = functions.ping {
            let key = hold(&mut slots, function);
            config = config.ping(
                move |n| match call_held(key, (n as f64).into()).as_string() {
                    Some(text) => Message::Text(text),
                    None => crate::machine::default_ping(n),
                },
            );
        }
        if let Some(function) = functions.is_pong {
            let key = hold(&mut slots, function);
            config = config.is_pong(move |text| call_held(key, text.into()).is_truthy());
        }
    }
    let messages = numbers.get(Num::MaxQueuedMessages).map(|n| n as usize);
    let bytes = numbers.get(Num::MaxQueuedBytes).map(|n| n as usize);
    if messages.is_some() || bytes.is_some() {
        let (default_messages, default_bytes) = (config.queue_max_messages, config.queue_max_bytes);
        config = config.queue_limits(
            messages.unwrap_or(default_messages),
            bytes.unwrap_or(default_bytes),
        );
    }
    if let Some(bytes) = numbers.get(Num::HighWaterMark) {
        config = config.high_water_mark(bytes as u64);
    }
    if let Some(function) = functions.terminal {
        let key = hold(&mut slots, function);
        config = config.terminal_close(move |code| {
            let verdict = call_held(key, code.into());
            if verdict.is_undefined() {
                default_terminal(code)
            } else {
                verdict.is_truthy()
            }
        });
    }
    (config, slots)
}

#[cfg(feature = "rooms")]
/// The protocol v1 options: `ackTimeout` (ms) and `maxUnacked`.
fn rooms_config_from(numbers: &Numbers<'_>) -> RoomsConfig {
    let mut config = RoomsConfig::default();
    if let Some(ms) = numbers.millis(Num::AckTimeout) {
        config = config.ack_timeout(ms);
    }
    if let Some(n) = numbers.get(Num::MaxUnacked) {
        config = config.max_unacked(n as usize);
    }
    config
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// An absent event field. Events are padded with it to six fields by hand: a generic padding
/// function is compiled once per field count.
const U: JsValue = JsValue::UNDEFINED;

/// `send`'s answer as an index of `SENT` in `index.js`.
fn sent_index(sent: Sent) -> u8 {
    match sent {
        Sent::Transmitted => 0,
        Sent::Queued => 1,
    }
}

/// The index of a state in `STATES` of `index.js`.
fn state_index(state: State) -> u8 {
    match state {
        State::Connecting => 0,
        State::Open => 1,
        State::Closing => 2,
        State::Closed => 3,
        State::Reconnecting => 4,
    }
}

/// A socket event as its kind (an index of `TYPES` in `index.js`) and fields.
fn socket_event(event: &Event, protocol: impl FnOnce() -> String) -> (u32, [JsValue; 6]) {
    match event {
        Event::Open => (0, [protocol().into(), U, U, U, U, U]),
        Event::Message(Message::Text(text)) => (1, [text.into(), U, U, U, U, U]),
        Event::Message(Message::Binary(bytes)) => (
            1,
            [
                Uint8Array::from(bytes.as_slice()).buffer().into(),
                U,
                U,
                U,
                U,
                U,
            ],
        ),
        Event::Error(error) => (2, [crate_error(error), U, U, U, U, U]),
        Event::Close(info) => (
            3,
            [
                num(info.code),
                info.reason.as_str().into(),
                info.was_clean.into(),
                U,
                U,
                U,
            ],
        ),
        Event::Reconnecting { attempt, delay } => (
            4,
            [num(*attempt), num(delay.as_millis() as f64), U, U, U, U],
        ),
        Event::StateChange(state) => (5, [num(state_index(*state)), U, U, U, U, U]),
        Event::GaveUp => (6, [U, U, U, U, U, U]),
        Event::Offline => (7, [U, U, U, U, U, U]),
        Event::Online => (8, [U, U, U, U, U, U]),
        Event::Pong { rtt } => (9, [num(rtt.as_millis() as f64), U, U, U, U, U]),
    }
}

#[cfg(feature = "rooms")]
/// A protocol v1 event as its kind (an index of `TYPES` in `index.js`) and fields.
fn room_event(event: &RoomEvent) -> (u32, [JsValue; 6]) {
    match event {
        RoomEvent::Welcome { resumed, name } => (10, [(*resumed).into(), name.into(), U, U, U, U]),
        RoomEvent::Joined {
            room,
            epoch,
            offset,
        } => (
            11,
            [room.into(), epoch.into(), num(*offset as f64), U, U, U],
        ),
        RoomEvent::Recovery {
            room,
            recovered,
            since,
            epoch,
            offset,
        } => (
            12,
            [
                room.into(),
                (*recovered).into(),
                since.epoch.as_str().into(),
                num(since.offset as f64),
                epoch.into(),
                num(*offset as f64),
            ],
        ),
        RoomEvent::Message(m) => (
            13,
            [
                m.room.as_str().into(),
                num(m.offset as f64),
                m.from.as_str().into(),
                m.data.as_str().into(),
                num(m.ts as f64),
                // Six fields cross the boundary; the other three travel together.
                Array::of3(
                    &m.epoch.as_str().into(),
                    &m.publisher.as_deref().map_or(U, JsValue::from),
                    &m.id.map_or(U, |id| num(id as f64)),
                )
                .into(),
            ],
        ),
        RoomEvent::Left { room } => (14, [room.into(), U, U, U, U, U]),
        RoomEvent::Acked {
            id,
            room,
            offset,
            duplicate,
        } => (
            15,
            [
                num(id.0 as f64),
                room.into(),
                num(*offset as f64),
                (*duplicate).into(),
                U,
                U,
            ],
        ),
        RoomEvent::PublishFailed { id, room, error } => (
            16,
            [num(id.0 as f64), room.into(), room_error(error), U, U, U],
        ),
        RoomEvent::Presence { room, members } => (
            17,
            [
                room.into(),
                members.iter().map(JsValue::from).collect::<Array>().into(),
                U,
                U,
                U,
                U,
            ],
        ),
        RoomEvent::Rooms(rooms) => {
            // Flat: name, member count, name, member count, ...
            let list = Array::new();
            for info in rooms {
                list.push(&info.room.as_str().into());
                list.push(&num(info.members));
            }
            (18, [list.into(), U, U, U, U, U])
        }
        RoomEvent::ServerError { code, message } => {
            (19, [code.as_str().into(), message.into(), U, U, U, U])
        }
        RoomEvent::BadFrame(bad) => (
            20,
            [
                bad.raw.as_str().into(),
                bad.error.as_str().into(),
                U,
                U,
                U,
                U,
            ],
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The boundary with index.js
// ---------------------------------------------------------------------------------------------

#[wasm_bindgen]
extern "C" {
    /// The socket's object in `index.js`: the browser shell and the page's event target.
    pub type Shell;
    /// Builds the event of `kind` from `a`..`f` and runs the listeners and the handler
    /// (reporting their exceptions itself).
    #[wasm_bindgen(method, js_name = __emit)]
    fn emit(
        this: &Shell,
        kind: u32,
        a: JsValue,
        b: JsValue,
        c: JsValue,
        d: JsValue,
        e: JsValue,
        f: JsValue,
    );
    /// Carries out `action` (a `DO_*`) for connection `conn`.
    #[wasm_bindgen(method, js_name = __do)]
    fn act(this: &Shell, action: u32, conn: f64, a: JsValue, b: JsValue) -> f64;
    /// [`performance.now()`](https://developer.mozilla.org/en-US/docs/Web/API/Performance/now),
    /// which is monotonic, unlike `Date.now()`.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

fn now() -> Instant {
    Instant(performance_now().max(0.0) as u64)
}

/// Calls the promised URL provider; `__input(IN_URL | IN_URL_FAILED, conn, text)` follows.
const DO_RESOLVE_URL: u32 = 0;
/// Opens a `WebSocket` to `a` (the URL) offering the page's subprotocols, which `index.js`
/// keeps, and `lifeline.v1` after them when `b` is true (the rooms layer offers it), dropping
/// any other socket.
/// An exception goes to `__input(IN_OPEN_FAILED, conn, url, name, message)`.
const DO_OPEN: u32 = 1;
/// Sends `a` (a string or a `Uint8Array`) on connection `conn`, if it is still the socket.
const DO_SEND: u32 = 2;
/// Closes connection `conn` with code `a` and reason `b`; its events still count.
const DO_CLOSE: u32 = 3;
/// As `DO_CLOSE`, and the socket is dropped at once: the machine has moved on from it.
const DO_ABANDON: u32 = 4;
/// Answers connection `conn`'s `bufferedAmount`, or -1 if it is not the socket.
const DO_BUFFERED: u32 = 5;
/// Sets the one timer to `conn` milliseconds from now (replacing any), or clears it (-1).
const DO_TIMER: u32 = 6;

/// `open` on connection `conn`; `a` is the selected subprotocol.
const IN_OPENED: u32 = 0;
/// A text frame `a`.
const IN_TEXT: u32 = 1;
/// A binary frame, `a` an `ArrayBuffer`.
const IN_BYTES: u32 = 2;
/// `error` on the socket.
const IN_ERROR: u32 = 3;
/// `close`: code `a`, reason `b`, `wasClean` `c`.
const IN_CLOSED: u32 = 4;
/// The URL provider resolved with `a`.
const IN_URL: u32 = 5;
/// The URL provider failed; `a` says why.
const IN_URL_FAILED: u32 = 6;
/// `new WebSocket(a)` threw an exception named `b` with message `c`.
const IN_OPEN_FAILED: u32 = 7;
/// `send` threw an exception named `b` with message `c`.
const IN_SEND_FAILED: u32 = 8;
const IN_ONLINE: u32 = 9;
const IN_OFFLINE: u32 = 10;
const IN_VISIBLE: u32 = 11;
const IN_HIDDEN: u32 = 12;
/// The timer went off.
const IN_TIMER: u32 = 13;
/// Carry out what the machine has decided since it was made: start connecting.
const IN_START: u32 = 14;

/// Sends string `a`; answers the index of `"sent"`/`"queued"`.
const OP_SEND_TEXT: u32 = 0;
/// Sends the bytes of `Uint8Array` `a`; answers as `OP_SEND_TEXT`.
const OP_SEND_BYTES: u32 = 1;
/// Closes for good with code `a` and reason `b` (undefined when not given).
const OP_CLOSE: u32 = 2;
const OP_RECONNECT: u32 = 3;
/// Releases everything the wasm holds for this socket.
const OP_DISPOSE: u32 = 4;
/// The state, as an index of `STATES` in `index.js`.
const OP_STATE: u32 = 5;
const OP_URL: u32 = 6;
const OP_PROTOCOL: u32 = 7;
const OP_QUEUED: u32 = 8;
const OP_UNACKED: u32 = 9;
/// The heartbeat's round-trip time as `[last, smoothed]` in ms, `undefined` before a pong.
const OP_RTT: u32 = 15;
#[cfg(feature = "rooms")]
const OP_START_ROOMS: u32 = 10;
#[cfg(feature = "rooms")]
const OP_JOIN: u32 = 11;
#[cfg(feature = "rooms")]
const OP_LEAVE: u32 = 12;
/// Publishes JSON text `b` to room `a`; answers the publish id, whose `ack` or `publishFailed`
/// event settles the promise `index.js` made.
#[cfg(feature = "rooms")]
const OP_PUBLISH: u32 = 13;
#[cfg(feature = "rooms")]
const OP_LIST_ROOMS: u32 = 14;

fn text(value: &JsValue) -> String {
    value.as_string().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The socket
// ---------------------------------------------------------------------------------------------

/// Everything the wasm holds for a live socket; dropping it releases all of it.
struct Live {
    session: Session,
    _functions: Vec<PredicateSlot>,
}

/// The wasm half of a `LifelineSocket` of `index.js`, which owns it. See the module docs.
#[wasm_bindgen(skip_typescript)]
pub struct LifelineSocket {
    /// `None` once disposed.
    live: RefCell<Option<Live>>,
    /// The deadline the shell's timer is set for.
    armed: Cell<Option<Instant>>,
    /// Set while the drive loop runs; calls from inside it leave their work to it.
    driving: Cell<bool>,
}

impl std::fmt::Debug for LifelineSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifelineSocket")
            .field("disposed", &self.live.borrow().is_none())
            .finish_non_exhaustive()
    }
}

#[wasm_bindgen]
impl LifelineSocket {
    /// A socket for `url` (a string, or `undefined` when `index.js` holds a URL provider);
    /// `numbers` are the numeric options (see `Num`); `terminal` is the wrapped
    /// `isTerminalClose`; `ping` and `isPong` the heartbeat's, wrapped. `index.js` has
    /// checked all of them. The page's subprotocols stay in `index.js` (a list of strings
    /// through the boundary cost about 1.3 KB of wasm); the machine's list holds only what the
    /// rooms layer offers (see [`crate::machine::Machine::offer_protocol`] and `DO_OPEN`). Nothing is carried
    /// out before `__input(IN_START)`, so that the page can add listeners first.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: Option<String>,
        numbers: &[f64],
        terminal: Option<Function>,
        ping: Option<Function>,
        is_pong: Option<Function>,
    ) -> JsResult<LifelineSocket> {
        let numbers = Numbers(numbers);
        let functions = Functions {
            terminal,
            ping,
            is_pong,
        };
        let (config, functions) = config_from(&numbers, functions);
        let half = |which| numbers.get(which).unwrap_or(0.0) as u32;
        let seed = (u64::from(half(Num::SeedHigh)) << 32) | u64::from(half(Num::SeedLow));
        let target = url.map_or(Target::Provider, Target::Url);
        let now = now();
        let mut session = Session::new(config, target, seed, now).map_err(|e| crate_error(&e))?;
        if numbers.get(Num::Offline) == Some(1.0) {
            session.handle(now, Input::Offline);
        }
        #[cfg(feature = "rooms")]
        session.set_rooms_config(rooms_config_from(&numbers));
        Ok(LifelineSocket {
            live: RefCell::new(Some(Live {
                session,
                _functions: functions,
            })),
            armed: Cell::new(None),
            driving: Cell::new(false),
        })
    }

    /// Feeds what happened in the browser (an `IN_*` kind) and carries out the consequences.
    #[wasm_bindgen(js_name = __input)]
    pub fn input(&self, shell: &Shell, kind: u32, conn: f64, a: JsValue, b: JsValue, c: JsValue) {
        let now = now();
        let conn = ConnId(conn as u64);
        let input = match kind {
            IN_OPENED => Input::SocketOpened {
                conn,
                protocol: text(&a),
            },
            IN_TEXT => Input::SocketMessage {
                conn,
                message: Message::Text(text(&a)),
            },
            IN_BYTES => Input::SocketMessage {
                conn,
                message: Message::Binary(Uint8Array::new(&a).to_vec()),
            },
            IN_ERROR => Input::SocketError { conn },
            IN_CLOSED => Input::SocketClosed {
                conn,
                info: CloseInfo {
                    code: a.as_f64().unwrap_or(1006.0) as u16,
                    reason: text(&b),
                    was_clean: c.is_truthy(),
                },
            },
            IN_URL => Input::UrlResolved {
                conn,
                result: Ok(text(&a)),
            },
            IN_URL_FAILED => Input::UrlResolved {
                conn,
                result: Err(text(&a)),
            },
            IN_OPEN_FAILED => Input::OpenFailed {
                conn,
                error: Error::from_exception(&text(&b), text(&c), Some(&text(&a))),
            },
            IN_SEND_FAILED => {
                let error = Error::from_exception(&text(&b), text(&c), None);
                self.with_live(|live| live.session.transmit_failed(error));
                return self.drive(shell);
            }
            IN_ONLINE => Input::Online,
            IN_OFFLINE => Input::Offline,
            IN_VISIBLE => Input::Visible,
            IN_HIDDEN => Input::Hidden,
            IN_TIMER => {
                self.armed.set(None);
                self.with_live(|live| live.session.handle_timeout(now));
                return self.drive(shell);
            }
            IN_START => return self.drive(shell),
            _ => return,
        };
        self.with_live(|live| live.session.handle(now, input));
        self.drive(shell);
    }

    /// Carries out the page's call `op` (an `OP_*`); throws `[code, message, a, b]`.
    #[wasm_bindgen(js_name = __call)]
    pub fn call(&self, shell: &Shell, op: u32, a: JsValue, b: JsValue) -> JsResult<JsValue> {
        let now = now();
        let answer = match op {
            OP_SEND_TEXT => {
                let message = text(&a);
                // Straight to the socket when nothing waits before it: the machine only counts
                // the bytes, and the page's own string is sent, not a copy out of the wasm.
                let direct = self
                    .with_live(|live| live.session.send_now(now, message.len()))
                    .flatten();
                let sent = match direct {
                    Some(conn) => {
                        shell.act(DO_SEND, conn.0 as f64, a, JsValue::UNDEFINED);
                        Sent::Transmitted
                    }
                    None => self.send(now, Message::Text(message))?,
                };
                num(sent_index(sent))
            }
            OP_SEND_BYTES => num(sent_index(
                self.send(now, Message::Binary(Uint8Array::new(&a).to_vec()))?,
            )),
            OP_CLOSE => {
                let code = a.as_f64().map(|c| c as u16);
                let reason = b.as_string();
                self.with_live(|live| live.session.close(now, code, reason.as_deref()))
                    .unwrap_or(Ok(()))
                    .map_err(|e| crate_error(&e))?;
                JsValue::UNDEFINED
            }
            OP_RECONNECT => {
                self.with_live(|live| live.session.reconnect(now));
                JsValue::UNDEFINED
            }
            OP_DISPOSE => {
                // Dropped outside the borrow.
                let live = self.live.borrow_mut().take();
                drop(live);
                return Ok(JsValue::UNDEFINED);
            }
            OP_STATE => {
                let state = self.with_live(|live| live.session.machine().state());
                return Ok(num(state_index(state.unwrap_or(State::Closed))));
            }
            OP_URL => {
                let url = self.with_live(|live| live.session.machine().url().map(str::to_owned));
                return Ok(url.flatten().unwrap_or_default().into());
            }
            OP_PROTOCOL => {
                let protocol = self.with_live(|live| live.session.machine().protocol().to_owned());
                return Ok(protocol.unwrap_or_default().into());
            }
            OP_RTT => {
                let rtt = self
                    .with_live(|live| live.session.machine().rtt())
                    .flatten();
                return Ok(rtt.map_or(JsValue::UNDEFINED, |rtt| {
                    let ms = |d: Duration| num(d.as_millis() as f64);
                    Array::of2(&ms(rtt.last), &ms(rtt.smoothed)).into()
                }));
            }
            OP_QUEUED => {
                let queued = self.with_live(|live| live.session.machine().queued_messages());
                return Ok(num(queued.unwrap_or(0) as f64));
            }
            OP_UNACKED => {
                #[cfg(feature = "rooms")]
                let unacked = self
                    .with_live(|live| live.session.rooms().map_or(0, |r| r.unacked()))
                    .unwrap_or(0);
                #[cfg(not(feature = "rooms"))]
                let unacked = 0;
                return Ok(num(unacked as f64));
            }
            #[cfg(feature = "rooms")]
            OP_START_ROOMS => {
                self.with_live(|live| live.session.start_rooms(now));
                JsValue::UNDEFINED
            }
            #[cfg(feature = "rooms")]
            OP_JOIN => {
                let room = text(&a);
                self.with_live(|live| live.session.join(now, &room))
                    .unwrap_or(Ok(()))
                    .map_err(|e| room_error(&e))?;
                JsValue::UNDEFINED
            }
            #[cfg(feature = "rooms")]
            OP_LEAVE => {
                let room = text(&a);
                let left = self.with_live(|live| live.session.leave(now, &room));
                left.unwrap_or(false).into()
            }
            #[cfg(feature = "rooms")]
            OP_PUBLISH => {
                let room = text(&a);
                // JSON.stringify writes a lone surrogate as a `\u` escape, which the server
                // refuses.
                let data = RawJson::new(text(&b)).map_err(|e| {
                    room_error(&RoomError::Encode {
                        message: e.to_string(),
                    })
                })?;
                let id = self
                    .with_live(|live| live.session.publish(now, &room, data))
                    .unwrap_or(Err(RoomError::Closed))
                    .map_err(|e| room_error(&e))?;
                num(id.0 as f64)
            }
            #[cfg(feature = "rooms")]
            OP_LIST_ROOMS => {
                let asked = self.with_live(|live| live.session.list_rooms(now));
                asked.unwrap_or(false).into()
            }
            _ => return Ok(JsValue::UNDEFINED),
        };
        self.drive(shell);
        Ok(answer)
    }
}

impl LifelineSocket {
    /// Runs `f` on the live socket with the borrow held only for `f`, which must not call JS.
    /// `None` once disposed.
    fn with_live<T>(&self, f: impl FnOnce(&mut Live) -> T) -> Option<T> {
        self.live.borrow_mut().as_mut().map(f)
    }

    fn send(&self, now: Instant, message: Message) -> JsResult<Sent> {
        self.with_live(|live| live.session.send(now, message))
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
            if let Some(io) = self.with_live(|live| live.session.poll_io()).flatten() {
                self.execute(shell, io);
                continue;
            }
            match self.with_live(|live| live.session.poll_event()).flatten() {
                Some(SessionEvent::Connection(event)) => {
                    let protocol = || {
                        self.with_live(|live| live.session.machine().protocol().to_owned())
                            .unwrap_or_default()
                    };
                    let (kind, fields) = socket_event(&event, protocol);
                    emit(shell, kind, fields);
                }
                #[cfg(feature = "rooms")]
                Some(SessionEvent::Room(event)) => {
                    let (kind, fields) = room_event(&event);
                    emit(shell, kind, fields);
                }
                None => break,
            }
        }
        self.driving.set(false);
        // Disposed: the shell has cleared its timer itself.
        let Some(want) = self.with_live(|live| live.session.poll_timeout()) else {
            return;
        };
        if self.armed.replace(want) != want {
            let delay = want.map_or(-1.0, |at| {
                at.0.saturating_sub(now().0).min(i32::MAX as u64) as f64
            });
            shell.act(DO_TIMER, delay, JsValue::UNDEFINED, JsValue::UNDEFINED);
        }
    }

    fn execute(&self, shell: &Shell, io: Io) {
        let none = || JsValue::UNDEFINED;
        match io {
            Io::ResolveUrl { conn } => {
                shell.act(DO_RESOLVE_URL, conn.0 as f64, none(), none());
            }
            Io::Open {
                conn,
                url,
                protocols,
            } => {
                let v1 = protocols.iter().any(|p| p == protocol::SUBPROTOCOL);
                shell.act(DO_OPEN, conn.0 as f64, url.into(), v1.into());
            }
            Io::Transmit { conn, message } => {
                let data = match message {
                    Message::Text(t) => JsValue::from(t),
                    Message::Binary(b) => Uint8Array::from(b.as_slice()).into(),
                };
                shell.act(DO_SEND, conn.0 as f64, data, none());
            }
            Io::Close { conn, code, reason } => {
                shell.act(DO_CLOSE, conn.0 as f64, num(code), reason.into());
            }
            Io::Abandon { conn, code, reason } => {
                shell.act(DO_ABANDON, conn.0 as f64, num(code), reason.into());
            }
            Io::PollBuffered { conn } => {
                let amount = shell.act(DO_BUFFERED, conn.0 as f64, none(), none());
                if amount >= 0.0 {
                    let input = Input::BufferedAmount {
                        conn,
                        amount: amount as u64,
                    };
                    self.with_live(|live| live.session.handle(now(), input));
                }
            }
        }
    }
}

fn emit(shell: &Shell, kind: u32, fields: [JsValue; 6]) {
    let [a, b, c, d, e, f] = fields;
    shell.emit(kind, a, b, c, d, e, f);
}

/// What the wasm holds right now across all sockets: the page's functions (`isTerminalClose`,
/// `ping`, `isPong`). The shell's sockets, listeners and timers are counted in `index.js`.
/// For leak checks.
#[wasm_bindgen(js_name = "__live", skip_typescript)]
pub fn live_resources() -> f64 {
    PREDICATES.with(|p| p.borrow().len()) as f64
}
