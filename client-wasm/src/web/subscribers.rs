//! The callback registry both browser clients use: RAII subscriptions and event streams.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use futures::Stream;
use futures::channel::mpsc;

use crate::Event;

type Callback<E> = Rc<dyn Fn(&E)>;

/// Registered callbacks for events of type `E`.
pub(crate) struct Subscribers<E> {
    callbacks: RefCell<Vec<(u64, Callback<E>)>>,
    next_id: Cell<u64>,
}

impl<E: 'static> Subscribers<E> {
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Self {
            callbacks: RefCell::new(Vec::new()),
            next_id: Cell::new(0),
        })
    }

    /// Registers `callback` until the returned subscription is dropped.
    pub(crate) fn subscribe(self: &Rc<Self>, callback: impl Fn(&E) + 'static) -> Subscription<E> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.callbacks.borrow_mut().push((id, Rc::new(callback)));
        Subscription {
            registry: Rc::downgrade(self),
            id,
        }
    }

    /// A stream of every event, cloned, until the stream is dropped.
    pub(crate) fn stream(self: &Rc<Self>) -> EventStream<E>
    where
        E: Clone,
    {
        let (tx, rx) = mpsc::unbounded();
        let subscription = self.subscribe(move |e: &E| {
            let _ = tx.unbounded_send(e.clone());
        });
        EventStream {
            rx,
            _subscription: subscription,
        }
    }

    /// The callbacks registered now, cloned so that a callback may subscribe, unsubscribe or
    /// drop its client while the caller walks the list.
    pub(crate) fn snapshot(&self) -> Vec<Callback<E>> {
        self.callbacks
            .borrow()
            .iter()
            .map(|(_, c)| Rc::clone(c))
            .collect()
    }

    /// Drops every callback (and what it captured).
    pub(crate) fn clear(&self) {
        let callbacks = std::mem::take(&mut *self.callbacks.borrow_mut());
        drop(callbacks);
    }
}

/// Keeps an event callback registered; dropping it unregisters the callback.
#[must_use = "dropping a Subscription unregisters its callback at once"]
pub struct Subscription<E = Event> {
    registry: Weak<Subscribers<E>>,
    id: u64,
}

impl<E> fmt::Debug for Subscription<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl<E> Drop for Subscription<E> {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            // Taken out first: dropping the callback may drop a subscription of this registry.
            let removed: Vec<_> = {
                let mut callbacks = registry.callbacks.borrow_mut();
                let (gone, kept) = std::mem::take(&mut *callbacks)
                    .into_iter()
                    .partition(|(id, _)| *id == self.id);
                *callbacks = kept;
                gone
            };
            drop(removed);
        }
    }
}

/// Every event as a [`Stream`]; it ends when its client is dropped. Dropping it unsubscribes.
#[must_use = "streams do nothing unless polled; dropping it unsubscribes"]
pub struct EventStream<E = Event> {
    rx: mpsc::UnboundedReceiver<E>,
    _subscription: Subscription<E>,
}

impl<E> fmt::Debug for EventStream<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl<E> Stream for EventStream<E> {
    type Item = E;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<E>> {
        Pin::new(&mut self.rx).poll_next(cx)
    }
}
