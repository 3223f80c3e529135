//! Fault-injection soak of the native client against a real server-dev. Covers:
//! - [x] A publishes 10,000 numbered messages through a fault proxy that cuts or blackholes its
//!   connection at random (seeded) at least 50 times; B's connection is cut now and then too
//! - [x] server-dev is restarted once on the same port (the room's epoch changes)
//! - [x] B (and A, also a member) receive every message exactly once and in order within an
//!   epoch; across the restart each either gets `recovered: false` or everything
//! - [x] every publish is acknowledged exactly once; none fails
//! - [x] each blackholed open connection is detected within heartbeat interval + timeout +
//!   margin; one blackholed while still in its handshake, within the connect timeout + margin
//!
//! Seed: `LIFELINE_SOAK_SEED` (default fixed). Counts are printed at the end
//! (`cargo test -p lifeline-tests --test soak -- --nocapture`).
#![allow(clippy::unwrap_used)] // test helpers panic by design

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeline_tests::fault_proxy::FaultProxy;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use ws_lifeline::Config;
use ws_lifeline::machine::rooms::{RoomError, RoomEvent, RoomStats, RoomsConfig};
use ws_lifeline::native::{Client, ClientEvent};
use ws_lifeline::{Error, Event, protocol};

const N: u64 = 10_000;
const ROOM: &str = "soak";
const HEARTBEAT: Duration = Duration::from_millis(200);
const HB_TIMEOUT: Duration = Duration::from_millis(300);
/// Timer and scheduling slack on a busy 2-core machine.
const MARGIN: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_FAULTS: usize = 50;
/// Whole-test bound.
const DEADLINE: Duration = Duration::from_secs(120);

struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<server_dev::Result<()>>,
}

fn server_config() -> server_dev::Config {
    server_dev::Config::default()
        .no_auth(true)
        // The soak measures recovery, not the rate limit.
        .rate_limit(0.0, 1.0)
        .queue_capacity(4096)
        .heartbeat(Duration::from_millis(500), Duration::from_millis(1000))
        .history(20_000, Duration::from_secs(300))
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
        .backoff_min(Duration::from_millis(10))
        .backoff_max(Duration::from_millis(100))
        .connect_timeout(CONNECT_TIMEOUT)
        .min_uptime(Duration::from_millis(100))
}

/// What one receiver saw, checked as it goes.
#[derive(Debug, Default)]
struct Receiver {
    /// Numbers delivered, in order, per segment (a new segment starts at `recovered: false`).
    segments: Vec<Vec<u64>>,
    recovery_failures: u64,
    recoveries: u64,
    last: u64,
}

impl Receiver {
    fn see(&mut self, event: &RoomEvent) {
        match event {
            RoomEvent::Joined { .. } => {
                self.segments.push(Vec::new());
            }
            RoomEvent::Recovery { recovered, .. } => {
                if *recovered {
                    self.recoveries += 1;
                } else {
                    self.recovery_failures += 1;
                    self.segments.push(Vec::new());
                }
            }
            RoomEvent::Message(m) => {
                let n = m
                    .data
                    .decode::<serde_json::Value>()
                    .ok()
                    .and_then(|v| v["n"].as_u64())
                    .expect("numbered message");
                let seg = self.segments.last_mut().expect("joined before a message");
                if let Some(&prev) = seg.last() {
                    assert_eq!(
                        n,
                        prev + 1,
                        "within an epoch messages arrive once, in order"
                    );
                }
                seg.push(n);
                self.last = n;
            }
            _ => {}
        }
    }

    fn delivered(&self) -> u64 {
        self.segments.iter().map(|s| s.len() as u64).sum()
    }

