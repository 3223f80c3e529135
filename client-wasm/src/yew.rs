//! Yew hooks: [`use_lifeline`] for the connection, [`use_room`] for a protocol v1 room.
//!
//! The hooks own a [`Client`] for as long as the component is mounted and drop it (closing the
//! socket and removing every listener and timer) when it unmounts. Unlike a hook that opens a
//! bare `WebSocket` per connect, they leak nothing per connection, and reconnects follow the
//! client's jittered backoff, `online`/`offline` and heartbeat rules instead of a fixed timer.
//!
//! ```no_run
//! use yew::prelude::*;
//! use ws_lifeline::yew::{use_lifeline, use_room, Endpoint};
//! use ws_lifeline::{Config, State};
//!
//! #[component]
//! fn Chat() -> Html {
//!     let config = Config::default().protocols([ws_lifeline::protocol::SUBPROTOCOL]);
//!     let lifeline = use_lifeline(Endpoint::url("wss://example.com/ws"), config);
//!     let lobby = use_room::<String>(&lifeline, "lobby");
//!     let onclick = {
//!         let lobby = lobby.clone();
//!         Callback::from(move |_| { let _ = lobby.publish(&"hello".to_owned()); })
//!     };
//!     html! {
//!         <>
//!             <p>{ format!("{:?}", lifeline.state()) }</p>
//!             <ul>{ for lobby.messages().iter().map(|m| html! { <li>{ &m.data }</li> }) }</ul>
//!             <button {onclick} disabled={lifeline.state() != State::Open}>{ "Say hello" }</button>
//!         </>
//!     }
//! }
//! ```
//!
//! Rooms here are a thin layer over the wire types of [`protocol`]: (re)join with the last
//! offset seen on every open (sent ahead of queued messages), messages in offset order
//! without duplicates, presence, publish with session-unique ids and their acks. Resending a
//! publish that was in flight when a connection dropped belongs to the protocol v1 client
//! layer; until it lands, such a publish is reported as [`RoomEvent::Unconfirmed`] instead of
//! being silently lost.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use protocol::{ClientMsg, ErrorCode, MsgId, Offset, ServerMsg, Since};
use serde::Serialize;
use serde::de::DeserializeOwned;
use yew::prelude::*;

use crate::{Client, CloseInfo, Config, Error, Event, Message, Result, Sent, State, Subscription};

type UrlFuture = Pin<Box<dyn Future<Output = std::result::Result<String, String>>>>;

/// Where [`use_lifeline`] connects: a fixed URL or a provider called before every attempt.
#[derive(Clone)]
pub struct Endpoint(EndpointKind);

#[derive(Clone)]
enum EndpointKind {
    Url(String),
    Provider(Rc<dyn Fn() -> UrlFuture>),
}

impl Endpoint {
    /// A fixed URL (`ws:`/`wss:`, or `http:`/`https:` mapped to them).
    pub fn url(url: impl Into<String>) -> Self {
        Endpoint(EndpointKind::Url(url.into()))
    }

    /// A URL computed before every attempt, for example with a fresh one-time ticket
    /// (see [`Client::with_url_provider`]).
    pub fn provider<F, Fut, E>(provider: F) -> Self
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = std::result::Result<String, E>> + 'static,
        E: fmt::Display + 'static,
    {
        Endpoint(EndpointKind::Provider(Rc::new(move || {
            let fut = provider();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        })))
    }

    fn connect(&self, config: Config) -> Result<Client> {
        match &self.0 {
            EndpointKind::Url(url) => Client::connect(url, config),
            EndpointKind::Provider(provider) => {
                let provider = provider.clone();
                Client::with_url_provider(config, move || provider())
            }
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            EndpointKind::Url(url) => f.debug_tuple("Endpoint::url").field(url).finish(),
            EndpointKind::Provider(_) => f.write_str("Endpoint::provider(..)"),
        }
    }
}

impl From<&str> for Endpoint {
    fn from(url: &str) -> Self {
        Endpoint::url(url)
    }
}

