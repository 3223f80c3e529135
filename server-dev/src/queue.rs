//! A connection's bounded outbound queue that holds memory only while items wait.
//!
//! tokio's bounded `mpsc` allocates its channel and a first block of 32 slots up front, about
//! 1.8 KB per connection whether anything is ever queued or not. This queue is a `VecDeque`
//! behind a mutex: empty, it owns no allocation, and it gives its storage back whenever the
//! writer drains it, so an idle connection costs only the struct itself. The bound (the
//! slow-consumer rule) is unchanged: `try_send` refuses once `capacity` items wait.
//!
//! The queue also carries `X`, the rest of what both sides share about the connection, so
//! that one allocation per connection holds all of it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Why [`Sender::try_send`] refused an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrySendError {
    /// `capacity` items already wait.
    Full,
    /// The receiver is gone.
    Closed,
}

/// Nothing is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Empty;

#[derive(Debug)]
struct Shared<T, X> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    closed: AtomicBool,
    ready: Notify,
    extra: X,
}

impl<T, X> Shared<T, X> {
    fn items(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending side; cloning shares the queue.
#[derive(Debug)]
pub(crate) struct Sender<T, X = ()>(Arc<Shared<T, X>>);

impl<T, X> Clone for Sender<T, X> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

/// The single receiving side. Dropping it closes the queue and frees what waits in it.
#[derive(Debug)]
pub(crate) struct Receiver<T, X = ()>(Arc<Shared<T, X>>);

/// A queue that holds at most `capacity` (at least 1) items, sharing `extra` between its ends.
pub(crate) fn bounded<T, X>(capacity: usize, extra: X) -> (Sender<T, X>, Receiver<T, X>) {
    let shared = Arc::new(Shared {
        items: Mutex::new(VecDeque::new()),
        capacity: capacity.max(1),
        closed: AtomicBool::new(false),
        ready: Notify::new(),
        extra,
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T, X> Sender<T, X> {
    /// Queues `item` unless the queue is full or closed.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError> {
        if self.0.closed.load(Ordering::Acquire) {
            return Err(TrySendError::Closed);
        }
        {
            let mut items = self.0.items();
            if items.len() >= self.0.capacity {
                return Err(TrySendError::Full);
            }
            if items.capacity() == 0 {
                // Most bursts are one item: no room for four (VecDeque's first step).
                items.reserve_exact(1);
            }
            items.push_back(item);
        }
        self.wake();
        Ok(())
    }

    /// Wakes the receiver's [`Receiver::wait`] (now, or at its next call), e.g. after
    /// changing `extra`.
    pub(crate) fn wake(&self) {
        // One receiver: a stored permit wakes it even if it is not waiting yet.
        self.0.ready.notify_one();
    }

    /// Calls `f` on each queued item (for memory accounting).
    pub(crate) fn inspect(&self, f: impl FnMut(&T)) {
        self.0.items().iter().for_each(f);
    }

    /// What the two ends share besides the items.
    pub(crate) fn extra(&self) -> &X {
        &self.0.extra
    }
}

impl<T, X> Receiver<T, X> {
    /// The oldest queued item, if any. Draining the queue gives its storage back.
    pub(crate) fn try_recv(&mut self) -> Result<T, Empty> {
        let mut items = self.0.items();
        let item = items.pop_front().ok_or(Empty)?;
        if items.is_empty() && items.capacity() > 0 {
            *items = VecDeque::new();
        }
        Ok(item)
    }

    /// Waits until an item is queued or [`Sender::wake`] is called, since the last wait.
    /// May return without either (check with [`Self::try_recv`] and `extra`, then wait again).
    pub(crate) async fn wait(&mut self) {
        self.0.ready.notified().await;
    }

    /// Waits for the next item. Senders live as long as the hub knows the connection, and
    /// the connection holds one itself, so this never sees a queue without senders.
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> T {
        loop {
            if let Ok(item) = self.try_recv() {
                return item;
            }
            self.wait().await;
        }
    }
}

impl<T, X> Drop for Receiver<T, X> {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        let drained = std::mem::take(&mut *self.0.items());
        drop(drained);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_fifo_that_frees_its_storage_and_closes() {
        let (tx, mut rx) = bounded(2, ());
        assert_eq!(rx.try_recv(), Err(Empty));
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(TrySendError::Full));
        assert_eq!(rx.recv().await, 1);
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.0.items().capacity(), 0, "drained: storage given back");
        let waiter = tokio::spawn(async move {
            let got = rx.recv().await;
            (got, rx)
        });
        tokio::task::yield_now().await;
        tx.clone().try_send(7).unwrap();
        let (got, rx) = waiter.await.unwrap();
        assert_eq!(got, 7);
        drop(rx);
        assert_eq!(tx.try_send(8), Err(TrySendError::Closed));
    }
}
