//! Shared mode (feature `shared`, [`Config::share`](crate::Config)): the [`Client`] is this
//! tab's side of one socket that every tab of the site shares.
//!
//! The socket and its session run in the hub of the npm package's `ws-lifeline/shared` entry
//! (in its SharedWorker, or in a leader tab where there is none), so every rule (backoff,
//! heartbeat, queue, resend, recovery) is the core's, as in a client of its own. This module
//! loads that entry at run time from where the page serves the package
//! ([`Share::module`](crate::Share)), drives its `LifelineSocket`, and turns the events it
//! dispatches into [`Event`]s and [`RoomEvent`]s. Calls made before the entry has loaded are
//! carried out, in order, once it has.
//!
//! What differs from a client of its own, all from the tab's side: a publish's id
//! ([`PublishFuture::id`]) is this tab's (the hub numbers the publish itself, and both the
//! future's [`PublishAck`] and [`RoomEvent::Acked`] carry the tab's id); [`Client::stats`]
//! counts this tab's publishes and messages; `send_preamble` is refused (the hub's protocol
//! layer speaks first); `clear_outbox` empties the hub's outbox, for every tab. The settings crossing to the hub are `Config`'s numbers; its functions
//! (`ping`, `is_pong`, `terminal_close`) stay the hub's defaults.
//!
//! [`Client`]: crate::Client
//! [`Client::stats`]: crate::Client::stats

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::{Rc, Weak};
use std::time::Duration;

use gloo_events::EventListener;
use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::diagnostics::{self, Counted, LISTENERS};
use super::subscribers::Subscribers;
use crate::client::{Backend, Client, Provider};
use crate::machine::rooms::{PublishAck, PublishId, RoomError, RoomEvent, RoomMessage, RoomStats};
use crate::machine::{CloseInfo, Rtt, Target, check_close};
use crate::publish::{PublishFuture, Waiter};
use crate::typed::DecodeError;
use crate::{Config, Error, Event, Message, QueueLimit, RawJson, Result, Sent, Share, State};

#[wasm_bindgen(inline_js = "export function import_module(url) { return import(url); }")]
extern "C" {
    /// `import(url)`: the entry's module namespace.
    fn import_module(url: &str) -> Promise;
}

#[wasm_bindgen]
extern "C" {
    /// The `LifelineSocket` of the package's `ws-lifeline/shared` entry (see its README).
    #[wasm_bindgen(extends = web_sys::EventTarget)]
    #[derive(Clone)]
    type JsSocket;
    #[wasm_bindgen(method, catch)]
    fn send(this: &JsSocket, data: &JsValue) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn close(this: &JsSocket, code: u16, reason: &str) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn reconnect(this: &JsSocket) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn join(this: &JsSocket, room: &str) -> std::result::Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn leave(this: &JsSocket, room: &str) -> std::result::Result<bool, JsValue>;
    #[wasm_bindgen(method)]
    fn publish(this: &JsSocket, room: &str, data: &JsValue) -> Promise;
    #[wasm_bindgen(method, catch, js_name = listRooms)]
    fn list_rooms(this: &JsSocket) -> std::result::Result<bool, JsValue>;
    #[wasm_bindgen(method)]
    fn dispose(this: &JsSocket);
    #[wasm_bindgen(method, js_name = clearOutbox)]
    fn clear_outbox(this: &JsSocket);
    #[wasm_bindgen(method, getter)]
    fn state(this: &JsSocket) -> String;
    #[wasm_bindgen(method, getter)]
    fn url(this: &JsSocket) -> String;
    #[wasm_bindgen(method, getter)]
    fn protocol(this: &JsSocket) -> String;
    #[wasm_bindgen(method, getter)]
    fn rtt(this: &JsSocket) -> Option<f64>;
    #[wasm_bindgen(method, getter, js_name = queuedMessages)]
    fn queued_messages(this: &JsSocket) -> f64;
    #[wasm_bindgen(method, getter, js_name = bufferedAmount)]
    fn buffered_amount(this: &JsSocket) -> f64;
    #[wasm_bindgen(method, setter, js_name = binaryType)]
    fn set_binary_type(this: &JsSocket, binary_type: &str);
}

/// The connection events of the entry's socket, as `EventTarget` names them. `offline` and
/// `online` come from this tab's window instead: the page is what its user sees, and a worker
/// may not hear the page's network change (Chromium's offline emulation does not reach it).
const SOCKET_EVENTS: [&str; 8] = [
    "open",
    "message",
    "error",
    "close",
    "reconnecting",
    "statechange",
    "giveup",
    "pong",
];

