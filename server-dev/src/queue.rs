//! A connection's bounded outbound queue that holds memory only while items wait.
//!
//! tokio's bounded `mpsc` allocates its channel and a first block of 32 slots up front, about
//! 1.8 KB per connection whether anything is ever queued or not. This queue is a `VecDeque`
//! behind a mutex: empty, it owns no allocation, and it gives its storage back whenever the
//! writer drains it, so an idle connection costs only the struct itself. The bound (the
//! slow-consumer rule) is unchanged: `try_send` refuses once `capacity` items wait.
//!
//! It also counts the bytes its items hold ([`Weigh`]), here and in a total that every queue
//! of the server shares, from `try_send` until the receiver takes the item (or drops it):
//! the figures the hub's byte budgets are checked against.
//!
//! The queue also carries `X`, the rest of what both sides share about the connection, so
//! that one allocation per connection holds all of it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// The bytes a queued item holds, as the byte budgets count them.
pub(crate) trait Weigh {
    /// Bytes held while the item waits.
    fn weight(&self) -> usize;
}

/// Bytes queued across every queue made with the same `QueuedBytes`, and the most ever.
#[derive(Debug, Default)]
pub(crate) struct QueuedBytes {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl QueuedBytes {
    /// Bytes queued now.
    pub(crate) fn now(&self) -> usize {
        self.now.load(Ordering::Acquire)
    }

    /// The most bytes ever queued at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }

    fn add(&self, bytes: usize) {
        let now = self.now.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.peak.fetch_max(now, Ordering::AcqRel);
    }