impl From<String> for Endpoint {
    fn from(url: String) -> Self {
        Endpoint::url(url)
    }
}

/// The connection as a component shows it; every change re-renders the component.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The client's state.
    pub state: State,
    /// While waiting before a retry: which attempt comes next and how long the wait is.
    pub reconnecting: Option<Reconnecting>,
    /// True while the browser reports no network (retries wait for `online`).
    pub offline: bool,
    /// True once the client gave up (after `max_attempts`) or met a terminal close code;
    /// [`UseLifeline::reconnect`] starts again.
    pub gave_up: bool,
    /// Successful opens so far: 2 or more means the connection was re-established.
    pub opens: u32,
    /// The last socket close.
    pub last_close: Option<CloseInfo>,
    /// The last error reported.
    pub last_error: Option<Error>,
}

/// A pending retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reconnecting {
    /// The attempt that comes next (1 for the first retry).
    pub attempt: u32,
    /// The wait before it.
    pub delay: Duration,
    /// When the wait started, in ms since the Unix epoch (`Date.now()`), so a countdown can be
    /// shown as `started_ms + delay - Date.now()`.
    pub started_ms: f64,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            state: State::Connecting,
            reconnecting: None,
            offline: false,
            gave_up: false,
            opens: 0,
            last_close: None,
            last_error: None,
        }
    }
}

impl Status {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Open => {
                self.opens += 1;
                self.reconnecting = None;
                self.gave_up = false;
                self.offline = false;
            }
            Event::StateChange(state) => {
                self.state = *state;
                if *state != State::Reconnecting {
                    self.reconnecting = None;
                }
                if *state == State::Connecting {
                    self.gave_up = false;
                }
            }
            Event::Reconnecting { attempt, delay } => {
                self.reconnecting = Some(Reconnecting {
                    attempt: *attempt,
                    delay: *delay,
                    started_ms: js_sys::Date::now(),
                });
            }
            Event::Offline => {
                self.offline = true;
                self.reconnecting = None;
            }
            Event::Online => self.offline = false,
            Event::GaveUp => self.gave_up = true,
            Event::Close(info) => self.last_close = Some(info.clone()),
            Event::Error(error) => self.last_error = Some(error.clone()),
            _ => {}
        }
    }
}

struct Shared {
    /// `None` before the first effect and after teardown.
    client: RefCell<Option<Client>>,
    /// Publish ids, unique for the life of the hook (and so per server session).
    next_id: Cell<MsgId>,
    /// Why the client could not be created (an invalid URL), if it could not.
    failed: RefCell<Option<Error>>,
}

/// The handle [`use_lifeline`] returns: the connection [`Status`] and the ways to talk.
///
/// Cheap to clone; clones compare equal while they belong to the same hook and status.
#[derive(Clone)]
pub struct UseLifeline {
    shared: Rc<Shared>,
    status: Rc<Status>,
}

impl PartialEq for UseLifeline {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.shared, &other.shared) && self.status == other.status
    }
}

