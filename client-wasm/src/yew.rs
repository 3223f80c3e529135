//! Yew hooks: [`use_lifeline`] for the connection, [`use_room`] for a protocol v1 room.
//!
//! The hooks own a [`Client`] for as long as the component is mounted and drop it (closing the
//! socket and removing every listener and timer) when it unmounts. Unlike a hook that opens a
//! bare `WebSocket` per connect, they leak nothing per connection, and reconnects follow the
//! client's jittered backoff, `online`/`offline` and heartbeat rules instead of a fixed timer.
//!
//! Rooms go through the client's protocol v1 layer ([`Client::join`]): joins are redone
//! after every reconnect with the last offset seen, messages arrive in offset order within an
//! epoch exactly once (a server restart starts a new epoch whose offsets begin at 1 again),
//! publishes are resent until acknowledged, and a gap that cannot be filled is reported
//! ([`RoomEvent::Recovery`] with `recovered: false`), never silent. The layer is created the
//! first time a room is used, so a component that only uses [`use_lifeline`] speaks plain
//! WebSocket.
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
//!         Callback::from(move |_| { let _ = lobby.publish(&"hello"); })
//!     };
//!     html! {
//!         <>
//!             <p>{ format!("{:?}", lifeline.state()) }</p>
//!             // Keyed by (epoch, offset): offsets alone repeat after a server restart.
//!             <ul>{ for lobby.messages().iter().map(|m| html! {
//!                 <li key={format!("{}:{}", m.epoch, m.offset)}>{ &m.data }</li>
//!             }) }</ul>
//!             <button {onclick} disabled={lifeline.state() != State::Open}>{ "Say hello" }</button>
//!         </>
//!     }
//! }
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use yew::prelude::*;

pub use crate::PublishFuture;
#[cfg(feature = "persist")]
pub use crate::machine::rooms::outbox::{OutboxConfig, OutboxError, OutboxSnapshot};
pub use crate::machine::rooms::{PublishId, RoomError, RoomEvent, RoomMessage, RoomsConfig};
pub use crate::typed::DecodeError;
use crate::{Client, CloseInfo, Config, Error, Event, Message, Result, Sent, State, Subscription};

type UrlFuture = Pin<Box<dyn Future<Output = std::result::Result<String, String>>>>;

/// Where [`use_lifeline`] connects: a fixed URL or a provider called before every attempt,
/// and (feature `persist`) the store of the persistent outbox.
#[derive(Clone)]
pub struct Endpoint {
    kind: EndpointKind,
    #[cfg(feature = "persist")]
    persist: Option<Persist>,
}

/// The persistent outbox of an [`Endpoint`]: its IndexedDB store name and bounds.
#[cfg(feature = "persist")]
#[derive(Clone, Debug)]
struct Persist {
    store: String,
    outbox: OutboxConfig,
}

/// A client being made: at once, or after the persistent outbox is read.
enum Start {
    Ready(Result<Client>),
    #[cfg(feature = "persist")]
    Restoring(Pin<Box<dyn Future<Output = std::result::Result<Client, OutboxError>>>>),
}

#[derive(Clone)]
enum EndpointKind {
    Url(String),
    Provider(Rc<dyn Fn() -> UrlFuture>),
}

impl Endpoint {
    /// A fixed URL (`ws:`/`wss:`, or `http:`/`https:` mapped to them).
    pub fn url(url: impl Into<String>) -> Self {
        Endpoint::new(EndpointKind::Url(url.into()))
    }

    fn new(kind: EndpointKind) -> Self {
        Endpoint {
            kind,
            #[cfg(feature = "persist")]
            persist: None,
        }
    }

