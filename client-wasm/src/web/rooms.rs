//! Protocol v1 rooms in the browser: the sans-IO [`Rooms`] layer wired to a [`Client`].
//!
//! A [`RoomsClient`] subscribes to its client's events, feeds them to the layer, sends the
//! layer's output through the client (`Machine::send_outgoing`: frames, and the server's
//! limits, to which the client's machine paces every frame), keeps one timer for ack deadlines, and hands out [`RoomEvent`]s. Everything it holds is RAII: its
//! subscription and timer capture a `Weak`, and dropping it unsubscribes, cancels the timer
//! and fails every pending [`PublishFuture`] with [`RoomError::Closed`].
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

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::subscribers::{EventStream, Subscribers, Subscription};
use super::{Client, ClientHandle};
use crate::Event;
use crate::machine::State;
use crate::machine::rooms::{
    PublishId, RawJson, RoomError, RoomEvent, RoomMessage, RoomStats, Rooms, RoomsConfig,
};
use crate::machine::sorted_map::SortedMap;
pub use crate::publish::PublishFuture;
use crate::publish::Waiter;
use crate::typed::DecodeError;

use super::deadline::Deadline;
use super::now;

struct Inner {
    client: ClientHandle,
    rooms: RefCell<Rooms>,
    waiters: RefCell<SortedMap<PublishId, Waiter>>,
    subscribers: Rc<Subscribers<RoomEvent>>,
    timer: Deadline,
    subscription: RefCell<Option<Subscription>>,
    flushing: Cell<bool>,
}

/// Rooms, acknowledged publishes and ordered, exactly-once room messages over a [`Client`].
/// See the [module docs](self).
pub struct RoomsClient {
    inner: Rc<Inner>,
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
    /// Speaks protocol v1 over `client`. Create it before or after the client opens; if the
    /// socket is already open, the `hello` (and joins) go out at once.
    pub fn new(client: &Client, config: RoomsConfig) -> RoomsClient {
        // The client's first attempt has already started: give it `lifeline.v1` in
        // `Config::protocols` so that one negotiates protocol v1 (and its heartbeat) too.
        client.handle().offer_protocol(protocol::SUBPROTOCOL);
        let inner = Rc::new(Inner {
            client: client.handle(),
            rooms: RefCell::new(Rooms::new(config, client.handle().random())),
            waiters: RefCell::new(SortedMap::new()),
            subscribers: Subscribers::new(),
            timer: Deadline::default(),
            subscription: RefCell::new(None),
            flushing: Cell::new(false),
        });
        let weak = Rc::downgrade(&inner);
        let subscription = client.on_event(move |event| {
            if let Some(inner) = weak.upgrade() {
                inner.rooms.borrow_mut().handle_event(now(), event);
                Inner::flush(&inner);
            }
        });
        *inner.subscription.borrow_mut() = Some(subscription);
        if client.state() == State::Open {
            inner.rooms.borrow_mut().handle_event(now(), &Event::Open);
            Inner::flush(&inner);
        }
        RoomsClient { inner }
    }

    /// Joins a room (now if open, and again after every reconnect).
    ///
    /// Errors: [`RoomError::InvalidRoom`].
    pub fn join(&self, room: &str) -> Result<(), RoomError> {
        let r = self.inner.rooms.borrow_mut().join(now(), room);
        Inner::flush(&self.inner);
        r
    }

    /// Leaves a room; false if it was not joined. Its unacked publishes fail.
    pub fn leave(&self, room: &str) -> bool {
        let r = self.inner.rooms.borrow_mut().leave(now(), room);
        Inner::flush(&self.inner);
        r
    }

    /// Publishes `data` as JSON to a joined room. The future resolves on the server's ack.
    ///
    /// Errors: [`RoomError::NotJoined`], [`RoomError::TooManyUnacked`] (nothing queued),
    /// [`RoomError::Encode`].
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        room: &str,
        data: &T,
    ) -> Result<PublishFuture, RoomError> {
        let id = self
            .inner
            .rooms
            .borrow_mut()
            .publish_json(now(), room, data)?;
        Ok(self.await_ack(id))
    }

    /// [`publish`](Self::publish) for data that is JSON text already (the JS API's path,
    /// which keeps serde_json out of the package).
    pub fn publish_raw(&self, room: &str, data: RawJson) -> Result<PublishFuture, RoomError> {
        let id = self.inner.rooms.borrow_mut().publish(now(), room, data)?;
        Ok(self.await_ack(id))
    }

    fn await_ack(&self, id: PublishId) -> PublishFuture {
        let (waiter, future) = PublishFuture::new(id);
        self.inner.waiters.borrow_mut().insert(id, waiter);
        Inner::flush(&self.inner);
        future
    }

    /// Asks for the room list ([`RoomEvent::Rooms`]); false when not connected.
    pub fn list_rooms(&self) -> bool {
        let r = self.inner.rooms.borrow_mut().list_rooms();
        Inner::flush(&self.inner);
        r
    }

    /// Counters of the protocol layer.
    pub fn stats(&self) -> RoomStats {
        self.inner.rooms.borrow().stats()
    }

    /// Publishes awaiting their ack.
    pub fn unacked(&self) -> usize {
        self.inner.rooms.borrow().unacked()
    }

    /// Calls `callback` with every room event until the subscription is dropped.
    pub fn on_event(&self, callback: impl Fn(&RoomEvent) + 'static) -> RoomSubscription {
        self.inner.subscribers.subscribe(callback)
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
        self.inner.subscribers.stream()
    }
}

impl Inner {
    /// Sends the layer's frames, hands out its events and re-arms the ack timer. Re-entrant
    /// calls (from a callback) return at once: the outer loop picks their output up.
    fn flush(this: &Rc<Inner>) {
        if this.flushing.replace(true) {
            return;
        }
        loop {
            let out = this.rooms.borrow_mut().poll_transmit();
            if let Some(out) = out {
                // Bound to the current connection, never queued (see `Outgoing`): a refused
                // frame is redone by the layer after the next open.
                let _ = this.client.send_outgoing(out);
                continue;
            }
            let event = this.rooms.borrow_mut().poll_event();
            let Some(event) = event else { break };
            let resolved = event.publish_outcome();
            if let Some((id, result)) = resolved {
                let waiter = this.waiters.borrow_mut().remove(&id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(result);
                }
            }
            for callback in this.subscribers.snapshot() {
                callback(&event);
            }
        }
        this.flushing.set(false);
        Inner::arm_timer(this);
    }

    fn arm_timer(this: &Rc<Inner>) {
        let want = this.rooms.borrow().poll_timeout();
        Deadline::arm(
            this,
            |inner| &inner.timer,
            want,
            |inner| {
                inner.rooms.borrow_mut().handle_timeout(now());
                Inner::flush(inner);
            },
        );
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Unsubscribe first so nothing reaches a half-dropped layer.
        drop(self.subscription.borrow_mut().take());
        self.timer.cancel();
    }
}