impl fmt::Debug for UseLifeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UseLifeline")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl UseLifeline {
    fn with_client<R>(&self, f: impl FnOnce(&Client) -> Result<R>) -> Result<R> {
        match self.shared.client.borrow().as_ref() {
            Some(client) => f(client),
            None => Err(self.shared.failed.borrow().clone().unwrap_or(Error::Closed)),
        }
    }

    /// The connection status as of this render.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Shorthand for `status().state`.
    pub fn state(&self) -> State {
        self.status.state
    }

    /// Why the client could not start (for example [`Error::InvalidUrl`]), if it could not.
    pub fn error(&self) -> Option<Error> {
        self.shared.failed.borrow().clone()
    }

    /// Sends text or bytes now, or queues them until the socket is open (see
    /// [`Client::send`]). [`Error::Closed`] after unmount.
    pub fn send(&self, message: impl Into<Message>) -> Result<Sent> {
        let message = message.into();
        self.with_client(|client| client.send(message))
    }

    /// Sends a value as a JSON text frame.
    pub fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<Sent> {
        self.with_client(|client| client.send_json(value))
    }

    /// Publishes `data` to a joined protocol v1 room and returns the message id the server's
    /// `ack` will carry (see [`RoomEvent::Acked`] and [`use_protocol_events`]).
    pub fn publish<T: Serialize + ?Sized>(&self, room: &str, data: &T) -> Result<(MsgId, Sent)> {
        let data = serde_json::to_value(data).map_err(|e| Error::Encode {
            message: e.to_string(),
        })?;
        let id = self.shared.next_id.get() + 1;
        self.shared.next_id.set(id);
        let sent = self.send_json(&ClientMsg::Publish {
            room: room.to_owned(),
            id,
            data,
        })?;
        Ok((id, sent))
    }

    /// Connects again now, skipping the backoff wait ("retry now"); also restarts after
    /// giving up or `close()`.
    pub fn reconnect(&self) {
        if let Some(client) = self.shared.client.borrow().as_ref() {
            client.reconnect();
        }
    }

    /// Closes until [`reconnect`](Self::reconnect); see [`Client::close`].
    pub fn close(&self, code: Option<u16>, reason: Option<&str>) -> Result<()> {
        self.with_client(|client| client.close(code, reason))
    }

    /// Calls `callback` with every event until the [`Subscription`] is dropped; `None` when
    /// there is no client (before the first effect, after unmount, or a failed start).
    pub fn subscribe(&self, callback: impl Fn(&Event) + 'static) -> Option<Subscription> {
        self.shared
            .client
            .borrow()
            .as_ref()
            .map(|client| client.on_event(callback))
    }

    fn send_preamble(&self, message: Message) -> Result<()> {
        self.with_client(|client| client.send_preamble(message))
    }

    /// The client's state right now (not as of the last render).
    fn live_state(&self) -> State {
        self.shared
            .client
            .borrow()
            .as_ref()
            .map_or(State::Closed, Client::state)
    }
}

/// Connects to `endpoint` on mount, with `config`, and disconnects on unmount.
///
/// The client is created once per mounted component: later renders reuse it, whatever
/// `endpoint` and `config` they pass (give the component a new `key` to start over). Every
/// connection event updates [`UseLifeline::status`] and re-renders the component.
#[hook]
pub fn use_lifeline(endpoint: Endpoint, config: Config) -> UseLifeline {
    let shared = use_memo((), |()| Shared {
        client: RefCell::new(None),
        next_id: Cell::new(0),
        failed: RefCell::new(None),
    });
    let status = use_state(Status::default);
    let start = use_mut_ref(|| Some((endpoint, config)));
    {
        let shared = shared.clone();
        let setter = status.setter();
        use_effect_with((), move |()| {
            // The status lives in the subscription's closure and is copied into the component's
            // state on every change; the closure holds a setter, never the client.
            let mut subscription = None;
            if let Some((endpoint, config)) = start.borrow_mut().take() {
                match endpoint.connect(config) {
                    Ok(client) => {
                        let offline = web_sys::window().is_some_and(|w| !w.navigator().on_line());
                        let current = RefCell::new(Status {
                            state: client.state(),
                            offline,
                            ..Status::default()
                        });
                        setter.set(current.borrow().clone());
                        subscription = Some(client.on_event(move |event| {
                            let mut status = current.borrow_mut();
                            let before = status.clone();
                            status.apply(event);
                            if *status != before {
                                setter.set(status.clone());
                            }
                        }));
                        *shared.client.borrow_mut() = Some(client);
                    }
                    Err(error) => *shared.failed.borrow_mut() = Some(error),
                }
            }
            move || {
                drop(subscription);
                // Dropping the client closes the socket and removes its listeners and timer.
                let client = shared.client.borrow_mut().take();
                drop(client);
            }
        });
    }
    UseLifeline {
        shared,
        status: Rc::new((*status).clone()),
    }
}

