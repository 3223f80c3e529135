//! One-time login tickets: `POST /api/login {name}` hands one out, `/ws?ticket=` consumes it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::engine::LimitLog;

/// Single-use tickets, each bound to a display name, that expire.
#[derive(Debug)]
pub(crate) struct Tickets {
    ttl: Duration,
    max: usize,
    by_ticket: HashMap<String, (String, Instant)>,
    /// Warnings of the cap dropping an unused ticket, rate-limited.
    cap_log: LimitLog,
}

impl Tickets {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max: max.max(1),
            by_ticket: HashMap::new(),
            cap_log: LimitLog::default(),
        }
    }

    /// Issues a fresh ticket for `name`.
    pub(crate) fn issue(&mut self, name: String, now: Instant) -> String {
        self.sweep(now);
        if self.by_ticket.len() >= self.max {
            // Drop the ticket closest to expiry rather than refuse logins.
            if let Some(oldest) = self
                .by_ticket
                .iter()
                .min_by_key(|(_, (_, exp))| *exp)
                .map(|(t, _)| t.clone())
            {
                self.by_ticket.remove(&oldest);
                if let Some(quiet) = self.cap_log.hit(now) {
                    warn!(
                        max = self.max,
                        hits = quiet,
                        "login ticket cap reached: the unused ticket closest to expiry dropped"
                    );
                }
            }
        }
        let ticket = crate::random_hex(16);
        self.by_ticket
            .insert(ticket.clone(), (name, now + self.ttl));
        ticket
    }

    /// Consumes `ticket`, returning its name if it existed and had not expired.
    pub(crate) fn redeem(&mut self, ticket: &str, now: Instant) -> Option<String> {
        let (name, expires) = self.by_ticket.remove(ticket)?;
        (now < expires).then_some(name)
    }

    pub(crate) fn sweep(&mut self, now: Instant) {
        self.by_ticket.retain(|_, (_, exp)| now < *exp);
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// A display name: 1 to 32 characters, no control characters, not only spaces.
pub(crate) fn valid_name(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=32).contains(&chars) && !name.chars().any(char::is_control) && !name.trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_single_use_and_expire() {
        let t0 = Instant::now();
        let mut tickets = Tickets::new(Duration::from_secs(1), 10);
        let a = tickets.issue("ann".into(), t0);
        assert_eq!(a.len(), 32);
        assert_eq!(tickets.redeem(&a, t0), Some("ann".into()));
        assert_eq!(tickets.redeem(&a, t0), None, "reuse");
        let b = tickets.issue("bob".into(), t0);
        assert_eq!(
            tickets.redeem(&b, t0 + Duration::from_secs(2)),
            None,
            "expired"
        );
        assert_eq!(tickets.redeem("nope", t0), None);
    }

    #[test]
    fn ticket_store_is_bounded() {
        let t0 = Instant::now();
        let mut tickets = Tickets::new(Duration::from_secs(60), 2);
        let first = tickets.issue("a".into(), t0);
        tickets.issue("b".into(), t0 + Duration::from_millis(1));
        tickets.issue("c".into(), t0 + Duration::from_millis(2));
        assert_eq!(tickets.by_ticket.len(), 2);
        assert_eq!(tickets.redeem(&first, t0), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("ann"));
        assert!(!valid_name(""));
        assert!(!valid_name("   "));
        assert!(!valid_name("a\u{7}"));
        assert!(!valid_name(&"x".repeat(33)));
    }
}
