//! The JavaScript face of the library: the `#[wasm_bindgen]` surface of the npm package.
//!
//! [`LifelineSocket`] wraps a [`Client`] in the conventions of the browser's `WebSocket`:
//! camelCase options in milliseconds, `addEventListener`/`removeEventListener` with an event map
//! (`open`, `message`, `error`, `close`, `reconnecting`, `statechange`, `giveup`, `offline`,
//! `online`), `on…` properties, `send` returning `"sent"` or `"queued"`, `readyState` and
//! friends. The TypeScript declarations are hand-written in `client-wasm/js/index.d.ts`.
//!
//! Listeners and `on…` handlers live in `index.js`, the package entry, which subclasses this
//! class: the wasm builds each event object and hands it to the JS object's `__emit`, found
//! through a [`WeakRef`] so that the wasm never keeps the JS object alive.
//!
//! Ownership: the exported object owns the [`Client`] and the JS functions from the options.
//! [`LifelineSocket::dispose`] (also `[Symbol.dispose]`, and wasm-bindgen's `free()`, which
//! drops the struct) releases all of them. Callbacks hold only [`Weak`] references, so no
//! cycle keeps anything alive, and no closure is ever `forget`-ed.
//!
//! Protocol v1 (rooms) is the library's [`RoomsClient`], started on first use: `join`, `leave`,
//! `publish`, `listRooms`, or a listener for a room event (`welcome`, `joined`, `recovery`,
//! `roomMessage`, `left`, `ack`, `publishFailed`, `presence`, `rooms`, `serverError`,
//! `badFrame`). Room events share the listener list (and `on(type, handler)` in `index.js`)
//! with the socket events. A socket that never uses rooms speaks no protocol beyond the
//! heartbeat, so it works with any WebSocket server.
//!
//! Errors: every error that reaches JavaScript is made by [`to_js_error`] (crate errors) or
//! [`room_error`] (protocol v1 errors), both through [`lifeline_error`]: an `Error` with
//! `name = "LifelineError"` and a `code`. JS values thrown at us (URL providers, predicates)
//! are read by [`describe_js`]. Those are the only conversions.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use js_sys::{Array, ArrayBuffer, Function, Object, Reflect, Uint8Array, WeakRef};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

use crate::machine::default_terminal;
#[cfg(feature = "rooms")]
use crate::machine::rooms::{PublishAck, RawJson, RoomError, RoomEvent, RoomsConfig};
use crate::web::Subscription;
#[cfg(feature = "rooms")]
use crate::web::rooms::{RoomSubscription, RoomsClient};
use crate::{Client, Config, Error, Event, Message, QueueLimit, Sent, State};

/// The result type of every exported function: a thrown `LifelineError` on failure.
type JsResult<T> = std::result::Result<T, JsValue>;

/// Codes only the JS surface produces (the rest come from [`Error`]).
const ERR_INVALID_ARGUMENT: &str = "ERR_INVALID_ARGUMENT";
const ERR_DISPOSED: &str = "ERR_DISPOSED";

// ---------------------------------------------------------------------------------------------
// Errors: the one place where errors become JS values, and JS values become text.
// ---------------------------------------------------------------------------------------------

/// `send`'s return value, `"sent"` or `"queued"`: made once, so a send returns a reference
/// instead of decoding a new string out of wasm memory.
fn sent_name(sent: Sent) -> JsValue {
    thread_local! {
        static SENT: JsValue = JsValue::from_str("sent");
        static QUEUED: JsValue = JsValue::from_str("queued");
    }
    match sent {
        Sent::Transmitted => SENT.with(JsValue::clone),
        Sent::Queued => QUEUED.with(JsValue::clone),
    }
}