/// Calls `on_event` with every connection [`Event`] while the component is mounted; the
/// latest `on_event` is used, so it may capture per-render values.
#[hook]
pub fn use_lifeline_events(lifeline: &UseLifeline, on_event: Callback<Event>) {
    let latest = use_mut_ref(|| on_event.clone());
    *latest.borrow_mut() = on_event;
    let started = lifeline.shared.client.borrow().is_some();
    let lifeline = lifeline.clone();
    use_effect_with(started, move |_| {
        let subscription = lifeline.subscribe(move |event| {
            let callback = latest.borrow().clone();
            callback.emit(event.clone());
        });
        move || drop(subscription)
    });
}

/// Calls `on_message` with every protocol v1 [`ServerMsg`] (a batch frame yields its messages
/// in order) while the component is mounted. Frames that are not protocol v1 are skipped.
#[hook]
pub fn use_protocol_events(lifeline: &UseLifeline, on_message: Callback<ServerMsg>) {
    let on_event = Callback::from(move |event: Event| {
        if let Event::Message(Message::Text(text)) = event {
            for message in protocol::decode_server_frame(&text).unwrap_or_default() {
                on_message.emit(message);
            }
        }
    });
    use_lifeline_events(lifeline, on_event);
}

/// A message delivered in a room, with its data decoded into `T`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomMessage<T> {
    /// Room name.
    pub room: String,
    /// Position in the room (consecutive within an epoch).
    pub offset: Offset,
    /// Display name of the publisher.
    pub from: String,
    /// The published data.
    pub data: T,
    /// Server time of publication, ms since the Unix epoch.
    pub ts: u64,
}

/// What happens in a room, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RoomEvent<T> {
    /// The server confirmed the (re)join. `recovered` is false when messages missed while
    /// disconnected could not be replayed: the history has a gap (for example after a server
    /// restart). It is true for a first join and for a complete replay.
    Joined {
        /// Whether every missed message follows.
        recovered: bool,
        /// True when this is a rejoin after a reconnect.
        rejoin: bool,
    },
    /// A message, in offset order, never twice.
    Message(RoomMessage<T>),
    /// A message whose data did not decode into `T`; the room goes on.
    Undecodable {
        /// Its offset.
        offset: Offset,
        /// The decoder's message.
        error: String,
    },
    /// Who is in the room now (sorted display names).
    Presence(Vec<String>),
    /// The server accepted a publish of this room.
    Acked {
        /// The id [`UseRoom::publish`] returned.
        id: MsgId,
        /// Where it landed.
        offset: Offset,
    },
    /// A publish of this room was refused.
    Refused {
        /// The publish id.
        id: MsgId,
        /// The server's reason.
        code: ErrorCode,
    },
    /// A publish that waited in the outbound queue went out on a new connection.
    Sent {
        /// The publish id.
        id: MsgId,
    },
    /// A publish was on the wire when the connection dropped and was not acknowledged; it may
    /// or may not have been delivered.
    Unconfirmed {
        /// The publish id.
        id: MsgId,
    },
}

#[derive(Debug)]
struct RoomTrack<T> {
    since: Option<Since>,
    joined: bool,
    ever_joined: bool,
    recovered: Option<bool>,
    messages: Vec<RoomMessage<T>>,
    members: Vec<String>,
    /// Publishes without an ack: `None` while queued, else the connection they went out on.
    unacked: BTreeMap<MsgId, Option<u32>>,
    /// Opens seen, numbering the connections.
    connection: u32,
}

impl<T> Default for RoomTrack<T> {
    fn default() -> Self {
        RoomTrack {
            since: None,
            joined: false,
            ever_joined: false,
            recovered: None,
            messages: Vec::new(),
            members: Vec::new(),
            unacked: BTreeMap::new(),
            connection: 0,
        }
    }
}

