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
//!
//! Two variants run the same faults with the rooms kept across restarts, and assert that
//! nothing at all is lost (no gap, never `recovered: false`) and nothing duplicated:
//! - [x] over the durable engine (`sqlite:` in a temporary directory), one server restarted
//!   3 times on its file;
//! - [x] over two instances on one Redis (a private `redis-server`, skipped where it is not
//!   installed): A through instance 1, B and C through instance 2, and the restarts
//!   alternate between the instances.
//!
//! The variants publish 2,000 messages each (4,000 in all) to keep `cargo xtask test`
//! bounded; the faults on A's connection are as many as in the main run.
//!
//! Timing settings of the client are shortened so that 50 faults fit in a bounded run (each
//! says why below); the same behaviours at the default timings are covered on virtual time in
//! `client-wasm/tests/machine.rs`. Seed: `LIFELINE_SOAK_SEED` (default fixed). Counts are
//! printed at the end (`cargo test -p lifeline-tests --test soak -- --nocapture`).
#![allow(clippy::unwrap_used)] // test helpers panic by design

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lifeline_tests::fault_proxy::FaultProxy;
use lifeline_tests::members::{Member, Observer, PUBLISHERS, Plan};
use lifeline_tests::redis::{Persistence, RedisServer, skip_without_redis};
use server_dev::EngineKind;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use ws_lifeline::Config;
use ws_lifeline::machine::rooms::RoomStats;
use ws_lifeline::native::Client;
use ws_lifeline::{Error, Event, protocol};

/// Shortened from 25 s so that a blackholed connection is found in well under a second.
const HEARTBEAT: Duration = Duration::from_millis(200);
/// Shortened from 10 s, for the same reason.
const HB_TIMEOUT: Duration = Duration::from_millis(300);
/// Timer and scheduling slack on a busy 2-core machine.
const MARGIN: Duration = Duration::from_millis(250);
const MIN_FAULTS: usize = 50;
const RESTARTS: usize = 3;
const PLAN: Plan = Plan {
    room: "soak",
    per_publisher: PER_PUBLISHER,
    // An application's choice, well under the default `max_unacked`: at the server's default
    // 50 frames/s they drain in 4 s, far inside the default 30 s ack timeout, even across a
    // fault.
    in_flight: 200,
    deadline: DEADLINE,
};
const PER_PUBLISHER: u64 = 5_000;
/// Per publisher in the variants whose engine keeps the rooms across restarts.
const PER_PUBLISHER_KEPT: u64 = 2_000;
/// Whole-test bound. Two publishers at the default 50 frames/s need 100 s at least.
const DEADLINE: Duration = Duration::from_secs(420);

struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<server_dev::Result<()>>,
}

/// server-dev's defaults on `engine`; only the login is off, as `server-dev --no-auth`.
fn server_config(engine: &EngineKind) -> server_dev::Config {
    server_dev::Config::default()
        .no_auth(true)
        .engine(engine.clone())
}

