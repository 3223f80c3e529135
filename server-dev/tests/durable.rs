//! The durable engine across `kill -9`: the real server-dev binary on a loopback port with
//! `--engine sqlite:<tempdir>/db`, and the native client, both at their default settings.
//! Covers:
//! - [x] two publishers (A and C) publish numbered messages; all three clients (A, B, C) are
//!   members of the room, B only receives
//! - [x] the server process is killed with SIGKILL (by its own pid) and started again on the
//!   same port and file 3 times while publishes are in flight
//! - [x] every publish is acknowledged once and none fails: an ack is only sent once the
//!   publish is on disk, so a publish acked by a killed server is in the file
//! - [x] every client receives every message of each publisher, in order, never twice; the
//!   server never broadcasts a resend again (the client drops nothing as duplicate or resend):
//!   dedupe state survives the restarts
//! - [x] after each restart every client's rejoin answers `recovered: true`, never false:
//!   epochs and offsets survive
//! - [x] a publish acked before a `kill -9` and sent again after it, in the resumed session, is
//!   acked as `duplicate` with its offset and not broadcast again (a raw protocol client, so
//!   that the resend is certain)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::{ClientMsg, ServerMsg, Since};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use ws_lifeline::machine::rooms::{PublishId, RoomError, RoomEvent, RoomStats, RoomsConfig};
use ws_lifeline::native::{Client, ClientEvent};
use ws_lifeline::{Config, Event};

const ROOM: &str = "durable";
const PUBLISHERS: [&str; 2] = ["A", "C"];
/// At the server's default 50 frames/s per connection, about 12 s of publishing each.
const PER_PUBLISHER: u64 = 600;
const RESTARTS: usize = 3;
/// Publishes each publisher gets acked between two kills, so each kill lands mid-run.
const ACKS_BETWEEN: u64 = 100;
/// Kept under the client's default `max_unacked`; at 50 frames/s they drain in 2 s.
const IN_FLIGHT: usize = 100;
/// Whole-test bound.
const DEADLINE: Duration = Duration::from_secs(150);

