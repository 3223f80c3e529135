//! Room history: entries, their byte accounting across rooms, and recovery on rejoin.
//!
//! Each room keeps its own history (bounded by count, age and bytes); the [`Ledger`] accounts
//! for all of them together, with a FIFO in publish order so that the global byte budget
//! evicts the oldest publication of the whole hub in O(evicted).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use protocol::{Offset, Since};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tracing::warn;

use super::{Forget, Journal, MemoryEngine};
use crate::engine::{Bounds, Recovery, RoomName};

#[derive(Debug)]
pub(crate) struct Hist {
    /// Publish order across all rooms: names this entry in [`Ledger::fifo`].
    pub(crate) seq: u64,
    pub(crate) offset: Offset,
    pub(crate) at: Instant,
    pub(crate) frame: Utf8Bytes,
}

impl Hist {
    /// What this entry is accounted as: its frame, itself, and its slot in the global FIFO.
    pub(crate) fn cost(&self) -> usize {
        self.frame.len() + std::mem::size_of::<Hist>() + std::mem::size_of::<(RoomName, u64)>()
    }
}

#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) epoch: String,
    pub(crate) offset: Offset,
    pub(crate) history: VecDeque<Hist>,
    /// Sum of [`Hist::cost`] over `history`.
    pub(crate) history_bytes: usize,
    /// A room read back from a store is kept this long without members or history, so that
    /// its clients, coming back after a restart, find its epoch and offset.
    pub(crate) kept_until: Option<Instant>,
}

/// The history of all rooms, accounted together so that a global byte budget holds.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Every retained entry as (room, seq), in publish order. An entry its room already
    /// evicted (count, age, room budget, room dropped) stays here until it reaches the front
    /// or a compaction, so eviction by the global budget pops from the front only.
    pub(crate) fifo: VecDeque<(RoomName, u64)>,
    pub(crate) next_seq: u64,
    pub(crate) bytes: usize,
    pub(crate) entries: usize,
    pub(crate) peak_bytes: usize,
}

impl Ledger {
    pub(crate) fn forget(&mut self, hist: &Hist) {
        self.bytes = self.bytes.saturating_sub(hist.cost());
        self.entries = self.entries.saturating_sub(1);
    }

    /// Drops FIFO entries whose rooms evicted them, once they are more than half the FIFO:
    /// amortized O(1) per publication.
    pub(crate) fn maybe_compact(&mut self, rooms: &BTreeMap<RoomName, Room>) {
        if self.fifo.len() > 2 * self.entries + 1024 {
            self.compact(rooms);
        }
    }

    /// Drops FIFO entries whose rooms evicted them.
    pub(crate) fn compact(&mut self, rooms: &BTreeMap<RoomName, Room>) {
        self.fifo.retain(|(name, seq)| {
            rooms
                .get(name)
                .is_some_and(|r| r.history.front().is_some_and(|h| h.seq <= *seq))
        });
        self.fifo.shrink_to(2 * self.fifo.len() + 1024);
    }
}

impl Room {
    pub(super) fn new(epoch: String, offset: Offset) -> Self {
        Self {
            epoch,
            offset,
            history: VecDeque::new(),
            history_bytes: 0,
            kept_until: None,
        }
    }

    fn plain(&self, recovered: bool) -> Recovery {
        Recovery {
            epoch: self.epoch.clone(),
            offset: self.offset,
            recovered,
            resume_after: None,
            frames: Vec::new(),
        }
    }

    /// Evicts the oldest entries beyond the count, byte and age bounds of a room.
    pub(super) fn prune(
        &mut self,
        name: &RoomName,
        now: Instant,
        limits: &Bounds,
        ledger: &mut Ledger,
        journal: &mut Journal,
    ) {
        while let Some(front) = self.history.front() {
            let over = self.history.len() > limits.history_len
                || self.history_bytes > limits.history_room_bytes
                || now.saturating_duration_since(front.at) > limits.history_max_age;
            if !over {
                break;
            }
            if let Some(hist) = self.history.pop_front() {
                self.history_bytes = self.history_bytes.saturating_sub(hist.cost());
                ledger.forget(&hist);
                journal.note(Forget::History {
                    room: name.clone(),
                    through: hist.offset,
                });
            }
        }
    }

