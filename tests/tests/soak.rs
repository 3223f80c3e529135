//! Fault-injection soak of the native client against a real server-dev, both at their DEFAULT
//! limits (rate limit, queues, history, dedupe window, `max_unacked`, ack timeout). Covers:
//! - [x] two publishers (A and C) publish 5,000 numbered messages each (10,000 in all); one
//!   client (B) only receives; all three are members of the room
//! - [x] a fault proxy cuts or blackholes A's connection at random (seeded) at least 50 times;
//!   B's and C's connections are cut now and then too
//! - [x] server-dev (in-memory) is restarted 3 times on the same port: history and sessions are
//!   gone and the room's epoch changes each time
//! - [x] every publish is acknowledged; none fails; no client is shut out (no terminal close)
//! - [x] every receiver gets each publisher's messages in order and never twice, across
//!   restarts too (the receive-side `(publisher, id)` dedupe drops resends of a lost session)
//! - [x] each restart is reported to each receiver as one `recovered: false`; the only
//!   messages a receiver may miss are those a restart destroyed: acknowledged by the old
//!   server before it stopped, and not yet delivered to that receiver. Anything else missing
//!   fails the test
//! - [x] each blackholed open connection is detected within heartbeat interval + timeout +
//!   margin; one blackholed while still in its handshake, within the connect timeout + margin
//!
//! Timing settings of the client are shortened so that 50 faults fit in a bounded run (each
//! says why below); the same behaviours at the default timings are covered on virtual time in
//! `client-wasm/tests/machine.rs`. Seed: `LIFELINE_SOAK_SEED` (default fixed). Counts are
//! printed at the end (`cargo test -p lifeline-tests --test soak -- --nocapture`).
#![allow(clippy::unwrap_used)] // test helpers panic by design

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeline_tests::fault_proxy::FaultProxy;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use ws_lifeline::Config;
use ws_lifeline::machine::rooms::{PublishId, RoomError, RoomEvent, RoomStats, RoomsConfig};
use ws_lifeline::native::{Client, ClientEvent};
use ws_lifeline::{Error, Event, protocol};

const PER_PUBLISHER: u64 = 5_000;
const PUBLISHERS: [&str; 2] = ["A", "C"];
const ROOM: &str = "soak";
/// Shortened from 25 s so that a blackholed connection is found in well under a second.
const HEARTBEAT: Duration = Duration::from_millis(200);
/// Shortened from 10 s, for the same reason.
const HB_TIMEOUT: Duration = Duration::from_millis(300);
/// Timer and scheduling slack on a busy 2-core machine.
const MARGIN: Duration = Duration::from_millis(250);
const MIN_FAULTS: usize = 50;
const RESTARTS: usize = 3;
/// A publisher keeps at most this many publishes unacknowledged (an application's choice, well
/// under the default `max_unacked`): at the server's default 50 frames/s they drain in 4 s, far
/// inside the default 30 s ack timeout, even across a fault.
const IN_FLIGHT: usize = 200;
/// Whole-test bound. Two publishers at the default 50 frames/s need 100 s at least.
const DEADLINE: Duration = Duration::from_secs(420);

struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<server_dev::Result<()>>,
}

/// server-dev's defaults; only the login is off, as `server-dev --no-auth`.
fn server_config() -> server_dev::Config {
    server_dev::Config::default().no_auth(true)
}

async fn start_server(addr: SocketAddr) -> (SocketAddr, Server) {
    // Right after a stop the port may still be held briefly: retry, bounded.
    let mut last = None;
    for _ in 0..50 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let addr = listener.local_addr().unwrap();
                let (stop, stopped) = oneshot::channel::<()>();
                let task = tokio::spawn(server_dev::serve(
                    listener,
                    server_config(),
                    None,
                    async move {
                        let _ = stopped.await;
                    },
                ));
                return (addr, Server { stop, task });
            }
            Err(e) => last = Some(e),
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot bind {addr}: {last:?}");
}

async fn stop_server(server: Server) {
    let _ = server.stop.send(());
    timeout(Duration::from_secs(10), server.task)
        .await
        .expect("server stops")
        .expect("server task")
        .expect("server ran");
}

fn client_config() -> Config {
    Config::default()
        .protocols([protocol::SUBPROTOCOL])
        .heartbeat_interval(HEARTBEAT)
        .heartbeat_timeout(HB_TIMEOUT)
        // Shortened from 1–30 s and 5 s: a connection cut every few hundred ms would otherwise
        // wait up to 30 s per reconnect, and 50 faults would not fit in the run.
        .backoff_min(Duration::from_millis(10))
        .backoff_max(Duration::from_millis(100))
        .min_uptime(Duration::from_millis(100))
}

/// What one receiver saw, in order: deliveries and `recovered: false` marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Publisher index and number.
    Message(usize, u64),
    /// A `recovered: false`: what follows may skip what a restart destroyed.
    Lost,
}