    /// Turns the persistent outbox on (feature `persist`): the client is made with
    /// [`Client::connect_persistent`] (or [`Client::with_url_provider_persistent`]) on the
    /// IndexedDB store `store`, so what the last page on `store` left unacknowledged is resent
    /// once, and [`RoomEvent::OutboxDelivered`] names it when the server acknowledges it
    /// (see [`use_outbox_delivered`]). What was restored is in
    /// [`UseLifeline::restored_outbox`]. Use one store per user and server.
    ///
    /// ```no_run
    /// use ws_lifeline::yew::{Endpoint, OutboxConfig};
    ///
    /// let endpoint = Endpoint::url("wss://example.com/ws")
    ///     .persist("chat:alice@example.com", OutboxConfig::default());
    /// ```
    #[cfg(feature = "persist")]
    pub fn persist(mut self, store: impl Into<String>, outbox: OutboxConfig) -> Self {
        self.persist = Some(Persist {
            store: store.into(),
            outbox,
        });
        self
    }

    /// A URL computed before every attempt, for example with a fresh one-time ticket
    /// (see [`Client::with_url_provider`]).
    pub fn provider<F, Fut, E>(provider: F) -> Self
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = std::result::Result<String, E>> + 'static,
        E: fmt::Display + 'static,
    {
        Endpoint::new(EndpointKind::Provider(Rc::new(move || {
            let fut = provider();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        })))
    }

    fn connect(self, config: Config) -> Start {
        #[cfg(feature = "persist")]
        if let Some(Persist { store, outbox }) = self.persist {
            return Start::Restoring(match self.kind {
                EndpointKind::Url(url) => Box::pin(async move {
                    Client::connect_persistent(&url, config, outbox, &store).await
                }),
                EndpointKind::Provider(provider) => Box::pin(async move {
                    Client::with_url_provider_persistent(config, outbox, &store, move || provider())
                        .await
                }),
            });
        }
        Start::Ready(match self.kind {
            EndpointKind::Url(url) => Client::connect(&url, config),
            EndpointKind::Provider(provider) => {
                Client::with_url_provider(config, move || provider())
            }
        })
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EndpointKind::Url(url) => f.debug_tuple("Endpoint::url").field(url).finish()?,
            EndpointKind::Provider(_) => f.write_str("Endpoint::provider(..)")?,
        }
        #[cfg(feature = "persist")]
        if let Some(persist) = &self.persist {
            write!(f, ".persist({:?}, {:?})", persist.store, persist.outbox)?;
        }
        Ok(())
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
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// `None` before the first effect (or until the persistent outbox is read) and after
    /// teardown.
    client: RefCell<Option<Client>>,
    /// Keeps [`Status`] up to date while the client lives.
    subscription: RefCell<Option<Subscription>>,
    /// Why the client could not be created (an invalid URL), if it could not.
    failed: RefCell<Option<Error>>,
    /// Set on teardown: a client whose outbox is read after that is dropped at once.
    unmounted: Cell<bool>,
    /// What the persistent outbox held when the client started.
    #[cfg(feature = "persist")]
    restored: RefCell<Option<OutboxSnapshot>>,
}

impl Shared {
    /// Keeps the client and copies its events into the component's [`Status`].
    fn attach(&self, client: Client, setter: UseStateSetter<Status>) {
        let offline = web_sys::window().is_some_and(|w| !w.navigator().on_line());
        let current = RefCell::new(Status {
            state: client.state(),
            offline,
            ..Status::default()
        });
        #[cfg(feature = "persist")]
        {
            *self.restored.borrow_mut() = client.outbox_snapshot();
        }
        setter.set(current.borrow().clone());
        // The status lives in the subscription's closure and is copied into the component's
        // state on every change; the closure holds a setter, never the client.
        *self.subscription.borrow_mut() = Some(client.on_event(move |event| {
            let mut status = current.borrow_mut();
            let before = status.clone();
            status.apply(event);
            if *status != before {
                setter.set(status.clone());
            }
        }));
        *self.client.borrow_mut() = Some(client);
    }

    /// Nothing to retry (an invalid URL, an unreadable outbox store): says so in the status.
    fn fail(&self, error: Error, setter: &UseStateSetter<Status>) {
        setter.set(Status {
            state: State::Closed,
            last_error: Some(error.clone()),
            ..Status::default()
        });
        *self.failed.borrow_mut() = Some(error);
    }
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

