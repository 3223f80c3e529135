//! Counters of what the browser shell holds, for leak checks in tests and apps.
//!
//! Every socket, event listener and timer the shell creates is counted while it lives, per
//! thread (the page's main thread). After every client is dropped, [`live()`] is all zeros.

use std::cell::Cell;

thread_local! {
    static SOCKETS: Cell<usize> = const { Cell::new(0) };
    static LISTENERS: Cell<usize> = const { Cell::new(0) };
    static TIMERS: Cell<usize> = const { Cell::new(0) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

/// What the shell holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Live {
    /// `WebSocket` objects not yet released.
    pub sockets: usize,
    /// Registered event listeners (socket, `online`/`offline`, `visibilitychange`).
    pub listeners: usize,
    /// Armed timers.
    pub timers: usize,
}

/// The resources alive now.
pub fn live() -> Live {
    Live {
        sockets: SOCKETS.with(Cell::get),
        listeners: LISTENERS.with(Cell::get),
        timers: TIMERS.with(Cell::get),
    }
}

/// How many times any shell listener or timer callback has run on this thread.
pub fn callbacks_run() -> u64 {
    CALLS.with(Cell::get)
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Socket,
    Listener,
    Timer,
}

fn counter(kind: Kind) -> &'static std::thread::LocalKey<Cell<usize>> {
    match kind {
        Kind::Socket => &SOCKETS,
        Kind::Listener => &LISTENERS,
        Kind::Timer => &TIMERS,
    }
}

/// Counts one live resource until dropped; hold it next to the resource.
#[derive(Debug)]
pub(crate) struct Counted(Kind);

impl Counted {
    pub(crate) fn new(kind: Kind) -> Self {
        counter(kind).with(|c| c.set(c.get() + 1));
        Counted(kind)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        counter(self.0).with(|c| c.set(c.get().saturating_sub(1)));
    }
}

pub(crate) fn callback_ran() {
    CALLS.with(|c| c.set(c.get() + 1));
}
