//! Sessions: tokens, the publish ids each remembers for deduplication, and the detach-order
//! queues that let the TTL and the caps evict without scanning every session.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use protocol::{MsgId, Offset};
use tracing::warn;

use super::{Forget, MemoryEngine};

/// A session's token: 128 random bits, written as 32 lowercase hex digits on the wire. Kept
/// as a number, since every connection holds one (twice: in its entry and as a session key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SessionId(pub(crate) u128);

impl SessionId {
    pub(crate) fn random() -> Self {
        Self(rand::random())
    }

    /// The id a client sent back, if it is one this server could have written.
    pub(crate) fn parse(token: &str) -> Option<Self> {
        let hex = token.len() == 32
            && token
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        hex.then(|| u128::from_str_radix(token, 16).ok().map(Self))
            .flatten()
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Session {
    /// Allocated at the session's first publish: most connections never publish, and every
    /// connection has a session.
    pub(crate) dedupe: Option<Box<Dedupe>>,
    pub(crate) attached: usize,
    pub(crate) detached_at: Option<Instant>,
}

/// The recent publish ids of a session, with the offsets they were given.
#[derive(Debug, Default)]
pub(crate) struct Dedupe {
    pub(crate) ids: VecDeque<MsgId>,
    pub(crate) acked: HashMap<MsgId, Offset>,
}

impl Session {
    pub(super) fn acked(&self, id: MsgId) -> Option<Offset> {
        self.dedupe.as_ref()?.acked.get(&id).copied()
    }
}

/// Detached sessions in detach order, so that the TTL and the cap evict from the front
/// instead of scanning every session. An entry is current only while its session is still
/// detached since that instant; others are skipped when met, and compacted away.
#[derive(Debug, Default)]
pub(crate) struct Detached {
    /// Sessions with no dedupe state: nothing is lost by forgetting them, so they go first.
    pub(crate) empty: VecDeque<(SessionId, Instant)>,
    /// Sessions that remember publish ids.
    pub(crate) full: VecDeque<(SessionId, Instant)>,
}

fn is_current(sessions: &HashMap<SessionId, Session>, (key, at): &(SessionId, Instant)) -> bool {
    sessions
        .get(key)
        .is_some_and(|s| s.attached == 0 && s.detached_at == Some(*at))
}

impl MemoryEngine {
    /// One connection fewer uses `key`; once none does, its TTL starts.
    pub(super) fn detach_session(&mut self, key: SessionId, now: Instant) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        session.attached = session.attached.saturating_sub(1);
        if session.attached > 0 {
            return;
        }
        session.detached_at = Some(now);
        let queue = if session.dedupe.is_some() {
            &mut self.detached.full
        } else {
            &mut self.detached.empty
        };
        queue.push_back((key, now));
        let queued = self.detached.empty.len() + self.detached.full.len();
        if queued > 2 * self.sessions.len() + 64 {
            let sessions = &self.sessions;
            self.detached.empty.retain(|e| is_current(sessions, e));
            self.detached.full.retain(|e| is_current(sessions, e));
        }
    }

    /// Forgets a session, with the accounting of its dedupe state.
    pub(super) fn forget_session(&mut self, key: &SessionId) {
        if let Some(session) = self.sessions.remove(key) {
            if session.dedupe.is_some() {
                self.journal.note(Forget::Session(*key));
            }
            let ids = session.dedupe.map_or(0, |d| d.ids.len());
            self.dedupe_entries = self.dedupe_entries.saturating_sub(ids);
        }
    }

    /// Forgets the session detached longest, preferring one without dedupe state (or, with
    /// `full_only`, among those with dedupe state). False when there is none to forget.
    pub(super) fn evict_one_session(&mut self, full_only: bool) -> bool {
        let queues = if full_only { 1..2 } else { 0..2 };
        for i in queues {
            loop {
                let queue = if i == 0 {
                    &mut self.detached.empty
                } else {
                    &mut self.detached.full
                };
                let Some(entry) = queue.pop_front() else {
                    break;
                };
                if is_current(&self.sessions, &entry) {
                    self.forget_session(&entry.0);
                    return true;
                }
            }
        }
        false
    }

    /// Forgets detached sessions with dedupe state, longest detached first, while the hub
    /// remembers more publish ids than its budget. Attached sessions are kept: they are
    /// bounded by the connections.
    pub(super) fn bound_dedupe(&mut self, now: Instant) {
        let max = self.bounds.max_dedupe_entries;
        if self.dedupe_entries <= max {
            return;
        }
        let mut evicted = 0u64;
        while self.dedupe_entries > max && self.evict_one_session(true) {
            evicted += 1;
        }
        if let Some(quiet) = self.logs.dedupe.hit(now) {
            warn!(
                max,
                evicted,
                hits = quiet,
                "dedupe budget reached: longest-detached sessions forgotten"
            );
        }
    }

    /// Forgets the sessions detached for the TTL or longer.
    pub(super) fn expire_sessions(&mut self, now: Instant) {
        let ttl = self.bounds.session_ttl;
        for i in 0..2 {
            loop {
                let queue = if i == 0 {
                    &mut self.detached.empty
                } else {
                    &mut self.detached.full
                };
                let Some(entry) = queue.front() else {
                    break;
                };
                let current = is_current(&self.sessions, entry);
                if current && now.saturating_duration_since(entry.1) < ttl {
                    break;
                }
                let key = entry.0;
                queue.pop_front();
                if current {
                    self.forget_session(&key);
                }
            }
        }
    }

    pub(super) fn create_session(&mut self, now: Instant) -> SessionId {
        let max = self.bounds.max_sessions;
        if self.sessions.len() >= max {
            // Attached sessions are never evicted: they are bounded by the connections.
            let evicted = self.evict_one_session(false);
            if evicted && let Some(quiet) = self.logs.sessions.hit(now) {
                warn!(
                    max,
                    hits = quiet,
                    "session cap reached: longest-detached session forgotten"
                );
            }
        }
        let token = SessionId::random();
        self.sessions.insert(
            token,
            Session {
                attached: 1,
                ..Session::default()
            },
        );
        self.sessions_peak = self.sessions_peak.max(self.sessions.len());
        token
    }
}
