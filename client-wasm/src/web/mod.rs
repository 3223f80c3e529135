//! The browser shell: drives the [`machine`](crate::machine) with a real `WebSocket`.
//!
//! Everything the browser holds for a client is an RAII value owned by it: the socket and its
//! four listeners, the one timer (a gloo [`Timeout`]), and the `online`/`offline`/
//! `visibilitychange` listeners (gloo [`EventListener`]s). Their closures hold a [`Weak`]
//! reference, so no cycle keeps a client alive, and nothing is ever `forget`-ed: dropping the
//! [`Client`] closes the socket and removes every listener and timer.
//!
//! [`Timeout`]: gloo_timers::callback::Timeout

mod deadline;
pub mod diagnostics;
mod js_error;
#[cfg(feature = "persist")]
pub mod outbox;
#[cfg(feature = "shared")]
pub(crate) mod shared;
mod subscribers;

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use futures::Stream;
use futures::channel::mpsc;
use gloo_events::EventListener;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::client::{Backend, Provider, route};
pub use crate::client::{Client, ClientHandle};
#[cfg(feature = "rooms")]
use crate::machine::rooms::RoomEvent;
use crate::machine::session::{Io, Session, SessionEvent};
use crate::machine::{CloseInfo, ConnId, Input, Instant, Target};
use crate::typed::{self, DecodeError};
use crate::{Config, Event, Message, Result};
use deadline::Deadline;
use diagnostics::{Counted, LISTENERS, SOCKETS};
use subscribers::Subscribers;
pub use subscribers::{EventStream, Subscription};

/// The current time from [`performance.now()`](https://developer.mozilla.org/en-US/docs/Web/API/Performance/now),
/// which is monotonic, unlike `Date.now()`.
/// Looked up once: `window.performance` costs three calls into JS, and `now()` runs on every send.
fn now() -> Instant {
    thread_local! {
        static PERFORMANCE: Option<web_sys::Performance> =
            web_sys::window().and_then(|w| w.performance());
    }
    let ms = PERFORMANCE.with(|p| p.as_ref().map_or_else(js_sys::Date::now, |p| p.now()));
    Instant(ms.max(0.0) as u64)
}

fn seed() -> u64 {
    let hi = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let lo = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    (hi << 32) | lo
}

struct Socket {
    conn: ConnId,
    ws: WebSocket,
    listeners: Vec<(EventListener, Counted)>,
    _counted: Counted,
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Listeners go first so the close below reports nothing to a client that is gone.
        self.listeners.clear();
        // No-op for a socket already closing or closed.
        let _ = self.ws.close_with_code(protocol::close::NORMAL);
    }
}

struct Inner {
    session: RefCell<Session>,
    provider: Option<Provider>,
    socket: RefCell<Option<Socket>>,
    timer: Deadline,
    env: RefCell<Vec<(EventListener, Counted)>>,
    subscribers: Rc<Subscribers<Event>>,
    #[cfg(feature = "rooms")]
    room_subscribers: Rc<Subscribers<RoomEvent>>,
    driving: Cell<bool>,
    disposed: Cell<bool>,
    /// Where the persistent outbox's snapshots go.
    #[cfg(feature = "persist")]
    outbox_store: RefCell<Option<Rc<outbox::OutboxStore>>>,
}

/// The browser side of a [`Client`]. Dropping it closes the socket (code 1000) and removes
/// every listener and timer.
pub(crate) struct Host {
    inner: Rc<Inner>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.inner.dispose();
    }
}

impl Host {
    /// A session on this shell's seed and clock.
    pub(crate) fn new_session(config: Config, target: Target) -> Result<Session> {
        Session::new(config, target, seed(), now())
    }