#[derive(Debug, Default)]
struct Receiver {
    seen: Vec<Seen>,
    recovery_failures: u64,
    recoveries: u64,
    /// The last number delivered per publisher.
    last: [u64; 2],
}

impl Receiver {
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
                let v = m.data.decode::<serde_json::Value>().unwrap();
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

    fn done(&self) -> bool {
        self.last.iter().all(|&n| n == PER_PUBLISHER)
    }

    /// The numbers of publisher `p` never delivered, as runs `(first, last)`, each with the
    /// number of `recovered: false` seen before the delivery that followed it.
    fn gaps(&self, p: usize) -> Vec<(u64, u64, usize)> {
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

/// How one of A's connections ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Closed with this code (4000: the heartbeat found it dead).
    Closed(u16),
    /// Never opened: the connect timeout ended it.
    ConnectTimeout,
}

#[derive(Debug, Default)]
struct Shared {
    /// A's socket is open (set on Open, cleared on Close).
    a_open: bool,
    /// Every lost connection or failed attempt of A: when it was seen and how.
    a_failures: Vec<(Instant, Failure)>,
    /// When each restart stopped the old server.
    restarts: Vec<Instant>,
    /// When each publish was acknowledged, per publisher and number.
    acked_at: [BTreeMap<u64, Instant>; 2],
    done_publishing: [bool; 2],
}

/// One client of the run: its events go to its receiver; a publisher also records acks.
struct Member {
    name: &'static str,
    client: Client,
    rx: Receiver,
    publisher: Option<usize>,
    numbers: HashMap<PublishId, u64>,
}

impl Member {
    fn handle(&mut self, event: &ClientEvent, shared: &Mutex<Shared>) {
        match event {
            ClientEvent::Room(RoomEvent::PublishFailed { id, error, .. }) => {
                panic!("{}: publish {id} failed: {error}", self.name)
            }
            ClientEvent::Room(RoomEvent::Acked { id, .. }) => {
                if let (Some(p), Some(n)) = (self.publisher, self.numbers.remove(id)) {
                    let mut s = shared.lock().unwrap();
                    let first = s.acked_at[p].insert(n, Instant::now()).is_none();
                    assert!(first, "{}: #{n} acknowledged twice", self.name);
                }
            }
            ClientEvent::Room(e) => self.rx.see(e),
            ClientEvent::Connection(Event::Close(info)) => {
                assert!(
                    !ws_lifeline::machine::default_terminal(info.code),
                    "{}: shut out with {}",
                    self.name,
                    info.code
                );
                if self.name == "A" {
                    let mut s = shared.lock().unwrap();
                    s.a_open = false;
                    s.a_failures
                        .push((Instant::now(), Failure::Closed(info.code)));
                }
            }
            ClientEvent::Connection(Event::Open) if self.name == "A" => {
                shared.lock().unwrap().a_open = true;
            }
            ClientEvent::Connection(Event::Error(Error::ConnectTimeout { .. }))
                if self.name == "A" =>
            {
                let mut s = shared.lock().unwrap();
                s.a_failures.push((Instant::now(), Failure::ConnectTimeout));
            }
            _ => {}
        }
    }

    async fn join(&mut self, shared: &Mutex<Shared>) {
        self.client.join(ROOM).unwrap();
        timeout(Duration::from_secs(10), async {
            while let Some(e) = self.client.next_event().await {
                let joined = matches!(e, ClientEvent::Room(RoomEvent::Joined { .. }));
                self.handle(&e, shared);
                if joined {
                    return;
                }
            }
        })
        .await
        .expect("joined");
    }

