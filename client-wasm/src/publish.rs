//! The outcome of a publish as a future, shared by the browser and native shells.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::oneshot;

use crate::machine::rooms::{PublishAck, PublishId, RoomError};

/// Where a shell reports a publish's outcome.
pub(crate) type Waiter = oneshot::Sender<Result<PublishAck, RoomError>>;

/// Resolves with the server's ack, or fails with [`RoomError::PublishTimeout`] (or another
/// [`RoomError`]; [`RoomError::Closed`] if the client goes away first). Dropping it does not
/// cancel the publish.
#[must_use = "the publish is sent either way; the future only reports its outcome"]
#[derive(Debug)]
pub struct PublishFuture {
    id: PublishId,
    rx: oneshot::Receiver<Result<PublishAck, RoomError>>,
}

impl PublishFuture {
    /// A future for publish `id` and the sender that settles it.
    pub(crate) fn new(id: PublishId) -> (Waiter, Self) {
        let (tx, rx) = oneshot::channel();
        (tx, Self { id, rx })
    }

    /// The publish's id (as in [`RoomEvent::Acked`](crate::machine::rooms::RoomEvent::Acked)).
    pub fn id(&self) -> PublishId {
        self.id
    }
}

impl Future for PublishFuture {
    type Output = Result<PublishAck, RoomError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(RoomError::Closed)))
    }
}