    /// Starts driving `session` (in a microtask, see below).
    pub(crate) fn run(session: Session, provider: Option<Provider>) -> Host {
        let inner = Rc::new(Inner {
            session: RefCell::new(session),
            provider,
            socket: RefCell::new(None),
            timer: Deadline::default(),
            env: RefCell::new(Vec::new()),
            subscribers: Subscribers::new(),
            #[cfg(feature = "rooms")]
            room_subscribers: Subscribers::new(),
            driving: Cell::new(false),
            disposed: Cell::new(false),
            #[cfg(feature = "persist")]
            outbox_store: RefCell::new(None),
        });
        Inner::listen_to_environment(&inner);
        // The first attempt starts in a microtask, once `connect` has returned, so that a
        // subscriber added right after it hears everything, even a URL the browser refuses at
        // once (a `WebSocket` reports its own errors asynchronously). A call that drives
        // earlier (a `send`) starts it then.
        let weak = Rc::downgrade(&inner);
        wasm_bindgen_futures::spawn_local(async move {
            if let Some(inner) = weak.upgrade() {
                Inner::drive(&inner);
            }
        });
        Host { inner }
    }

    pub(crate) fn act<R>(&self, f: impl FnOnce(&mut Session, Instant) -> R) -> R {
        Inner::act(&self.inner, f)
    }

    pub(crate) fn read<R>(&self, f: impl FnOnce(&Session) -> R) -> R {
        f(&self.inner.session.borrow())
    }

    pub(crate) fn downgrade(&self) -> WeakHost {
        WeakHost(Rc::downgrade(&self.inner))
    }
}

/// The browser side of a [`ClientHandle`](crate::ClientHandle): `None` once the client is gone.
#[derive(Clone)]
pub(crate) struct WeakHost(Weak<Inner>);

impl WeakHost {
    pub(crate) fn act<R>(&self, f: impl FnOnce(&mut Session, Instant) -> R) -> Option<R> {
        let inner = self.0.upgrade().filter(|i| !i.disposed.get())?;
        Some(Inner::act(&inner, f))
    }
}

/// Events and the socket of the browser [`Client`]; the rest of its API is the same
/// natively.
///
/// ```no_run
/// use ws_lifeline::{Client, Config, Event};
///
/// let client = Client::connect("wss://example.com/ws", Config::default())?;
/// let _sub = client.on_event(|event| match event {
///     Event::Message(m) => { /* handle m */ }
///     Event::Reconnecting { attempt, delay } => { /* show a banner */ }
///     _ => {}
/// });
/// client.send("hello")?; // queued until the socket opens
/// # Ok::<(), ws_lifeline::Error>(())
/// ```
impl Client {
    /// The socket's [`bufferedAmount`](https://developer.mozilla.org/en-US/docs/Web/API/WebSocket/bufferedAmount):
    /// bytes handed to the browser but not yet sent. 0 without a socket.
    /// In shared mode, the shared socket's, as last reported to this tab.
    pub fn buffered_amount(&self) -> u64 {
        route!(
            &self.backend,
            |host| host
                .inner
                .socket
                .borrow()
                .as_ref()
                .map_or(0, |s| u64::from(s.ws.buffered_amount())),
            |tab| tab.buffered_amount()
        )
    }

    fn subscribers(&self) -> &Rc<Subscribers<Event>> {
        route!(&self.backend, |host| &host.inner.subscribers, |tab| tab
            .subscribers())
    }

    /// The room events' subscribers, once the rooms layer has started.
    #[cfg(feature = "rooms")]
    fn room_subscribers(&self) -> &Rc<Subscribers<RoomEvent>> {
        route!(
            &self.backend,
            |host| {
                host.act(|s, now| s.start_rooms(now));
                &host.inner.room_subscribers
            },
            |tab| {
                tab.start_rooms();
                tab.room_subscribers()
            }
        )
    }

    /// Calls `callback` with every event until the returned [`Subscription`] is dropped.
    /// The callback may call back into the client (send, close, even subscribe).
    pub fn on_event(&self, callback: impl Fn(&Event) + 'static) -> Subscription {
        self.subscribers().subscribe(callback)
    }