    /// Whether the gap after `since` can be filled entirely, and the frames that fill it.
    ///
    /// In the room's epoch a gap is replayed whole or not at all. `since` in another epoch
    /// (the room was created anew, or the server restarted) cannot be compared with this
    /// epoch's offsets, so the whole retained history of this epoch is replayed, from after
    /// `resume_after`: a message published before the client came back is not skipped.
    pub(crate) fn recover(&self, since: Option<&Since>) -> Recovery {
        let Some(since) = since else {
            return self.plain(true);
        };
        if since.epoch != self.epoch {
            let resume_after = self
                .history
                .front()
                .map_or(self.offset, |h| h.offset.saturating_sub(1));
            return Recovery {
                epoch: self.epoch.clone(),
                offset: self.offset,
                recovered: false,
                resume_after: Some(resume_after),
                frames: self.history.iter().map(|h| h.frame.clone()).collect(),
            };
        }
        if since.offset > self.offset {
            return self.plain(false);
        }
        if since.offset == self.offset {
            return self.plain(true);
        }
        let first_needed = since.offset + 1;
        match self.history.front() {
            Some(front) if front.offset <= first_needed => {
                let skip = usize::try_from(first_needed - front.offset).unwrap_or(usize::MAX);
                Recovery {
                    epoch: self.epoch.clone(),
                    offset: self.offset,
                    recovered: true,
                    resume_after: None,
                    frames: self
                        .history
                        .iter()
                        .skip(skip)
                        .map(|h| h.frame.clone())
                        .collect(),
                }
            }
            _ => self.plain(false),
        }
    }
}

impl MemoryEngine {
    /// Records a published frame in `room`'s history and applies every history bound.
    pub(crate) fn record(
        &mut self,
        room: &RoomName,
        offset: Offset,
        frame: Utf8Bytes,
        now: Instant,
    ) {
        let limits = &self.bounds;
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let seq = self.history.next_seq;
        self.history.next_seq += 1;
        let hist = Hist {
            seq,
            offset,
            at: now,
            frame,
        };
        let cost = hist.cost();
        r.history_bytes += cost;
        r.history.push_back(hist);
        self.history.bytes += cost;
        self.history.entries += 1;
        self.history.fifo.push_back((room.clone(), seq));
        let over_room = r.history_bytes > limits.history_room_bytes;
        r.prune(room, now, limits, &mut self.history, &mut self.journal);
        if over_room && let Some(quiet) = self.logs.history_room.hit(now) {
            warn!(
                room = %room,
                max = limits.history_room_bytes,
                hits = quiet,
                "room history byte budget reached: oldest messages evicted"
            );
        }
        if self.history.bytes > limits.history_total_bytes {
            let mut evicted = 0u64;
            while self.history.bytes > limits.history_total_bytes {
                let Some((name, seq)) = self.history.fifo.pop_front() else {
                    break;
                };
                // The oldest current entry of the whole hub is its room's oldest too.
                if let Some(r) = self.rooms.get_mut(&name)
                    && r.history.front().is_some_and(|h| h.seq == seq)
                    && let Some(hist) = r.history.pop_front()
                {
                    r.history_bytes = r.history_bytes.saturating_sub(hist.cost());
                    self.history.forget(&hist);
                    self.journal.note(Forget::History {
                        room: name.clone(),
                        through: hist.offset,
                    });
                    evicted += 1;
                }
            }
            if let Some(quiet) = self.logs.history_total.hit(now) {
                warn!(
                    max = limits.history_total_bytes,
                    evicted,
                    hits = quiet,
                    "global history byte budget reached: oldest messages evicted"
                );
            }
        }
        // After the eviction: within this call the new entry sits above the budget briefly.
        self.history.peak_bytes = self.history.peak_bytes.max(self.history.bytes);
        self.history.maybe_compact(&self.rooms);
    }
}
