//! The JavaScript face of the library: the `#[wasm_bindgen]` surface of the npm package
//! (feature `js`).
//!
//! [`LifelineSocket`] wraps a [`Client`] for `client-wasm/js/index.js`, the package entry,
//! which subclasses it and gives it the conventions of the browser's `WebSocket`: camelCase
//! options in milliseconds, listeners and `on…` handlers, `send` returning `"sent"` or
//! `"queued"`, `readyState`, `LifelineError`s. The TypeScript declarations are hand-written in
//! `client-wasm/js/index.d.ts`.
//!
//! The boundary carries plain values, and `index.js` does the work that is JS-shaped: it
//! checks the arguments and options, builds every event object and every error. Each costs a
//! handful of bytes in JS and many more as wasm imports and export shims.
//!
//! - Events go to the JS object's `__emit(kind, a, b, c, d, e, f)`, found through a
//!   [`WeakRef`] so the wasm never keeps the JS object alive; `kind` indexes `TYPES` in
//!   `index.js`, which also names the fields `a`..`f` of each kind.
//! - Errors are thrown (and promises rejected, and `error` events carry them) as
//!   `[code, message, a, b]` ([`crate_error`], [`room_error`]); `index.js` turns that into an
//!   `Error` with `name = "LifelineError"`, the `code` and the fields of that code.
//!
//! Ownership: the exported object owns the [`Client`] and the JS functions from the options.
//! [`LifelineSocket::dispose`] (also `[Symbol.dispose]`, and wasm-bindgen's `free()`, which
//! drops the struct) releases all of them. Callbacks hold only [`Weak`] references, so no
//! cycle keeps anything alive, and no closure is ever `forget`-ed.
//!
//! Protocol v1 (rooms) is the library's [`RoomsClient`], started on first use: `join`, `leave`,
//! `publish`, `listRooms`, or a listener for a room event. A socket that never uses rooms
//! speaks no protocol beyond the heartbeat, so it works with any WebSocket server.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use js_sys::{Array, Function, Object, Uint8Array, WeakRef};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

use crate::machine::default_terminal;
#[cfg(feature = "rooms")]
use crate::machine::rooms::{PublishAck, RawJson, RoomError, RoomEvent, RoomsConfig};
use crate::web::Subscription;
#[cfg(feature = "rooms")]
use crate::web::rooms::{RoomSubscription, RoomsClient};
use crate::{Client, Config, Error, Event, Message, QueueLimit, Sent, State};

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
        RoomError::Encode { .. } => ("ERR_ENCODE", none.clone(), none),
        RoomError::Closed => ("ERR_CLOSED", none.clone(), none),
    };
    thrown(code, &error.message(), a, b)
}