/// Its room events. `ack` and `publishFailed` are made here from each publish's promise, so
/// that they carry this tab's publish id.
const ROOM_EVENTS: [&str; 10] = [
    "welcome",
    "joined",
    "recovery",
    "roomMessage",
    "left",
    "presence",
    "rooms",
    "serverError",
    "badFrame",
    "outboxDelivered",
];

/// This tab's publish ids start here: above every id a hub gives (those cross JavaScript as
/// numbers, below 2^53), so an id of this tab never equals one the hub reports (in
/// [`RoomEvent::OutboxDelivered`] or a restored outbox).
const FIRST_TAB_ID: u64 = 1 << 53;

/// What the tab's side of a shared socket starts with.
pub(crate) struct SharedStart {
    pub(crate) config: Config,
    pub(crate) share: Share,
    /// A fixed URL (checked when the tab starts), or a provider.
    pub(crate) target: Target,
    pub(crate) provider: Option<Provider>,
    /// The persistent outbox's store and bounds, handed to the hub.
    #[cfg(feature = "persist")]
    pub(crate) persist: Option<(String, crate::machine::rooms::outbox::OutboxConfig)>,
    /// What that store held when the page started.
    #[cfg(feature = "persist")]
    pub(crate) restored: Option<crate::machine::rooms::outbox::OutboxSnapshot>,
}

/// A call that waits for the entry to load.
type Pending = Box<dyn FnOnce(&Rc<Tab>, &JsSocket)>;

pub(crate) struct Tab {
    socket: RefCell<Option<JsSocket>>,
    pending: RefCell<Vec<Pending>>,
    listeners: RefCell<Vec<(EventListener, Counted)>>,
    /// The URL provider as the entry calls it; kept while the socket may call it.
    provider: RefCell<Option<Closure<dyn Fn() -> Promise>>>,
    subscribers: Rc<Subscribers<Event>>,
    room_subscribers: Rc<Subscribers<RoomEvent>>,
    rooms: RefCell<BTreeSet<String>>,
    rooms_started: Cell<bool>,
    /// The URL given, until the socket reports one.
    url: Option<String>,
    /// The entry could not be loaded or refused the settings.
    failed: Cell<bool>,
    /// After `close()`, until `reconnect()`.
    closed: Cell<bool>,
    disposed: Cell<bool>,
    next_id: Cell<u64>,
    unacked: Cell<usize>,
    stats: Cell<RoomStats>,
    #[cfg(feature = "persist")]
    restored: Option<crate::machine::rooms::outbox::OutboxSnapshot>,
}

/// The browser side of a [`Client`](crate::Client) in shared mode. Dropping it disposes the
/// entry's socket (this tab's side: the shared socket closes with its last tab) and removes
/// every listener.
pub(crate) struct SharedTab {
    inner: Rc<Tab>,
}

impl Drop for SharedTab {
    fn drop(&mut self) {
        self.inner.dispose();
    }
}

/// The weak side of a [`SharedTab`], for a [`ClientHandle`](crate::ClientHandle).
#[derive(Clone)]
pub(crate) struct WeakTab(Weak<Tab>);

impl WeakTab {
    pub(crate) fn get(&self) -> Option<SharedRef> {
        self.0
            .upgrade()
            .filter(|t| !t.disposed.get())
            .map(SharedRef)
    }
}

/// A live tab, borrowed for one call of a [`ClientHandle`](crate::ClientHandle).
pub(crate) struct SharedRef(Rc<Tab>);

impl std::ops::Deref for SharedRef {
    type Target = Rc<Tab>;
    fn deref(&self) -> &Rc<Tab> {
        &self.0
    }
}

impl SharedTab {
    /// A client on this tab's side of the shared socket; the entry starts loading now.
    pub(crate) fn client(start: SharedStart) -> Result<Client> {
        Ok(Client {
            backend: Backend::Shared(SharedTab::start(start)?),
        })
    }

