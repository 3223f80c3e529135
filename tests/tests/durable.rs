//! The durable engine across `kill -9`: the real server-dev binary on a loopback port with
//! `--engine sqlite:<tempdir>/db`, and the native client, both at their default settings.
//! Covers:
//! - [x] two publishers (A and C) publish numbered messages; all three clients (A, B, C) are
//!   members of the room, B only receives
//! - [x] the server process is killed with SIGKILL (by its own pid) and started again on the
//!   same port and file 3 times while publishes are in flight
//! - [x] every publish is acknowledged once and none fails: an ack is only sent once the
//!   publish is on disk, so a publish acked by a killed server is in the file
//! - [x] every client receives every message of each publisher, in order, never twice, with
//!   no gap; the server never broadcasts a resend again (the client drops nothing as duplicate
//!   or resend): dedupe state survives the restarts
//! - [x] after each restart every client's rejoin answers `recovered: true`, never false:
//!   epochs and offsets survive
//! - [x] a publish acked before a `kill -9` and sent again after it, in the resumed session, is
//!   acked as `duplicate` with its offset and not broadcast again (a raw protocol client, so
//!   that the resend is certain)
//!
//! The binary is found as [`ServerProcess::binary`] says: `cargo build -p server-dev` before
//! running this crate's tests alone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeline_tests::members::{Member, Observer, Plan};
use lifeline_tests::process::ServerProcess;
use lifeline_tests::server::ProtoClient;
use protocol::{ClientMsg, ServerMsg, Since};
use serde_json::json;
use tokio::time::{Instant, sleep};
use ws_lifeline::Config;
use ws_lifeline::machine::rooms::RoomStats;
use ws_lifeline::native::Client;

const MEMBERS: [&str; 3] = ["A", "B", "C"];
const PLAN: Plan = Plan {
    room: "durable",
    // At the server's default 50 frames/s per connection, about 12 s of publishing each.
    per_publisher: 600,
    // Kept under the client's default `max_unacked`; at 50 frames/s they drain in 2 s.
    in_flight: 100,
    deadline: DEADLINE,
};
/// Whole-test bound.
const DEADLINE: Duration = Duration::from_secs(150);
const RESTARTS: usize = 3;
/// Publishes each publisher gets acked between two kills, so each kill lands mid-run.
const ACKS_BETWEEN: u64 = 100;

/// Starts the binary on `port` (0: any) with its file in `dir`, default settings otherwise.
async fn start(dir: &Path, port: u16) -> ServerProcess {
    let engine = format!("sqlite:{}", dir.join("db").display());
    ServerProcess::start(port, &["--no-auth", "--engine", &engine])
        .await
        .unwrap()
}

#[derive(Debug, Default)]
struct Shared {
    /// Servers started after the first: a recovery is counted for the latest.
    generation: AtomicUsize,
    /// Acks per publisher.
    acked: [AtomicUsize; 2],
    /// Per member (A, B, C): the latest generation it saw `recovered: true` in.
    recovered: [AtomicUsize; 3],
    /// Per member: server generations after whose start a `recovered: true` was seen.
    recovered_in: Mutex<[BTreeSet<usize>; 3]>,
}

impl Observer for Shared {
    fn acked(&self, _member: &str, publisher: usize, _n: u64) {
        self.acked[publisher].fetch_add(1, Ordering::SeqCst);
    }

