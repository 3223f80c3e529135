//! The one Rust API, the same in the browser ([`crate::web`], on wasm32) and natively
//! ([`crate::native`], feature `native`): a [`Client`] whose every call goes to its
//! [`Session`]. Only construction and the way events are heard differ by platform (callbacks
//! and streams in the browser, `next_event` natively); each shell adds those to `Client` and
//! carries out the session's I/O.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use futures::TryFutureExt;

use serde::Serialize;

#[cfg(feature = "rooms")]
use crate::machine::rooms::{self, RoomError, RoomStats};
use crate::machine::session::Session;
use crate::machine::{Instant, Rtt, Target};
#[cfg(not(target_arch = "wasm32"))]
use crate::native::{Host, WeakHost};
#[cfg(feature = "rooms")]
use crate::publish::PublishFuture;
#[cfg(target_arch = "wasm32")]
use crate::web::{Host, WeakHost};
use crate::{Error, Message, Result, Sent, State, typed};

/// `Send` natively, where the client's driver runs on tokio's threads; nothing in the browser.
/// Bounds [`Client::with_url_provider`]'s future, so that one signature serves both shells.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send> MaybeSend for T {}
/// `Send` natively, where the client's driver runs on tokio's threads; nothing in the browser.
/// Bounds [`Client::with_url_provider`]'s future, so that one signature serves both shells.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T> MaybeSend for T {}

/// `Send + Sync` natively, nothing in the browser: the bound of
/// [`Client::with_url_provider`]'s provider.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync> MaybeSendSync for T {}
/// `Send + Sync` natively, nothing in the browser: the bound of
/// [`Client::with_url_provider`]'s provider.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T> MaybeSendSync for T {}

/// A URL provider's future, its error as text.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type UrlFuture =
    Pin<Box<dyn Future<Output = std::result::Result<String, String>> + Send>>;
#[cfg(target_arch = "wasm32")]
pub(crate) type UrlFuture = Pin<Box<dyn Future<Output = std::result::Result<String, String>>>>;

/// The URL provider of [`Client::with_url_provider`], shared with the shell's driver.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Provider = SharedFn<dyn Fn() -> UrlFuture + Send + Sync>;
#[cfg(target_arch = "wasm32")]
pub(crate) type Provider = SharedFn<dyn Fn() -> UrlFuture>;
#[cfg(not(target_arch = "wasm32"))]
type SharedFn<T> = std::sync::Arc<T>;
#[cfg(target_arch = "wasm32")]
type SharedFn<T> = std::rc::Rc<T>;