    /// Numbers never delivered, and numbers delivered twice (only possible across segments).
    fn missing_and_repeated(&self) -> (Vec<u64>, u64) {
        let mut count: BTreeMap<u64, u64> = BTreeMap::new();
        for n in self.segments.iter().flatten() {
            *count.entry(*n).or_default() += 1;
        }
        let missing = (1..=N).filter(|n| !count.contains_key(n)).collect();
        let repeated = count.values().map(|c| c - 1).sum();
        (missing, repeated)
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
    a_closes: u64,
    done_publishing: bool,
}

fn drain(client: &mut Client, rx: &mut Receiver, shared: &Mutex<Shared>, is_a: bool) {
    while let Some(event) = client.try_next_event() {
        handle(&event, rx, shared, is_a);
    }
}

fn handle(event: &ClientEvent, rx: &mut Receiver, shared: &Mutex<Shared>, is_a: bool) {
    match event {
        ClientEvent::Room(RoomEvent::PublishFailed { id, error, .. }) => {
            panic!("publish {id} failed: {error}")
        }
        ClientEvent::Room(e) => rx.see(e),
        ClientEvent::Connection(Event::Open) if is_a => shared.lock().unwrap().a_open = true,
        ClientEvent::Connection(Event::Close(info)) if is_a => {
            let mut s = shared.lock().unwrap();
            s.a_open = false;
            s.a_closes += 1;
            s.a_failures
                .push((Instant::now(), Failure::Closed(info.code)));
        }
        ClientEvent::Connection(Event::Error(Error::ConnectTimeout { .. })) if is_a => {
            let mut s = shared.lock().unwrap();
            s.a_failures.push((Instant::now(), Failure::ConnectTimeout));
        }
        _ => {}
    }
}

async fn wait_joined(client: &mut Client, rx: &mut Receiver, shared: &Mutex<Shared>, is_a: bool) {
    timeout(Duration::from_secs(10), async {
        while let Some(e) = client.next_event().await {
            let joined = matches!(e, ClientEvent::Room(RoomEvent::Joined { .. }));
            handle(&e, rx, shared, is_a);
            if joined {
                return;
            }
        }
    })
    .await
    .expect("joined");
}

#[derive(Debug, Default)]
struct Faults {
    a_cuts: usize,
    a_blackholes: usize,
    b_cuts: usize,
    /// Blackholed open connections: time until the heartbeat declared them dead.
    detect_ms: Vec<u64>,
    /// Blackholed connections still in their handshake: time until the connect timeout.
    opening_detect_ms: Vec<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_every_message_once_in_order_through_faults_and_a_restart() {
    let started = Instant::now();
    let seed: u64 = std::env::var("LIFELINE_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2024);
    let (addr, server) = start_server("127.0.0.1:0".parse().unwrap()).await;
    let proxy_a = Arc::new(FaultProxy::start(addr).await.unwrap());
    let proxy_b = Arc::new(FaultProxy::start(addr).await.unwrap());
    let rooms = RoomsConfig::default()
        .max_unacked(512)
        .ack_timeout(Duration::from_secs(60));
    let url = |p: &FaultProxy, name: &str| format!("ws://{}/ws?name={name}", p.addr());
    let mut a = Client::connect(&url(&proxy_a, "A"), client_config(), rooms.clone()).unwrap();
    let mut b = Client::connect(&url(&proxy_b, "B"), client_config(), rooms).unwrap();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let (mut rx_a, mut rx_b) = (Receiver::default(), Receiver::default());
    b.join(ROOM).unwrap();
    wait_joined(&mut b, &mut rx_b, &shared, false).await;
    a.join(ROOM).unwrap();
    wait_joined(&mut a, &mut rx_a, &shared, true).await;

    // B drains its events in its own task until it has seen the last number.
    let b_task = tokio::spawn(async move {
        let r = timeout(DEADLINE, async {
            while rx_b.last < N {
                let Some(e) = b.next_event().await else { break };
                handle(&e, &mut rx_b, &Mutex::new(Shared::default()), false);
            }
        })
        .await;
        (b, rx_b, r.is_ok())
    });

    // The fault injector: seeded, until publishing is done and enough faults happened.
    let injector = {
        let (shared, proxy_a, proxy_b) = (
            Arc::clone(&shared),
            Arc::clone(&proxy_a),
            Arc::clone(&proxy_b),
        );
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut f = Faults::default();
            let mut server = Some(server);
            let mut restarted = false;
            let end = Instant::now() + DEADLINE;
            while Instant::now() < end {
                let total = f.a_cuts + f.a_blackholes;
                if total >= MIN_FAULTS + 5 && shared.lock().unwrap().done_publishing {
                    break;
                }
                sleep(Duration::from_millis(rng.u64(60..250))).await;
                if !restarted && total == MIN_FAULTS / 2 {
                    // Restart on the same port: history and sessions are gone, the epoch changes.
                    if let Some(s) = server.take() {
                        stop_server(s).await;
                    }
                    let (_, s) = start_server(addr).await;
                    server = Some(s);
                    restarted = true;
                    continue;
                }
                if rng.u8(0..10) == 0 {
                    if proxy_b.cut_all() > 0 {
                        f.b_cuts += 1;
                    }
                    continue;
                }
                let a_open = shared.lock().unwrap().a_open;
                if !a_open {
                    continue;
                }
                if rng.u8(0..3) == 0 {
                    let before = shared.lock().unwrap().a_failures.len();
                    let at = Instant::now();
                    if proxy_a.blackhole_all() == 0 {
                        continue;
                    }
                    f.a_blackholes += 1;
                    // Wait (bounded) for A to notice: the next lost connection or failed attempt.
                    let (seen, failure) = timeout(Duration::from_secs(5), async {
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
                    // `a_open` is what A's events said last; the socket may already have been
                    // replaced by one still in its handshake, which the connect timeout ends.
                    match failure {
                        Failure::Closed(protocol::close::HEARTBEAT_TIMEOUT) => f.detect_ms.push(ms),
                        Failure::ConnectTimeout => f.opening_detect_ms.push(ms),
                        Failure::Closed(code) => panic!("blackholed connection closed with {code}"),
                    }
                } else if proxy_a.cut_all() > 0 {
                    f.a_cuts += 1;
                }
            }
            (f, server)
        })
    };

    // A publishes 10,000 numbered messages, at most `max_unacked` in flight, paced so that the
    // faults spread over the run; it drains its own events as it goes.
    let mut n = 1;
    let publish_until = Instant::now() + DEADLINE;
    while n <= N && Instant::now() < publish_until {
        drain(&mut a, &mut rx_a, &shared, true);
        match a.publish(ROOM, &json!({ "n": n })) {
            Ok(handle) => {
                drop(handle); // outcomes are checked through events and counters
                n += 1;
                // About 500 a second: the run lasts long enough for the faults to spread.
                if n % 5 == 0 {
                    sleep(Duration::from_millis(10)).await;
                }
            }
            Err(RoomError::TooManyUnacked { .. }) => {
                if let Ok(Some(e)) = timeout(Duration::from_millis(20), a.next_event()).await {
                    handle(&e, &mut rx_a, &shared, true);
                }
            }
            Err(e) => panic!("publish {n}: {e}"),
        }
    }
    assert_eq!(n, N + 1, "published everything in time");
    // Every publish acknowledged; A has seen its own last message.
    timeout(DEADLINE, async {
        while a.unacked() > 0 || rx_a.last < N {
            match timeout(Duration::from_millis(50), a.next_event()).await {
                Ok(Some(e)) => handle(&e, &mut rx_a, &shared, true),
                Ok(None) => break,
                Err(_) => {}
            }
        }
    })
    .await
    .expect("all acked and delivered to A");
    shared.lock().unwrap().done_publishing = true;
    // Keep handling A's events until the injector stops: it may still be waiting to see A
    // notice its last fault.
    let mut injector = injector;
    let (faults, server) = loop {
        tokio::select! {
            done = &mut injector => break done.unwrap(),
            Some(e) = a.next_event() => handle(&e, &mut rx_a, &shared, true),
        }
    };
    let (b, rx_b, b_done) = b_task.await.unwrap();
    assert!(b_done, "B received the last message in time");
    drain(&mut a, &mut rx_a, &shared, true);

    let (sa, sb): (RoomStats, RoomStats) = (a.stats(), b.stats());
    let (missing_b, repeated_b) = rx_b.missing_and_repeated();
    let (missing_a, repeated_a) = rx_a.missing_and_repeated();
    let detect = &faults.detect_ms;
    println!(
        "soak (seed {seed:#x}, {:.1} s): sent {} (resent {}), acked {} (duplicate acks {}), \
         delivered B {} / A {}, duplicates suppressed B {} / A {}, gaps recovered B {} / A {}, \
         recovered:true B {} / A {}, recovered:false B {} / A {}, missing across restart B {} / A {}, \
         repeated across restart B {repeated_b} / A {repeated_a}, reconnects A {} / B {}, \
         faults: A cuts {} + A blackholes {} + B cuts {}, half-open detection ms {:?} \
         (min {} max {}, bound {} ms), blackholed in handshake: {:?} ms",
        started.elapsed().as_secs_f64(),
        sa.published,
        sa.resent,
        sa.acked,
        sa.duplicate_acks,
        rx_b.delivered(),
        rx_a.delivered(),
        sb.duplicates_dropped,
        sa.duplicates_dropped,
        sb.gaps,
        sa.gaps,
        rx_b.recoveries,
        rx_a.recoveries,
        rx_b.recovery_failures,
        rx_a.recovery_failures,
        missing_b.len(),
        missing_a.len(),
        sa.opens.saturating_sub(1),
        sb.opens.saturating_sub(1),
        faults.a_cuts,
        faults.a_blackholes,
        faults.b_cuts,
        detect,
        detect.iter().min().unwrap_or(&0),
        detect.iter().max().unwrap_or(&0),
        (HEARTBEAT + HB_TIMEOUT + MARGIN).as_millis(),
        faults.opening_detect_ms,
    );

    assert!(
        faults.a_cuts + faults.a_blackholes >= MIN_FAULTS,
        "at least {MIN_FAULTS} faults on A's connection"
    );
    assert!(faults.a_blackholes > 0 && faults.a_cuts > 0);
    assert_eq!(sa.published, N);
    assert_eq!(sa.acked, N, "every publish acked exactly once");
    assert_eq!(sa.failed, 0);
    let bound = u64::try_from((HEARTBEAT + HB_TIMEOUT + MARGIN).as_millis()).unwrap();
    assert!(
        detect.iter().all(|&ms| ms <= bound),
        "half-open detected within {bound} ms: {detect:?}"
    );
    assert!(
        !detect.is_empty(),
        "at least one open connection was blackholed"
    );
    let opening_bound = u64::try_from((CONNECT_TIMEOUT + MARGIN).as_millis()).unwrap();
    assert!(
        faults
            .opening_detect_ms
            .iter()
            .all(|&ms| ms <= opening_bound),
        "a blackholed handshake ends within {opening_bound} ms: {:?}",
        faults.opening_detect_ms
    );
    for (who, rx, missing, stats) in [("B", &rx_b, &missing_b, sb), ("A", &rx_a, &missing_a, sa)] {
        // One restart: exactly one epoch change, reported as recovered:false.
        assert_eq!(rx.recovery_failures, 1, "{who}: one recovered:false");
        assert_eq!(stats.recovery_failures, 1, "{who}");
        // Nothing missing at all, or only what the restart lost (and it was reported).
        assert!(
            missing.is_empty() || rx.recovery_failures > 0,
            "{who}: silent gap {missing:?}"
        );
        assert!(
            (missing.len() as u64) < N / 10,
            "{who}: the restart lost at most a window, not the run: {}",
            missing.len()
        );
        assert_eq!(rx.last, N, "{who}: got the last message");
    }
    // Every number delivered outside the restart window exactly once: repeats can only come
    // from the one epoch change (segments are checked to be gap- and duplicate-free).
    assert!(rx_b.segments.iter().filter(|s| !s.is_empty()).count() <= 2);

    drop((a, b));
    drop((proxy_a, proxy_b));
    if let Some(server) = server {
        stop_server(server).await;
    }
}
