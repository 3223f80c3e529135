//! Several server-dev instances on one Redis (`--engine redis://…`): the real binaries on
//! loopback ports, a private `redis-server`, and the native client, all at their default
//! settings. Covers:
//! - [x] two and three instances serve one room: publisher A connects to instance 1 through
//!   its URL provider, receiver B to instance 2, publisher C to instance 2 (two instances) or
//!   3 (three)
//! - [x] instance 1 is killed with SIGKILL (by its pid) while A's publishes are in flight; A's
//!   URL provider then names instance 2, where A resumes its session
//! - [x] every publish is acked once and none fails; every member receives every message of
//!   each publisher once, in order, with no gap; the servers never send anything twice (a
//!   resend of a publish instance 1 had written is acked as `duplicate` by instance 2)
//! - [x] every rejoin answers `recovered: true`, never false, and A's after the move does
//! - [x] Redis itself is killed with SIGKILL mid-run and started again on its files, with
//!   `appendonly yes` + `appendfsync always` (every write Redis answered is on disk first):
//!   asserted, the loss this setting allows, is none: the same 0 lost / 0 duplicated, and no
//!   `recovered: false`
//!
//! Skipped, saying so, where `redis-server` is not installed (`cargo xtask setup` installs it).
//! The binary is found as [`ServerProcess::binary`] says.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeline_tests::members::{Member, Observer, Plan};
use lifeline_tests::process::ServerProcess;
use lifeline_tests::redis::{Persistence, RedisServer, skip_without_redis};
use tokio::time::{Instant, sleep};
use ws_lifeline::Config;
use ws_lifeline::machine::rooms::RoomStats;
use ws_lifeline::native::Client;

const MEMBERS: [&str; 3] = ["A", "B", "C"];
const PLAN: Plan = Plan {
    room: "scaleout",
    // At the server's default 50 frames/s per connection, about 6 s of publishing each.
    per_publisher: 300,
    // Kept under the client's default `max_unacked`.
    in_flight: 100,
    deadline: DEADLINE,
};
/// Whole-run bound.
const DEADLINE: Duration = Duration::from_secs(120);
/// Acks publisher A gets before the fault, so that it lands mid-run.
const FAULT_AT: usize = 100;

async fn instance(redis: &RedisServer) -> ServerProcess {
    ServerProcess::start(0, &["--no-auth", "--engine", &redis.url()])
        .await
        .unwrap()
}

#[derive(Debug, Default)]
struct Shared {
    /// 1 once the fault happened.
    generation: AtomicUsize,
    acked: [AtomicUsize; 2],
    /// Per member: `recovered: true` answers seen after the fault.
    recovered_after: [AtomicUsize; 3],
    failures: Mutex<Vec<String>>,
}

impl Observer for Shared {
    fn acked(&self, _member: &str, publisher: usize, _n: u64) {
        self.acked[publisher].fetch_add(1, Ordering::SeqCst);
    }