fn disposed() -> JsValue {
    thrown(
        "ERR_DISPOSED",
        "the LifelineSocket was disposed",
        JsValue::UNDEFINED,
        JsValue::UNDEFINED,
    )
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// `isTerminalClose` functions by socket id. `Config` wants `Send + Sync` rules and JS
    /// functions are neither, so the rule holds the id and looks the function up here; the
    /// entry lives exactly as long as its socket ([`PredicateSlot`]).
    /// A `Vec`: one entry per live socket with a predicate, and no hash map in the wasm.
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

/// Removes a socket's `isTerminalClose` function when the socket goes.
struct PredicateSlot(u64);

impl Drop for PredicateSlot {
    fn drop(&mut self) {
        PREDICATES.with(|p| p.borrow_mut().retain(|(id, _)| *id != self.0));
    }
}

/// The numeric options, in the order `index.js` passes them; NaN where one is not given.
/// `index.js` has checked each is a non-negative number.
#[derive(Clone, Copy)]
enum Num {
    MinDelay,
    MaxDelay,
    BackoffFactor,
    MaxRetries,
    ConnectTimeout,
    MinUptime,
    /// 1 when `heartbeat: false`.
    NoHeartbeat,
    HeartbeatInterval,
    HeartbeatTimeout,
    MaxQueuedMessages,
    MaxQueuedBytes,
    HighWaterMark,
    #[cfg(feature = "rooms")]
    AckTimeout,
    #[cfg(feature = "rooms")]
    MaxUnacked,
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

/// The [`Config`] of the options; the returned slot owns the `isTerminalClose` function.
fn config_from(
    numbers: &Numbers<'_>,
    protocols: Vec<String>,
    terminal: Option<Function>,
) -> (Config, Option<PredicateSlot>) {
    let mut config = Config::default().protocols(protocols);
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
    let slot = terminal.map(|function| {
        let id = next_id();
        PREDICATES.with(|p| p.borrow_mut().push((id, function)));
        // `index.js` wraps the page's function: it reports an exception itself and then
        // answers `undefined`, which leaves the choice to the default rule.
        config = std::mem::take(&mut config).terminal_close(move |code| {
            let function = PREDICATES.with(|p| {
                p.borrow()
                    .iter()
                    .find(|(key, _)| *key == id)
                    .map(|(_, f)| f.clone())
            });
            match function.map(|f| f.call1(&JsValue::UNDEFINED, &code.into())) {
                Some(Ok(verdict)) if !verdict.is_undefined() => verdict.is_truthy(),
                _ => default_terminal(code),
            }
        });
        PredicateSlot(id)
    });
    (config, slot)
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

/// Starts the client: from a URL string, or from a function that returns a promise of one
/// (`index.js` wraps the page's provider so that it rejects with text).
fn start(url: &JsValue, config: Config) -> JsResult<Client> {
    if let Some(provider) = url.dyn_ref::<Function>() {
        let provider = provider.clone();
        return Client::with_url_provider(config, move || {
            let promise = provider
                .call0(&JsValue::UNDEFINED)
                .map(js_sys::Promise::from);
            async move {
                let settled = match promise {
                    Ok(promise) => wasm_bindgen_futures::JsFuture::from(promise).await,
                    Err(exception) => Err(exception),
                };
                match settled {
                    Ok(url) => Ok(url.as_string().unwrap_or_default()),
                    Err(text) => Err(text.as_string().unwrap_or_default()),
                }
            }
        })
        .map_err(|e| crate_error(&e));
    }
    Client::connect(&url.as_string().unwrap_or_default(), config).map_err(|e| crate_error(&e))
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

#[wasm_bindgen]
extern "C" {
    /// The socket's object in `index.js`.
    type Target;
    /// Builds the event of `kind` from `a`..`f` and runs the listeners and the handler
    /// (reporting their exceptions itself).
    #[wasm_bindgen(method, js_name = __emit)]
    fn emit(
        this: &Target,
        kind: u32,
        a: JsValue,
        b: JsValue,
        c: JsValue,
        d: JsValue,
        e: JsValue,
        f: JsValue,
    );
}

/// Hands events to the JS object; owned by the socket, seen by callbacks through a [`Weak`].
#[derive(Default)]
struct Emitter {
    /// The JS object of the socket; weak, so it can still be collected.
    target: RefCell<Option<WeakRef>>,
    /// Set by dispose: nothing is delivered afterwards, even mid-dispatch.
    closed: Cell<bool>,
}

impl Emitter {
    /// Emits event `kind` with fields `a`..`f` (undefined where not given).
    fn emit(&self, kind: u32, fields: [JsValue; 6]) {
        if self.closed.get() {
            return;
        }
        let target = self.target.borrow().as_ref().and_then(|w| w.deref());
        if let Some(target) = target {
            let [a, b, c, d, e, f] = fields;
            target
                .unchecked_ref::<Target>()
                .emit(kind, a, b, c, d, e, f);
        }
    }
}

/// `[a, b, ...]` padded with undefined to six fields.
fn fields<const N: usize>(given: [JsValue; N]) -> [JsValue; 6] {
    let mut all: [JsValue; 6] = Default::default();
    for (slot, value) in all.iter_mut().zip(given) {
        *slot = value;
    }
    all
}

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
        Event::Open => (0, fields([protocol().into()])),
        Event::Message(Message::Text(text)) => (1, fields([text.into()])),
        Event::Message(Message::Binary(bytes)) => (
            1,
            fields([Uint8Array::from(bytes.as_slice()).buffer().into()]),
        ),
        Event::Error(error) => (2, fields([crate_error(error)])),
        Event::Close(info) => (
            3,
            fields([
                num(info.code),
                info.reason.as_str().into(),
                info.was_clean.into(),
            ]),
        ),
        Event::Reconnecting { attempt, delay } => {
            (4, fields([num(*attempt), num(delay.as_millis() as f64)]))
        }
        Event::StateChange(state) => (5, fields([num(state_index(*state))])),
        Event::GaveUp => (6, fields([])),
        Event::Offline => (7, fields([])),
        Event::Online => (8, fields([])),
    }
}

#[cfg(feature = "rooms")]
/// A protocol v1 event as its kind (an index of `TYPES` in `index.js`) and fields.
fn room_event(event: &RoomEvent) -> (u32, [JsValue; 6]) {
    match event {
        RoomEvent::Welcome { resumed, name } => (9, fields([(*resumed).into(), name.into()])),
        RoomEvent::Joined {
            room,
            epoch,
            offset,
        } => (10, fields([room.into(), epoch.into(), num(*offset as f64)])),
        RoomEvent::Recovery {
            room,
            recovered,
            since,
            epoch,
            offset,
        } => (
            11,
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
            12,
            fields([
                m.room.as_str().into(),
                num(m.offset as f64),
                m.from.as_str().into(),
                m.data.as_str().into(),
                num(m.ts as f64),
            ]),
        ),
        RoomEvent::Left { room } => (13, fields([room.into()])),
        RoomEvent::Acked {
            id,
            room,
            offset,
            duplicate,
        } => (
            14,
            fields([
                num(id.0 as f64),
                room.into(),
                num(*offset as f64),
                (*duplicate).into(),
            ]),
        ),
        RoomEvent::PublishFailed { id, room, error } => (
            15,
            fields([num(id.0 as f64), room.into(), room_error(error)]),
        ),
        RoomEvent::Presence { room, members } => (
            16,
            fields([
                room.into(),
                members.iter().map(JsValue::from).collect::<Array>().into(),
            ]),
        ),
        RoomEvent::Rooms(rooms) => {
            // Flat: name, member count, name, member count, ...
            let list = Array::new();
            for info in rooms {
                list.push(&info.room.as_str().into());
                list.push(&num(info.members));
            }
            (17, fields([list.into()]))
        }
        RoomEvent::ServerError { code, message } => {
            (18, fields([code.as_str().into(), message.into()]))
        }
        RoomEvent::BadFrame(bad) => (
            19,
            fields([bad.raw.as_str().into(), bad.error.as_str().into()]),
        ),
    }
}

#[cfg(feature = "rooms")]
/// What `publish` resolves with, as the fields of an `ack` event.
fn ack_fields(ack: &PublishAck) -> JsValue {
    Array::of4(
        &num(ack.id.0 as f64),
        &ack.room.as_str().into(),
        &num(ack.offset as f64),
        &ack.duplicate.into(),
    )
    .into()
}

// ---------------------------------------------------------------------------------------------
// The socket
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "rooms")]
/// The protocol v1 layer of a socket, once started.
struct RoomsLayer {
    /// Dropped first, so no room event is delivered while the layer shuts down.
    _subscription: RoomSubscription,
    /// Dropping the last `Rc` fails every pending publish with `ERR_CLOSED`.
    client: Rc<RoomsClient>,
}