    /// Publishes this member's numbers with at most [`IN_FLIGHT`] unacknowledged, then waits
    /// until every publish is acknowledged and every message (its own included) was received.
    async fn run(mut self, shared: Arc<Mutex<Shared>>) -> Self {
        let end = Instant::now() + DEADLINE;
        if let Some(p) = self.publisher {
            let mut n = 1;
            while n <= PER_PUBLISHER && Instant::now() < end {
                while let Some(e) = self.client.try_next_event() {
                    self.handle(&e, &shared);
                }
                if self.client.unacked() >= IN_FLIGHT {
                    if let Ok(Some(e)) =
                        timeout(Duration::from_millis(20), self.client.next_event()).await
                    {
                        self.handle(&e, &shared);
                    }
                    continue;
                }
                match self
                    .client
                    .publish(ROOM, &json!({ "p": PUBLISHERS[p], "n": n }))
                {
                    Ok(handle) => {
                        self.numbers.insert(handle.id(), n);
                        drop(handle); // outcomes are checked through events
                        n += 1;
                    }
                    Err(RoomError::TooManyUnacked { .. }) => {}
                    Err(e) => panic!("{}: publish #{n}: {e}", self.name),
                }
            }
            assert_eq!(n, PER_PUBLISHER + 1, "{}: published everything", self.name);
        }
        while Instant::now() < end && (self.client.unacked() > 0 || !self.rx.done()) {
            if let Ok(Some(e)) = timeout(Duration::from_millis(50), self.client.next_event()).await
            {
                self.handle(&e, &shared);
            }
        }
        if let Some(p) = self.publisher {
            shared.lock().unwrap().done_publishing[p] = true;
        }
        self
    }
}

#[derive(Debug, Default)]
struct Faults {
    a_cuts: usize,
    a_blackholes: usize,
    other_cuts: usize,
    /// Blackholed open connections: time until the heartbeat declared them dead.
    detect_ms: Vec<u64>,
    /// Blackholed connections still in their handshake: time until the connect timeout.
    opening_detect_ms: Vec<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_at_default_limits_through_faults_and_restarts() {
    let started = Instant::now();
    let seed: u64 = std::env::var("LIFELINE_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2024);
    let (addr, server) = start_server("127.0.0.1:0".parse().unwrap()).await;
    let proxies: Vec<Arc<FaultProxy>> = start_proxies(addr).await;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut members = Vec::new();
    for (i, (name, publisher)) in [("A", Some(0)), ("B", None), ("C", Some(1))]
        .into_iter()
        .enumerate()
    {
        let url = format!("ws://{}/ws?name={name}", proxies[i].addr());
        let client = Client::connect(&url, client_config(), RoomsConfig::default()).unwrap();
        let mut member = Member {
            name,
            client,
            rx: Receiver::default(),
            publisher,
            numbers: HashMap::new(),
        };
        member.join(&shared).await;
        members.push(member);
    }

    // The fault injector: seeded, until publishing is done and enough faults happened.
    let injector = {
        let (shared, proxies) = (Arc::clone(&shared), proxies.clone());
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut f = Faults::default();
            let mut server = Some(server);
            let end = Instant::now() + DEADLINE;
            while Instant::now() < end {
                let total = f.a_cuts + f.a_blackholes;
                let restarts = shared.lock().unwrap().restarts.len();
                let done = shared.lock().unwrap().done_publishing.iter().all(|d| *d);
                if total >= MIN_FAULTS + 5 && restarts == RESTARTS && done {
                    break;
                }
                sleep(Duration::from_millis(rng.u64(100..400))).await;
                // Restarts spread over the faults: after 1/4, 2/4 and 3/4 of them.
                if restarts < RESTARTS && total >= (restarts + 1) * MIN_FAULTS / (RESTARTS + 1) {
                    // Same port: history and sessions are gone, the epoch changes.
                    shared.lock().unwrap().restarts.push(Instant::now());
                    if let Some(s) = server.take() {
                        stop_server(s).await;
                    }
                    let (_, s) = start_server(addr).await;
                    server = Some(s);
                    continue;
                }
                if rng.u8(0..8) == 0 {
                    let which = if rng.bool() { 1 } else { 2 };
                    if proxies[which].cut_all() > 0 {
                        f.other_cuts += 1;
                    }
                    continue;
                }
                if !shared.lock().unwrap().a_open {
                    continue;
                }
                if rng.u8(0..3) == 0 {
                    let before = shared.lock().unwrap().a_failures.len();
                    let at = Instant::now();
                    if proxies[0].blackhole_all() == 0 {
                        continue;
                    }
                    f.a_blackholes += 1;
                    // Wait (bounded) for A to notice: the next lost connection or failed attempt.
                    let (seen, failure) = timeout(Duration::from_secs(15), async {
                        loop {
                            if let Some(&f) = shared.lock().unwrap().a_failures.get(before) {
                                return f;
                            }
                            sleep(Duration::from_millis(5)).await;
                        }
                    })
                    .await
                    .expect("a blackholed connection is detected");
                    let ms = u64::try_from(seen.duration_since(at).as_millis()).unwrap();
                    // A's last event may be from a socket already replaced by one still in its
                    // handshake, which the connect timeout ends.
                    match failure {
                        Failure::Closed(protocol::close::HEARTBEAT_TIMEOUT) => f.detect_ms.push(ms),
                        Failure::ConnectTimeout => f.opening_detect_ms.push(ms),
                        Failure::Closed(code) => panic!("blackholed connection closed with {code}"),
                    }
                } else if proxies[0].cut_all() > 0 {
                    f.a_cuts += 1;
                }
            }
            (f, server)
        })
    };

    let tasks: Vec<_> = members
        .into_iter()
        .map(|m| tokio::spawn(m.run(Arc::clone(&shared))))
        .collect();
    let mut members = Vec::new();
    for task in tasks {
        members.push(task.await.unwrap());
    }
    // Keep draining A's events until the injector stops: it may be waiting for A to notice
    // its last fault.
    let mut injector = injector;
    let (faults, server) = loop {
        tokio::select! {
            done = &mut injector => break done.unwrap(),
            Some(e) = members[0].client.next_event() => members[0].handle(&e, &shared),
        }
    };