    /// Decodes every inbound message as JSON into `T` and hands over the result; a message
    /// that does not decode arrives as a [`DecodeError`] with the raw text.
    pub fn on_message<T, F>(&self, callback: F) -> Subscription
    where
        T: DeserializeOwned + 'static,
        F: Fn(Result<T, DecodeError>) + 'static,
    {
        self.on_event(move |event| {
            if let Event::Message(m) = event {
                callback(typed::decode(m));
            }
        })
    }

    /// Every event as a [`Stream`]; it ends when the client is dropped.
    pub fn events(&self) -> EventStream {
        self.subscribers().stream()
    }

    /// Inbound messages decoded into `T` as a [`Stream`] of results.
    pub fn messages<T: DeserializeOwned + 'static>(&self) -> MessageStream<T> {
        let (tx, rx) = mpsc::unbounded();
        let subscription = self.on_message(move |m: Result<T, DecodeError>| {
            let _ = tx.unbounded_send(m);
        });
        MessageStream {
            rx,
            _subscription: subscription,
            _type: PhantomData,
        }
    }

    /// Calls `callback` with every protocol v1 event until the returned subscription is
    /// dropped. Starts the rooms layer, as [`join`](Self::join) does; while it runs, text
    /// frames are room events, not messages (see [`crate::machine::session`]).
    #[cfg(feature = "rooms")]
    pub fn on_room_event(
        &self,
        callback: impl Fn(&RoomEvent) + 'static,
    ) -> Subscription<RoomEvent> {
        self.room_subscribers().subscribe(callback)
    }

    /// Every protocol v1 event as a [`Stream`]; starts the rooms layer as
    /// [`on_room_event`](Self::on_room_event) does.
    #[cfg(feature = "rooms")]
    pub fn room_events(&self) -> EventStream<RoomEvent> {
        self.room_subscribers().stream()
    }

    /// Closes the socket and releases everything now; the same as dropping the client.
    pub fn dispose(self) {}
}

/// Inbound messages decoded into `T`; see [`Client::messages`]. Dropping it unsubscribes.
#[must_use = "streams do nothing unless polled; dropping it unsubscribes"]
#[derive(Debug)]
pub struct MessageStream<T> {
    rx: mpsc::UnboundedReceiver<Result<T, DecodeError>>,
    _subscription: Subscription,
    _type: PhantomData<fn() -> T>,
}

impl<T> Stream for MessageStream<T> {
    type Item = Result<T, DecodeError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.rx).poll_next(cx)
    }
}

impl Inner {
    /// Runs `f` on the session, then carries out what it decided.
    fn act<R>(this: &Rc<Inner>, f: impl FnOnce(&mut Session, Instant) -> R) -> R {
        let out = f(&mut this.session.borrow_mut(), now());
        Inner::drive(this);
        out
    }

    fn input(this: &Rc<Inner>, input: Input) {
        if !this.disposed.get() {
            Inner::act(this, |s, now| s.handle(now, input));
        }
    }

    /// Carries out the session's I/O and hands its events to the subscribers until none is
    /// left, then re-arms the timer. Re-entrant calls (from a callback) return at once: the
    /// outer loop picks their work up.
    fn drive(this: &Rc<Inner>) {
        if this.driving.replace(true) {
            return;
        }
        while !this.disposed.get() {
            let io = this.session.borrow_mut().poll_io();
            if let Some(io) = io {
                Inner::execute(this, io);
                continue;
            }
            let event = this.session.borrow_mut().poll_event();
            match event {
                Some(SessionEvent::Connection(event)) => {
                    Inner::dispatch(this, &this.subscribers, &event);
                }
                #[cfg(feature = "rooms")]
                Some(SessionEvent::Room(event)) => {
                    Inner::dispatch(this, &this.room_subscribers, &event);
                }
                None => break,
            }
        }
        #[cfg(feature = "persist")]
        Inner::store_outbox(this);
        this.driving.set(false);
        if !this.disposed.get() {
            Inner::arm_timer(this);
        }
    }