/// Everything a live socket holds; dropping it releases all of it (fields drop in order).
struct Live {
    #[cfg(feature = "rooms")]
    rooms: Option<RoomsLayer>,
    #[cfg(feature = "rooms")]
    rooms_config: RoomsConfig,
    /// Dropped before the client, so no event is delivered while it shuts down.
    _subscription: Subscription,
    client: Rc<Client>,
    _predicate: Option<PredicateSlot>,
}

/// A WebSocket that stays connected; `index.js` subclasses it. See `client-wasm/js/README.md`
/// and `index.d.ts`.
#[wasm_bindgen(skip_typescript)]
pub struct LifelineSocket {
    live: RefCell<Option<Live>>,
    emitter: Rc<Emitter>,
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
    /// Starts connecting. `url` is a string or a function returning a promise of one;
    /// `numbers` are the numeric options (see [`Num`]); `terminal` is the wrapped
    /// `isTerminalClose`. `index.js` has checked all of them.
    #[wasm_bindgen(constructor)]
    pub fn new(
        url: JsValue,
        numbers: &[f64],
        protocols: Vec<String>,
        terminal: Option<Function>,
    ) -> JsResult<LifelineSocket> {
        let numbers = Numbers(numbers);
        let (config, predicate) = config_from(&numbers, protocols, terminal);
        #[cfg(feature = "rooms")]
        let rooms_config = rooms_config_from(&numbers);
        let client = Rc::new(start(&url, config)?);
        let emitter = Rc::new(Emitter::default());
        let weak: Weak<Emitter> = Rc::downgrade(&emitter);
        let weak_client: Weak<Client> = Rc::downgrade(&client);
        let subscription = client.on_event(move |event| {
            let Some(emitter) = weak.upgrade() else {
                return;
            };
            let protocol = || {
                weak_client
                    .upgrade()
                    .map(|c| c.protocol())
                    .unwrap_or_default()
            };
            let (kind, fields) = socket_event(event, protocol);
            emitter.emit(kind, fields);
        });
        Ok(LifelineSocket {
            live: RefCell::new(Some(Live {
                #[cfg(feature = "rooms")]
                rooms: None,
                #[cfg(feature = "rooms")]
                rooms_config,
                _subscription: subscription,
                client,
                _predicate: predicate,
            })),
            emitter,
        })
    }