    fn sub(&self, bytes: usize) {
        self.now.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Why [`Sender::try_send`] refused an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrySendError {
    /// `capacity` items already wait.
    Full,
    /// The item would take the queue's bytes above its byte budget.
    OverBudget,
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
    max_bytes: usize,
    /// Bytes of `items`; changed under the `items` lock.
    bytes: AtomicUsize,
    total: Arc<QueuedBytes>,
    closed: AtomicBool,
    ready: Notify,
    /// Notified when the receiver takes the queue down to half its byte budget or less.
    drained: Notify,
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

/// A queue that holds at most `capacity` (at least 1) items of at most `max_bytes` bytes
/// together, counted in `total` too, sharing `extra` between its ends.
pub(crate) fn bounded<T: Weigh, X>(
    capacity: usize,
    max_bytes: usize,
    total: Arc<QueuedBytes>,
    extra: X,
) -> (Sender<T, X>, Receiver<T, X>) {
    let shared = Arc::new(Shared {
        items: Mutex::new(VecDeque::new()),
        capacity: capacity.max(1),
        max_bytes,
        bytes: AtomicUsize::new(0),
        total,
        closed: AtomicBool::new(false),
        ready: Notify::new(),
        drained: Notify::new(),
        extra,
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T: Weigh, X> Sender<T, X> {
    /// Queues `item` unless the queue is closed, full, or its bytes would pass the budget.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError> {
        if self.0.closed.load(Ordering::Acquire) {
            return Err(TrySendError::Closed);
        }
        {
            let mut items = self.0.items();
            if items.len() >= self.0.capacity {
                return Err(TrySendError::Full);
            }
            let weight = item.weight();
            let bytes = self.0.bytes.load(Ordering::Acquire);
            if bytes.saturating_add(weight) > self.0.max_bytes {
                return Err(TrySendError::OverBudget);
            }
            if items.capacity() == 0 {
                // Most bursts are one item: no room for four (VecDeque's first step).
                items.reserve_exact(1);
            }
            items.push_back(item);
            self.0.bytes.store(bytes + weight, Ordering::Release);
            self.0.total.add(weight);
        }
        self.wake();
        Ok(())
    }

    /// Bytes queued here now.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.0.bytes.load(Ordering::Acquire)
    }

    /// Whether `weight` more bytes would stay within the byte budget.
    pub(crate) fn fits(&self, weight: usize) -> bool {
        self.queued_bytes().saturating_add(weight) <= self.0.max_bytes
    }

    /// Whether more than half the byte budget is queued.
    pub(crate) fn backlogged(&self) -> bool {
        self.queued_bytes() > self.0.max_bytes / 2
    }

    /// Completes when the receiver next takes the queue down to half its byte budget or
    /// less (or did since the last call). One waiter at a time.
    pub(crate) async fn drained(&self) {
        self.0.drained.notified().await;
    }

    /// Frees everything queued; returns how many bytes that was. For a connection that is
    /// closed without writing its queue, so that what it held counts no more at once.
    pub(crate) fn clear(&self) -> usize {
        let (drained, bytes) = {
            let mut items = self.0.items();
            let bytes = self.0.bytes.swap(0, Ordering::AcqRel);
            self.0.total.sub(bytes);
            (std::mem::take(&mut *items), bytes)
        };
        self.0.drained.notify_one();
        // Freed outside the lock.
        drop(drained);
        bytes
    }
}

impl<T, X> Sender<T, X> {
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

impl<T: Weigh, X> Receiver<T, X> {
    /// The oldest queued item, if any. Draining the queue gives its storage back.
    pub(crate) fn try_recv(&mut self) -> Result<T, Empty> {
        let mut items = self.0.items();
        let item = items.pop_front().ok_or(Empty)?;
        let weight = item.weight();
        let before = self.0.bytes.fetch_sub(weight, Ordering::AcqRel);
        self.0.total.sub(weight);
        let half = self.0.max_bytes / 2;
        if before > half && before - weight <= half {
            self.0.drained.notify_one();
        }
        if items.is_empty() && items.capacity() > 0 {
            *items = VecDeque::new();
        }
        Ok(item)
    }
}

impl<T, X> Receiver<T, X> {
    /// Waits until an item is queued or [`Sender::wake`] is called, since the last wait.
    /// May return without either (check with [`Self::try_recv`] and `extra`, then wait again).
    pub(crate) async fn wait(&mut self) {
        self.0.ready.notified().await;
    }

    /// Waits for the next item. Senders live as long as the hub knows the connection, and
    /// the connection holds one itself, so this never sees a queue without senders.
    #[cfg(test)]
    pub(crate) async fn recv(&mut self) -> T
    where
        T: Weigh,
    {
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
        let drained = {
            let mut items = self.0.items();
            let bytes = self.0.bytes.swap(0, Ordering::AcqRel);
            self.0.total.sub(bytes);
            std::mem::take(&mut *items)
        };
        drop(drained);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An item weighs its value.
    impl Weigh for usize {
        fn weight(&self) -> usize {
            *self
        }
    }

    #[tokio::test]
    async fn bounded_fifo_that_frees_its_storage_and_closes() {
        let (tx, mut rx) = bounded(2, usize::MAX, Arc::default(), ());
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

    #[tokio::test]
    async fn bytes_are_counted_per_queue_and_in_the_shared_total_until_taken() {
        let total = Arc::new(QueuedBytes::default());
        let (a, mut a_rx) = bounded(10, 100, Arc::clone(&total), ());
        let (b, b_rx) = bounded(10, 100, Arc::clone(&total), ());
        a.try_send(60usize).unwrap();
        assert_eq!(a.try_send(41), Err(TrySendError::OverBudget));
        a.try_send(40).unwrap();
        b.try_send(30).unwrap();
        assert_eq!(
            (a.queued_bytes(), b.queued_bytes(), total.now()),
            (100, 30, 130)
        );
        assert!(a.backlogged());
        assert_eq!(a_rx.try_recv(), Ok(60));
        assert_eq!((a.queued_bytes(), total.now()), (40, 70));
        assert!(!a.backlogged());
        // Taken down to half: a waiter is woken (the permit was stored).
        tokio::time::timeout(std::time::Duration::from_secs(5), a.drained())
            .await
            .unwrap();
        assert_eq!(b.clear(), 30);
        assert_eq!(total.now(), 40);
        drop(a_rx);
        drop(b_rx);
        assert_eq!((a.queued_bytes(), total.now(), total.peak()), (0, 0, 130));
    }
}
