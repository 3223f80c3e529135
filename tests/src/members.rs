//! Members of a room driven by the native client, for the soak and durable tests: two
//! publishers (A and C) publish numbered messages, every member receives them, and each
//! delivery is checked for order and duplicates as it arrives.
//!
//! What a test does beyond that (acks with their times, recoveries per server generation, a
//! member's connection events) goes to its [`Observer`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, timeout};
use ws_lifeline::Event;
use ws_lifeline::machine::rooms::{PublishId, RoomError, RoomEvent, RoomStats};
use ws_lifeline::native::{Client, ClientEvent};

/// The publishers' names, as in each message's `p`; a message is `{"p": NAME, "n": NUMBER}`.
pub const PUBLISHERS: [&str; 2] = ["A", "C"];

/// What every member of a run publishes and waits for.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The one room every member joins.
    pub room: &'static str,
    /// Messages each publisher publishes, numbered from 1.
    pub per_publisher: u64,
    /// A publisher keeps at most this many publishes unacknowledged.
    pub in_flight: usize,
    /// Bound of a member's whole run.
    pub deadline: Duration,
}

/// A test's hooks into its members' events; each runs after the common checks.
pub trait Observer: Send + Sync + 'static {
    /// Publish number `n` of `publisher` was acknowledged (the first ack of its id).
    fn acked(&self, _member: &str, _publisher: usize, _n: u64) {}
    /// A rejoin answered `recovered`.
    fn recovery(&self, _member: &str, _recovered: bool) {}
    /// A connection event (a close was already checked not to be terminal).
    fn connection(&self, _member: &str, _event: &Event) {}
    /// A publisher's run ended: all published, acked and received, or the deadline passed.
    fn finished(&self, _publisher: usize) {}
}

/// What one receiver saw, in order: deliveries and `recovered: false` marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Publisher index and number.
    Message(usize, u64),
    /// A `recovered: false`: what follows may skip what a restart destroyed.
    Lost,
}

/// The numbers one member received, checked as they arrive: each publisher's in order and
/// never twice.
#[derive(Debug, Default)]
pub struct Received {
    /// Deliveries and `recovered: false` marks, in order.
    pub seen: Vec<Seen>,
    /// `recovered: true` answers.
    pub recoveries: u64,
    /// `recovered: false` answers.
    pub recovery_failures: u64,
    /// The last number delivered per publisher.
    pub last: [u64; 2],
}

impl Received {
    fn see(&mut self, event: &RoomEvent) {
        match event {
            RoomEvent::Recovery { recovered, .. } => {
                if *recovered {
                    self.recoveries += 1;
                } else {
                    self.recovery_failures += 1;
                    self.seen.push(Seen::Lost);
                }
            }
            RoomEvent::Message(m) => {
                let v = m.data.decode::<serde_json::Value>().expect("JSON message");
                let p = PUBLISHERS
                    .iter()
                    .position(|name| v["p"] == *name)
                    .expect("publisher name");
                let n = v["n"].as_u64().expect("numbered message");
                assert!(
                    n > self.last[p],
                    "{} #{n} after #{}: each publisher's messages arrive in order, never twice",
                    PUBLISHERS[p],
                    self.last[p]
                );
                assert!(
                    m.publisher.is_some() && m.id.is_some(),
                    "publisher-scoped id"
                );
                self.last[p] = n;
                self.seen.push(Seen::Message(p, n));
            }
            _ => {}
        }
    }

    /// Every publisher's last number (`per_publisher`) was delivered.
    pub fn done(&self, per_publisher: u64) -> bool {
        self.last.iter().all(|&n| n == per_publisher)
    }

    /// The numbers of publisher `p` never delivered, as runs `(first, last)`, each with the
    /// number of `recovered: false` seen before the delivery that followed it.
    pub fn gaps(&self, p: usize) -> Vec<(u64, u64, usize)> {
        let mut gaps = Vec::new();
        let (mut expected, mut losses) = (1, 0);
        for seen in &self.seen {
            match *seen {
                Seen::Lost => losses += 1,
                Seen::Message(q, n) if q == p => {
                    if n > expected {
                        gaps.push((expected, n - 1, losses));
                    }
                    expected = n + 1;
                }
                Seen::Message(..) => {}
            }
        }
        gaps
    }
}

/// One client of the run: its events go to its [`Received`]; a publisher also reports acks.
pub struct Member<O> {
    /// `A`, `B` or `C`.
    pub name: &'static str,
    /// The native client, at the settings the test chose.
    pub client: Client,
    /// What it received.
    pub rx: Received,
    /// Index into [`PUBLISHERS`], for A and C.
    pub publisher: Option<usize>,
    plan: Plan,
    observer: Arc<O>,
    numbers: HashMap<PublishId, u64>,
}

impl<O> std::fmt::Debug for Member<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("name", &self.name)
            .field("publisher", &self.publisher)
            .field("rx", &self.rx)
            .finish_non_exhaustive()
    }
}

impl<O: Observer> Member<O> {
    /// A member that has not joined yet.
    pub fn new(
        name: &'static str,
        client: Client,
        publisher: Option<usize>,
        plan: Plan,
        observer: Arc<O>,
    ) -> Self {
        Self {
            name,
            client,
            rx: Received::default(),
            publisher,
            plan,
            observer,
            numbers: HashMap::new(),
        }
    }