    fn recovery(&self, member: &str, recovered: bool) {
        let index = MEMBERS.iter().position(|m| *m == member).unwrap();
        if !recovered {
            self.failures.lock().unwrap().push(member.to_string());
        } else if self.generation.load(Ordering::SeqCst) > 0 {
            self.recovered_after[index].fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Where a member connects: a fixed URL, or the port a URL provider reads before each attempt.
enum Endpoint {
    Url(String),
    Port(Arc<AtomicU16>),
}

/// Connects the three members to their endpoints and joins them.
async fn members(endpoints: [Endpoint; 3], shared: &Arc<Shared>) -> Vec<Member<Shared>> {
    let mut members = Vec::new();
    for ((name, publisher), endpoint) in MEMBERS
        .into_iter()
        .zip([Some(0), None, Some(1)])
        .zip(endpoints)
    {
        let client = match endpoint {
            Endpoint::Url(url) => {
                Client::connect(&format!("{url}/ws?name={name}"), Config::default()).unwrap()
            }
            Endpoint::Port(port) => Client::with_url_provider(Config::default(), move || {
                let port = port.load(Ordering::SeqCst);
                async move { Ok::<_, String>(format!("ws://127.0.0.1:{port}/ws?name={name}")) }
            })
            .unwrap(),
        };
        let mut member = Member::new(name, client, publisher, PLAN, Arc::clone(shared));
        member.join().await;
        members.push(member);
    }
    members
}

/// Waits, bounded, until publisher A got `FAULT_AT` acks.
async fn until_a_acked(shared: &Shared) {
    let end = Instant::now() + DEADLINE;
    while shared.acked[0].load(Ordering::SeqCst) < FAULT_AT && Instant::now() < end {
        sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the members to the end and checks: everything acked once, received once, in order,
/// no gap, nothing sent twice, never `recovered: false`.
#[allow(clippy::print_stdout)] // the run's report is this test's output, as in durable.rs
async fn run_and_check(
    members: Vec<Member<Shared>>,
    shared: &Shared,
    what: &str,
) -> Vec<RoomStats> {
    let started = Instant::now();
    let tasks: Vec<_> = members.into_iter().map(|m| tokio::spawn(m.run())).collect();
    let mut members = Vec::new();
    for task in tasks {
        members.push(task.await.unwrap());
    }
    let stats: Vec<RoomStats> = members.iter().map(|m| m.client.stats()).collect();
    let mut report = format!(
        "{what} ({:.1} s, server-dev, Redis and client at their defaults):",
        started.elapsed().as_secs_f64()
    );
    for (m, s) in members.iter().zip(&stats) {
        report.push_str(&format!("\n  {}", m.report(s)));
    }
    println!("{report}");
    assert_eq!(
        shared.generation.load(Ordering::SeqCst),
        1,
        "the fault happened mid-run"
    );
    for (m, s) in members.iter().zip(&stats) {
        m.assert_complete(s);
        m.assert_delivered_once(s);
        m.assert_nothing_sent_twice(s);
    }
    assert_eq!(
        *shared.failures.lock().unwrap(),
        Vec::<String>::new(),
        "never recovered: false"
    );
    stats
}

async fn publisher_moves_to_another_instance_after_kill_9(instances: usize) {
    let test = format!("scaleout over {instances} instances");
    if skip_without_redis(&test) {
        return;
    }
    // Redis is not restarted here: no persistence needed.
    let redis = RedisServer::start(Persistence::None).unwrap();
    let mut servers = Vec::new();
    for _ in 0..instances {
        servers.push(instance(&redis).await);
    }
    let a_port = Arc::new(AtomicU16::new(servers[0].port()));
    let endpoints = [
        Endpoint::Port(Arc::clone(&a_port)),
        Endpoint::Url(servers[1].ws_url("")),
        Endpoint::Url(servers[instances - 1].ws_url("")),
    ];
    let shared = Arc::new(Shared::default());
    let members = members(endpoints, &shared).await;

    let second = servers[1].port();
    let first = servers.remove(0);
    let killer = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            until_a_acked(&shared).await;
            // What A's provider names for its next attempt is instance 2.
            a_port.store(second, Ordering::SeqCst);
            first.kill_9().await.unwrap();
            shared.generation.store(1, Ordering::SeqCst);
        })
    };
    run_and_check(members, &shared, &test).await;
    killer.await.unwrap();
    assert!(
        shared.recovered_after[0].load(Ordering::SeqCst) >= 1,
        "A rejoined on instance 2 with recovered: true"
    );
    for server in servers {
        server.kill_9().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_publisher_moves_after_kill_9() {
    publisher_moves_to_another_instance_after_kill_9(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_publisher_moves_after_kill_9() {
    publisher_moves_to_another_instance_after_kill_9(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_kill_9_and_restart_loses_no_acked_publish_with_appendfsync_always() {
    let test = "a Redis kill -9 and restart over 2 instances";
    if skip_without_redis(test) {
        return;
    }
    let redis = RedisServer::start(Persistence::AppendFsyncAlways).unwrap();
    assert_eq!(redis.persistence(), Persistence::AppendFsyncAlways);
    let one = instance(&redis).await;
    let two = instance(&redis).await;
    let endpoints = [one.ws_url(""), two.ws_url(""), two.ws_url("")].map(Endpoint::Url);
    let shared = Arc::new(Shared::default());
    let members = members(endpoints, &shared).await;
    let restarter = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut redis = redis;
            until_a_acked(&shared).await;
            tokio::task::block_in_place(|| redis.restart_after_kill_9()).unwrap();
            shared.generation.store(1, Ordering::SeqCst);
            redis
        })
    };
    run_and_check(members, &shared, test).await;
    let redis = restarter.await.unwrap();
    drop(redis);
    one.kill_9().await.unwrap();
    two.kill_9().await.unwrap();
}