    /// Starts loading the entry; the socket is made once it has.
    fn start(start: SharedStart) -> Result<SharedTab> {
        let url = match &start.target {
            Target::Url(url) => Some(crate::validate_url(url)?),
            Target::Provider => None,
        };
        let options = options(&start);
        let module = resolve(&start.share.module)?;
        let inner = Rc::new(Tab {
            socket: RefCell::new(None),
            pending: RefCell::new(Vec::new()),
            listeners: RefCell::new(Vec::new()),
            provider: RefCell::new(None),
            subscribers: Subscribers::new(),
            room_subscribers: Subscribers::new(),
            rooms: RefCell::new(BTreeSet::new()),
            rooms_started: Cell::new(false),
            url: url.clone(),
            failed: Cell::new(false),
            closed: Cell::new(false),
            disposed: Cell::new(false),
            next_id: Cell::new(FIRST_TAB_ID),
            unacked: Cell::new(0),
            stats: Cell::new(RoomStats::default()),
            #[cfg(feature = "persist")]
            restored: start.restored,
        });
        let target: JsValue = match (url, start.provider) {
            (Some(url), _) => url.into(),
            (None, Some(provider)) => {
                let give = Closure::<dyn Fn() -> Promise>::new(move || {
                    let url = provider();
                    wasm_bindgen_futures::future_to_promise(async move {
                        url.await
                            .map(JsValue::from)
                            .map_err(|e| js_sys::Error::new(&e).into())
                    })
                });
                let function = give.as_ref().clone();
                *inner.provider.borrow_mut() = Some(give);
                function
            }
            (None, None) => {
                return Err(Error::Platform {
                    message: "shared mode needs a URL or a URL provider".into(),
                });
            }
        };
        let protocols: Array = start.config.protocols.iter().map(JsValue::from).collect();
        let weak = Rc::downgrade(&inner);
        wasm_bindgen_futures::spawn_local(async move {
            let loaded = JsFuture::from(import_module(&module)).await;
            let Some(tab) = weak.upgrade().filter(|t| !t.disposed.get()) else {
                return;
            };
            let made = loaded.and_then(|module| {
                let class: Function =
                    Reflect::get(&module, &"LifelineSocket".into())?.dyn_into()?;
                Reflect::construct(&class, &Array::of3(&target, &protocols, &options))
            });
            match made {
                Ok(socket) => Tab::attach(&tab, socket.unchecked_into()),
                Err(e) => {
                    tab.failed.set(true);
                    let error = match lifeline_error(&e) {
                        Some(error) => error,
                        None => Error::Platform {
                            message: format!(
                                "the shared entry could not be loaded from {module}: {}",
                                message_of(&e)
                            ),
                        },
                    };
                    tab.emit(Event::Error(error));
                    tab.emit(Event::StateChange(State::Closed));
                }
            }
        });
        if let Some(window) = web_sys::window() {
            let network = |name, event: fn() -> Event| {
                let weak = Rc::downgrade(&inner);
                let listener = EventListener::new(&window, name, move |_| {
                    diagnostics::callback_ran();
                    if let Some(tab) = weak.upgrade().filter(|t| !t.disposed.get()) {
                        tab.emit(event());
                    }
                });
                (listener, Counted::new(&LISTENERS))
            };
            inner.listeners.borrow_mut().extend([
                network("offline", || Event::Offline),
                network("online", || Event::Online),
            ]);
        }
        Ok(SharedTab { inner })
    }

    pub(crate) fn downgrade(&self) -> WeakTab {
        WeakTab(Rc::downgrade(&self.inner))
    }
}

impl std::ops::Deref for SharedTab {
    type Target = Rc<Tab>;
    fn deref(&self) -> &Rc<Tab> {
        &self.inner
    }
}

impl Tab {
    /// Listens to the socket the entry made, then carries out the calls made meanwhile.
    fn attach(this: &Rc<Tab>, socket: JsSocket) {
        socket.set_binary_type("arraybuffer");
        for name in SOCKET_EVENTS {
            let listener = Tab::listen(this, &socket, name, connection_event);
            this.listeners.borrow_mut().push(listener);
        }
        if this.rooms_started.get() {
            Tab::listen_to_rooms(this, &socket);
        }
        *this.socket.borrow_mut() = Some(socket);
        let pending = std::mem::take(&mut *this.pending.borrow_mut());
        for call in pending {
            if this.disposed.get() {
                return;
            }
            // Cloned out of the cell: a call may reach the socket again.
            let socket = this.socket.borrow().clone();
            if let Some(socket) = socket {
                call(this, &socket);
            }
        }
    }