impl<T: DeserializeOwned> RoomTrack<T> {
    /// Folds one server message in; returns the room events it produced.
    fn on_server(&mut self, room: &str, message: ServerMsg) -> Vec<RoomEvent<T>> {
        match message {
            ServerMsg::Joined {
                room: r,
                epoch,
                offset,
                recovered,
            } if r == room => {
                let rejoin = self.ever_joined;
                self.joined = true;
                self.ever_joined = true;
                self.recovered = Some(recovered);
                let same_epoch = self.since.as_ref().is_some_and(|s| s.epoch == epoch);
                if !(recovered && same_epoch) {
                    // Nothing is replayed: continue from the room's current offset.
                    self.since = Some(Since { epoch, offset });
                }
                vec![RoomEvent::Joined { recovered, rejoin }]
            }
            ServerMsg::Message {
                room: r,
                offset,
                from,
                data,
                ts,
            } if r == room => {
                if let Some(since) = self.since.as_mut() {
                    if offset <= since.offset {
                        return Vec::new();
                    }
                    since.offset = offset;
                }
                match serde_json::from_value::<T>(data) {
                    Ok(data) => {
                        let message = RoomMessage {
                            room: r,
                            offset,
                            from,
                            data,
                            ts,
                        };
                        vec![RoomEvent::Message(message)]
                    }
                    Err(error) => vec![RoomEvent::Undecodable {
                        offset,
                        error: error.to_string(),
                    }],
                }
            }
            ServerMsg::Presence { room: r, members } if r == room => {
                self.members.clone_from(&members);
                vec![RoomEvent::Presence(members)]
            }
            ServerMsg::Ack { id, offset, .. } if self.unacked.remove(&id).is_some() => {
                vec![RoomEvent::Acked { id, offset }]
            }
            ServerMsg::Error {
                code,
                reference: Some(id),
                ..
            } if self.unacked.remove(&id).is_some() => {
                vec![RoomEvent::Refused { id, code }]
            }
            _ => Vec::new(),
        }
    }

    /// A socket opened: what waited in the queue goes out now, after the (re)join.
    fn on_open(&mut self) -> Vec<RoomEvent<T>> {
        self.connection += 1;
        let connection = self.connection;
        let mut events = Vec::new();
        for (id, on) in &mut self.unacked {
            if on.is_none() {
                *on = Some(connection);
                events.push(RoomEvent::Sent { id: *id });
            }
        }
        events
    }

    /// A socket closed: publishes on its wire without an ack are unconfirmed.
    fn on_close(&mut self) -> Vec<RoomEvent<T>> {
        self.joined = false;
        let connection = Some(self.connection);
        let lost: Vec<MsgId> = self
            .unacked
            .iter()
            .filter(|(_, on)| **on == connection)
            .map(|(id, _)| *id)
            .collect();
        lost.into_iter()
            .map(|id| {
                self.unacked.remove(&id);
                RoomEvent::Unconfirmed { id }
            })
            .collect()
    }

    fn join_message(&self, room: &str) -> ClientMsg {
        ClientMsg::Join {
            room: room.to_owned(),
            since: self.since.clone(),
        }
    }
}

/// The handle [`use_room`] returns.
pub struct UseRoom<T> {
    room: Rc<str>,
    lifeline: UseLifeline,
    track: Rc<RefCell<RoomTrack<T>>>,
    version: u64,
}

impl<T> Clone for UseRoom<T> {
    fn clone(&self) -> Self {
        UseRoom {
            room: self.room.clone(),
            lifeline: self.lifeline.clone(),
            track: self.track.clone(),
            version: self.version,
        }
    }
}

impl<T> PartialEq for UseRoom<T> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.track, &other.track) && self.version == other.version
    }
}

