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
#[cfg(feature = "persist")]
use crate::machine::session::Session;
use crate::machine::{Rtt, Target};
#[cfg(not(target_arch = "wasm32"))]
use crate::native::{Host, WeakHost};
#[cfg(feature = "rooms")]
use crate::publish::PublishFuture;
#[cfg(all(target_arch = "wasm32", feature = "shared"))]
use crate::web::shared::{SharedStart, SharedTab, WeakTab};
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
    pub(crate) backend: Backend,
}

/// Where a client's calls go: its own session, driven by the platform's shell, or (shared
/// mode, in the browser) this tab's side of the site's shared socket.
pub(crate) enum Backend {
    Local(Host),
    #[cfg(all(target_arch = "wasm32", feature = "shared"))]
    Shared(SharedTab),
}

/// Runs `$local` with the client's own session's host, or `$shared` with its shared tab.
macro_rules! route {
    ($backend:expr, |$host:ident| $local:expr, |$tab:ident| $shared:expr) => {
        match $backend {
            Backend::Local($host) => $local,
            #[cfg(all(target_arch = "wasm32", feature = "shared"))]
            Backend::Shared($tab) => $shared,
        }
    };
}
#[cfg(target_arch = "wasm32")]
pub(crate) use route;

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

    /// A client on a new session, driven by the platform's shell from now on; in shared mode,
    /// this tab's side of the site's shared socket.
    fn start(config: crate::Config, target: Target, provider: Option<Provider>) -> Result<Client> {
        #[cfg(feature = "shared")]
        if let Some(share) = config.share.clone() {
            return Client::start_shared(config, share, target, provider);
        }
        let session = Host::new_session(config, target)?;
        Ok(Client {
            backend: Backend::Local(Host::run(session, provider)),
        })
    }

    #[cfg(all(target_arch = "wasm32", feature = "shared"))]
    fn start_shared(
        config: crate::Config,
        share: crate::Share,
        target: Target,
        provider: Option<Provider>,
    ) -> Result<Client> {
        SharedTab::client(SharedStart {
            config,
            share,
            target,
            provider,
            #[cfg(feature = "persist")]
            persist: None,
            #[cfg(feature = "persist")]
            restored: None,
        })
    }

    #[cfg(all(feature = "shared", not(target_arch = "wasm32")))]
    fn start_shared(
        _: crate::Config,
        _: crate::Share,
        _: Target,
        _: Option<Provider>,
    ) -> Result<Client> {
        Err(Error::Platform {
            message: "shared mode (`Config::share`) needs the browser and the feature `shared`"
                .into(),
        })
    }

    /// A weak, cloneable handle, for callbacks and tasks (holding the `Client` there would
    /// keep it alive, or be a cycle).
    pub fn handle(&self) -> ClientHandle {
        ClientHandle {
            backend: route!(
                &self.backend,
                |host| WeakBackend::Local(host.downgrade()),
                |tab| { WeakBackend::Shared(tab.downgrade()) }
            ),
        }
    }

    /// The connection state.
    pub fn state(&self) -> State {
        route!(
            &self.backend,
            |host| host.read(|s| s.machine().state()),
            |tab| tab.state()
        )
    }

    /// The URL of the current or last attempt, after `http`→`ws` mapping.
    pub fn url(&self) -> Option<String> {
        route!(
            &self.backend,
            |host| host.read(|s| s.machine().url().map(str::to_owned)),
            |tab| tab.url()
        )
    }

    /// The subprotocol the server selected on the last open, empty if none.
    pub fn protocol(&self) -> String {
        route!(
            &self.backend,
            |host| host.read(|s| s.machine().protocol().to_owned()),
            |tab| tab.protocol()
        )
    }

    /// The heartbeat's round-trip time, `None` before the first pong; each pong is also an
    /// [`Event::Pong`](crate::Event::Pong).
    pub fn rtt(&self) -> Option<Rtt> {
        route!(
            &self.backend,
            |host| host.read(|s| s.machine().rtt()),
            |tab| tab.rtt()
        )
    }

    /// Messages waiting in the outbound queue (in shared mode, the shared socket's, as last
    /// reported to this tab).
    pub fn queued_messages(&self) -> usize {
        route!(
            &self.backend,
            |host| host.read(|s| s.machine().queued_messages()),
            |tab| tab.queued_messages()
        )
    }

    /// Sends text or bytes now, or queues them until the socket is open and drained.
    ///
    /// Errors: [`Error::QueueFull`](crate::Error::QueueFull) (nothing dropped),
    /// [`Error::Closed`](crate::Error::Closed) after `close()`.
    pub fn send(&self, message: impl Into<Message>) -> Result<Sent> {
        let message = message.into();
        route!(
            &self.backend,
            |host| host.act(|s, now| s.send(now, message)),
            |tab| tab.send(message)
        )
    }

    /// Sends a value as a JSON text frame. Errors as [`send`](Self::send), plus
    /// [`Error::Encode`](crate::Error::Encode).
    pub fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<Sent> {
        self.send(typed::encode(value)?)
    }

    /// Sends at once, ahead of the queue; for a protocol layer's opening frames, called when
    /// [`Event::Open`](crate::Event::Open) is heard. Errors:
    /// [`Error::NotOpen`](crate::Error::NotOpen); [`Error::Platform`] in shared mode.
    pub fn send_preamble(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        route!(
            &self.backend,
            |host| host.act(|s, now| s.send_preamble(now, message)),
            |tab| { tab.send_preamble() }
        )
    }

    /// Closes for good (until [`reconnect`](Self::reconnect)). The code (default 1000) must be
    /// 1000 or 3000–4999 and the reason at most 123 bytes of UTF-8; otherwise a typed error is
    /// returned and nothing happens.
    ///
    /// In shared mode this closes this tab's side: its rooms are left for it, and the shared
    /// socket closes with the last tab using it.
    pub fn close(&self, code: Option<u16>, reason: Option<&str>) -> Result<()> {
        route!(
            &self.backend,
            |host| host.act(|s, now| s.close(now, code, reason)),
            |tab| tab.close(code, reason)
        )
    }

    /// Connects again now, skipping any backoff wait; also restarts after close or `GaveUp`.
    pub fn reconnect(&self) {
        route!(
            &self.backend,
            |host| host.act(|s, now| s.reconnect(now)),
            |tab| tab.reconnect()
        )
    }
}