    fn execute(this: &Rc<Inner>, io: Io) {
        match io {
            Io::ResolveUrl { conn } => {
                let Some(provider) = this.provider.clone() else {
                    return;
                };
                let weak = Rc::downgrade(this);
                wasm_bindgen_futures::spawn_local(async move {
                    let result = provider().await;
                    if let Some(inner) = weak.upgrade() {
                        Inner::input(&inner, Input::UrlResolved { conn, result });
                    }
                });
            }
            Io::Open {
                conn,
                url,
                protocols,
            } => {
                drop(this.socket.borrow_mut().take());
                match Inner::open(this, conn, &url, &protocols) {
                    Ok(socket) => *this.socket.borrow_mut() = Some(socket),
                    Err(error) => this
                        .session
                        .borrow_mut()
                        .handle(now(), Input::OpenFailed { conn, error }),
                }
            }
            Io::Transmit { conn, message } => {
                let sent = this.with_socket(conn, |ws| match &message {
                    Message::Text(t) => ws.send_with_str(t),
                    Message::Binary(b) => ws.send_with_u8_array(b),
                });
                if let Some(Err(e)) = sent {
                    let error = js_error::from_js(e, None);
                    this.session.borrow_mut().transmit_failed(error);
                }
            }
            Io::Close { conn, code, reason } => {
                let _ = this.with_socket(conn, |ws| ws.close_with_code_and_reason(code, &reason));
            }
            Io::Abandon { conn, code, reason } => {
                // Its events no longer matter: dropped (listeners first) after the close.
                let abandoned = this.socket.borrow_mut().take_if(|s| s.conn == conn);
                if let Some(s) = abandoned {
                    let _ = s.ws.close_with_code_and_reason(code, &reason);
                }
            }
            Io::PollBuffered { conn } => {
                if let Some(amount) = this.with_socket(conn, |ws| u64::from(ws.buffered_amount())) {
                    let input = Input::BufferedAmount { conn, amount };
                    this.session.borrow_mut().handle(now(), input);
                }
            }
        }
    }

    /// Runs `f` on connection `conn`'s socket, if it is still the current one.
    fn with_socket<R>(&self, conn: ConnId, f: impl FnOnce(&WebSocket) -> R) -> Option<R> {
        let socket = self.socket.borrow();
        socket.as_ref().filter(|s| s.conn == conn).map(|s| f(&s.ws))
    }