    fn recovery(&self, member: &str, recovered: bool) {
        if recovered {
            let index = MEMBERS.iter().position(|m| *m == member).unwrap();
            let generation = self.generation.load(Ordering::SeqCst);
            self.recovered_in.lock().unwrap()[index].insert(generation);
            self.recovered[index].fetch_max(generation, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acked_publish_and_clients_recover() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), 0).await;
    let port = server.port();
    let shared = Arc::new(Shared::default());
    let mut members = Vec::new();
    for (name, publisher) in MEMBERS.into_iter().zip([Some(0), None, Some(1)]) {
        let url = server.ws_url(&format!("/ws?name={name}"));
        let client = Client::connect(&url, Config::default()).unwrap();
        let mut member = Member::new(name, client, publisher, PLAN, Arc::clone(&shared));
        member.join().await;
        members.push(member);
    }

    // The killer: SIGKILL once each publisher got ACKS_BETWEEN more acks and every member
    // rejoined after the last restart, then start again.
    let killer = {
        let shared = Arc::clone(&shared);
        let dir = dir.path().to_path_buf();
        tokio::spawn(async move {
            let mut server = server;
            let mut kills = Vec::new();
            let end = Instant::now() + DEADLINE;
            let acked = |p: usize| shared.acked[p].load(Ordering::SeqCst) as u64;
            let mut marks = [0, 0];
            while kills.len() < RESTARTS && Instant::now() < end {
                sleep(Duration::from_millis(20)).await;
                let generation = shared.generation.load(Ordering::SeqCst);
                let rejoined = shared
                    .recovered
                    .iter()
                    .all(|g| generation == 0 || g.load(Ordering::SeqCst) >= generation);
                if !rejoined || (0..2).any(|p| acked(p) < marks[p] + ACKS_BETWEEN) {
                    continue;
                }
                server.kill_9().await.unwrap();
                kills.push((acked(0), acked(1)));
                shared.generation.fetch_add(1, Ordering::SeqCst);
                server = start(&dir, port).await;
                marks = [acked(0), acked(1)];
            }
            (server, kills)
        })
    };

    let tasks: Vec<_> = members.into_iter().map(|m| tokio::spawn(m.run())).collect();
    let mut members = Vec::new();
    for task in tasks {
        members.push(task.await.unwrap());
    }
    let (server, kills) = killer.await.unwrap();

    let stats: Vec<RoomStats> = members.iter().map(|m| m.client.stats()).collect();
    let recovered_in = shared.recovered_in.lock().unwrap().clone();
    let mut report = format!(
        "durable engine through kill -9 ({:.1} s, server-dev and client at their defaults): \
         kills at acks (A, C) {kills:?}",
        started.elapsed().as_secs_f64()
    );
    for ((m, s), recovered_in) in members.iter().zip(&stats).zip(&recovered_in) {
        report.push_str(&format!(
            "\n  {}, recovered:true after restarts {recovered_in:?}",
            m.report(s)
        ));
    }
    println!("{report}");

    assert_eq!(kills.len(), RESTARTS, "killed {RESTARTS} times mid-run");
    let every_restart: BTreeSet<usize> = (1..=RESTARTS).collect();
    for ((m, s), recovered_in) in members.iter().zip(&stats).zip(&recovered_in) {
        m.assert_complete(s);
        m.assert_delivered_once(s);
        m.assert_nothing_sent_twice(s);
        assert_eq!(
            m.rx.recovery_failures, 0,
            "{}: never recovered: false",
            m.name
        );
        assert!(
            every_restart.is_subset(recovered_in),
            "{}: recovered: true after each restart: {recovered_in:?}",
            m.name,
        );
    }
    drop(members);
    server.kill_9().await.unwrap();
}

#[tokio::test]
async fn a_resend_after_kill_9_is_acked_as_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), 0).await;
    let url = server.ws_url("/ws?name=ann");
    let mut a = ProtoClient::connect(&url).await.unwrap();
    let (session, _) = a.hello(None).await.unwrap();
    let ServerMsg::Joined { epoch, .. } = a.join("r", None).await.unwrap() else {
        unreachable!()
    };
    let publish = ClientMsg::Publish {
        room: "r".into(),
        id: 7,
        data: json!("x"),
    };
    a.send(&publish).await.unwrap();
    let ack = a
        .until(|m| matches!(m, ServerMsg::Ack { .. }))
        .await
        .unwrap();
    assert_eq!(
        ack,
        ServerMsg::Ack {
            id: 7,
            offset: 1,
            duplicate: false
        }
    );

    let port = server.port();
    server.kill_9().await.unwrap();
    let server = start(dir.path(), port).await;
    let mut a = ProtoClient::connect(&url).await.unwrap();
    let (_, resumed) = a.hello(Some(session)).await.unwrap();
    assert!(resumed, "the session is resumed");
    let since = Since { epoch, offset: 1 };
    let joined = a.join("r", Some(since)).await.unwrap();
    assert!(
        matches!(
            joined,
            ServerMsg::Joined {
                offset: 1,
                recovered: true,
                ..
            }
        ),
        "{joined:?}"
    );
    a.send(&publish).await.unwrap();
    a.send(&ClientMsg::Ping { id: 1 }).await.unwrap();
    let (_, before) = a
        .until_with_before(|m| matches!(m, ServerMsg::Pong { .. }))
        .await
        .unwrap();
    assert!(
        before.contains(&ServerMsg::Ack {
            id: 7,
            offset: 1,
            duplicate: true
        }),
        "{before:?}"
    );
    assert!(
        !before
            .iter()
            .any(|m| matches!(m, ServerMsg::Message { .. })),
        "not broadcast again: {before:?}"
    );
    server.kill_9().await.unwrap();
}