    fn listen(
        this: &Rc<Tab>,
        socket: &JsSocket,
        name: &'static str,
        handler: fn(&Tab, &web_sys::Event),
    ) -> (EventListener, Counted) {
        let weak = Rc::downgrade(this);
        let listener = EventListener::new(socket, name, move |event| {
            diagnostics::callback_ran();
            if let Some(tab) = weak.upgrade().filter(|t| !t.disposed.get()) {
                handler(&tab, event);
            }
        });
        (listener, Counted::new(&LISTENERS))
    }

    fn listen_to_rooms(this: &Rc<Tab>, socket: &JsSocket) {
        for name in ROOM_EVENTS {
            let listener = Tab::listen(this, socket, name, room_event);
            this.listeners.borrow_mut().push(listener);
        }
    }

    /// Runs `call` on the socket now, or once the entry has loaded.
    fn with_socket(this: &Rc<Tab>, call: impl FnOnce(&Rc<Tab>, &JsSocket) + 'static) {
        let socket = this.socket.borrow().clone();
        match socket {
            Some(socket) => call(this, &socket),
            None if !this.failed.get() => this.pending.borrow_mut().push(Box::new(call)),
            None => {}
        }
    }

    fn emit(&self, event: Event) {
        for callback in self.subscribers.snapshot() {
            if self.disposed.get() {
                return;
            }
            callback(&event);
        }
    }

    fn emit_room(&self, event: RoomEvent) {
        for callback in self.room_subscribers.snapshot() {
            if self.disposed.get() {
                return;
            }
            callback(&event);
        }
    }

    pub(crate) fn subscribers(&self) -> &Rc<Subscribers<Event>> {
        &self.subscribers
    }

    pub(crate) fn room_subscribers(&self) -> &Rc<Subscribers<RoomEvent>> {
        &self.room_subscribers
    }

    fn live(&self) -> Option<JsSocket> {
        self.socket.borrow().clone()
    }

    pub(crate) fn state(&self) -> State {
        if self.disposed.get() || self.closed.get() || self.failed.get() {
            return State::Closed;
        }
        self.live()
            .map_or(State::Connecting, |s| parse_state(&s.state()))
    }

    pub(crate) fn url(&self) -> Option<String> {
        self.live()
            .map(|s| s.url())
            .filter(|u| !u.is_empty())
            .or_else(|| self.url.clone())
    }

    pub(crate) fn protocol(&self) -> String {
        self.live().map(|s| s.protocol()).unwrap_or_default()
    }

    pub(crate) fn rtt(&self) -> Option<Rtt> {
        let ms = self.live()?.rtt()?;
        let rtt = Duration::from_secs_f64(ms.max(0.0) / 1000.0);
        Some(Rtt {
            last: rtt,
            smoothed: rtt,
        })
    }

    pub(crate) fn queued_messages(&self) -> usize {
        self.live().map_or(0, |s| s.queued_messages() as usize)
    }

    pub(crate) fn buffered_amount(&self) -> u64 {
        self.live().map_or(0, |s| s.buffered_amount() as u64)
    }