impl<T> fmt::Debug for UseRoom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UseRoom")
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> UseRoom<T> {
    /// Room name.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// True while the server has confirmed the membership on the current connection.
    pub fn joined(&self) -> bool {
        self.track.borrow().joined
    }

    /// Whether the last (re)join recovered everything missed; `None` before the first join.
    pub fn recovered(&self) -> Option<bool> {
        self.track.borrow().recovered
    }

    /// Messages delivered since mount, in offset order.
    pub fn messages(&self) -> Vec<RoomMessage<T>> {
        self.track.borrow().messages.clone()
    }

    /// Who is in the room (sorted display names).
    pub fn members(&self) -> Vec<String> {
        self.track.borrow().members.clone()
    }

    /// Publishes `data` to the room; queued while disconnected. The id comes back in
    /// [`RoomEvent::Acked`] (or `Refused`/`Unconfirmed`).
    pub fn publish<D: Serialize + ?Sized>(&self, data: &D) -> Result<(MsgId, Sent)> {
        let (id, sent) = self.lifeline.publish(&self.room, data)?;
        let mut track = self.track.borrow_mut();
        let on = match sent {
            Sent::Transmitted => Some(track.connection),
            Sent::Queued => None,
        };
        track.unacked.insert(id, on);
        Ok((id, sent))
    }
}

/// Joins `room` (protocol v1) while the component is mounted and keeps its messages and
/// presence; the component re-renders on every change.
#[hook]
pub fn use_room<T>(lifeline: &UseLifeline, room: &str) -> UseRoom<T>
where
    T: DeserializeOwned + Clone + 'static,
{
    use_room_with(lifeline, room, Callback::noop())
}

/// As [`use_room`], and calls `on_event` with every [`RoomEvent`] (the latest `on_event` is
/// used). Apps that keep their own state, in a reducer for example, feed it from here.
#[hook]
pub fn use_room_with<T>(
    lifeline: &UseLifeline,
    room: &str,
    on_event: Callback<RoomEvent<T>>,
) -> UseRoom<T>
where
    T: DeserializeOwned + Clone + 'static,
{
    let track = use_memo(room.to_owned(), |_| RefCell::new(RoomTrack::<T>::default()));
    let latest = use_mut_ref(|| on_event.clone());
    *latest.borrow_mut() = on_event;
    let version = use_state(|| 0u64);
    let started = lifeline.shared.client.borrow().is_some();
    {
        let lifeline = lifeline.clone();
        let track = track.clone();
        let room = room.to_owned();
        let bump = version.setter();
        let counter = Rc::new(Cell::new(*version));
        use_effect_with((room.clone(), started), move |_| {
            let emit = {
                let counter = counter.clone();
                move |events: Vec<RoomEvent<T>>| {
                    if events.is_empty() {
                        return;
                    }
                    counter.set(counter.get() + 1);
                    bump.set(counter.get());
                    let callback = latest.borrow().clone();
                    for event in events {
                        callback.emit(event);
                    }
                }
            };
            let handle = lifeline.clone();
            let name = room.clone();
            let inner = track.clone();
            let subscription = lifeline.subscribe(move |event| {
                let events = match event {
                    Event::Open => {
                        let join = inner.borrow().join_message(&name);
                        if let Ok(message) = crate::typed::encode(&join) {
                            let _ = handle.send_preamble(message);
                        }
                        inner.borrow_mut().on_open()
                    }
                    Event::Close(_) => inner.borrow_mut().on_close(),
                    Event::Message(Message::Text(text)) => {
                        let mut out = Vec::new();
                        for message in protocol::decode_server_frame(text).unwrap_or_default() {
                            let mut track = inner.borrow_mut();
                            let events = track.on_server(&name, message);
                            for event in &events {
                                if let RoomEvent::Message(message) = event {
                                    track.messages.push(message.clone());
                                }
                            }
                            out.extend(events);
                        }
                        out
                    }
                    _ => Vec::new(),
                };
                emit(events);
            });
            if subscription.is_some() && lifeline.live_state() == State::Open {
                // Mounted on an open connection: join now rather than on the next open.
                let join = track.borrow().join_message(&room);
                let _ = lifeline.send_json(&join);
            }
            move || {
                drop(subscription);
                if lifeline.live_state() == State::Open {
                    let _ = lifeline.send_json(&ClientMsg::Leave { room });
                }
            }
        });
    }
    UseRoom {
        room: Rc::from(room),
        lifeline: lifeline.clone(),
        track,
        version: *version,
    }
}