    fn dispatch<E: 'static>(this: &Rc<Inner>, subscribers: &Subscribers<E>, event: &E) {
        // Cloned so callbacks may subscribe, unsubscribe or drop the client.
        for callback in subscribers.snapshot() {
            if this.disposed.get() {
                return;
            }
            callback(event);
        }
    }

    fn open(this: &Rc<Inner>, conn: ConnId, url: &str, protocols: &[String]) -> Result<Socket> {
        let array = js_sys::Array::new();
        for p in protocols {
            array.push(&p.into());
        }
        let ws = WebSocket::new_with_str_sequence(url, &array)
            .map_err(|e| js_error::from_js(e, Some(url)))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let listen = |name, handler: fn(&Rc<Inner>, ConnId, &web_sys::Event)| {
            Inner::listen(this, &ws, name, move |inner, event| {
                handler(inner, conn, event)
            })
        };
        let listeners = vec![
            listen("open", on_open),
            listen("message", on_message),
            listen("error", |inner, conn, _| {
                Inner::input(inner, Input::SocketError { conn })
            }),
            listen("close", on_close),
        ];
        Ok(Socket {
            conn,
            ws,
            listeners,
            _counted: Counted::new(&SOCKETS),
        })
    }

    /// A listener for `name` events on `target` that runs `handler` while the client lives.
    fn listen(
        this: &Rc<Inner>,
        target: &web_sys::EventTarget,
        name: &'static str,
        handler: impl Fn(&Rc<Inner>, &web_sys::Event) + 'static,
    ) -> (EventListener, Counted) {
        let weak = Rc::downgrade(this);
        let listener = EventListener::new(target, name, move |event| {
            diagnostics::callback_ran();
            if let Some(inner) = weak.upgrade() {
                handler(&inner, event);
            }
        });
        (listener, Counted::new(&LISTENERS))
    }

    fn listen_to_environment(this: &Rc<Inner>) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let listen = |target: &web_sys::EventTarget, name, handler: fn(&Rc<Inner>)| {
            Inner::listen(this, target, name, move |inner, _| handler(inner))
        };
        let mut env = vec![
            listen(&window, "online", |inner| {
                Inner::input(inner, Input::Online)
            }),
            listen(&window, "offline", |inner| {
                Inner::input(inner, Input::Offline)
            }),
        ];
        if let Some(document) = window.document() {
            env.push(listen(&document, "visibilitychange", |inner| {
                let visible = web_sys::window()
                    .and_then(|w| w.document())
                    .is_none_or(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
                let input = if visible {
                    Input::Visible
                } else {
                    Input::Hidden
                };
                Inner::input(inner, input);
            }));
        }
        *this.env.borrow_mut() = env;
        if !window.navigator().on_line() {
            this.session.borrow_mut().handle(now(), Input::Offline);
        }
    }

    /// Keeps the one browser timer at the session's next deadline.
    fn arm_timer(this: &Rc<Inner>) {
        let want = this.session.borrow().poll_timeout();
        Deadline::arm(
            this,
            |inner| &inner.timer,
            want,
            |inner| {
                if inner.disposed.get() {
                    return;
                }
                Inner::act(inner, |s, now| s.handle_timeout(now));
            },
        );
    }

    fn dispose(&self) {
        self.disposed.set(true);
        let socket = self.socket.borrow_mut().take();
        self.timer.cancel();
        let env = std::mem::take(&mut *self.env.borrow_mut());
        drop((socket, env));
        self.subscribers.clear();
        #[cfg(feature = "rooms")]
        {
            self.room_subscribers.clear();
            // Pending publish futures fail with `Closed` now, not when the last handle goes.
            if let Ok(mut session) = self.session.try_borrow_mut() {
                session.stop_rooms();
            }
        }
    }
}

fn on_open(inner: &Rc<Inner>, conn: ConnId, _: &web_sys::Event) {
    let protocol = inner
        .with_socket(conn, WebSocket::protocol)
        .unwrap_or_default();
    Inner::input(inner, Input::SocketOpened { conn, protocol });
}

fn on_message(inner: &Rc<Inner>, conn: ConnId, event: &web_sys::Event) {
    let Some(event) = event.dyn_ref::<MessageEvent>() else {
        return;
    };
    let data = event.data();
    let message = if let Some(text) = data.as_string() {
        Message::Text(text)
    } else if let Some(buffer) = data.dyn_ref::<js_sys::ArrayBuffer>() {
        Message::Binary(js_sys::Uint8Array::new(buffer).to_vec())
    } else {
        // binaryType is arraybuffer, so a Blob cannot arrive.
        return;
    };
    Inner::input(inner, Input::SocketMessage { conn, message });
}

fn on_close(inner: &Rc<Inner>, conn: ConnId, event: &web_sys::Event) {
    let info = event.dyn_ref::<CloseEvent>().map_or_else(
        || CloseInfo::abnormal(""),
        |e| CloseInfo {
            code: e.code(),
            reason: e.reason(),
            was_clean: e.was_clean(),
        },
    );
    // This socket is finished: release it (and its listeners, this one included; wasm-bindgen
    // defers freeing a closure that is running) after the machine has seen the close.
    let finished = inner.socket.borrow_mut().take_if(|s| s.conn == conn);
    Inner::input(inner, Input::SocketClosed { conn, info });
    drop(finished);
}
