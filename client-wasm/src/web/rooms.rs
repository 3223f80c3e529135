//! Protocol v1 rooms in the browser: the sans-IO [`Rooms`](crate::machine::rooms::Rooms) layer wired to a [`Client`].
//!
//! A [`RoomsClient`] is a view on its client's [`Session`]: it starts the session's rooms
//! layer and hands out the [`RoomEvent`]s the client's drive loop dispatches; the client's one
//! timer covers the ack deadlines. It holds its client weakly, and dropping the last one stops
//! the layer and fails every pending [`PublishFuture`] with [`RoomError::Closed`].
//!
//! ```no_run
//! use ws_lifeline::machine::rooms::{RoomEvent, RoomsConfig};
//! use ws_lifeline::web::rooms::RoomsClient;
//! use ws_lifeline::{Client, Config};
//!
//! let client = Client::connect("wss://example.com/ws", Config::default().protocols(["lifeline.v1"]))?;
//! let rooms = RoomsClient::new(&client, RoomsConfig::default());
//! rooms.join("lobby").unwrap();
//! let _sub = rooms.on_message::<String, _>(|m| match m {
//!     Ok(m) => { /* show m.from, m.data */ }
//!     Err(bad) => { /* bad.raw did not decode: bad.error */ }
//! });
//! let ack = rooms.publish("lobby", &"hello").unwrap(); // a future: await it for the ack
//! # drop(ack);
//! # Ok::<(), ws_lifeline::Error>(())
//! ```

use std::fmt;
use std::rc::{Rc, Weak};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::subscribers::{EventStream, Subscribers, Subscription};
use super::{Client, Inner};
use crate::machine::Instant;
use crate::machine::rooms::{
    self, RawJson, RoomError, RoomEvent, RoomMessage, RoomStats, RoomsConfig,
};
use crate::machine::session::Session;
pub use crate::publish::PublishFuture;
use crate::typed::DecodeError;

/// Rooms, acknowledged publishes and ordered, exactly-once room messages over a [`Client`].
/// See the [module docs](self).
pub struct RoomsClient {
    client: Weak<Inner>,
    subscribers: Rc<Subscribers<RoomEvent>>,
}

impl fmt::Debug for RoomsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomsClient")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Keeps a room-event callback registered; dropping it unregisters the callback.
pub type RoomSubscription = Subscription<RoomEvent>;

/// Every [`RoomEvent`] as a [`Stream`](futures::Stream); see [`RoomsClient::events`].
pub type RoomEventStream = EventStream<RoomEvent>;

impl RoomsClient {
    /// Speaks protocol v1 over `client`: starts its session's rooms layer (with `config`,
    /// unless another `RoomsClient` started it already). Create it before or after the client
    /// opens; if the socket is already open, the `hello` (and joins) go out at once.
    pub fn new(client: &Client, config: RoomsConfig) -> RoomsClient {
        let inner = &client.host.inner;
        inner.rooms_clients.set(inner.rooms_clients.get() + 1);
        Inner::act(inner, |s, now| {
            if s.rooms().is_none() {
                s.set_rooms_config(config);
            }
            s.start_rooms(now);
        });
        RoomsClient {
            client: Rc::downgrade(inner),
            subscribers: Rc::clone(&inner.room_subscribers),
        }
    }

    /// Runs `f` on the client's session and carries out what it decided; `None` once the
    /// client is gone.
    fn act<R>(&self, f: impl FnOnce(&mut Session, Instant) -> R) -> Option<R> {
        let inner = self.client.upgrade().filter(|i| !i.disposed.get())?;
        Some(Inner::act(&inner, f))
    }

    /// Joins a room (now if open, and again after every reconnect).
    ///
    /// Errors: [`RoomError::InvalidRoom`]; [`RoomError::Closed`] once the client is gone.
    pub fn join(&self, room: &str) -> Result<(), RoomError> {
        self.act(|s, now| s.join(now, room))
            .unwrap_or(Err(RoomError::Closed))
    }

    /// Leaves a room; false if it was not joined. Its unacked publishes fail.
    pub fn leave(&self, room: &str) -> bool {
        self.act(|s, now| s.leave(now, room)).unwrap_or(false)
    }

    /// Publishes `data` as JSON to a joined room. The future resolves on the server's ack.
    ///
    /// Errors: [`RoomError::NotJoined`], [`RoomError::TooManyUnacked`] (nothing queued),
    /// [`RoomError::Encode`], [`RoomError::Closed`] once the client is gone.
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        room: &str,
        data: &T,
    ) -> Result<PublishFuture, RoomError> {
        self.publish_raw(room, rooms::encode(data)?)
    }

    /// [`publish`](Self::publish) for data that is JSON text already.
    pub fn publish_raw(&self, room: &str, data: RawJson) -> Result<PublishFuture, RoomError> {
        self.act(|s, now| s.publish_future(now, room, data))
            .unwrap_or(Err(RoomError::Closed))
    }

    /// Asks for the room list ([`RoomEvent::Rooms`]); false when not connected.
    pub fn list_rooms(&self) -> bool {
        self.act(|s, now| s.list_rooms(now)).unwrap_or(false)
    }

    /// Counters of the protocol layer.
    pub fn stats(&self) -> RoomStats {
        self.client.upgrade().map_or_else(RoomStats::default, |i| {
            i.session
                .borrow()
                .rooms()
                .map(|r| r.stats())
                .unwrap_or_default()
        })
    }

    /// Publishes awaiting their ack.
    pub fn unacked(&self) -> usize {
        self.client
            .upgrade()
            .map_or(0, |i| i.session.borrow().rooms().map_or(0, |r| r.unacked()))
    }

    /// Calls `callback` with every room event until the subscription is dropped.
    pub fn on_event(&self, callback: impl Fn(&RoomEvent) + 'static) -> RoomSubscription {
        self.subscribers.subscribe(callback)
    }

    /// Calls `callback` with every room message decoded into `T`; data that does not decode
    /// arrives as a [`DecodeError`] (the room goes on).
    pub fn on_message<T, F>(&self, callback: F) -> RoomSubscription
    where
        T: DeserializeOwned + 'static,
        F: Fn(Result<RoomMessage<T>, DecodeError>) + 'static,
    {
        self.on_event(move |event| {
            if let RoomEvent::Message(m) = event {
                callback(m.decode());
            }
        })
    }

    /// Every room event as a [`Stream`](futures::Stream).
    pub fn events(&self) -> RoomEventStream {
        self.subscribers.stream()
    }
}

impl Drop for RoomsClient {
    fn drop(&mut self) {
        let Some(inner) = self.client.upgrade() else {
            return;
        };
        let left = inner.rooms_clients.get().saturating_sub(1);
        inner.rooms_clients.set(left);
        if left == 0 {
            // The last one: no more hellos, and pending publish futures fail with `Closed`.
            if let Ok(mut session) = inner.session.try_borrow_mut() {
                session.stop_rooms();
            }
        }
    }
}