/// Starts the binary on `port` (0: any) with its file in `dir`; returns it and its port.
async fn start(dir: &std::path::Path, port: u16) -> (Child, u16) {
    let engine = format!("sqlite:{}", dir.join("db").display());
    // Right after a kill the port may still be held briefly: retry, bounded.
    for _ in 0..50 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_server-dev"))
            .args([
                "--port",
                &port.to_string(),
                "--no-auth",
                "--engine",
                &engine,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        let read = timeout(
            Duration::from_secs(10),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await;
        if let Ok(Ok(n)) = read
            && n > 0
            && let Some(port) = line
                .trim_end()
                .strip_prefix("server-dev listening on http://127.0.0.1:")
        {
            return (child, port.parse().unwrap());
        }
        kill(&mut child).await;
        sleep(Duration::from_millis(100)).await;
    }
    panic!("server-dev did not start on port {port}");
}

/// SIGKILL to this child's pid, then reaps it.
async fn kill(child: &mut Child) {
    child.start_kill().unwrap();
    timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("killed server exits")
        .unwrap();
}

#[derive(Debug, Default)]
struct Shared {
    /// Servers started after the first: a recovery is counted for the latest.
    generation: AtomicUsize,
    /// Acks per publisher.
    acked: [AtomicUsize; 2],
    /// Per member (A, B, C): the latest generation it saw `recovered: true` in.
    recovered: [AtomicUsize; 3],
    done_publishing: Mutex<[bool; 2]>,
}

struct Member {
    name: &'static str,
    index: usize,
    client: Client,
    publisher: Option<usize>,
    numbers: HashMap<PublishId, u64>,
    /// The last number delivered per publisher.
    last: [u64; 2],
    /// Server generations after whose start a `recovered: true` was seen.
    recovered_in: BTreeSet<usize>,
    not_recovered: u64,
}

impl Member {
    fn handle(&mut self, event: &ClientEvent, shared: &Shared) {
        match event {
            ClientEvent::Room(RoomEvent::PublishFailed { id, error, .. }) => {
                panic!("{}: publish {id} failed: {error}", self.name)
            }
            ClientEvent::Room(RoomEvent::Acked { id, .. }) => {
                if let (Some(p), Some(_)) = (self.publisher, self.numbers.remove(id)) {
                    shared.acked[p].fetch_add(1, Ordering::SeqCst);
                }
            }
            ClientEvent::Room(RoomEvent::Recovery { recovered, .. }) => {
                if *recovered {
                    let generation = shared.generation.load(Ordering::SeqCst);
                    self.recovered_in.insert(generation);
                    shared.recovered[self.index].fetch_max(generation, Ordering::SeqCst);
                } else {
                    self.not_recovered += 1;
                }
            }
            ClientEvent::Room(RoomEvent::Message(m)) => {
                let v = m.data.decode::<serde_json::Value>().unwrap();
                let p = PUBLISHERS.iter().position(|name| v["p"] == *name).unwrap();
                let n = v["n"].as_u64().unwrap();
                assert_eq!(
                    n,
                    self.last[p] + 1,
                    "{}: {} #{n} after #{}: in order, none missing, never twice",
                    self.name,
                    PUBLISHERS[p],
                    self.last[p]
                );
                self.last[p] = n;
            }
            ClientEvent::Connection(Event::Close(info)) => assert!(
                !ws_lifeline::machine::default_terminal(info.code),
                "{}: shut out with {}",
                self.name,
                info.code
            ),
            _ => {}
        }
    }

    fn done(&self) -> bool {
        self.last.iter().all(|&n| n == PER_PUBLISHER)
    }

    async fn join(&mut self, shared: &Shared) {
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

    /// Publishes this member's numbers, at most [`IN_FLIGHT`] unacked, then waits until all
    /// are acked and every message was received.
    async fn run(mut self, shared: Arc<Shared>) -> Self {
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
        while Instant::now() < end && (self.client.unacked() > 0 || !self.done()) {
            if let Ok(Some(e)) = timeout(Duration::from_millis(50), self.client.next_event()).await
            {
                self.handle(&e, &shared);
            }
        }
        if let Some(p) = self.publisher {
            shared.done_publishing.lock().unwrap()[p] = true;
        }
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acked_publish_and_clients_recover() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (server, port) = start(dir.path(), 0).await;
    let shared = Arc::new(Shared::default());
    let mut members = Vec::new();
    for (index, (name, publisher)) in [("A", Some(0)), ("B", None), ("C", Some(1))]
        .into_iter()
        .enumerate()
    {
        let url = format!("ws://127.0.0.1:{port}/ws?name={name}");
        let client = Client::connect(&url, Config::default(), RoomsConfig::default()).unwrap();
        let mut member = Member {
            name,
            index,
            client,
            publisher,
            numbers: HashMap::new(),
            last: [0; 2],
            recovered_in: BTreeSet::new(),
            not_recovered: 0,
        };
        member.join(&shared).await;
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
                kill(&mut server).await;
                kills.push((acked(0), acked(1)));
                shared.generation.fetch_add(1, Ordering::SeqCst);
                let (next, _) = start(&dir, port).await;
                server = next;
                marks = [acked(0), acked(1)];
            }
            (server, kills)
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
    let (mut server, kills) = killer.await.unwrap();

    let stats: Vec<RoomStats> = members.iter().map(|m| m.client.stats()).collect();
    let mut report = format!(
        "durable engine through kill -9 ({:.1} s, server-dev and client at their defaults): \
         kills at acks (A, C) {kills:?}",
        started.elapsed().as_secs_f64()
    );
    for (m, s) in members.iter().zip(&stats) {
        report.push_str(&format!(
            "\n  {}: published {} (resent {}), acked {} (duplicate acks {}), delivered {}, \
             duplicates dropped {}, resends dropped {}, recovered:true after restarts {:?}, \
             recovered:false {}, reconnects {}",
            m.name,
            s.published,
            s.resent,
            s.acked,
            s.duplicate_acks,
            s.delivered,
            s.duplicates_dropped,
            s.resends_dropped,
            m.recovered_in,
            m.not_recovered,
            s.opens.saturating_sub(1),
        ));
    }
    println!("{report}");

    assert_eq!(kills.len(), RESTARTS, "killed {RESTARTS} times mid-run");
    let every_restart: BTreeSet<usize> = (1..=RESTARTS).collect();
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
        assert!(m.done(), "{}: received everything: {:?}", m.name, m.last);
        assert_eq!(
            s.delivered,
            PER_PUBLISHER * 2,
            "{}: each message once",
            m.name
        );
        assert_eq!(
            (s.duplicates_dropped, s.resends_dropped),
            (0, 0),
            "{}: the server sent nothing twice",
            m.name
        );
        assert_eq!(m.not_recovered, 0, "{}: never recovered: false", m.name);
        assert!(
            every_restart.is_subset(&m.recovered_in),
            "{}: recovered: true after each restart: {:?}",
            m.name,
            m.recovered_in
        );
    }
    drop(members);
    kill(&mut server).await;
}

#[tokio::test]
async fn a_resend_after_kill_9_is_acked_as_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port) = start(dir.path(), 0).await;
    let url = format!("ws://127.0.0.1:{port}/ws?name=ann");
    let mut a = common::Client::from_ws(common::try_connect(&url, None).await.unwrap());
    let (session, _) = a.hello(None).await;
    let ServerMsg::Joined { epoch, .. } = a.join("r").await else {
        unreachable!()
    };
    let publish = ClientMsg::Publish {
        room: "r".into(),
        id: 7,
        data: json!("x"),
    };
    a.send(&publish).await;
    let (ack, _) = a.until(|m| matches!(m, ServerMsg::Ack { .. })).await;
    assert_eq!(
        ack,
        ServerMsg::Ack {
            id: 7,
            offset: 1,
            duplicate: false
        }
    );

    kill(&mut server).await;
    let (mut server, _) = start(dir.path(), port).await;
    let mut a = common::Client::from_ws(common::try_connect(&url, None).await.unwrap());
    assert!(a.hello(Some(session)).await.1, "the session is resumed");
    a.send(&ClientMsg::Join {
        room: "r".into(),
        since: Some(Since { epoch, offset: 1 }),
    })
    .await;
    let (joined, _) = a.until(|m| matches!(m, ServerMsg::Joined { .. })).await;
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
    a.send(&publish).await;
    a.send(&ClientMsg::Ping { id: 1 }).await;
    let (_, before) = a.until(|m| matches!(m, ServerMsg::Pong { .. })).await;
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
    kill(&mut server).await;
}