    fn ensure_open(&self) -> Result<()> {
        if self.disposed.get() || self.closed.get() || self.failed.get() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Hands `message` to the hub; what the socket's state suggests is the answer, as in the
    /// entry (a refusal by the hub's queue arrives as an [`Event::Error`]).
    pub(crate) fn send(self: &Rc<Self>, message: Message) -> Result<Sent> {
        self.ensure_open()?;
        let data: JsValue = match message {
            Message::Text(text) => text.into(),
            Message::Binary(bytes) => js_sys::Uint8Array::from(bytes.as_slice()).buffer().into(),
        };
        let open = self.state() == State::Open;
        Tab::with_socket(self, move |tab, socket| {
            if let Err(e) = socket.send(&data) {
                tab.emit(Event::Error(to_error(&e)));
            }
        });
        Ok(if open {
            Sent::Transmitted
        } else {
            Sent::Queued
        })
    }

    pub(crate) fn send_preamble(&self) -> Result<()> {
        Err(Error::Platform {
            message: "send_preamble is not available in shared mode: the hub speaks first".into(),
        })
    }

    pub(crate) fn close(self: &Rc<Self>, code: Option<u16>, reason: Option<&str>) -> Result<()> {
        if self.disposed.get() {
            return Err(Error::Closed);
        }
        let (code, reason) = check_close(code, reason)?;
        if self.closed.replace(true) {
            return Ok(());
        }
        Tab::with_socket(self, move |_, socket| {
            let _ = socket.close(code, &reason);
        });
        Ok(())
    }

    pub(crate) fn reconnect(self: &Rc<Self>) {
        if self.disposed.get() {
            return;
        }
        self.closed.set(false);
        Tab::with_socket(self, |_, socket| {
            let _ = socket.reconnect();
        });
    }

    pub(crate) fn start_rooms(self: &Rc<Self>) {
        if self.rooms_started.replace(true) {
            return;
        }
        if let Some(socket) = self.live() {
            Tab::listen_to_rooms(self, &socket);
        }
    }

    pub(crate) fn join(self: &Rc<Self>, room: &str) -> Result<(), RoomError> {
        if !protocol::valid_room_name(room) {
            return Err(RoomError::InvalidRoom {
                room: room.to_owned(),
            });
        }
        self.start_rooms();
        if !self.rooms.borrow_mut().insert(room.to_owned()) {
            return Ok(());
        }
        let room = room.to_owned();
        Tab::with_socket(self, move |_, socket| {
            let _ = socket.join(&room);
        });
        Ok(())
    }

    pub(crate) fn leave(self: &Rc<Self>, room: &str) -> bool {
        self.start_rooms();
        if !self.rooms.borrow_mut().remove(room) {
            return false;
        }
        let room = room.to_owned();
        Tab::with_socket(self, move |_, socket| {
            let _ = socket.leave(&room);
        });
        true
    }

    pub(crate) fn publish(
        self: &Rc<Self>,
        room: &str,
        data: RawJson,
    ) -> Result<PublishFuture, RoomError> {
        if !protocol::valid_room_name(room) {
            return Err(RoomError::InvalidRoom {
                room: room.to_owned(),
            });
        }
        self.start_rooms();
        if !self.rooms.borrow().contains(room) {
            return Err(RoomError::NotJoined {
                room: room.to_owned(),
            });
        }
        if self.ensure_open().is_err() {
            return Err(RoomError::Closed);
        }
        let value = js_sys::JSON::parse(data.as_str()).map_err(|e| RoomError::Encode {
            message: message_of(&e),
        })?;
        let id = PublishId(self.next_id.get());
        self.next_id.set(id.0 + 1);
        let (waiter, future) = PublishFuture::new(id);
        self.unacked.set(self.unacked.get() + 1);
        self.count(|s| s.published += 1);
        let room = room.to_owned();
        Tab::with_socket(self, move |tab, socket| {
            let promise = socket.publish(&room, &value);
            let weak = Rc::downgrade(tab);
            wasm_bindgen_futures::spawn_local(async move {
                let outcome = JsFuture::from(promise).await;
                Tab::settle(&weak, waiter, id, room, outcome);
            });
        });
        Ok(future)
    }

    /// A publish's promise settled: its future, its event and the counters.
    fn settle(
        weak: &Weak<Tab>,
        waiter: Waiter,
        id: PublishId,
        room: String,
        outcome: std::result::Result<JsValue, JsValue>,
    ) {
        let result = match outcome {
            Ok(ack) => Ok(PublishAck {
                id,
                room: room.clone(),
                offset: number(&ack, "offset") as u64,
                duplicate: boolean(&ack, "duplicate"),
            }),
            Err(e) => Err(to_room_error(&e, id)),
        };
        if let Some(tab) = weak.upgrade().filter(|t| !t.disposed.get()) {
            tab.unacked.set(tab.unacked.get().saturating_sub(1));
            let event = match &result {
                Ok(ack) => {
                    tab.count(|s| {
                        s.acked += 1;
                        s.duplicate_acks += u64::from(ack.duplicate);
                    });
                    RoomEvent::Acked {
                        id,
                        room,
                        offset: ack.offset,
                        duplicate: ack.duplicate,
                    }
                }
                Err(error) => {
                    tab.count(|s| s.failed += 1);
                    RoomEvent::PublishFailed {
                        id,
                        room,
                        error: error.clone(),
                    }
                }
            };
            tab.emit_room(event);
        }
        let _ = waiter.send(result);
    }

    fn count(&self, f: impl FnOnce(&mut RoomStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    pub(crate) fn list_rooms(self: &Rc<Self>) -> bool {
        self.start_rooms();
        self.live().is_some_and(|s| s.list_rooms().unwrap_or(false))
    }

    /// This tab's counters: its publishes and the messages it heard.
    pub(crate) fn stats(&self) -> RoomStats {
        self.stats.get()
    }

    /// This tab's publishes awaiting their ack.
    pub(crate) fn unacked(&self) -> usize {
        self.unacked.get()
    }

    /// Empties the hub's outbox, for every tab (see the entry's `clearOutbox`).
    #[cfg(feature = "persist")]
    pub(crate) fn clear_outbox(self: &Rc<Self>) -> Result<()> {
        self.ensure_open()?;
        Tab::with_socket(self, |_, socket| socket.clear_outbox());
        Ok(())
    }

    /// What the hub's store held when this page started.
    #[cfg(feature = "persist")]
    pub(crate) fn outbox_snapshot(&self) -> Option<crate::machine::rooms::outbox::OutboxSnapshot> {
        self.restored.clone()
    }

    fn dispose(&self) {
        if self.disposed.replace(true) {
            return;
        }
        self.listeners.borrow_mut().clear();
        self.pending.borrow_mut().clear();
        if let Some(socket) = self.socket.borrow_mut().take() {
            // This tab's side only: its rooms are released and its publishes' promises reject
            // (the hub still delivers them); the shared socket closes with its last tab.
            socket.dispose();
        }
        self.provider.borrow_mut().take();
        self.subscribers.clear();
        self.room_subscribers.clear();
    }
}

/// The connection events, as [`Event`]s.
fn connection_event(tab: &Tab, event: &web_sys::Event) {
    let fields: &JsValue = event.as_ref();
    let event = match event.type_().as_str() {
        "open" => Event::Open,
        "message" => {
            let data = Reflect::get(fields, &"data".into()).unwrap_or(JsValue::UNDEFINED);
            let message = match data.as_string() {
                Some(text) => Message::Text(text),
                None => Message::Binary(js_sys::Uint8Array::new(&data).to_vec()),
            };
            Event::Message(message)
        }
        "error" => {
            let error = Reflect::get(fields, &"error".into()).unwrap_or(JsValue::UNDEFINED);
            Event::Error(to_error(&error))
        }
        "close" => Event::Close(CloseInfo {
            code: number(fields, "code") as u16,
            reason: string(fields, "reason"),
            was_clean: boolean(fields, "wasClean"),
        }),
        "reconnecting" => Event::Reconnecting {
            attempt: number(fields, "attempt") as u32,
            delay: millis(number(fields, "delay")),
        },
        "statechange" => Event::StateChange(parse_state(&string(fields, "state"))),
        "giveup" => Event::GaveUp,
        "pong" => Event::Pong {
            rtt: millis(number(fields, "rtt")),
        },
        _ => return,
    };
    tab.emit(event);
}

/// The room events, as [`RoomEvent`]s.
fn room_event(tab: &Tab, event: &web_sys::Event) {
    let fields: &JsValue = event.as_ref();
    let room = || string(fields, "room");
    let event = match event.type_().as_str() {
        "welcome" => RoomEvent::Welcome {
            resumed: boolean(fields, "resumed"),
            name: string(fields, "name"),
        },
        "joined" => RoomEvent::Joined {
            room: room(),
            epoch: string(fields, "epoch"),
            offset: number(fields, "offset") as u64,
        },
        "recovery" => {
            let since = Reflect::get(fields, &"since".into()).unwrap_or(JsValue::UNDEFINED);
            RoomEvent::Recovery {
                room: room(),
                recovered: boolean(fields, "recovered"),
                since: protocol::Since {
                    epoch: string(&since, "epoch"),
                    offset: number(&since, "offset") as u64,
                },
                epoch: string(fields, "epoch"),
                offset: number(fields, "offset") as u64,
            }
        }
        "roomMessage" => {
            let data = Reflect::get(fields, &"data".into()).unwrap_or(JsValue::NULL);
            let text = js_sys::JSON::stringify(&data)
                .ok()
                .and_then(|t| t.as_string())
                .unwrap_or_else(|| "null".into());
            let Ok(data) = RawJson::new(text) else {
                return;
            };
            let id = Reflect::get(fields, &"id".into())
                .ok()
                .and_then(|v| v.as_f64());
            tab.count(|s| s.delivered += 1);
            RoomEvent::Message(RoomMessage {
                room: room(),
                epoch: string(fields, "epoch"),
                offset: number(fields, "offset") as u64,
                from: string(fields, "from"),
                data,
                ts: number(fields, "ts") as u64,
                publisher: Reflect::get(fields, &"publisher".into())
                    .ok()
                    .and_then(|v| v.as_string()),
                id: id.map(|n| n as u64),
            })
        }
        "left" => RoomEvent::Left { room: room() },
        "presence" => RoomEvent::Presence {
            room: room(),
            members: strings(fields, "members"),
        },
        "rooms" => {
            let list = Reflect::get(fields, &"rooms".into()).unwrap_or(JsValue::UNDEFINED);
            let rooms = Array::from(&list)
                .iter()
                .map(|info| protocol::RoomInfo {
                    room: string(&info, "room"),
                    members: number(&info, "members") as u32,
                })
                .collect();
            RoomEvent::Rooms(rooms)
        }
        "serverError" => {
            let Some(code) = error_code(&string(fields, "code")) else {
                return;
            };
            RoomEvent::ServerError {
                code,
                message: string(fields, "message"),
            }
        }
        "badFrame" => RoomEvent::BadFrame(DecodeError {
            raw: string(fields, "raw"),
            error: string(fields, "message"),
        }),
        #[cfg(feature = "persist")]
        "outboxDelivered" => {
            let ids = Reflect::get(fields, &"ids".into()).unwrap_or(JsValue::UNDEFINED);
            RoomEvent::OutboxDelivered {
                ids: Array::from(&ids)
                    .iter()
                    .filter_map(|n| n.as_f64())
                    .map(|n| PublishId(n as u64))
                    .collect(),
            }
        }
        _ => return,
    };
    tab.emit_room(event);
}

/// The options object of the entry's `LifelineSocket`: the share name, `Config`'s numbers and
/// the persistent outbox's store.
fn options(start: &SharedStart) -> Object {
    let config = &start.config;
    let options = Object::new();
    let set = |target: &Object, key: &str, value: JsValue| {
        let _ = Reflect::set(target, &key.into(), &value);
    };
    let ms = |d: Duration| JsValue::from(d.as_secs_f64() * 1000.0);
    set(&options, "share", start.share.name.as_str().into());
    set(&options, "minDelay", ms(config.backoff.min));
    set(&options, "maxDelay", ms(config.backoff.max));
    set(&options, "backoffFactor", config.backoff.factor.into());
    let retries = config.backoff.max_attempts.map_or(f64::INFINITY, f64::from);
    set(&options, "maxRetries", retries.into());
    set(&options, "connectTimeout", ms(config.connect_timeout));
    set(&options, "minUptime", ms(config.min_uptime));
    set(
        &options,
        "maxQueuedMessages",
        (config.queue_max_messages as f64).into(),
    );
    set(
        &options,
        "maxQueuedBytes",
        (config.queue_max_bytes as f64).into(),
    );
    set(
        &options,
        "highWaterMark",
        (config.high_water_mark as f64).into(),
    );
    set(&options, "ackTimeout", ms(config.rooms.ack_timeout));
    set(
        &options,
        "maxUnacked",
        (config.rooms.max_unacked as f64).into(),
    );
    match &config.heartbeat {
        None => set(&options, "heartbeat", false.into()),
        Some(heartbeat) => {
            let defaults = crate::machine::Heartbeat::default();
            if heartbeat.interval != defaults.interval || heartbeat.timeout != defaults.timeout {
                let object = Object::new();
                set(&object, "interval", ms(heartbeat.interval));
                set(&object, "timeout", ms(heartbeat.timeout));
                set(&options, "heartbeat", object.into());
            }
        }
    }
    #[cfg(feature = "persist")]
    if let Some((store, bounds)) = &start.persist {
        let persist = Object::new();
        set(&persist, "store", store.as_str().into());
        set(
            &persist,
            "maxPublishes",
            (bounds.max_publishes as f64).into(),
        );
        set(&persist, "maxBytes", (bounds.max_bytes as f64).into());
        set(&options, "persist", persist.into());
    }
    options
}

/// The module's URL, resolved against the page (`import()` in a module would resolve it
/// against the module).
fn resolve(module: &str) -> Result<String> {
    let base = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.base_uri().ok().flatten());
    let url = match base {
        Some(base) => web_sys::Url::new_with_base(module, &base),
        None => web_sys::Url::new(module),
    };
    url.map(|u| u.href()).map_err(|_| Error::Platform {
        message: format!("the shared entry's URL is not valid: {module}"),
    })
}

fn parse_state(state: &str) -> State {
    match state {
        "open" => State::Open,
        "closing" => State::Closing,
        "closed" => State::Closed,
        "reconnecting" => State::Reconnecting,
        _ => State::Connecting,
    }
}

fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

fn property(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

fn string(value: &JsValue, key: &str) -> String {
    property(value, key).as_string().unwrap_or_default()
}

fn number(value: &JsValue, key: &str) -> f64 {
    property(value, key).as_f64().unwrap_or(0.0)
}

fn boolean(value: &JsValue, key: &str) -> bool {
    property(value, key).as_bool().unwrap_or(false)
}

fn strings(value: &JsValue, key: &str) -> Vec<String> {
    Array::from(&property(value, key))
        .iter()
        .filter_map(|v| v.as_string())
        .collect()
}

/// The protocol's error code named `code` (its serde name, as the entry reports it; a name
/// with a quote in it is none).
fn error_code(code: &str) -> Option<protocol::ErrorCode> {
    serde_json::from_str(&format!("\"{code}\"")).ok()
}

fn message_of(error: &JsValue) -> String {
    error
        .as_string()
        .unwrap_or_else(|| string(error, "message"))
}

/// The error of a `LifelineError` (by its `code`), if `value` is one.
fn lifeline_error(value: &JsValue) -> Option<Error> {
    let code = property(value, "code").as_string()?;
    let message = message_of(value);
    Some(match code.as_str() {
        "ERR_INVALID_URL" => Error::InvalidUrl {
            supplied: string(value, "supplied"),
            reason: message,
        },
        "ERR_QUEUE_FULL" => {
            let limit = property(value, "limit");
            let messages = property(&limit, "messages").as_f64();
            let bytes = number(&limit, "bytes") as usize;
            Error::QueueFull {
                limit: messages.map_or(QueueLimit::Bytes(bytes), |n| {
                    QueueLimit::Messages(n as usize)
                }),
            }
        }
        "ERR_TOO_LARGE" => Error::TooLarge {
            size: number(value, "size") as usize,
            limit: number(value, "maxMessageBytes") as usize,
        },
        "ERR_CLOSED" | "ERR_DISPOSED" => Error::Closed,
        "ERR_NOT_OPEN" => Error::NotOpen,
        "ERR_SOCKET" => Error::Socket,
        "ERR_CONNECT_TIMEOUT" => Error::ConnectTimeout {
            after_ms: number(value, "afterMs") as u64,
        },
        "ERR_URL_PROVIDER" => Error::UrlProvider { message },
        "ERR_ENCODE" => Error::Encode { message },
        _ => Error::Platform { message },
    })
}

fn to_error(value: &JsValue) -> Error {
    lifeline_error(value).unwrap_or_else(|| Error::Platform {
        message: message_of(value),
    })
}

/// A publish's rejection as a [`RoomError`] about this tab's publish `id`.
fn to_room_error(value: &JsValue, id: PublishId) -> RoomError {
    let code = property(value, "code").as_string().unwrap_or_default();
    match code.as_str() {
        "ERR_PUBLISH_TIMEOUT" => RoomError::PublishTimeout {
            id,
            after_ms: number(value, "afterMs") as u64,
        },
        "ERR_PUBLISH_REFUSED" => {
            match serde_json::from_value(serde_json::Value::String(string(value, "serverCode"))) {
                Ok(code) => RoomError::Refused {
                    id,
                    code,
                    message: message_of(value),
                },
                Err(_) => RoomError::Closed,
            }
        }
        "ERR_LEFT_ROOM" => RoomError::LeftRoom {
            id,
            room: string(value, "room"),
        },
        "ERR_TOO_LARGE" => RoomError::TooLarge {
            size: number(value, "size") as usize,
            limit: property(value, "maxMessageBytes")
                .as_f64()
                .map(|n| n as usize),
        },
        "ERR_TOO_MANY_UNACKED" => RoomError::TooManyUnacked {
            limit: number(&property(value, "limit"), "unacked") as usize,
        },
        "ERR_NOT_JOINED" => RoomError::NotJoined {
            room: string(value, "room"),
        },
        "ERR_ENCODE" => RoomError::Encode {
            message: message_of(value),
        },
        #[cfg(feature = "persist")]
        "ERR_OUTBOX_FULL" => RoomError::OutboxFull {
            max_publishes: number(value, "maxPublishes") as usize,
            max_bytes: number(value, "maxBytes") as usize,
        },
        #[cfg(feature = "persist")]
        "ERR_OUTBOX_CLEARED" => RoomError::OutboxCleared { id },
        _ => RoomError::Closed,
    }
}