    /// Called once by the package entry with the JS object itself, for `__emit`.
    #[wasm_bindgen(js_name = "__attachTarget")]
    pub fn attach_target(&self, target: &Object) {
        *self.emitter.target.borrow_mut() = Some(WeakRef::new(target));
    }

    /// Runs `f` on the client with no borrow held, so a listener that `f` triggers may call
    /// back into the socket, even `dispose()`.
    fn with_client<T>(&self, f: impl FnOnce(&Client) -> T) -> JsResult<T> {
        let client = self.live.borrow().as_ref().map(|live| live.client.clone());
        match client {
            Some(client) => Ok(f(&client)),
            None => Err(disposed()),
        }
    }

    #[cfg(feature = "rooms")]
    /// The protocol v1 layer, started on first use (it then says `hello` on every open).
    fn rooms(&self) -> JsResult<Rc<RoomsClient>> {
        let (client, config) = {
            let live = self.live.borrow();
            let live = live.as_ref().ok_or_else(disposed)?;
            if let Some(layer) = &live.rooms {
                return Ok(layer.client.clone());
            }
            (live.client.clone(), live.rooms_config.clone())
        };
        // Built with no borrow held: starting it may send, and sending may report events.
        let rooms = Rc::new(RoomsClient::new(&client, config));
        let weak = Rc::downgrade(&self.emitter);
        let subscription = rooms.on_event(move |event| {
            if let Some(emitter) = weak.upgrade() {
                let (kind, fields) = room_event(event);
                emitter.emit(kind, fields);
            }
        });
        let mut live = self.live.borrow_mut();
        let live = live.as_mut().ok_or_else(disposed)?;
        Ok(live
            .rooms
            .get_or_insert(RoomsLayer {
                _subscription: subscription,
                client: rooms,
            })
            .client
            .clone())
    }

    #[cfg(feature = "rooms")]
    /// Starts the protocol v1 layer, for a listener of a room event.
    #[wasm_bindgen(js_name = "__startRooms")]
    pub fn start_rooms(&self) -> JsResult<()> {
        self.rooms().map(drop)
    }

    #[cfg(feature = "rooms")]
    /// Joins a room: now if open, and again (with recovery) after every reconnect.
    pub fn join(&self, room: &str) -> JsResult<()> {
        self.rooms()?.join(room).map_err(|e| room_error(&e))
    }

    #[cfg(feature = "rooms")]
    /// Leaves a room; false if it was not joined. Its unacknowledged publishes fail.
    pub fn leave(&self, room: &str) -> JsResult<bool> {
        Ok(self.rooms()?.leave(room))
    }