    /// Publishes `data` as JSON to a room joined with [`use_room`]; queued while
    /// disconnected and resent until acknowledged. The future resolves on the server's ack
    /// (its id is also in [`RoomEvent::Acked`]); dropping it does not cancel the publish.
    ///
    /// Errors: [`RoomError::NotJoined`], [`RoomError::TooManyUnacked`],
    /// [`RoomError::Encode`], [`RoomError::Closed`] without a client.
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        room: &str,
        data: &T,
    ) -> std::result::Result<PublishFuture, RoomError> {
        self.client(|client| client.publish(room, data))
            .unwrap_or(Err(RoomError::Closed))
    }

    /// Asks the server for the room list ([`RoomEvent::Rooms`]); false when not connected.
    pub fn list_rooms(&self) -> bool {
        self.client(Client::list_rooms).unwrap_or(false)
    }

    /// Runs `f` with the client; `None` without one. Callbacks run by `f` may use the client
    /// again (shared borrows only).
    fn client<R>(&self, f: impl FnOnce(&Client) -> R) -> Option<R> {
        self.shared.client.borrow().as_ref().map(f)
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

    /// What the persistent outbox held when the client started (feature `persist`): the
    /// publishes an earlier page left unacknowledged, which this client resends, and its
    /// rooms. `None` without [`Endpoint::persist`] and until the store is read.
    #[cfg(feature = "persist")]
    pub fn restored_outbox(&self) -> Option<OutboxSnapshot> {
        self.shared.restored.borrow().clone()
    }

    /// Empties the persistent outbox (see [`Client::clear_outbox`]); false without a client.
    #[cfg(feature = "persist")]
    pub fn clear_outbox(&self) -> bool {
        matches!(self.client(Client::clear_outbox), Some(Ok(())))
    }

    /// The client's state right now (not as of the last render).
    pub fn live_state(&self) -> State {
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
        subscription: RefCell::new(None),
        failed: RefCell::new(None),
        unmounted: Cell::new(false),
        #[cfg(feature = "persist")]
        restored: RefCell::new(None),
    });
    let status = use_state(Status::default);
    let start = use_mut_ref(|| Some((endpoint, config)));
    {
        let shared = shared.clone();
        let setter = status.setter();
        use_effect_with((), move |()| {
            if let Some((endpoint, config)) = start.borrow_mut().take() {
                match endpoint.connect(config) {
                    Start::Ready(Ok(client)) => shared.attach(client, setter),
                    Start::Ready(Err(error)) => shared.fail(error, &setter),
                    #[cfg(feature = "persist")]
                    Start::Restoring(restoring) => {
                        let shared = shared.clone();
                        wasm_bindgen_futures::spawn_local(async move {
                            let made = restoring.await;
                            if shared.unmounted.get() {
                                // Unmounted while IndexedDB was read: the client goes at once.
                                drop(made);
                                return;
                            }
                            match made {
                                Ok(client) => shared.attach(client, setter),
                                Err(OutboxError::Client(error)) => shared.fail(error, &setter),
                                Err(error) => shared.fail(
                                    Error::Platform {
                                        message: error.to_string(),
                                    },
                                    &setter,
                                ),
                            }
                        });
                    }
                }
            }
            move || {
                shared.unmounted.set(true);
                let subscription = shared.subscription.borrow_mut().take();
                drop(subscription);
                // Dropping the client closes the socket, removes its listeners and timer, and
                // fails the publishes still awaiting their ack with `Closed`.
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

/// Calls `on_message` with every inbound message decoded as JSON into `T` while the
/// component is mounted; a message that does not decode arrives as a [`DecodeError`] with
/// the raw text (the connection goes on). For servers that do not speak protocol v1.
#[hook]
pub fn use_lifeline_messages<T>(
    lifeline: &UseLifeline,
    on_message: Callback<std::result::Result<T, DecodeError>>,
) where
    T: DeserializeOwned + 'static,
{
    let on_event = Callback::from(move |event: Event| {
        if let Event::Message(message) = event {
            on_message.emit(crate::typed::decode(&message));
        }
    });
    use_lifeline_events(lifeline, on_event);
}

/// Calls `on_event` with every protocol v1 [`RoomEvent`] of every room (and the
/// connection-level ones: `Welcome`, `Rooms`, `ServerError`) while the component is mounted.
/// Creates the rooms layer if needed. The latest `on_event` is used.
#[hook]
pub fn use_room_events(lifeline: &UseLifeline, on_event: Callback<RoomEvent>) {
    let latest = use_mut_ref(|| on_event.clone());
    *latest.borrow_mut() = on_event;
    let started = lifeline.shared.client.borrow().is_some();
    let lifeline = lifeline.clone();
    use_effect_with(started, move |_| {
        let subscription = lifeline.client(|client| {
            client.on_room_event(move |event| {
                let callback = latest.borrow().clone();
                callback.emit(event.clone());
            })
        });
        move || drop(subscription)
    });
}

/// Calls `on_delivered` with the ids of [`RoomEvent::OutboxDelivered`] (feature `persist`):
/// publishes restored from an earlier page's outbox that the server has now acknowledged,
/// once each. The latest `on_delivered` is used.
#[cfg(feature = "persist")]
#[hook]
pub fn use_outbox_delivered(lifeline: &UseLifeline, on_delivered: Callback<Vec<PublishId>>) {
    let on_event = Callback::from(move |event: RoomEvent| {
        if let RoomEvent::OutboxDelivered { ids } = event {
            on_delivered.emit(ids);
        }
    });
    use_room_events(lifeline, on_event);
}

/// The room an event belongs to; `None` for connection-level events.
fn room_of(event: &RoomEvent) -> Option<&str> {
    match event {
        RoomEvent::Joined { room, .. }
        | RoomEvent::Recovery { room, .. }
        | RoomEvent::Left { room }
        | RoomEvent::Acked { room, .. }
        | RoomEvent::PublishFailed { room, .. }
        | RoomEvent::Presence { room, .. } => Some(room),
        RoomEvent::Message(message) => Some(&message.room),
        _ => None,
    }
}

#[derive(Debug)]
struct RoomView<T> {
    joined: bool,
    recovered: Option<bool>,
    messages: Vec<RoomMessage<T>>,
    members: Vec<String>,
    undecodable: usize,
}

impl<T> Default for RoomView<T> {
    fn default() -> Self {
        RoomView {
            joined: false,
            recovered: None,
            messages: Vec::new(),
            members: Vec::new(),
            undecodable: 0,
        }
    }
}

impl<T: DeserializeOwned> RoomView<T> {
    /// Folds a room event in; false when nothing visible changed.
    fn apply(&mut self, event: &RoomEvent) -> bool {
        match event {
            RoomEvent::Joined { .. } => {
                self.joined = true;
                self.recovered = Some(true);
            }
            RoomEvent::Recovery { recovered, .. } => {
                self.joined = true;
                self.recovered = Some(*recovered);
            }
            RoomEvent::Left { .. } => self.joined = false,
            RoomEvent::Message(message) => match message.decode() {
                Ok(message) => self.messages.push(message),
                Err(_) => self.undecodable += 1,
            },
            RoomEvent::Presence { members, .. } => self.members.clone_from(members),
            _ => return false,
        }
        true
    }
}

/// The handle [`use_room`] returns: the room as of this render, and `publish`.
pub struct UseRoom<T> {
    room: Rc<str>,
    lifeline: UseLifeline,
    view: Rc<RefCell<RoomView<T>>>,
    version: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for UseRoom<T> {
    fn clone(&self) -> Self {
        UseRoom {
            room: self.room.clone(),
            lifeline: self.lifeline.clone(),
            view: self.view.clone(),
            version: self.version,
            _type: PhantomData,
        }
    }
}

impl<T> PartialEq for UseRoom<T> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.view, &other.view) && self.version == other.version
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

    /// True once the server confirmed the join (on the current or an earlier connection).
    pub fn joined(&self) -> bool {
        self.view.borrow().joined
    }

    /// Whether the last (re)join got every missed message; `None` before the first join.
    pub fn recovered(&self) -> Option<bool> {
        self.view.borrow().recovered
    }

    /// Messages delivered since mount, in delivery order, each once: in offset order within an
    /// epoch, and after a server restart (a new epoch, offsets from 1 again) the new epoch's
    /// after the old one's. So `offset` alone is no list key; `(publisher, id)` is, from a
    /// server that stamps them, and `(epoch, offset)` otherwise.
    pub fn messages(&self) -> Vec<RoomMessage<T>> {
        self.view.borrow().messages.clone()
    }

    /// Messages whose data did not decode into `T` (skipped).
    pub fn undecodable(&self) -> usize {
        self.view.borrow().undecodable
    }

    /// Who is in the room (sorted display names).
    pub fn members(&self) -> Vec<String> {
        self.view.borrow().members.clone()
    }

    /// Publishes `data` to the room; see [`UseLifeline::publish`].
    pub fn publish<D: Serialize + ?Sized>(
        &self,
        data: &D,
    ) -> std::result::Result<PublishFuture, RoomError> {
        self.lifeline.publish(&self.room, data)
    }
}

/// Joins `room` while the component is mounted (rejoining after every reconnect) and keeps
/// its messages, decoded into `T`, and presence; the component re-renders on every change.
#[hook]
pub fn use_room<T>(lifeline: &UseLifeline, room: &str) -> UseRoom<T>
where
    T: DeserializeOwned + Clone + 'static,
{
    use_room_with(lifeline, room, Callback::noop())
}

/// As [`use_room`], and calls `on_event` with every [`RoomEvent`] of the room (the latest
/// `on_event` is used). Apps that keep their own state, in a reducer for example, feed it
/// from here.
#[hook]
pub fn use_room_with<T>(
    lifeline: &UseLifeline,
    room: &str,
    on_event: Callback<RoomEvent>,
) -> UseRoom<T>
where
    T: DeserializeOwned + Clone + 'static,
{
    let view = use_memo(room.to_owned(), |_| RefCell::new(RoomView::<T>::default()));
    let latest = use_mut_ref(|| on_event.clone());
    *latest.borrow_mut() = on_event;
    let version = use_state(|| 0u64);
    let started = lifeline.shared.client.borrow().is_some();
    {
        let lifeline = lifeline.clone();
        let view = view.clone();
        let bump = version.setter();
        let first = *version;
        use_effect_with((room.to_owned(), started), move |(room, _)| {
            let count = std::cell::Cell::new(first);
            let name = room.clone();
            let subscription = lifeline.client(|client| {
                client.on_room_event(move |event| {
                    if room_of(event) != Some(name.as_str()) {
                        return;
                    }
                    if view.borrow_mut().apply(event) {
                        count.set(count.get() + 1);
                        bump.set(count.get());
                    }
                    let callback = latest.borrow().clone();
                    callback.emit(event.clone());
                })
            });
            // An invalid name is refused here and in the reducer of the app alike.
            let joined = lifeline
                .client(|client| client.join(room))
                .is_some_and(|joined| joined.is_ok());
            let room = room.clone();
            move || {
                drop(subscription);
                // Only a run that joined leaves: a run before the client existed (the
                // persistent outbox is read first) must not leave a room the client restored.
                if joined {
                    let _ = lifeline.client(|client| client.leave(&room));
                }
            }
        });
    }
    UseRoom {
        room: Rc::from(room),
        lifeline: lifeline.clone(),
        view,
        version: *version,
        _type: PhantomData,
    }
}