    let stats: Vec<RoomStats> = members.iter().map(|m| m.client.stats()).collect();
    let shared = Arc::try_unwrap(shared)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_else(|arc| panic!("shared state still in use: {arc:?}"));
    let detect = &faults.detect_ms;
    let mut report = format!(
        "soak (seed {seed:#x}, {:.1} s, server-dev and client limits at their defaults): \
         faults A cuts {} + A blackholes {} + B/C cuts {}, restarts {}, half-open detection ms \
         min {} max {} (bound {} ms), blackholed in handshake {:?} ms",
        started.elapsed().as_secs_f64(),
        faults.a_cuts,
        faults.a_blackholes,
        faults.other_cuts,
        shared.restarts.len(),
        detect.iter().min().unwrap_or(&0),
        detect.iter().max().unwrap_or(&0),
        (HEARTBEAT + HB_TIMEOUT + MARGIN).as_millis(),
        faults.opening_detect_ms,
    );
    for (m, s) in members.iter().zip(&stats) {
        let lost: u64 = (0..2)
            .flat_map(|p| m.rx.gaps(p))
            .map(|(a, b, _)| b - a + 1)
            .sum();
        report.push_str(&format!(
            "\n  {}: published {} (resent {}), acked {} (duplicate acks {}), delivered {}, \
             lost to restarts {lost}, resends dropped {}, duplicates dropped {}, gaps recovered {}, \
             recovered:true {} / false {}, reconnects {}",
            m.name,
            s.published,
            s.resent,
            s.acked,
            s.duplicate_acks,
            s.delivered,
            s.resends_dropped,
            s.duplicates_dropped,
            s.gaps,
            m.rx.recoveries,
            m.rx.recovery_failures,
            s.opens.saturating_sub(1),
        ));
    }
    println!("{report}");

    assert_eq!(shared.restarts.len(), RESTARTS);
    assert!(
        faults.a_cuts + faults.a_blackholes >= MIN_FAULTS,
        "at least {MIN_FAULTS} faults on A's connection"
    );
    assert!(faults.a_blackholes > 0 && faults.a_cuts > 0);
    let bound = u64::try_from((HEARTBEAT + HB_TIMEOUT + MARGIN).as_millis()).unwrap();
    assert!(!detect.is_empty(), "an open connection was blackholed");
    assert!(
        detect.iter().all(|&ms| ms <= bound),
        "half-open detected within {bound} ms: {detect:?}"
    );
    let opening_bound =
        u64::try_from((Config::default().connect_timeout + MARGIN).as_millis()).unwrap();
    assert!(
        faults
            .opening_detect_ms
            .iter()
            .all(|&ms| ms <= opening_bound),
        "a blackholed handshake ends within {opening_bound} ms: {:?}",
        faults.opening_detect_ms
    );
    for (m, s) in members.iter().zip(&stats) {
        if m.publisher.is_some() {
            assert_eq!(s.published, PER_PUBLISHER, "{}", m.name);
            assert_eq!(
                s.acked, PER_PUBLISHER,
                "{}: every publish acked once",
                m.name
            );
        }
        assert_eq!(s.failed, 0, "{}", m.name);
        assert!(
            m.rx.done(),
            "{}: received every publisher's last message",
            m.name
        );
        // Each restart is one epoch change, reported once.
        assert_eq!(m.rx.recovery_failures, RESTARTS as u64, "{}", m.name);
        for (p, name) in PUBLISHERS.iter().enumerate() {
            for (first, last, losses) in m.rx.gaps(p) {
                // A gap is only allowed right after a `recovered: false`, and only for messages
                // the old server acknowledged before it was stopped: what that restart destroyed.
                assert!(
                    losses >= 1,
                    "{}: silent gap #{first}..=#{last} of {name}",
                    m.name
                );
                let restart = shared.restarts[losses - 1];
                for n in first..=last {
                    let acked = shared.acked_at[p].get(&n).copied();
                    assert!(
                        acked.is_some_and(|at| at < restart),
                        "{}: #{n} of {name} is missing but was not acknowledged before restart {losses}",
                        m.name
                    );
                }
            }
        }
    }
    drop(members);
    drop(proxies);
    if let Some(server) = server {
        stop_server(server).await;
    }
}

/// One fault proxy per client (A, B, C) in front of the server.
async fn start_proxies(addr: SocketAddr) -> Vec<Arc<FaultProxy>> {
    let mut proxies = Vec::new();
    for _ in 0..3 {
        proxies.push(Arc::new(FaultProxy::start(addr).await.unwrap()));
    }
    proxies
}