/// Builds the JS `Error` for a crate error: `name`, `code`, `message` and the refused input.
fn to_js_error(error: &Error) -> JsValue {
    let (code, fields): (&str, Vec<(&str, JsValue)>) = match error {
        Error::InvalidUrl { supplied, .. } => {
            ("ERR_INVALID_URL", vec![("supplied", supplied.into())])
        }
        Error::InvalidCloseCode { code } => (
            "ERR_INVALID_CLOSE_CODE",
            vec![("closeCode", (*code).into())],
        ),
        Error::CloseReasonTooLong { bytes } => (
            "ERR_CLOSE_REASON_TOO_LONG",
            vec![("bytes", (*bytes as f64).into())],
        ),
        Error::QueueFull { limit } => {
            let (key, value) = match limit {
                QueueLimit::Messages(n) => ("messages", *n),
                QueueLimit::Bytes(n) => ("bytes", *n),
            };
            let limit = Object::new();
            set(&limit, key, &(value as f64).into());
            ("ERR_QUEUE_FULL", vec![("limit", limit.into())])
        }
        Error::Closed => ("ERR_CLOSED", vec![]),
        Error::NotOpen => ("ERR_NOT_OPEN", vec![]),
        Error::Encode { .. } => ("ERR_ENCODE", vec![]),
        Error::Socket => ("ERR_SOCKET", vec![]),
        Error::ConnectTimeout { after_ms } => (
            "ERR_CONNECT_TIMEOUT",
            vec![("afterMs", (*after_ms as f64).into())],
        ),
        Error::UrlProvider { .. } => ("ERR_URL_PROVIDER", vec![]),
        Error::Platform { .. } => ("ERR_PLATFORM", vec![]),
    };
    lifeline_error(code, &error.to_string(), &fields)
}

/// A `LifelineError`: a real `Error` (with a stack) carrying a machine-readable `code`.
fn lifeline_error(code: &str, message: &str, fields: &[(&str, JsValue)]) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("LifelineError");
    set(&error, "code", &code.into());
    for (key, value) in fields {
        set(&error, key, value);
    }
    error.into()
}

#[cfg(feature = "rooms")]
/// Builds the JS `Error` for a protocol v1 error (a refused `join` or a failed `publish`).
fn room_error(error: &RoomError) -> JsValue {
    let (code, fields): (&str, Vec<(&str, JsValue)>) = match error {
        RoomError::InvalidRoom { room } => ("ERR_INVALID_ROOM", vec![("room", room.into())]),
        RoomError::NotJoined { room } => ("ERR_NOT_JOINED", vec![("room", room.into())]),
        RoomError::TooManyUnacked { limit } => {
            let bound = Object::new();
            set(&bound, "unacked", &(*limit as f64).into());
            ("ERR_TOO_MANY_UNACKED", vec![("limit", bound.into())])
        }
        RoomError::PublishTimeout { id, after_ms } => (
            "ERR_PUBLISH_TIMEOUT",
            vec![
                ("publishId", (id.0 as f64).into()),
                ("afterMs", (*after_ms as f64).into()),
            ],
        ),
        RoomError::Refused { id, code, .. } => (
            "ERR_PUBLISH_REFUSED",
            vec![
                ("publishId", (id.0 as f64).into()),
                ("serverCode", code.as_str().into()),
            ],
        ),
        RoomError::LeftRoom { id, room } => (
            "ERR_LEFT_ROOM",
            vec![("publishId", (id.0 as f64).into()), ("room", room.into())],
        ),
        RoomError::Encode { .. } => ("ERR_ENCODE", vec![]),
        RoomError::Closed => ("ERR_CLOSED", vec![]),
    };
    lifeline_error(code, &error.to_string(), &fields)
}

fn invalid_argument(message: &str) -> JsValue {
    lifeline_error(ERR_INVALID_ARGUMENT, message, &[])
}

fn disposed() -> JsValue {
    lifeline_error(ERR_DISPOSED, "the LifelineSocket was disposed", &[])
}

/// Text for a JS value someone threw or rejected with: `Error`s as `name: message`.
fn describe_js(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return format!(
            "{}: {}",
            String::from(error.name()),
            String::from(error.message())
        );
    }
    value.as_string().unwrap_or_else(|| to_string(value))
}

#[cfg(feature = "rooms")]
/// JSON text (validated already) as the JS value `JSON.parse` gives.
fn parse_json(json: &RawJson) -> JsValue {
    js_sys::JSON::parse(json.as_str()).unwrap_or(JsValue::NULL)
}