/// A WebSocket client that stays connected: reconnects with backoff, runs the heartbeat,
/// queues while disconnected and, once a room is used, speaks protocol v1 (rooms,
/// acknowledged publishes, ordered delivery, recovery). See [`Config`](crate::Config) for the
/// knobs.
///
/// Created with `connect` of the platform's shell; dropping it closes the connection and
/// releases everything it holds.
///
/// ```ignore
/// let client = Client::connect("wss://example.com/ws", Config::default())?; // browser
/// client.join("lobby")?;
/// let ack = client.publish("lobby", &"hi")?.await?; // the server's ack
/// client.send("raw frame")?; // queued until the socket opens
/// ```
#[must_use = "dropping the Client closes the connection"]
pub struct Client {
    pub(crate) host: Host,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state())
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to a fixed URL (`ws:`/`wss:`, or `http:`/`https:` mapped to them; natively
    /// `ws:` only) and keeps connecting. Natively it must be called inside a tokio runtime,
    /// and speaks protocol v1 from the first attempt on, with the settings of
    /// [`Config::rooms`](crate::Config::rooms).
    ///
    /// Errors: [`Error::InvalidUrl`] carrying the URL. Everything after this (a refused
    /// connection, a dropped one) is reported as events and retried.
    pub fn connect(url: &str, config: crate::Config) -> Result<Client> {
        Client::start(config, Target::Url(url.to_owned()), None)
    }

    /// Connects to a URL computed before every attempt (a fresh ticket, another server
    /// instance after one failed). A provider error is reported as
    /// [`Error::UrlProvider`] and retried with backoff. Natively it must be called inside a
    /// tokio runtime, and the provider and its future must be `Send` ([`MaybeSend`]).
    ///
    /// ```no_run
    /// # #[cfg(not(target_arch = "wasm32"))]
    /// # use ws_lifeline::native::Client;
    /// # #[cfg(target_arch = "wasm32")]
    /// # use ws_lifeline::Client;
    /// # fn run() -> Result<(), ws_lifeline::Error> {
    /// let client = Client::with_url_provider(ws_lifeline::Config::default(), || async {
    ///     let ticket = "from a fetch"; // e.g. await an HTTP call here
    ///     Ok::<_, String>(format!("wss://example.com/ws?ticket={ticket}"))
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn with_url_provider<F, Fut, E>(config: crate::Config, provider: F) -> Result<Client>
    where
        F: Fn() -> Fut + MaybeSendSync + 'static,
        Fut: Future<Output = std::result::Result<String, E>> + MaybeSend + 'static,
        E: fmt::Display + 'static,
    {
        let provider: Provider =
            SharedFn::new(move || -> UrlFuture { Box::pin(provider().map_err(|e| e.to_string())) });
        Client::start(config, Target::Provider, Some(provider))
    }

    /// A client on a new session, driven by the platform's shell from now on.
    fn start(config: crate::Config, target: Target, provider: Option<Provider>) -> Result<Client> {
        let session = Host::new_session(config, target)?;
        Ok(Client {
            host: Host::run(session, provider),
        })
    }

    /// Runs `f` on the session at the current time; the shell then carries out what it
    /// decided.
    fn act<R>(&self, f: impl FnOnce(&mut Session, Instant) -> R) -> R {
        self.host.act(f)
    }

    /// A weak, cloneable handle, for callbacks and tasks (holding the `Client` there would
    /// keep it alive, or be a cycle).
    pub fn handle(&self) -> ClientHandle {
        ClientHandle {
            host: self.host.downgrade(),
        }
    }

    /// The connection state.
    pub fn state(&self) -> State {
        self.host.read(|s| s.machine().state())
    }

    /// The URL of the current or last attempt, after `http`→`ws` mapping.
    pub fn url(&self) -> Option<String> {
        self.host.read(|s| s.machine().url().map(str::to_owned))
    }

    /// The subprotocol the server selected on the last open, empty if none.
    pub fn protocol(&self) -> String {
        self.host.read(|s| s.machine().protocol().to_owned())
    }

    /// The heartbeat's round-trip time, `None` before the first pong; each pong is also an
    /// [`Event::Pong`](crate::Event::Pong).
    pub fn rtt(&self) -> Option<Rtt> {
        self.host.read(|s| s.machine().rtt())
    }

    /// Messages waiting in the outbound queue.
    pub fn queued_messages(&self) -> usize {
        self.host.read(|s| s.machine().queued_messages())
    }

    /// Sends text or bytes now, or queues them until the socket is open and drained.
    ///
    /// Errors: [`Error::QueueFull`](crate::Error::QueueFull) (nothing dropped),
    /// [`Error::Closed`](crate::Error::Closed) after `close()`.
    pub fn send(&self, message: impl Into<Message>) -> Result<Sent> {
        let message = message.into();
        self.act(|s, now| s.send(now, message))
    }

    /// Sends a value as a JSON text frame. Errors as [`send`](Self::send), plus
    /// [`Error::Encode`](crate::Error::Encode).
    pub fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<Sent> {
        self.send(typed::encode(value)?)
    }

    /// Sends at once, ahead of the queue; for a protocol layer's opening frames, called when
    /// [`Event::Open`](crate::Event::Open) is heard. Errors:
    /// [`Error::NotOpen`](crate::Error::NotOpen).
    pub fn send_preamble(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        self.act(|s, now| s.send_preamble(now, message))
    }

    /// Closes for good (until [`reconnect`](Self::reconnect)). The code (default 1000) must be
    /// 1000 or 3000–4999 and the reason at most 123 bytes of UTF-8; otherwise a typed error is
    /// returned and nothing happens.
    pub fn close(&self, code: Option<u16>, reason: Option<&str>) -> Result<()> {
        self.act(|s, now| s.close(now, code, reason))
    }

    /// Connects again now, skipping any backoff wait; also restarts after close or `GaveUp`.
    pub fn reconnect(&self) {
        self.act(|s, now| s.reconnect(now));
    }
}