/// The weak side of a [`Backend`].
#[derive(Clone)]
enum WeakBackend {
    Local(WeakHost),
    #[cfg(all(target_arch = "wasm32", feature = "shared"))]
    Shared(WeakTab),
}

/// A weak, cloneable handle to a [`Client`], from [`Client::handle`]. Every method fails with
/// [`Error::Closed`] (or does nothing) once the client is gone.
#[derive(Clone)]
pub struct ClientHandle {
    backend: WeakBackend,
}

impl fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandle").finish_non_exhaustive()
    }
}

/// Runs `$local` on the live client's session, or `$shared` on its shared tab; `None` once the
/// client is gone.
macro_rules! route_weak {
    ($backend:expr, |$session:ident, $now:ident| $local:expr, |$tab:ident| $shared:expr) => {
        match $backend {
            WeakBackend::Local(host) => host.act(|$session, $now| $local),
            #[cfg(all(target_arch = "wasm32", feature = "shared"))]
            WeakBackend::Shared(tab) => tab.get().map(|$tab| $shared),
        }
    };
}

impl ClientHandle {
    /// As [`Client::send`].
    pub fn send(&self, message: impl Into<Message>) -> Result<Sent> {
        let message = message.into();
        route_weak!(&self.backend, |s, now| s.send(now, message), |tab| tab
            .send(message))
        .ok_or(Error::Closed)?
    }

    /// As [`Client::send_json`].
    pub fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<Sent> {
        self.send(typed::encode(value)?)
    }

    /// As [`Client::send_preamble`].
    pub fn send_preamble(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        route_weak!(
            &self.backend,
            |s, now| s.send_preamble(now, message),
            |tab| tab.send_preamble()
        )
        .ok_or(Error::Closed)?
    }

    /// As [`Client::close`].
    pub fn close(&self, code: Option<u16>, reason: Option<&str>) -> Result<()> {
        route_weak!(&self.backend, |s, now| s.close(now, code, reason), |tab| {
            tab.close(code, reason)
        })
        .ok_or(Error::Closed)?
    }

    /// As [`Client::reconnect`].
    pub fn reconnect(&self) {
        route_weak!(&self.backend, |s, now| s.reconnect(now), |tab| tab
            .reconnect());
    }

    /// As [`Client::state`]; `Closed` once the client is gone.
    pub fn state(&self) -> State {
        route_weak!(&self.backend, |s, _now| s.machine().state(), |tab| tab
            .state())
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
        route!(
            &self.backend,
            |host| host.act(|s, now| s.join(now, room)),
            |tab| tab.join(room)
        )
    }

    /// Leaves a room; false if it was not joined. Its unacked publishes fail (in shared mode,
    /// the room is left for this tab, and by the socket with its last tab).
    pub fn leave(&self, room: &str) -> bool {
        route!(
            &self.backend,
            |host| host.act(|s, now| s.leave(now, room)),
            |tab| tab.leave(room)
        )
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
        route!(
            &self.backend,
            |host| host.act(|s, now| s.publish_future(now, room, data)),
            |tab| tab.publish(room, data)
        )
    }

    /// Asks for the room list ([`RoomEvent::Rooms`](crate::machine::rooms::RoomEvent::Rooms));
    /// false when not connected.
    pub fn list_rooms(&self) -> bool {
        route!(
            &self.backend,
            |host| host.act(|s, now| s.list_rooms(now)),
            |tab| tab.list_rooms()
        )
    }

    /// The rooms layer's counters (all zero before it starts; in shared mode, this tab's
    /// publishes and the messages it heard).
    pub fn stats(&self) -> RoomStats {
        route!(
            &self.backend,
            |host| host.read(|s| s.rooms().map(|r| r.stats()).unwrap_or_default()),
            |tab| tab.stats()
        )
    }

    /// Publishes awaiting their ack (in shared mode, this tab's).
    pub fn unacked(&self) -> usize {
        route!(
            &self.backend,
            |host| host.read(|s| s.rooms().map_or(0, |r| r.unacked())),
            |tab| tab.unacked()
        )
    }
}

/// The persistent outbox, whichever shell stores it; made with the shell's
/// `connect_persistent`.
#[cfg(feature = "persist")]
impl Client {
    /// The outbox's snapshot now; `None` for a client made without the outbox.
    ///
    /// In shared mode: what the hub's store held when this page started.
    pub fn outbox_snapshot(&self) -> Option<crate::machine::rooms::outbox::OutboxSnapshot> {
        route!(
            &self.backend,
            |host| host.read(Session::outbox_snapshot),
            |tab| tab.outbox_snapshot()
        )
    }

    /// Empties the outbox: its publishes fail with [`RoomError::OutboxCleared`], and the
    /// shell's store is given the snapshot without them. In shared mode the outbox is the
    /// hub's: it is emptied for every tab. Errors: [`Error::Closed`] in shared mode after
    /// `close()`.
    pub fn clear_outbox(&self) -> Result<()> {
        route!(
            &self.backend,
            |host| {
                host.act(|s, now| s.clear_outbox(now));
                Ok(())
            },
            |tab| tab.clear_outbox()
        )
    }
}