async fn start_server(addr: SocketAddr, engine: &EngineKind) -> (SocketAddr, Server) {
    // Right after a stop the port may still be held briefly: retry, bounded.
    let mut last = None;
    for _ in 0..50 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let addr = listener.local_addr().unwrap();
                let (stop, stopped) = oneshot::channel::<()>();
                let task = tokio::spawn(server_dev::serve(
                    listener,
                    server_config(engine),
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

/// The run's state, shared by the members (through [`Observer`]) and the fault injector.
#[derive(Debug, Default)]
struct Watch(Mutex<Shared>);

impl Watch {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap()
    }
}

impl Observer for Watch {
    fn acked(&self, member: &str, publisher: usize, n: u64) {
        let first = self.lock().acked_at[publisher]
            .insert(n, Instant::now())
            .is_none();
        assert!(first, "{member}: #{n} acknowledged twice");
    }

    fn connection(&self, member: &str, event: &Event) {
        if member != "A" {
            return;
        }
        let mut s = self.lock();
        match event {
            Event::Close(info) => {
                s.a_open = false;
                s.a_failures
                    .push((Instant::now(), Failure::Closed(info.code)));
            }
            Event::Open => s.a_open = true,
            Event::Error(Error::ConnectTimeout { .. }) => {
                s.a_failures.push((Instant::now(), Failure::ConnectTimeout));
            }
            _ => {}
        }
    }

    fn finished(&self, publisher: usize) {
        self.lock().done_publishing[publisher] = true;
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
    soak("soak", &[EngineKind::Memory], PER_PUBLISHER, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_over_the_durable_engine_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = EngineKind::Sqlite(dir.path().join("db"));
    soak("soak, durable engine", &[engine], PER_PUBLISHER_KEPT, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_over_two_redis_instances_loses_nothing() {
    let test = "soak, two instances on Redis";
    if skip_without_redis(test) {
        return;
    }
    // Redis is not restarted here (the instances are): no persistence needed.
    let redis = RedisServer::start(Persistence::None).unwrap();
    let engine = EngineKind::Redis(redis.url());
    soak(test, &[engine.clone(), engine], PER_PUBLISHER_KEPT, true).await;
}

/// The soak over one server per engine of `instances` (A through the first, B and C through
/// the last), restarts alternating between them. With `kept`, the engine keeps the rooms
/// across restarts and nothing may be lost.
#[allow(clippy::print_stdout)] // the run's report is this test's output
async fn soak(what: &str, instances: &[EngineKind], per_publisher: u64, kept: bool) {
    // One soak at a time: the timing bounds assume the machine is not running another.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _alone = ONE_AT_A_TIME.lock().await;
    let plan = Plan {
        per_publisher,
        ..PLAN
    };
    let started = Instant::now();
    let seed: u64 = std::env::var("LIFELINE_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2024);
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    for engine in instances {
        let (addr, server) = start_server("127.0.0.1:0".parse().unwrap(), engine).await;
        addrs.push(addr);
        servers.push(Some(server));
    }
    let last = addrs.len() - 1;
    let proxies: Vec<Arc<FaultProxy>> = start_proxies([addrs[0], addrs[last], addrs[last]]).await;
    let shared = Arc::new(Watch::default());
    let mut members = Vec::new();
    for (i, (name, publisher)) in [("A", Some(0)), ("B", None), ("C", Some(1))]
        .into_iter()
        .enumerate()
    {
        let url = format!("ws://{}/ws?name={name}", proxies[i].addr());
        let client = Client::connect(&url, client_config()).unwrap();
        let mut member = Member::new(name, client, publisher, plan, Arc::clone(&shared));
        member.join().await;
        members.push(member);
    }

    // The fault injector: seeded, until publishing is done and enough faults happened.
    let injector = {
        let (shared, proxies) = (Arc::clone(&shared), proxies.clone());
        let instances = instances.to_vec();
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut f = Faults::default();
            let mut servers = servers;
            let end = Instant::now() + DEADLINE;
            while Instant::now() < end {
                let total = f.a_cuts + f.a_blackholes;
                let restarts = shared.lock().restarts.len();
                let done = shared.lock().done_publishing.iter().all(|d| *d);
                if total >= MIN_FAULTS + 5 && restarts == RESTARTS && done {
                    break;
                }
                sleep(Duration::from_millis(rng.u64(100..400))).await;
                // Restarts spread over the faults: after 1/4, 2/4 and 3/4 of them.
                if restarts < RESTARTS && total >= (restarts + 1) * MIN_FAULTS / (RESTARTS + 1) {
                    // Same port. In memory, history and sessions are gone and the epoch changes;
                    // the other engines keep them.
                    let which = restarts % servers.len();
                    shared.lock().restarts.push(Instant::now());
                    if let Some(s) = servers[which].take() {
                        stop_server(s).await;
                    }
                    let (_, s) = start_server(addrs[which], &instances[which]).await;
                    servers[which] = Some(s);
                    continue;
                }
                if rng.u8(0..8) == 0 {
                    let which = if rng.bool() { 1 } else { 2 };
                    if proxies[which].cut_all() > 0 {
                        f.other_cuts += 1;
                    }
                    continue;
                }
                if !shared.lock().a_open {
                    continue;
                }
                if rng.u8(0..3) == 0 {
                    let before = shared.lock().a_failures.len();
                    let at = Instant::now();
                    if proxies[0].blackhole_all() == 0 {
                        continue;
                    }
                    f.a_blackholes += 1;
                    // Wait (bounded) for A to notice: the next lost connection or failed attempt.
                    let (seen, failure) = timeout(Duration::from_secs(15), async {
                        loop {
                            if let Some(&f) = shared.lock().a_failures.get(before) {
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
            (f, servers)
        })
    };

    let tasks: Vec<_> = members.into_iter().map(|m| tokio::spawn(m.run())).collect();
    let mut members = Vec::new();
    for task in tasks {
        members.push(task.await.unwrap());
    }
    // Keep draining A's events until the injector stops: it may be waiting for A to notice
    // its last fault.
    let mut injector = injector;
    let (faults, servers) = loop {
        tokio::select! {
            done = &mut injector => break done.unwrap(),
            Some(e) = members[0].client.next_event() => members[0].handle(&e),
        }
    };

    let stats: Vec<RoomStats> = members.iter().map(|m| m.client.stats()).collect();
    let shared = std::mem::take(&mut *shared.lock());
    let detect = &faults.detect_ms;
    let mut report = format!(
        "{what} (seed {seed:#x}, {:.1} s, server-dev and client limits at their defaults): \
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
        report.push_str(&format!("\n  {}, lost to restarts {lost}", m.report(s)));
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
        m.assert_complete(s);
        if kept {
            assert_eq!(
                m.rx.recovery_failures, 0,
                "{}: never recovered: false",
                m.name
            );
            m.assert_delivered_once(s);
            continue;
        }
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
    for server in servers.into_iter().flatten() {
        stop_server(server).await;
    }
}

/// One fault proxy per client (A, B, C) in front of its server.
async fn start_proxies(addrs: [SocketAddr; 3]) -> Vec<Arc<FaultProxy>> {
    let mut proxies = Vec::new();
    for addr in addrs {
        proxies.push(Arc::new(FaultProxy::start(addr).await.unwrap()));
    }
    proxies
}