/// A weak, cloneable handle to a [`Client`], from [`Client::handle`]. Every method fails with
/// [`Error::Closed`] (or does nothing) once the client is gone.
#[derive(Clone)]
pub struct ClientHandle {
    host: WeakHost,
}

impl fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandle").finish_non_exhaustive()
    }
}

impl ClientHandle {
    fn act<R>(&self, f: impl FnOnce(&mut Session, Instant) -> R) -> Result<R> {
        self.host.act(f).ok_or(Error::Closed)
    }

    /// As [`Client::send`].
    pub fn send(&self, message: impl Into<Message>) -> Result<Sent> {
        let message = message.into();
        self.act(|s, now| s.send(now, message))?
    }

    /// As [`Client::send_json`].
    pub fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<Sent> {
        self.send(typed::encode(value)?)
    }

    /// As [`Client::send_preamble`].
    pub fn send_preamble(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        self.act(|s, now| s.send_preamble(now, message))?
    }

    /// As [`Client::close`].
    pub fn close(&self, code: Option<u16>, reason: Option<&str>) -> Result<()> {
        self.act(|s, now| s.close(now, code, reason))?
    }

    /// As [`Client::reconnect`].
    pub fn reconnect(&self) {
        let _ = self.act(|s, now| s.reconnect(now));
    }

    /// As [`Client::state`]; `Closed` once the client is gone.
    pub fn state(&self) -> State {
        self.act(|s, _| s.machine().state())
            .unwrap_or(State::Closed)
    }
}

/// Protocol v1. The rooms layer starts on first use and offers `lifeline.v1` from the next
/// attempt on (give it in [`Config::protocols`](crate::Config::protocols) to have it on the
/// first); its events are heard as the platform's shell says.
#[cfg(feature = "rooms")]
impl Client {
    /// Joins a room (now if open, and again after every reconnect).
    ///
    /// Errors: [`RoomError::InvalidRoom`].
    pub fn join(&self, room: &str) -> Result<(), RoomError> {
        self.act(|s, now| s.join(now, room))
    }

    /// Leaves a room; false if it was not joined. Its unacked publishes fail.
    pub fn leave(&self, room: &str) -> bool {
        self.act(|s, now| s.leave(now, room))
    }

    /// Publishes `data` as JSON to a joined room; the future resolves on the server's ack.
    /// Resent after reconnects until acked; dropping the future does not cancel it.
    ///
    /// Errors: [`RoomError::NotJoined`], [`RoomError::TooManyUnacked`] (nothing queued: wait
    /// for acks and try again), [`RoomError::Encode`].
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        room: &str,
        data: &T,
    ) -> Result<PublishFuture, RoomError> {
        let data = rooms::encode(data)?;
        self.act(|s, now| s.publish_future(now, room, data))
    }

    /// Asks for the room list ([`RoomEvent::Rooms`](crate::machine::rooms::RoomEvent::Rooms));
    /// false when not connected.
    pub fn list_rooms(&self) -> bool {
        self.act(|s, now| s.list_rooms(now))
    }

    /// The rooms layer's counters (all zero before it starts).
    pub fn stats(&self) -> RoomStats {
        self.host
            .read(|s| s.rooms().map(|r| r.stats()).unwrap_or_default())
    }

    /// Publishes awaiting their ack.
    pub fn unacked(&self) -> usize {
        self.host.read(|s| s.rooms().map_or(0, |r| r.unacked()))
    }
}

/// The persistent outbox, whichever shell stores it; made with the shell's
/// `connect_persistent`.
#[cfg(feature = "persist")]
impl Client {
    /// The outbox's snapshot now; `None` for a client made without the outbox.
    pub fn outbox_snapshot(&self) -> Option<crate::machine::rooms::outbox::OutboxSnapshot> {
        self.host.read(Session::outbox_snapshot)
    }

    /// Empties the outbox: its publishes fail with [`RoomError::OutboxCleared`], and the
    /// shell's store is given the snapshot without them.
    pub fn clear_outbox(&self) {
        self.act(|s, now| s.clear_outbox(now));
    }
}