    /// Checks one event and passes it on: no publish fails, no close is terminal.
    pub fn handle(&mut self, event: &ClientEvent) {
        match event {
            ClientEvent::Room(RoomEvent::PublishFailed { id, error, .. }) => {
                panic!("{}: publish {id} failed: {error}", self.name)
            }
            ClientEvent::Room(RoomEvent::Acked { id, .. }) => {
                if let (Some(p), Some(n)) = (self.publisher, self.numbers.remove(id)) {
                    self.observer.acked(self.name, p, n);
                }
            }
            ClientEvent::Room(e) => {
                self.rx.see(e);
                if let RoomEvent::Recovery { recovered, .. } = e {
                    self.observer.recovery(self.name, *recovered);
                }
            }
            ClientEvent::Connection(e) => {
                if let Event::Close(info) = e {
                    assert!(
                        !ws_lifeline::machine::default_terminal(info.code),
                        "{}: shut out with {}",
                        self.name,
                        info.code
                    );
                }
                self.observer.connection(self.name, e);
            }
            _ => {}
        }
    }

    /// Joins the plan's room and handles events until it is joined (bounded).
    pub async fn join(&mut self) {
        self.client.join(self.plan.room).expect("join");
        timeout(Duration::from_secs(10), async {
            while let Some(e) = self.client.next_event().await {
                let joined = matches!(e, ClientEvent::Room(RoomEvent::Joined { .. }));
                self.handle(&e);
                if joined {
                    return;
                }
            }
        })
        .await
        .expect("joined");
    }

    /// Publishes this member's numbers with at most `in_flight` unacknowledged, then waits
    /// until every publish is acknowledged and every message (its own included) was received.
    pub async fn run(mut self) -> Self {
        let plan = self.plan;
        let end = Instant::now() + plan.deadline;
        if let Some(p) = self.publisher {
            let mut n = 1;
            while n <= plan.per_publisher && Instant::now() < end {
                while let Some(e) = self.client.try_next_event() {
                    self.handle(&e);
                }
                if self.client.unacked() >= plan.in_flight {
                    if let Ok(Some(e)) =
                        timeout(Duration::from_millis(20), self.client.next_event()).await
                    {
                        self.handle(&e);
                    }
                    continue;
                }
                let message = serde_json::json!({ "p": PUBLISHERS[p], "n": n });
                match self.client.publish(plan.room, &message) {
                    Ok(handle) => {
                        self.numbers.insert(handle.id(), n);
                        drop(handle); // outcomes are checked through events
                        n += 1;
                    }
                    Err(RoomError::TooManyUnacked { .. }) => {}
                    Err(e) => panic!("{}: publish #{n}: {e}", self.name),
                }
            }
            assert_eq!(
                n,
                plan.per_publisher + 1,
                "{}: published everything",
                self.name
            );
        }
        while Instant::now() < end
            && (self.client.unacked() > 0 || !self.rx.done(plan.per_publisher))
        {
            if let Ok(Some(e)) = timeout(Duration::from_millis(50), self.client.next_event()).await
            {
                self.handle(&e);
            }
        }
        if let Some(p) = self.publisher {
            self.observer.finished(p);
        }
        self
    }

    /// Every publisher's last number was delivered.
    pub fn done(&self) -> bool {
        self.rx.done(self.plan.per_publisher)
    }

    /// Checks the end of a run by the client's counts `s`: a publisher published everything
    /// and got each publish acked once, no publish failed, and every publisher's last message
    /// was received.
    pub fn assert_complete(&self, s: &RoomStats) {
        if self.publisher.is_some() {
            assert_eq!(s.published, self.plan.per_publisher, "{}", self.name);
            assert_eq!(
                s.acked, self.plan.per_publisher,
                "{}: every publish acked once",
                self.name
            );
        }
        assert_eq!(s.failed, 0, "{}", self.name);
        assert!(
            self.done(),
            "{}: received every publisher's last message: {:?}",
            self.name,
            self.rx.last
        );
    }

    /// Every publisher's messages were delivered to this member once each: none missing (no
    /// gap), `per_publisher` × the publishers in all.
    pub fn assert_delivered_once(&self, s: &RoomStats) {
        for (p, name) in PUBLISHERS.iter().enumerate() {
            let gaps = self.rx.gaps(p);
            assert!(
                gaps.is_empty(),
                "{}: none of {name}'s lost, missing (first, last, losses): {gaps:?}",
                self.name
            );
        }
        let publishers = PUBLISHERS.len() as u64;
        assert_eq!(
            s.delivered,
            self.plan.per_publisher * publishers,
            "{}: each message once",
            self.name
        );
    }

    /// The server never sent this member a message twice: the client dropped nothing as a
    /// duplicate or as a re-broadcast resend.
    pub fn assert_nothing_sent_twice(&self, s: &RoomStats) {
        assert_eq!(
            (s.duplicates_dropped, s.resends_dropped),
            (0, 0),
            "{}: the server sent nothing twice",
            self.name
        );
    }

    /// One line of a run's report: the client's counts `s` and the recoveries seen.
    pub fn report(&self, s: &RoomStats) -> String {
        format!(
            "{}: published {} (resent {}), acked {} (duplicate acks {}), delivered {}, \
             resends dropped {}, duplicates dropped {}, gaps recovered {}, \
             recovered:true {} / false {}, reconnects {}",
            self.name,
            s.published,
            s.resent,
            s.acked,
            s.duplicate_acks,
            s.delivered,
            s.resends_dropped,
            s.duplicates_dropped,
            s.gaps,
            self.rx.recoveries,
            self.rx.recovery_failures,
            s.opens.saturating_sub(1),
        )
    }
}