/// `String(value)`, without throwing (a value whose `toString` throws reads as its type).
fn to_string(value: &JsValue) -> String {
    if let Some(text) = value.as_string() {
        return text;
    }
    match value.dyn_ref::<Object>() {
        // `Object.prototype.toString` dispatch: `URL` gives its href, `Error` its message.
        Some(object) => String::from(object.to_string()),
        None => value.js_typeof().as_string().unwrap_or_default(),
    }
}

/// Hands an exception thrown by an `isTerminalClose` function to the page, as `EventTarget`
/// does for listeners: through [`reportError`](https://developer.mozilla.org/en-US/docs/Web/API/reportError) where it
/// exists (window `error` event, console), else `console.error`.
fn report(exception: &JsValue) {
    let global = js_sys::global();
    match Reflect::get(&global, &"reportError".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
    {
        Some(report_error) => {
            let _ = report_error.call1(&global, exception);
        }
        None => {
            let console = get(&global, "console");
            if let Ok(error) = get(&console, "error").dyn_into::<Function>() {
                let _ = error.call1(&console, exception);
            }
        }
    }
}

/// `Reflect.set` on a fresh object of ours cannot fail; the result is ignored on purpose.
fn set(target: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &key.into(), value);
}

fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// True for errors made by this package.
#[wasm_bindgen(js_name = isLifelineError, skip_typescript)]
pub fn is_lifeline_error(value: &JsValue) -> bool {
    value.is_instance_of::<js_sys::Error>()
        && get(value, "name").as_string().as_deref() == Some("LifelineError")
        && get(value, "code").is_string()
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

/// Reads a non-negative number of milliseconds (or a count) named `key`.
fn number(options: &JsValue, key: &str) -> JsResult<Option<f64>> {
    let value = get(options, key);
    if value.is_undefined() {
        return Ok(None);
    }
    match value.as_f64() {
        Some(n) if n >= 0.0 && !n.is_nan() => Ok(Some(n)),
        _ => Err(invalid_argument(&format!(
            "option `{key}` must be a non-negative number, got {}",
            describe_js(&value)
        ))),
    }
}

fn millis(ms: f64) -> Duration {
    // Saturating float→int: `Infinity` means "as long as possible".
    Duration::from_millis(ms as u64)
}

fn count(n: f64) -> usize {
    n as usize
}

/// Turns `options` into a [`Config`]; the returned slot owns the `isTerminalClose` function.
fn config_from(options: &JsValue) -> JsResult<(Config, Option<PredicateSlot>)> {
    let mut config = Config::default();
    if options.is_undefined() || options.is_null() {
        return Ok((config, None));
    }
    if !options.is_object() {
        return Err(invalid_argument("options must be an object"));
    }
    let protocols = get(options, "protocols");
    if let Some(one) = protocols.as_string() {
        config = config.protocols([one]);
    } else if Array::is_array(&protocols) {
        let mut list = Vec::new();
        for p in Array::from(&protocols).iter() {
            list.push(p.as_string().ok_or_else(|| {
                invalid_argument("option `protocols` must be a string or an array of strings")
            })?);
        }
        config = config.protocols(list);
    } else if !protocols.is_undefined() {
        return Err(invalid_argument(
            "option `protocols` must be a string or an array of strings",
        ));
    }
    if let Some(ms) = number(options, "minDelay")? {
        config = config.backoff_min(millis(ms));
    }
    if let Some(ms) = number(options, "maxDelay")? {
        config = config.backoff_max(millis(ms));
    }
    if let Some(factor) = number(options, "backoffFactor")? {
        config = config.backoff_factor(factor);
    }
    if let Some(n) = number(options, "maxRetries")? {
        config = config.max_attempts(n.is_finite().then_some(n as u32));
    }
    if let Some(ms) = number(options, "connectTimeout")? {
        config = config.connect_timeout(millis(ms));
    }
    if let Some(ms) = number(options, "minUptime")? {
        config = config.min_uptime(millis(ms));
    }
    let heartbeat = get(options, "heartbeat");
    if heartbeat == JsValue::FALSE {
        config = config.no_heartbeat();
    } else if heartbeat.is_object() {
        if let Some(ms) = number(&heartbeat, "interval")? {
            config = config.heartbeat_interval(millis(ms));
        }
        if let Some(ms) = number(&heartbeat, "timeout")? {
            config = config.heartbeat_timeout(millis(ms));
        }
    } else if !heartbeat.is_undefined() && heartbeat != JsValue::TRUE {
        return Err(invalid_argument(
            "option `heartbeat` must be false or { interval, timeout }",
        ));
    }
    let messages = number(options, "maxQueuedMessages")?.map(count);
    let bytes = number(options, "maxQueuedBytes")?.map(count);
    if messages.is_some() || bytes.is_some() {
        let (default_messages, default_bytes) = (config.queue_max_messages, config.queue_max_bytes);
        config = config.queue_limits(
            messages.unwrap_or(default_messages),
            bytes.unwrap_or(default_bytes),
        );
    }
    if let Some(bytes) = number(options, "highWaterMark")? {
        config = config.high_water_mark(bytes as u64);
    }
    let predicate = get(options, "isTerminalClose");
    let slot = if predicate.is_undefined() || predicate.is_null() {
        None
    } else {
        let function = predicate
            .dyn_into::<Function>()
            .map_err(|_| invalid_argument("option `isTerminalClose` must be a function"))?;
        let id = next_id();
        PREDICATES.with(|p| p.borrow_mut().push((id, function)));
        config = config.terminal_close(move |code| {
            let function = PREDICATES.with(|p| {
                p.borrow()
                    .iter()
                    .find(|(key, _)| *key == id)
                    .map(|(_, f)| f.clone())
            });
            match function.map(|f| f.call1(&JsValue::UNDEFINED, &code.into())) {
                Some(Ok(verdict)) => verdict.is_truthy(),
                Some(Err(exception)) => {
                    report(&exception);
                    default_terminal(code)
                }
                None => default_terminal(code),
            }
        });
        Some(PredicateSlot(id))
    };
    Ok((config, slot))
}

#[cfg(feature = "rooms")]
/// The protocol v1 options: `ackTimeout` (ms) and `maxUnacked`.
fn rooms_config_from(options: &JsValue) -> JsResult<RoomsConfig> {
    let mut config = RoomsConfig::default();
    if !options.is_object() {
        return Ok(config);
    }
    if let Some(ms) = number(options, "ackTimeout")? {
        config = config.ack_timeout(millis(ms));
    }
    if let Some(n) = number(options, "maxUnacked")? {
        config = config.max_unacked(count(n));
    }
    Ok(config)
}

/// A URL argument: a string or anything with a `toString()` (such as `URL`).
fn url_text(value: &JsValue) -> Option<String> {
    value
        .as_string()
        .or_else(|| value.is_object().then(|| to_string(value)))
}

/// Starts the client from the constructor's `url`: a URL, or a (possibly async) function.
fn start(url: &JsValue, config: Config) -> JsResult<Client> {
    if let Some(provider) = url.dyn_ref::<Function>() {
        let provider = provider.clone();
        return Client::with_url_provider(config, move || {
            let result = provider.call0(&JsValue::UNDEFINED);
            async move {
                let value = match result {
                    Ok(value) => value,
                    Err(exception) => return Err(describe_js(&exception)),
                };
                let promise = js_sys::Promise::resolve(&value);
                match wasm_bindgen_futures::JsFuture::from(promise).await {
                    Ok(url) => url_text(&url).ok_or_else(|| {
                        "the URL provider returned neither a string nor a URL".into()
                    }),
                    Err(exception) => Err(describe_js(&exception)),
                }
            }
        })
        .map_err(|e| to_js_error(&e));
    }
    let Some(text) = url_text(url) else {
        return Err(invalid_argument(
            "url must be a string, a URL or a function returning one",
        ));
    };
    Client::connect(&text, config).map_err(|e| to_js_error(&e))
}

#[cfg(feature = "rooms")]
/// A room argument: a string (the layer checks the name itself).
fn room_name(value: &JsValue) -> JsResult<String> {
    value
        .as_string()
        .ok_or_else(|| invalid_argument("a room name must be a string"))
}

#[cfg(feature = "rooms")]
/// Publish data: anything `JSON.stringify` accepts, as JSON.
fn json_data(data: &JsValue) -> JsResult<RawJson> {
    let text = js_sys::JSON::stringify(data).map_err(|exception| {
        room_error(&RoomError::Encode {
            message: describe_js(&exception),
        })
    })?;
    let Some(text) = text.as_string() else {
        return Err(invalid_argument(
            "publish data must be a JSON value (not undefined, a function or a symbol)",
        ));
    };
    // JSON.stringify writes a lone surrogate as a `\u` escape, which the server refuses.
    RawJson::new(text).map_err(|e| {
        room_error(&RoomError::Encode {
            message: e.to_string(),
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Events and listeners
// ---------------------------------------------------------------------------------------------

/// The socket event types, in the order of the `on…` handler slots.
const TYPES: [&str; 9] = [
    "open",
    "message",
    "error",
    "close",
    "reconnecting",
    "statechange",
    "giveup",
    "offline",
    "online",
];

/// The protocol v1 event types; their kinds follow [`TYPES`]. `roomMessage`, not `message`:
/// the raw `message` event still reports every frame, protocol frames included.
#[cfg(feature = "rooms")]
const ROOM_TYPES: [&str; 11] = [
    "welcome",
    "joined",
    "recovery",
    "roomMessage",
    "left",
    "ack",
    "publishFailed",
    "presence",
    "rooms",
    "serverError",
    "badFrame",
];

/// Without the rooms layer there are no room events.
#[cfg(not(feature = "rooms"))]
const ROOM_TYPES: [&str; 0] = [];

fn type_index(name: &str) -> Option<usize> {
    TYPES
        .iter()
        .chain(ROOM_TYPES.iter())
        .position(|t| *t == name)
}

#[cfg(feature = "rooms")]
/// True for the kinds of [`ROOM_TYPES`].
fn is_room_kind(kind: usize) -> bool {
    kind >= TYPES.len()
}

/// Hands events to the JS object (see the module docs); owned by the socket, seen by
/// callbacks through a [`Weak`].
#[derive(Default)]
struct Emitter {
    /// The JS object of the socket; weak, so it can still be collected.
    target: RefCell<Option<WeakRef>>,
    /// Set by dispose: nothing is delivered afterwards, even mid-dispatch.
    closed: Cell<bool>,
}

impl Emitter {
    fn target(&self) -> JsValue {
        self.target
            .borrow()
            .as_ref()
            .and_then(|w| w.deref())
            .map_or(JsValue::UNDEFINED, JsValue::from)
    }

    /// Calls the JS object's `__emit(type, event)`, which runs the listeners and handler
    /// (and reports their exceptions itself).
    fn emit(&self, target: &JsValue, kind: &str, event: &JsValue) {
        if let Ok(emit) = get(target, "__emit").dyn_into::<Function>() {
            let _ = emit.call2(target, &kind.into(), event);
        }
    }
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Connecting => "connecting",
        State::Open => "open",
        State::Closing => "closing",
        State::Closed => "closed",
        State::Reconnecting => "reconnecting",
    }
}

/// The plain event object for `event`, and its type.
fn js_event(
    event: &Event,
    target: &JsValue,
    protocol: impl FnOnce() -> String,
) -> (&'static str, JsValue) {
    let object = Object::new();
    let put = |key: &str, value: JsValue| set(&object, key, &value);
    let name = match event {
        Event::Open => {
            put("protocol", protocol().into());
            "open"
        }
        Event::Message(Message::Text(text)) => {
            put("data", text.into());
            "message"
        }
        Event::Message(Message::Binary(bytes)) => {
            put("data", Uint8Array::from(bytes.as_slice()).buffer().into());
            "message"
        }
        Event::Error(error) => {
            put("message", error.to_string().into());
            put("error", to_js_error(error));
            "error"
        }
        Event::Close(info) => {
            put("code", info.code.into());
            put("reason", info.reason.as_str().into());
            put("wasClean", info.was_clean.into());
            "close"
        }
        Event::Reconnecting { attempt, delay } => {
            put("attempt", (*attempt).into());
            put("delay", (delay.as_millis() as f64).into());
            "reconnecting"
        }
        Event::StateChange(state) => {
            put("state", state_name(*state).into());
            "statechange"
        }
        Event::GaveUp => "giveup",
        Event::Offline => "offline",
        Event::Online => "online",
    };
    put("type", name.into());
    put("target", target.clone());
    (name, object.into())
}

#[cfg(feature = "rooms")]
/// The plain event object for a protocol v1 event, and its type.
fn js_room_event(event: &RoomEvent, target: &JsValue) -> (&'static str, JsValue) {
    let object = Object::new();
    let put = |key: &str, value: JsValue| set(&object, key, &value);
    let name = match event {
        RoomEvent::Welcome { resumed, name } => {
            put("resumed", (*resumed).into());
            put("name", name.into());
            "welcome"
        }
        RoomEvent::Joined {
            room,
            epoch,
            offset,
        } => {
            put("room", room.into());
            put("epoch", epoch.into());
            put("offset", (*offset as f64).into());
            "joined"
        }
        RoomEvent::Recovery {
            room,
            recovered,
            since,
            epoch,
            offset,
        } => {
            put("room", room.into());
            put("recovered", (*recovered).into());
            let position = Object::new();
            set(&position, "epoch", &since.epoch.as_str().into());
            set(&position, "offset", &(since.offset as f64).into());
            put("since", position.into());
            put("epoch", epoch.into());
            put("offset", (*offset as f64).into());
            "recovery"
        }
        RoomEvent::Message(m) => {
            put("room", m.room.as_str().into());
            put("offset", (m.offset as f64).into());
            put("from", m.from.as_str().into());
            put("data", parse_json(&m.data));
            put("ts", (m.ts as f64).into());
            "roomMessage"
        }
        RoomEvent::Left { room } => {
            put("room", room.into());
            "left"
        }
        RoomEvent::Acked {
            id,
            room,
            offset,
            duplicate,
        } => {
            put("id", (id.0 as f64).into());
            put("room", room.into());
            put("offset", (*offset as f64).into());
            put("duplicate", (*duplicate).into());
            "ack"
        }
        RoomEvent::PublishFailed { id, room, error } => {
            put("id", (id.0 as f64).into());
            put("room", room.into());
            put("error", room_error(error));
            "publishFailed"
        }
        RoomEvent::Presence { room, members } => {
            put("room", room.into());
            put(
                "members",
                members.iter().map(JsValue::from).collect::<Array>().into(),
            );
            "presence"
        }
        RoomEvent::Rooms(rooms) => {
            // Built directly (what `JSON.parse` of the wire form gives) rather than through
            // serde_json and JSON.parse: no serializer for these types in the wasm.
            let list: Array = rooms
                .iter()
                .map(|info| {
                    let entry = Object::new();
                    set(&entry, "room", &info.room.as_str().into());
                    set(&entry, "members", &info.members.into());
                    JsValue::from(entry)
                })
                .collect();
            put("rooms", list.into());
            "rooms"
        }
        RoomEvent::ServerError { code, message } => {
            put("code", code.as_str().into());
            put("message", message.into());
            "serverError"
        }
        RoomEvent::BadFrame(bad) => {
            put("raw", bad.raw.as_str().into());
            put("message", bad.error.as_str().into());
            "badFrame"
        }
    };
    put("type", name.into());
    put("target", target.clone());
    (name, object.into())
}

#[cfg(feature = "rooms")]
/// What `publish` resolves with.
fn js_ack(ack: &PublishAck) -> JsValue {
    let object = Object::new();
    set(&object, "id", &(ack.id.0 as f64).into());
    set(&object, "room", &ack.room.as_str().into());
    set(&object, "offset", &(ack.offset as f64).into());
    set(&object, "duplicate", &ack.duplicate.into());
    object.into()
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

/// A WebSocket that stays connected. See `client-wasm/js/README.md` and `index.d.ts`.
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
    /// `new LifelineSocket(url, options?)`: validates, then starts connecting.
    #[wasm_bindgen(constructor)]
    pub fn new(url: JsValue, options: JsValue) -> JsResult<LifelineSocket> {
        let (config, predicate) = config_from(&options)?;
        #[cfg(feature = "rooms")]
        let rooms_config = rooms_config_from(&options)?;
        let client = Rc::new(start(&url, config)?);
        let emitter = Rc::new(Emitter::default());
        let weak: Weak<Emitter> = Rc::downgrade(&emitter);
        let weak_client: Weak<Client> = Rc::downgrade(&client);
        let subscription = client.on_event(move |event| {
            let Some(emitter) = weak.upgrade() else {
                return;
            };
            if emitter.closed.get() {
                return;
            }
            let target = emitter.target();
            let protocol = || {
                weak_client
                    .upgrade()
                    .map(|c| c.protocol())
                    .unwrap_or_default()
            };
            let (kind, object) = js_event(event, &target, protocol);
            emitter.emit(&target, kind, &object);
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

    /// Called once by the package entry with the JS object itself, for `event.target`.
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
            let Some(emitter) = weak.upgrade() else {
                return;
            };
            if emitter.closed.get() {
                return;
            }
            let target = emitter.target();
            let (kind, object) = js_room_event(event, &target);
            emitter.emit(&target, kind, &object);
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
    /// Joins a room: now if open, and again (with recovery) after every reconnect.
    pub fn join(&self, room: JsValue) -> JsResult<()> {
        let room = room_name(&room)?;
        self.rooms()?.join(&room).map_err(|e| room_error(&e))
    }

    #[cfg(feature = "rooms")]
    /// Leaves a room; false if it was not joined. Its unacknowledged publishes fail.
    pub fn leave(&self, room: JsValue) -> JsResult<bool> {
        let room = room_name(&room)?;
        Ok(self.rooms()?.leave(&room))
    }

    #[cfg(feature = "rooms")]
    /// Publishes JSON `data` to a joined room. Never throws: the promise resolves with the
    /// server's ack `{id, room, offset, duplicate}` or rejects with a `LifelineError`.
    pub fn publish(&self, room: JsValue, data: JsValue) -> js_sys::Promise {
        let started = room_name(&room).and_then(|room| {
            let value = json_data(&data)?;
            self.rooms()?
                .publish_raw(&room, value)
                .map_err(|e| room_error(&e))
        });
        match started {
            Ok(ack) => wasm_bindgen_futures::future_to_promise(async move {
                ack.await.map(|a| js_ack(&a)).map_err(|e| room_error(&e))
            }),
            Err(error) => js_sys::Promise::reject(&error),
        }
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

    /// Sends a string, `ArrayBuffer` or view now if open, otherwise queues it.
    pub fn send(&self, data: JsValue) -> JsResult<JsValue> {
        self.with_client(|_| ())?;
        let message = if let Some(text) = data.as_string() {
            // The JS string itself goes to the socket when it is sent at once.
            let sent = self
                .with_client(|c| c.send_js_text(&data, text))?
                .map_err(|e| to_js_error(&e))?;
            return Ok(sent_name(sent));
        } else if let Some(buffer) = data.dyn_ref::<ArrayBuffer>() {
            Message::Binary(Uint8Array::new(buffer).to_vec())
        } else if ArrayBuffer::is_view(&data) {
            let buffer = get(&data, "buffer");
            let offset = get(&data, "byteOffset").as_f64().unwrap_or(0.0) as u32;
            let length = get(&data, "byteLength").as_f64().unwrap_or(0.0) as u32;
            Message::Binary(
                Uint8Array::new_with_byte_offset_and_length(&buffer, offset, length).to_vec(),
            )
        } else {
            return Err(invalid_argument(
                "send takes a string, an ArrayBuffer or an ArrayBufferView",
            ));
        };
        let sent = self
            .with_client(|c| c.send(message))?
            .map_err(|e| to_js_error(&e))?;
        Ok(sent_name(sent))
    }

    /// Closes for good (no reconnect), with an optional code (1000, 3000–4999) and reason.
    pub fn close(&self, code: JsValue, reason: JsValue) -> JsResult<()> {
        self.with_client(|_| ())?;
        let code = if code.is_undefined() {
            None
        } else {
            match code.as_f64() {
                Some(n) if n.fract() == 0.0 && (0.0..=65535.0).contains(&n) => Some(n as u16),
                _ => {
                    return Err(lifeline_error(
                        "ERR_INVALID_CLOSE_CODE",
                        &format!(
                            "invalid close code {}: use 1000 or 3000-4999",
                            describe_js(&code)
                        ),
                        &[("closeCode", code.clone())],
                    ));
                }
            }
        };
        let reason = if reason.is_undefined() {
            None
        } else {
            Some(
                reason
                    .as_string()
                    .ok_or_else(|| invalid_argument("the close reason must be a string"))?,
            )
        };
        self.with_client(|c| c.close(code, reason.as_deref()))?
            .map_err(|e| to_js_error(&e))
    }

    /// Connects again now, also after `close()`, `giveup` or a terminal close.
    pub fn reconnect(&self) -> JsResult<()> {
        self.with_client(Client::reconnect)
    }

    /// `WebSocket`'s `readyState`: 0 connecting (also while waiting to reconnect), 1 open,
    /// 2 closing, 3 closed.
    #[wasm_bindgen(getter = readyState)]
    pub fn ready_state(&self) -> u8 {
        match self.with_client(Client::state).unwrap_or(State::Closed) {
            State::Connecting | State::Reconnecting => 0,
            State::Open => 1,
            State::Closing => 2,
            State::Closed => 3,
        }
    }

    /// The finer-grained state: connecting, open, closing, reconnecting, closed.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> String {
        state_name(self.with_client(Client::state).unwrap_or(State::Closed)).into()
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

    /// True once disposed.
    #[wasm_bindgen(getter)]
    pub fn disposed(&self) -> bool {
        self.live.borrow().is_none()
    }

    /// Called by `addEventListener` in `index.js` before it registers `listener`: throws the
    /// package's errors for a disposed socket, an unknown type or a listener that is neither a
    /// function nor an object, and starts the rooms layer for a room event.
    #[wasm_bindgen(js_name = "__check")]
    pub fn check_listener(&self, kind: &str, listener: &JsValue) -> JsResult<()> {
        if self.live.borrow().is_none() {
            return Err(disposed());
        }
        let Some(kind) = type_index(kind) else {
            let known: Vec<&str> = TYPES.iter().chain(ROOM_TYPES.iter()).copied().collect();
            return Err(invalid_argument(&format!(
                "unknown event type \"{kind}\"; expected one of {}",
                known.join(", ")
            )));
        };
        if listener.is_null() || listener.is_undefined() {
            return Ok(());
        }
        #[cfg(feature = "rooms")]
        if is_room_kind(kind) {
            self.rooms()?;
        }
        #[cfg(not(feature = "rooms"))]
        let _ = kind;
        if !listener.is_function() && !listener.is_object() {
            return Err(invalid_argument(
                "a listener must be a function or an object with handleEvent",
            ));
        }
        Ok(())
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

/// What the browser shell holds right now across all sockets (sockets, listeners, timers):
/// all zeros once every socket is disposed. For leak checks.
#[wasm_bindgen(js_name = liveResources, skip_typescript)]
pub fn live_resources() -> JsValue {
    let live = crate::web::diagnostics::live();
    let object = Object::new();
    set(&object, "sockets", &(live.sockets as f64).into());
    set(&object, "listeners", &(live.listeners as f64).into());
    set(&object, "timers", &(live.timers as f64).into());
    set(
        &object,
        "predicates",
        &(PREDICATES.with(|p| p.borrow().len()) as f64).into(),
    );
    object.into()
}
