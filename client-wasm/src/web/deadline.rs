//! The browser shell's one timer, kept at the session's next deadline.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::Timeout;

use super::diagnostics::{self, Counted, TIMERS};
use super::now;
use crate::machine::Instant;

struct Armed {
    at: Instant,
    _timeout: Timeout,
    _counted: Counted,
}

/// The timer slot. Dropping it (or [`cancel`](Deadline::cancel)) clears the browser timer.
#[derive(Default)]
pub(super) struct Deadline {
    armed: RefCell<Option<Armed>>,
}

impl Deadline {
    /// Keeps the timer of `owner` (reached with `slot`) at `want`, re-arming only when the
    /// deadline moved. When it goes off, the timer is taken out of its slot and `fire` runs on
    /// the owner, which the callback holds only weakly.
    pub(super) fn arm<T: 'static>(
        owner: &Rc<T>,
        slot: fn(&T) -> &Deadline,
        want: Option<Instant>,
        fire: fn(&Rc<T>),
    ) {
        let mut armed = slot(owner).armed.borrow_mut();
        if armed.as_ref().map(|a| a.at) == want {
            return;
        }
        let old = armed.take();
        *armed = want.map(|at| {
            let delay = at.0.saturating_sub(now().0).min(u64::from(i32::MAX as u32));
            let weak = Rc::downgrade(owner);
            let timeout = Timeout::new(delay as u32, move || {
                diagnostics::callback_ran();
                let Some(owner) = weak.upgrade() else { return };
                let fired = slot(&owner).armed.borrow_mut().take();
                fire(&owner);
                drop(fired);
            });
            Armed {
                at,
                _timeout: timeout,
                _counted: Counted::new(&TIMERS),
            }
        });
        // The old timer is cleared outside the borrow.
        drop(armed);
        drop(old);
    }

    /// Clears the timer.
    pub(super) fn cancel(&self) {
        let old = self.armed.borrow_mut().take();
        drop(old);
    }
}