    #[cfg(feature = "rooms")]
    /// Publishes JSON text (from `JSON.stringify`) to a joined room. The promise resolves
    /// with the ack's fields `[id, room, offset, duplicate]`.
    #[wasm_bindgen(js_name = "__publish")]
    pub fn publish(&self, room: &str, json: String) -> JsResult<js_sys::Promise> {
        // JSON.stringify writes a lone surrogate as a `\u` escape, which the server refuses.
        let value = RawJson::new(json).map_err(|e| {
            room_error(&RoomError::Encode {
                message: e.to_string(),
            })
        })?;
        let ack = self
            .rooms()?
            .publish_raw(room, value)
            .map_err(|e| room_error(&e))?;
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            ack.await
                .map(|a| ack_fields(&a))
                .map_err(|e| room_error(&e))
        }))
    }

    #[cfg(feature = "rooms")]
    /// Asks the server for the room list (a `rooms` event); false when not connected.
    #[wasm_bindgen(js_name = listRooms)]
    pub fn list_rooms(&self) -> JsResult<bool> {
        Ok(self.rooms()?.list_rooms())
    }

    /// Publishes awaiting their ack (0 before the rooms layer starts).
    #[wasm_bindgen(getter = unackedPublishes)]
    pub fn unacked_publishes(&self) -> f64 {
        #[cfg(feature = "rooms")]
        {
            let rooms = self
                .live
                .borrow()
                .as_ref()
                .and_then(|live| live.rooms.as_ref().map(|layer| layer.client.clone()));
            rooms.map_or(0, |r| r.unacked()) as f64
        }
        #[cfg(not(feature = "rooms"))]
        0.0
    }

    /// Sends a JS string now if open, otherwise queues it; 0 for sent, 1 for queued.
    #[wasm_bindgen(js_name = "__sendText")]
    pub fn send_text(&self, data: JsValue) -> JsResult<u8> {
        let text = data.as_string().unwrap_or_default();
        // The JS string itself goes to the socket when it is sent at once.
        let sent = self
            .with_client(|c| c.send_js_text(&data, text))?
            .map_err(|e| crate_error(&e))?;
        Ok(sent_index(sent))
    }

    /// Sends bytes now if open, otherwise queues them; 0 for sent, 1 for queued.
    #[wasm_bindgen(js_name = "__sendBytes")]
    pub fn send_bytes(&self, bytes: Vec<u8>) -> JsResult<u8> {
        let sent = self
            .with_client(|c| c.send(Message::Binary(bytes)))?
            .map_err(|e| crate_error(&e))?;
        Ok(sent_index(sent))
    }

    /// Closes for good (no reconnect), with an optional code (1000, 3000–4999) and reason.
    #[wasm_bindgen(js_name = "__close")]
    pub fn close(&self, code: Option<u16>, reason: Option<String>) -> JsResult<()> {
        self.with_client(|c| c.close(code, reason.as_deref()))?
            .map_err(|e| crate_error(&e))
    }

    /// Connects again now, also after `close()`, `giveup` or a terminal close.
    pub fn reconnect(&self) -> JsResult<()> {
        self.with_client(Client::reconnect)
    }

    /// The state as an index of `STATES` in `index.js`.
    #[wasm_bindgen(js_name = "__state")]
    pub fn state(&self) -> u8 {
        state_index(self.with_client(Client::state).unwrap_or(State::Closed))
    }

    /// The URL of the current or last attempt.
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> String {
        self.with_client(Client::url)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// The subprotocol the server selected.
    #[wasm_bindgen(getter)]
    pub fn protocol(&self) -> String {
        self.with_client(Client::protocol).unwrap_or_default()
    }

    /// Bytes the browser has not sent yet.
    #[wasm_bindgen(getter = bufferedAmount)]
    pub fn buffered_amount(&self) -> f64 {
        self.with_client(Client::buffered_amount).unwrap_or(0) as f64
    }

    /// Messages waiting in the outbound queue (not counted in `bufferedAmount`).
    #[wasm_bindgen(getter = queuedMessages)]
    pub fn queued_messages(&self) -> f64 {
        self.with_client(Client::queued_messages).unwrap_or(0) as f64
    }

    /// Closes the socket, cancels every timer, releases every listener, handler and option
    /// function. Idempotent; afterwards every method but `dispose`/`free` throws ERR_DISPOSED.
    pub fn dispose(&self) {
        self.emitter.closed.set(true);
        let live = self.live.borrow_mut().take();
        let target = self.emitter.target.borrow_mut().take();
        // Dropped outside the borrows: dropping the client runs the browser's close.
        drop((live, target));
    }
}

impl Drop for LifelineSocket {
    fn drop(&mut self) {
        self.dispose();
    }
}

/// What the browser shell holds right now across all sockets: sockets, listeners, timers
/// and `isTerminalClose` functions; all zeros once every socket is disposed. For leak checks.
#[wasm_bindgen(js_name = "__live", skip_typescript)]
pub fn live_resources() -> Vec<f64> {
    let live = crate::web::diagnostics::live();
    vec![
        live.sockets as f64,
        live.listeners as f64,
        live.timers as f64,
        PREDICATES.with(|p| p.borrow().len()) as f64,
    ]
}
