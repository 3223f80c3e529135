//! Counters of what the browser shell holds, for leak checks in tests and apps.
//!
//! Every socket, event listener and timer the shell creates is counted while it lives, per
//! thread (the page's main thread). After every client is dropped, [`live()`] is all zeros.

use std::cell::Cell;
use std::thread::LocalKey;

thread_local! {
    pub(crate) static SOCKETS: Cell<usize> = const { Cell::new(0) };
    pub(crate) static LISTENERS: Cell<usize> = const { Cell::new(0) };
    pub(crate) static TIMERS: Cell<usize> = const { Cell::new(0) };
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

/// Counts one live resource in `counter` (`SOCKETS`, `LISTENERS` or `TIMERS`) until dropped;
/// hold it next to the resource.
#[derive(Debug)]
pub(crate) struct Counted(&'static LocalKey<Cell<usize>>);

impl Counted {
    pub(crate) fn new(counter: &'static LocalKey<Cell<usize>>) -> Self {
        counter.with(|c| c.set(c.get() + 1));
        Counted(counter)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

pub(crate) fn callback_ran() {
    CALLS.with(|c| c.set(c.get() + 1));
}
