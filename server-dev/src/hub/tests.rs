//! The hub's rules, run against every engine: each rule test below takes the engine's
//! constructor, and [`against_every_engine!`] makes one `#[test]` of it per engine, as
//! `memory::NAME` and `sqlite::NAME`.

use crate::engine::memory::Hist;
use crate::engine::{Bounds, Engine};
use crate::hub::*;

/// Makes an engine for a hub with `config`.
type NewEngine = fn(&Config) -> Box<dyn Engine>;

/// The engines every rule test runs against.
mod engines {
    use super::*;

    pub(super) fn memory(config: &Config) -> Box<dyn Engine> {
        Box::new(crate::engine::memory::MemoryEngine::new(Bounds::new(
            config,
        )))
    }

    /// An in-memory SQLite database: the engine's statements and rules, without a file (what
    /// the file keeps across a restart is tested in `engine/sqlite.rs` and in the cross-crate
    /// test `tests/tests/durable.rs`).
    pub(super) fn sqlite(config: &Config) -> Box<dyn Engine> {
        let path = std::path::Path::new(":memory:");
        let engine =
            crate::engine::sqlite::SqliteEngine::open(path, Bounds::new(config), Instant::now());
        Box::new(engine.unwrap())
    }

    /// A Redis engine on a private redis-server of its own, stopped with the engine.
    pub(super) fn redis(config: &Config) -> Box<dyn Engine> {
        let server = crate::engine::redis::test_server::TestRedis::start();
        let engine = crate::engine::redis::RedisEngine::open(&server.url, Bounds::new(config));
        Box::new(engine.unwrap().keeping(Box::new(server)))
    }

    /// Whether the test of `engine` cannot run here (and says so).
    pub(super) fn missing(engine: &str) -> bool {
        engine == "redis" && !crate::engine::redis::test_server::installed("the redis hub tests")
    }
}

/// For each engine of `engines`, a module of that name with one `#[test]` per rule test of
/// `tests`, which calls the rule test with the engine's constructor.
macro_rules! against_every_engine {
    (engines: [$($engine:ident),* $(,)?], tests: $tests:tt $(,)?) => {
        $(against_every_engine!(@one $engine, $tests);)*
    };
    (@one $engine:ident, [$($test:ident),* $(,)?]) => {
        mod $engine {
            $(
                #[test]
                fn $test() {
                    if super::engines::missing(stringify!($engine)) {
                        return;
                    }
                    super::$test(super::engines::$engine)
                }
            )*
        }
    };
}

against_every_engine! {
    engines: [memory, sqlite],
    tests: [
        offsets_history_and_recovery,
        welcome_advertises_the_limits,
        publisher_and_publish_id_ride_on_live_and_replayed_messages,
        another_epoch_replays_the_whole_retained_history,
        history_bytes_are_bounded_per_room_and_across_rooms,
        the_global_fifo_stays_compact_when_rooms_evict_by_count,
        session_churn_stays_under_the_cap,
        a_session_abandoned_by_hello_expires_and_empty_ones_go_first,
        the_dedupe_budget_forgets_detached_sessions_never_attached_ones,
        room_list_pushes_wait_for_the_interval_and_the_latest_wins,
        list_rooms_spam_holds_one_snapshot_among_ten_thousand_rooms,
        full_queue_evicts_with_1013_and_room_goes_on,
        the_queue_byte_budget_of_a_connection_evicts_with_1013,
        the_server_wide_queue_budget_closes_the_biggest_queue_not_a_joiners_replay,
        an_item_above_its_connections_budget_closes_that_connection_only,
        dedupe_survives_resume,
        empty_room_keeps_history_until_it_expires,
        room_list_and_presence_are_coalesced_for_a_lagging_peer,
        sessions_expire_after_their_ttl_and_are_bounded,
    ],
}

// The Redis engine keeps its tables in Redis with real-time TTLs and forgets a room here once
// no member here is left: the rule tests that look inside the memory tables, count sessions
// against the in-process caps or expire on virtual time are not about it. The rest run on a
// private redis-server each.
against_every_engine! {
    engines: [redis],
    tests: [
        offsets_history_and_recovery,
        welcome_advertises_the_limits,
        publisher_and_publish_id_ride_on_live_and_replayed_messages,
        another_epoch_replays_the_whole_retained_history,
        room_list_pushes_wait_for_the_interval_and_the_latest_wins,
        list_rooms_spam_holds_one_snapshot_among_ten_thousand_rooms,
        full_queue_evicts_with_1013_and_room_goes_on,
        the_queue_byte_budget_of_a_connection_evicts_with_1013,
        the_server_wide_queue_budget_closes_the_biggest_queue_not_a_joiners_replay,
        an_item_above_its_connections_budget_closes_that_connection_only,
        dedupe_survives_resume,
        room_list_and_presence_are_coalesced_for_a_lagging_peer,
    ],
}

fn hub(engine: NewEngine, config: Config) -> Hub {
    Hub::with_engine(&config, engine(&config)).inline_sync()
}

fn drain_reg(hub: &Hub, reg: &mut Registration) -> Vec<ServerMsg> {
    let mut out = Vec::new();
    while let Ok(item) = reg.rx.try_recv() {
        let frames = hub.resolve(&reg.peer, item);
        for f in frames {
            out.push(serde_json::from_str(f.as_str()).unwrap());
        }
    }
    out
}

fn offsets_history_and_recovery(engine: NewEngine) {
    let hub = hub(
        engine,
        Config::default().history(3, Duration::from_secs(60)),
    );
    let mut a = hub.register("a".into());
    hub.join(a.peer.id, "r".into(), None);
    let joined = drain_reg(&hub, &mut a);
    let ServerMsg::Joined {
        epoch,
        offset: 0,
        recovered: true,
        ..
    } = &joined[0]
    else {
        panic!("{joined:?}")
    };
    for i in 1..=5 {
        hub.publish(a.peer.id, "r".into(), i, serde_json::json!(i));
    }
    let msgs = drain_reg(&hub, &mut a);
    assert_eq!(offsets(&msgs), vec![1, 2, 3, 4, 5]);

    let mut b = hub.register("b".into());
    let since = |offset| {
        Some(Since {
            epoch: epoch.clone(),
            offset,
        })
    };
    // History holds 3..=5: a gap after 2 can be filled, one after 1 cannot.
    hub.join(b.peer.id, "r".into(), since(2));
    let got = drain_reg(&hub, &mut b);
    assert!(matches!(
        got[0],
        ServerMsg::Joined {
            recovered: true,
            offset: 5,
            ..
        }
    ));
    let replayed: Vec<u64> = got
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Message { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect();
    assert_eq!(replayed, vec![3, 4, 5]);
    hub.join(b.peer.id, "r".into(), since(1));
    let got = drain_reg(&hub, &mut b);
    assert!(matches!(
        got[0],
        ServerMsg::Joined {
            recovered: false,
            ..
        }
    ));
    assert_eq!(got.len(), 1, "nothing partial: {got:?}");
    // Another epoch: not recovered, and what is retained of this epoch (3..=5) follows.
    hub.join(
        b.peer.id,
        "r".into(),
        Some(Since {
            epoch: "other".into(),
            offset: 5,
        }),
    );
    let got = drain_reg(&hub, &mut b);
    assert!(matches!(
        got[0],
        ServerMsg::Joined {
            recovered: false,
            offset: 5,
            resume_after: Some(2),
            ..
        }
    ));
    assert_eq!(offsets(&got), vec![3, 4, 5]);
}

fn offsets(msgs: &[ServerMsg]) -> Vec<u64> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Message { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect()
}

fn welcome_advertises_the_limits(engine: NewEngine) {
    let config = Config::default()
        .rate_limit(12.9, 30.5)
        .max_message_size(1000)
        .dedupe_ids(77);
    let hub = hub(engine, config);
    let mut a = hub.register("a".into());
    hub.hello(a.peer.id, None, None);
    let got = drain_reg(&hub, &mut a);
    let ServerMsg::Welcome { limits, .. } = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(
        limits.as_ref(),
        Some(&protocol::Limits {
            max_message_bytes: 1000,
            rate_per_sec: 12,
            rate_burst: 30,
            dedupe_window: 77,
        })
    );
    assert_eq!(
        (whole(-1.0), whole(f64::NAN), whole(1e20)),
        (0, 0, u32::MAX)
    );
}

fn publisher_and_publish_id_ride_on_live_and_replayed_messages(engine: NewEngine) {
    let hub = hub(engine, Config::default());
    let mut a = hub.register("a".into());
    hub.hello(a.peer.id, None, Some("pub-0123456789".into()));
    hub.join(a.peer.id, "r".into(), None);
    let got = drain_reg(&hub, &mut a);
    let ServerMsg::Joined { epoch, .. } = &got[1] else {
        panic!("{got:?}")
    };
    let epoch = epoch.clone();
    hub.publish(a.peer.id, "r".into(), 41, serde_json::json!("x"));
    let live = drain_reg(&hub, &mut a);
    let stamped = |m: &ServerMsg| {
        matches!(m, ServerMsg::Message { publisher: Some(p), id: Some(41), .. }
            if p == "pub-0123456789")
    };
    assert!(live.iter().any(stamped), "{live:?}");

    let mut b = hub.register("b".into());
    let since = Since { epoch, offset: 0 };
    hub.join(b.peer.id, "r".into(), Some(since));
    let replay = drain_reg(&hub, &mut b);
    assert!(replay.iter().any(stamped), "{replay:?}");

    // An invalid id is refused; the connection goes on, publishing without one.
    let mut c = hub.register("c".into());
    hub.hello(c.peer.id, None, Some("short".into()));
    let got = drain_reg(&hub, &mut c);
    assert!(matches!(
        got[0],
        ServerMsg::Error {
            code: ErrorCode::InvalidPublisher,
            ..
        }
    ));
    assert!(matches!(got[1], ServerMsg::Welcome { .. }));
    hub.join(c.peer.id, "r".into(), None);
    hub.publish(c.peer.id, "r".into(), 1, serde_json::json!("y"));
    let got = drain_reg(&hub, &mut c);
    assert!(got.iter().any(|m| matches!(
        m,
        ServerMsg::Message {
            publisher: None,
            id: None,
            offset: 2,
            ..
        }
    )));
}

fn another_epoch_replays_the_whole_retained_history(engine: NewEngine) {
    let hub = hub(engine, Config::default());
    let mut a = hub.register("a".into());
    hub.join(a.peer.id, "fresh".into(), None);
    hub.publish(a.peer.id, "fresh".into(), 1, serde_json::json!(1));
    hub.publish(a.peer.id, "fresh".into(), 2, serde_json::json!(2));
    drain_reg(&hub, &mut a);
    let mut b = hub.register("b".into());
    let old = Since {
        epoch: "from-before-a-restart".into(),
        offset: 9,
    };
    hub.join(b.peer.id, "fresh".into(), Some(old.clone()));
    let got = drain_reg(&hub, &mut b);
    assert!(
        matches!(
            got[0],
            ServerMsg::Joined {
                recovered: false,
                offset: 2,
                resume_after: Some(0),
                ..
            }
        ),
        "{got:?}"
    );
    assert_eq!(offsets(&got), vec![1, 2]);
    // A new room: nothing to replay, resume from 0.
    hub.join(b.peer.id, "empty".into(), Some(old));
    let got = drain_reg(&hub, &mut b);
    assert!(matches!(
        got[0],
        ServerMsg::Joined {
            recovered: false,
            offset: 0,
            resume_after: Some(0),
            ..
        }
    ));
    assert_eq!(offsets(&got), Vec::<u64>::new());
}

/// The ledger agrees with the rooms it accounts for.
fn check_ledger(hub: &Hub) -> (usize, usize) {
    let state = hub.lock();
    let state = state.engine.tables();
    let bytes: usize = state.rooms.values().map(|r| r.history_bytes).sum();
    let costs: usize = state
        .rooms
        .values()
        .flat_map(|r| r.history.iter().map(Hist::cost))
        .sum();
    let entries: usize = state.rooms.values().map(|r| r.history.len()).sum();
    assert_eq!((bytes, costs), (state.history.bytes, state.history.bytes));
    assert_eq!(entries, state.history.entries);
    assert!(state.history.fifo.len() <= 2 * entries + 1024 + 1);
    (state.history.bytes, state.history.fifo.len())
}

fn history_bytes_are_bounded_per_room_and_across_rooms(engine: NewEngine) {
    // 1 KiB messages: a room keeps about 8, the hub about 32 across rooms.
    let hub = hub(engine, Config::default().history_bytes(8 * 1024, 32 * 1024));
    let pad = "p".repeat(1000);
    let mut a = hub.register("a".into());
    let rooms: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let mut epoch0 = String::new();
    for room in &rooms {
        hub.join(a.peer.id, room.clone(), None);
        if let ServerMsg::Joined { epoch, .. } = &drain_reg(&hub, &mut a)[0]
            && room == "r0"
        {
            epoch0 = epoch.clone();
        }
    }
    let mut id = 0;
    for _ in 0..20 {
        for room in &rooms {
            id += 1;
            hub.publish(a.peer.id, room.clone(), id, serde_json::json!(pad));
            let (bytes, _) = check_ledger(&hub);
            assert!(bytes <= 32 * 1024, "{bytes}");
        }
        drain_reg(&hub, &mut a);
    }
    {
        let state = hub.lock();
        let state = state.engine.tables();
        assert!(state.rooms.values().all(|r| r.history_bytes <= 8 * 1024));
        assert!(state.history.peak_bytes <= 32 * 1024);
        assert!(state.history.entries >= 20, "the budget is used");
    }
    // Evicted by the budget: a same-epoch gap from the start is not recovered.
    let mut b = hub.register("b".into());
    let since = Since {
        epoch: epoch0,
        offset: 0,
    };
    hub.join(b.peer.id, "r0".into(), Some(since));
    let got = drain_reg(&hub, &mut b);
    assert!(matches!(
        got[0],
        ServerMsg::Joined {
            recovered: false,
            resume_after: None,
            ..
        }
    ));
    assert_eq!(offsets(&got), Vec::<u64>::new());
    // Rooms dropped with history: their bytes leave the ledger.
    hub.disconnect(a.peer.id);
    hub.disconnect(b.peer.id);
    hub.sweep_at(Instant::now() + Duration::from_secs(3600));
    assert_eq!(check_ledger(&hub), (0, 0));
    assert!(hub.lock().rooms.is_empty());
}

fn the_global_fifo_stays_compact_when_rooms_evict_by_count(engine: NewEngine) {
    // Count eviction in a busy room leaves stale FIFO entries behind a quiet room's.
    let hub = hub(
        engine,
        Config::default().history(2, Duration::from_secs(600)),
    );
    let mut a = hub.register("a".into());
    hub.join(a.peer.id, "quiet".into(), None);
    hub.join(a.peer.id, "busy".into(), None);
    hub.publish(a.peer.id, "quiet".into(), 1, serde_json::json!(0));
    for id in 2..20_000 {
        hub.publish(a.peer.id, "busy".into(), id, serde_json::json!(id));
        if id % 100 == 0 {
            drain_reg(&hub, &mut a);
        }
    }
    let (_, fifo) = check_ledger(&hub);
    assert!(fifo <= 2 * 3 + 1024 + 1, "{fifo}");
    assert_eq!(hub.lock().engine.tables().rooms["quiet"].history.len(), 1);
}

fn welcome_session(got: &[ServerMsg]) -> String {
    got.iter()
        .find_map(|m| match m {
            ServerMsg::Welcome { session, .. } => Some(session.clone()),
            _ => None,
        })
        .expect("welcome")
}

fn session_churn_stays_under_the_cap(engine: NewEngine) {
    // Default cap (10 000) and TTL: 20 000 churns, half of them by switching sessions.
    let config = Config::default();
    let cap = config.max_sessions;
    let hub = hub(engine, config);
    let mut keep = hub.register("keeper".into());
    hub.hello(keep.peer.id, None, None);
    let kept = welcome_session(&drain_reg(&hub, &mut keep));
    // The well-behaved client: a member of the churners' room, served all along.
    hub.join(keep.peer.id, "r".into(), None);
    drain_reg(&hub, &mut keep);
    let mut delivered = 0;
    for i in 0..20_000u64 {
        let mut c = hub.register(format!("c{i}"));
        hub.hello(c.peer.id, None, None);
        hub.join(c.peer.id, "r".into(), None);
        hub.publish(c.peer.id, "r".into(), 1, serde_json::json!(i));
        if i % 2 == 0 {
            // Abandons a session with dedupe state for another one.
            hub.hello(c.peer.id, Some(kept.clone()), None);
        }
        drain_reg(&hub, &mut c);
        hub.disconnect(c.peer.id);
        delivered += drain_reg(&hub, &mut keep)
            .iter()
            .filter(|m| matches!(m, ServerMsg::Message { .. }))
            .count();
        let n = hub.lock().engine.tables().sessions.len();
        assert!(n <= cap + 1, "{n} sessions after {i} churns");
    }
    assert_eq!(delivered, 20_000, "the keeper got every churner's message");
    let memory = hub.memory();
    eprintln!("hub session churn (20 000): {memory:?}");
    let recount: usize = hub
        .lock()
        .engine
        .tables()
        .sessions
        .values()
        .filter_map(|s| s.dedupe.as_ref())
        .map(|d| d.ids.len())
        .sum();
    assert_eq!(memory.dedupe_entries, recount, "the counter agrees");
    assert!(memory.sessions_peak <= cap + 1, "{memory:?}");
    assert!(memory.dedupe_entries <= cap + 1, "{memory:?}");
    // Detached entries are compacted too.
    let state = hub.lock();
    let state = state.engine.tables();
    let queued = state.detached.empty.len() + state.detached.full.len();
    assert!(queued <= 2 * state.sessions.len() + 65, "{queued}");
}

fn a_session_abandoned_by_hello_expires_and_empty_ones_go_first(engine: NewEngine) {
    let ttl = Duration::from_secs(60);
    let hub = hub(engine, Config::default().sessions(ttl, 3));
    let t0 = Instant::now();
    let mut a = hub.register("a".into());
    hub.hello(a.peer.id, None, None);
    let first = welcome_session(&drain_reg(&hub, &mut a));
    hub.join(a.peer.id, "r".into(), None);
    hub.publish(a.peer.id, "r".into(), 1, serde_json::json!(1));
    // A second connection's session, then `a` switches to it: `first` is abandoned.
    let mut b = hub.register("b".into());
    hub.hello(b.peer.id, None, None);
    let second = welcome_session(&drain_reg(&hub, &mut b));
    hub.hello(a.peer.id, Some(second.clone()), None);
    let key = |s: &str| SessionId::parse(s).unwrap();
    {
        let state = hub.lock();
        let state = state.engine.tables();
        let abandoned = &state.sessions[&key(&first)];
        assert_eq!(abandoned.attached, 0);
        assert!(abandoned.detached_at.is_some(), "its TTL runs");
    }
    hub.sweep_at(t0 + ttl + Duration::from_secs(1));
    assert!(
        !hub.lock()
            .engine
            .tables()
            .sessions
            .contains_key(&key(&first)),
        "expired"
    );
    assert!(
        hub.lock()
            .engine
            .tables()
            .sessions
            .contains_key(&key(&second)),
        "attached"
    );

    // At the cap, a detached empty session goes before an older one with dedupe state.
    hub.publish(a.peer.id, "r".into(), 2, serde_json::json!(2));
    hub.disconnect(a.peer.id);
    hub.disconnect(b.peer.id);
    let c = hub.register("c".into());
    hub.disconnect(c.peer.id);
    assert_eq!(hub.lock().engine.tables().sessions.len(), 2);
    let _d = hub.register("d".into());
    let _e = hub.register("e".into());
    let state = hub.lock();
    let state = state.engine.tables();
    assert_eq!(state.sessions.len(), 3);
    assert!(
        state.sessions.contains_key(&key(&second)),
        "dedupe state kept"
    );
}

fn the_dedupe_budget_forgets_detached_sessions_never_attached_ones(engine: NewEngine) {
    let hub = hub(engine, Config::default().max_dedupe_entries(10));
    let mut a = hub.register("a".into());
    hub.hello(a.peer.id, None, None);
    let first = welcome_session(&drain_reg(&hub, &mut a));
    hub.join(a.peer.id, "r".into(), None);
    for id in 1..=8 {
        hub.publish(a.peer.id, "r".into(), id, serde_json::json!(id));
    }
    hub.disconnect(a.peer.id);
    assert_eq!(hub.memory().dedupe_entries, 8);
    let mut b = hub.register("b".into());
    hub.join(b.peer.id, "r".into(), None);
    for id in 1..=8 {
        hub.publish(b.peer.id, "r".into(), id, serde_json::json!(id));
    }
    // 16 > 10: the detached session goes, with its 8 ids.
    assert_eq!(hub.memory().dedupe_entries, 8);
    let key = SessionId::parse(&first).unwrap();
    assert!(!hub.lock().engine.tables().sessions.contains_key(&key));
    // An attached session alone may pass the budget; it is not forgotten under its user.
    for id in 9..=13 {
        hub.publish(b.peer.id, "r".into(), id, serde_json::json!(id));
    }
    assert_eq!(hub.memory().dedupe_entries, 13);
    hub.publish(b.peer.id, "r".into(), 13, serde_json::json!(13));
    let got = drain_reg(&hub, &mut b);
    assert!(got.contains(&ServerMsg::Ack {
        id: 13,
        offset: 21,
        duplicate: true
    }));
}

fn rooms_msgs(msgs: &[ServerMsg]) -> Vec<&Vec<RoomInfo>> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Rooms { rooms } => Some(rooms),
            _ => None,
        })
        .collect()
}

fn room_list_pushes_wait_for_the_interval_and_the_latest_wins(engine: NewEngine) {
    // An hour: however slow the machine, the joins below fall inside one interval.
    let hour = Duration::from_secs(3600);
    let hub = hub(engine, Config::default().rooms_push_interval(hour));
    let mut watcher = hub.register("w".into());
    // The first change is pushed at once.
    let mut others = Vec::new();
    let joiner = hub.register("j0".into());
    hub.join(joiner.peer.id, "a".into(), None);
    others.push(joiner);
    assert_eq!(rooms_msgs(&drain_reg(&hub, &mut watcher)).len(), 1);
    // Changes within the interval wait, then leave as one push of the latest list.
    for i in 1..=5 {
        let j = hub.register(format!("j{i}"));
        hub.join(j.peer.id, format!("b{i}"), None);
        others.push(j);
    }
    assert_eq!(rooms_msgs(&drain_reg(&hub, &mut watcher)).len(), 0);
    hub.tick_rooms_at(Instant::now() + hour);
    let got = drain_reg(&hub, &mut watcher);
    let lists = rooms_msgs(&got);
    assert_eq!(lists.len(), 1, "{got:?}");
    assert_eq!(lists[0].len(), 6);
    // Nothing changed: the tick pushes nothing.
    hub.tick_rooms_at(Instant::now() + 3 * hour);
    assert!(drain_reg(&hub, &mut watcher).is_empty());
    // A change whose push waits: `list_rooms` still answers with the current list.
    let j = hub.register("j6".into());
    hub.join(j.peer.id, "c".into(), None);
    others.push(j);
    hub.list_rooms(watcher.peer.id);
    let got = drain_reg(&hub, &mut watcher);
    assert_eq!(rooms_msgs(&got).len(), 1, "{got:?}");
    assert_eq!(rooms_msgs(&got)[0].len(), 7);
}

fn list_rooms_spam_holds_one_snapshot_among_ten_thousand_rooms(engine: NewEngine) {
    // 100 rooms per connection: the per-connection room cap is not what is tested.
    let hub = hub(engine, Config::default().max_rooms_per_conn(100));
    let mut members = Vec::new();
    for c in 0..100 {
        let mut m = hub.register(format!("m{c}"));
        for r in 0..100 {
            hub.join(m.peer.id, format!("room-{c:03}-{r:03}"), None);
        }
        drain_reg(&hub, &mut m);
        members.push(m);
    }
    hub.tick_rooms_at(Instant::now() + Duration::from_secs(2));
    let mut spammer = hub.register("spam".into());
    let encodes = hub.lock().rooms_encodes;
    for _ in 0..10_000 {
        hub.list_rooms(spammer.peer.id);
    }
    assert_eq!(
        hub.lock().rooms_encodes,
        encodes,
        "encoded once per change, not per ask"
    );
    let memory = hub.memory();
    eprintln!("hub list_rooms spam (10 000 rooms): {memory:?}");
    assert_eq!(memory.rooms_held, 10_000);
    let list = memory.room_list_bytes;
    assert!(list > 300_000, "{memory:?}");
    // Every connection holds at most the one shared snapshot, never a copy per request.
    assert!(memory.queued_items <= 101, "{memory:?}");
    // Snapshots only: held once by the hub, none by the queues.
    assert_eq!(memory.queued_bytes, 0, "{memory:?}");
    assert!(spammer.peer.kick().is_none(), "not a slow consumer");
    let got = drain_reg(&hub, &mut spammer);
    assert_eq!(rooms_msgs(&got).len(), 1);
    assert_eq!(rooms_msgs(&got)[0].len(), 10_000);
    for m in &mut members {
        drain_reg(&hub, m);
    }
    assert_eq!(hub.memory().queued_items, 0);
}

fn full_queue_evicts_with_1013_and_room_goes_on(engine: NewEngine) {
    let hub = hub(engine, Config::default().queue_capacity(4));
    let mut fast = hub.register("fast".into());
    let slow = hub.register("slow".into());
    hub.join(fast.peer.id, "r".into(), None);
    drain_reg(&hub, &mut fast);
    hub.join(slow.peer.id, "r".into(), None);
    drain_reg(&hub, &mut fast);
    // slow never drains; fast does after each publish.
    for i in 1..=5 {
        hub.publish(fast.peer.id, "r".into(), i, serde_json::json!(i));
        drain_reg(&hub, &mut fast);
    }
    assert_eq!(slow.peer.kick(), Some(Kick::Close(close::TRY_AGAIN_LATER)));
    assert_eq!(hub.lock().rooms["r"].members.len(), 1);
    hub.publish(fast.peer.id, "r".into(), 6, serde_json::json!(6));
    let got = drain_reg(&hub, &mut fast);
    assert!(
        got.iter()
            .any(|m| matches!(m, ServerMsg::Message { offset: 6, .. }))
    );
}

/// Publishes `n` messages of about `len` bytes to `room` from `from`, draining `from`.
fn publish_padded(
    hub: &Hub,
    from: &mut Registration,
    room: &str,
    first_id: u64,
    n: u64,
    len: usize,
) {
    let pad = "p".repeat(len);
    for id in first_id..first_id + n {
        hub.publish(from.peer.id, room.into(), id, serde_json::json!(pad));
        drain_reg(hub, from);
    }
}

fn the_queue_byte_budget_of_a_connection_evicts_with_1013(engine: NewEngine) {
    // The budget under test: 10 000 bytes, three 3 KB messages and not four.
    let hub = hub(engine, Config::default().queue_bytes(10_000, 1 << 20));
    let mut fast = hub.register("fast".into());
    let slow = hub.register("slow".into());
    hub.join(slow.peer.id, "r".into(), None);
    hub.join(fast.peer.id, "r".into(), None);
    drain_reg(&hub, &mut fast);
    let before = hub.memory();
    assert_eq!(
        before.queued_bytes,
        slow.peer.tx.queued_bytes(),
        "{before:?}"
    );
    publish_padded(&hub, &mut fast, "r", 1, 3, 3_000);
    assert!(slow.peer.kick().is_none());
    let memory = hub.memory();
    assert!(
        memory.queued_bytes > 9_000 && memory.queued_bytes <= 10_000,
        "{memory:?}"
    );
    assert_eq!(memory.queued_bytes_conn_max, memory.queued_bytes);
    publish_padded(&hub, &mut fast, "r", 4, 1, 3_000);
    assert_eq!(slow.peer.kick(), Some(Kick::Close(close::TRY_AGAIN_LATER)));
    // Closed without writing its queue: what it held counts no more, the room goes on.
    let memory = hub.memory();
    assert_eq!(memory.queued_bytes, 0, "{memory:?}");
    assert_eq!(hub.lock().rooms["r"].members.len(), 1);
    publish_padded(&hub, &mut fast, "r", 5, 1, 10);
}

fn the_server_wide_queue_budget_closes_the_biggest_queue_not_a_joiners_replay(engine: NewEngine) {
    // The budgets under test: 100 000 bytes per connection, 150 000 across them.
    let (per_conn, total) = (100_000, 150_000);
    let hub = hub(engine, Config::default().queue_bytes(per_conn, total));
    let mut publisher = hub.register("publisher".into());
    for room in ["a", "b", "c"] {
        hub.join(publisher.peer.id, room.into(), None);
    }
    drain_reg(&hub, &mut publisher);
    // Room c gets about 60 KB of history, for the joiner's replay.
    publish_padded(&hub, &mut publisher, "c", 1, 6, 10_000);
    // The hog reads nothing of room a (about 80 KB); the small one little of room b.
    let hog = hub.register("hog".into());
    let small = hub.register("small".into());
    hub.join(hog.peer.id, "a".into(), None);
    hub.join(small.peer.id, "b".into(), None);
    publish_padded(&hub, &mut publisher, "a", 7, 8, 10_000);
    publish_padded(&hub, &mut publisher, "b", 15, 1, 10_000);
    assert!(hog.peer.kick().is_none() && small.peer.kick().is_none());
    let before = hub.memory();
    assert!(before.queued_bytes > 90_000, "{before:?}");

    // The joiner's replay alone fits its budget, and would pass the server's: the hog goes.
    let mut joiner = hub.register("joiner".into());
    let since = Since {
        epoch: "another".into(),
        offset: 0,
    };
    hub.join(joiner.peer.id, "c".into(), Some(since));
    assert_eq!(hog.peer.kick(), Some(Kick::Close(close::TRY_AGAIN_LATER)));
    assert!(small.peer.kick().is_none() && joiner.peer.kick().is_none());
    let memory = hub.memory();
    assert!(memory.queued_bytes <= total, "{memory:?}");
    assert!(memory.queued_bytes_peak <= total, "{memory:?}");
    let replay = drain_reg(&hub, &mut joiner);
    let replayed = replay
        .iter()
        .filter(|m| matches!(m, ServerMsg::Message { .. }))
        .count();
    assert_eq!(replayed, 6, "the whole replay");

    // Without a replay, the biggest queue goes, also when it is the one offered to: small
    // (10 KB ahead) and the joiner read nothing of room b; eight more pass 150 000 together.
    hub.join(joiner.peer.id, "b".into(), None);
    drain_reg(&hub, &mut joiner);
    publish_padded(&hub, &mut publisher, "b", 16, 8, 10_000);
    assert_eq!(small.peer.kick(), Some(Kick::Close(close::TRY_AGAIN_LATER)));
    assert!(joiner.peer.kick().is_none());
    let memory = hub.memory();
    assert!(memory.queued_bytes_peak <= total, "{memory:?}");
    assert_eq!(
        memory.queued_bytes,
        joiner.peer.tx.queued_bytes(),
        "{memory:?}"
    );
}

fn an_item_above_its_connections_budget_closes_that_connection_only(engine: NewEngine) {
    // The budgets under test: 50 000 bytes per connection, 60 000 across them.
    let hub = hub(engine, Config::default().queue_bytes(50_000, 60_000));
    let mut publisher = hub.register("publisher".into());
    hub.join(publisher.peer.id, "a".into(), None);
    hub.join(publisher.peer.id, "big".into(), None);
    drain_reg(&hub, &mut publisher);
    publish_padded(&hub, &mut publisher, "big", 1, 6, 10_000);
    let hog = hub.register("hog".into());
    hub.join(hog.peer.id, "a".into(), None);
    publish_padded(&hub, &mut publisher, "a", 7, 4, 10_000);
    // A 60 KB replay fits neither budget: only its joiner goes, the hog stays.
    let joiner = hub.register("joiner".into());
    let since = Since {
        epoch: "another".into(),
        offset: 0,
    };
    hub.join(joiner.peer.id, "big".into(), Some(since));
    assert_eq!(
        joiner.peer.kick(),
        Some(Kick::Close(close::TRY_AGAIN_LATER))
    );
    assert!(hog.peer.kick().is_none());
    assert_eq!(hub.memory().queued_bytes, hog.peer.tx.queued_bytes());
}

fn dedupe_survives_resume(engine: NewEngine) {
    let hub = hub(engine, Config::default());
    let mut a = hub.register("a".into());
    hub.hello(a.peer.id, None, None);
    let ServerMsg::Welcome {
        session,
        resumed: false,
        ..
    } = drain_reg(&hub, &mut a).remove(0)
    else {
        panic!()
    };
    hub.join(a.peer.id, "r".into(), None);
    hub.publish(a.peer.id, "r".into(), 7, serde_json::json!("x"));
    hub.disconnect(a.peer.id);
    let mut a2 = hub.register("a".into());
    hub.hello(a2.peer.id, Some(session.clone()), None);
    hub.join(a2.peer.id, "r".into(), None);
    hub.publish(a2.peer.id, "r".into(), 7, serde_json::json!("x"));
    let got = drain_reg(&hub, &mut a2);
    assert!(
        matches!(&got[0], ServerMsg::Welcome { resumed: true, session: s, .. } if *s == session)
    );
    assert!(got.contains(&ServerMsg::Ack {
        id: 7,
        offset: 1,
        duplicate: true
    }));
    assert!(!got.iter().any(|m| matches!(m, ServerMsg::Message { .. })));
}

fn empty_room_keeps_history_until_it_expires(engine: NewEngine) {
    let hub = hub(
        engine,
        Config::default().history(10, Duration::from_millis(0)),
    );
    let mut a = hub.register("a".into());
    hub.join(a.peer.id, "r".into(), None);
    hub.publish(a.peer.id, "r".into(), 1, serde_json::json!(1));
    hub.leave(a.peer.id, "r".into());
    drain_reg(&hub, &mut a);
    std::thread::sleep(Duration::from_millis(2));
    hub.sweep();
    assert!(hub.lock().rooms.is_empty());
}

fn room_list_and_presence_are_coalesced_for_a_lagging_peer(engine: NewEngine) {
    let hour = Duration::from_secs(3600);
    let hub = hub(
        engine,
        Config::default()
            .queue_capacity(4)
            .rooms_push_interval(hour),
    );
    let mut watcher = hub.register("watcher".into());
    hub.join(watcher.peer.id, "r".into(), None);
    drain_reg(&hub, &mut watcher);
    // 50 joins while the watcher reads nothing: one snapshot of each kind stays queued.
    let mut others = Vec::new();
    for i in 0..50 {
        let mut other = hub.register(format!("p{i:02}"));
        hub.join(other.peer.id, "r".into(), None);
        drain_reg(&hub, &mut other);
        others.push(other);
    }
    assert_eq!(watcher.peer.kick(), None, "not evicted");
    // The room list waits for the push interval, then goes out once, with the latest state.
    hub.tick_rooms_at(Instant::now() + hour);
    let got = drain_reg(&hub, &mut watcher);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.iter()
            .any(|m| matches!(m, ServerMsg::Presence { members, .. } if members.len() == 51))
    );
    assert!(got.contains(&ServerMsg::Rooms {
        rooms: vec![RoomInfo {
            room: "r".into(),
            members: 51
        }]
    }));
    // A presence queued for a room the peer has left is not sent.
    hub.join(others[0].peer.id, "s".into(), None);
    hub.join(watcher.peer.id, "s".into(), None);
    drain_reg(&hub, &mut watcher);
    hub.join(others[1].peer.id, "s".into(), None);
    hub.leave(watcher.peer.id, "s".into());
    let got = drain_reg(&hub, &mut watcher);
    assert!(
        !got.iter()
            .any(|m| matches!(m, ServerMsg::Presence { room, .. } if room == "s")),
        "{got:?}"
    );
}

/// Engine-free: run once.
#[test]
fn session_ids_read_back_only_as_written() {
    let id = SessionId(0xab);
    let text = id.to_string();
    assert_eq!(text, format!("{}ab", "0".repeat(30)));
    assert_eq!(SessionId::parse(&text), Some(id));
    let upper = text.to_uppercase();
    for bad in [
        "",
        "ab",
        &upper,
        &format!("{text}0"),
        &text.replace('a', "g"),
    ] {
        assert_eq!(SessionId::parse(bad), None, "{bad}");
    }
}

fn sessions_expire_after_their_ttl_and_are_bounded(engine: NewEngine) {
    let hub = hub(engine, Config::default().sessions(Duration::ZERO, 3));
    let mut a = hub.register("a".into());
    hub.hello(a.peer.id, None, None);
    let ServerMsg::Welcome { session, .. } = drain_reg(&hub, &mut a).remove(0) else {
        panic!()
    };
    hub.disconnect(a.peer.id);
    std::thread::sleep(Duration::from_millis(2));
    hub.sweep();
    let mut b = hub.register("a".into());
    hub.hello(b.peer.id, Some(session), None);
    assert!(matches!(
        drain_reg(&hub, &mut b)[0],
        ServerMsg::Welcome { resumed: false, .. }
    ));
    // At the cap, registering drops the longest-detached session first.
    let regs: Vec<_> = (0..5).map(|i| hub.register(format!("p{i}"))).collect();
    for r in &regs[..3] {
        hub.disconnect(r.peer.id);
    }
    let _more: Vec<_> = (0..3).map(|i| hub.register(format!("q{i}"))).collect();
    assert!(
        hub.lock().engine.tables().sessions.len() <= 3 + 3,
        "attached sessions are kept, detached dropped"
    );
    assert!(
        hub.lock()
            .engine
            .tables()
            .sessions
            .values()
            .all(|s| s.attached > 0)
    );
}

/// The SQLite engine only, whose disk can be switched off. Covers: a failed commit sends
/// nothing that depended on it (no ack, no message), closes every connection with 1013, and
/// keeps the write owed; once the disk works again the write is committed, and the
/// publisher's resend is acked as a duplicate.
#[test]
fn a_failed_commit_tells_nobody_and_closes_connections_with_1013() {
    let config = Config::default();
    let path = std::path::Path::new(":memory:");
    let engine =
        crate::engine::sqlite::SqliteEngine::open(path, Bounds::new(&config), Instant::now())
            .unwrap();
    let disk_broken = engine.disk_switch();
    let hub = Hub::with_engine(&config, Box::new(engine)).inline_sync();
    let mut a = hub.register("a".into());
    hub.hello(a.peer.id, None, None);
    let session = welcome_session(&drain_reg(&hub, &mut a));
    hub.join(a.peer.id, "r".into(), None);
    let mut b = hub.register("b".into());
    hub.join(b.peer.id, "r".into(), None);
    let ServerMsg::Joined { epoch, .. } = drain_reg(&hub, &mut b).remove(0) else {
        panic!()
    };
    drain_reg(&hub, &mut a);

    disk_broken(true);
    hub.publish(a.peer.id, "r".into(), 1, serde_json::json!(1));
    let told = |m: &ServerMsg| matches!(m, ServerMsg::Ack { .. } | ServerMsg::Message { .. });
    assert!(!drain_reg(&hub, &mut a).iter().any(told));
    assert!(!drain_reg(&hub, &mut b).iter().any(told));
    let retry = Some(Kick::Close(close::TRY_AGAIN_LATER));
    assert_eq!((a.peer.kick(), b.peer.kick()), (retry, retry));

    disk_broken(false);
    hub.disconnect(a.peer.id);
    hub.disconnect(b.peer.id);
    let mut a = hub.register("a".into());
    hub.hello(a.peer.id, Some(session), None);
    hub.join(a.peer.id, "r".into(), None);
    hub.publish(a.peer.id, "r".into(), 1, serde_json::json!(1));
    let got = drain_reg(&hub, &mut a);
    assert!(got.contains(&ServerMsg::Ack {
        id: 1,
        offset: 1,
        duplicate: true
    }));
    let mut b = hub.register("b".into());
    hub.join(b.peer.id, "r".into(), Some(Since { epoch, offset: 0 }));
    assert_eq!(
        offsets(&drain_reg(&hub, &mut b)),
        vec![1],
        "the write was kept"
    );
}

/// Two instances on one Redis: a publish through one reaches the other's members once and in
/// order, whether its fan-out message arrives, arrives twice, or is lost (the gap is read back
/// from the stream); presence lists the members of both, and those of a dead instance leave
/// it once its heartbeat expires; a session moves between instances with its dedupe state.
#[test]
fn two_instances_share_rooms_offsets_and_sessions_through_redis() {
    use crate::engine::redis::{FannedOut, RedisEngine, test_server};
    if !test_server::installed("two_instances_share_rooms_offsets_and_sessions_through_redis") {
        return;
    }
    let server = test_server::TestRedis::start();
    let instance = |config: Config| {
        let engine = RedisEngine::open(&server.url, Bounds::new(&config)).unwrap();
        Hub::with_engine(&config, Box::new(engine))
    };
    // Instance one sweeps every 50 ms (a quarter of its history age), so its heartbeat lasts
    // 150 ms: its death shows within the test.
    let one = instance(Config::default().history(1000, Duration::from_millis(200)));
    let two = instance(Config::default());
    let mut publisher = one.register("p".into());
    one.hello(publisher.peer.id, None, Some("publisher-1".into()));
    one.join(publisher.peer.id, "r".into(), None);
    let mut receiver = two.register("r".into());
    two.join(receiver.peer.id, "r".into(), None);
    let welcome = drain_reg(&one, &mut publisher);
    let Some(ServerMsg::Welcome { session, .. }) = welcome.first() else {
        panic!("{welcome:?}")
    };
    let presence = |got: &[ServerMsg]| {
        got.iter().rev().find_map(|m| match m {
            ServerMsg::Presence { members, .. } => Some(members.clone()),
            _ => None,
        })
    };
    assert_eq!(
        presence(&drain_reg(&two, &mut receiver)),
        Some(vec!["p".to_string(), "r".to_string()]),
        "presence across instances"
    );

    for id in 1..=3 {
        one.publish(publisher.peer.id, "r".into(), id, serde_json::json!(id));
    }
    // Instance two learns of them as its subscription would after a reconnect.
    two.catch_up_all();
    assert_eq!(offsets(&drain_reg(&two, &mut receiver)), vec![1, 2, 3]);
    let (epoch, _) = two.lock().engine.head("r").unwrap().unwrap();
    let fanned = |offset: u64| FannedOut {
        room: "r".into(),
        epoch: epoch.clone(),
        offset,
        frame: format!(
            r#"{{"type":"message","room":"r","offset":{offset},"from":"p","data":0,"ts":0}}"#
        )
        .into(),
    };
    // A late or repeated fan-out message is not delivered again.
    two.fan_in(vec![fanned(2)]);
    assert!(offsets(&drain_reg(&two, &mut receiver)).is_empty());
    // Offsets 4 and 5 are published; only 5's fan-out message arrives: 4 is read back first.
    one.publish(publisher.peer.id, "r".into(), 4, serde_json::json!(4));
    one.publish(publisher.peer.id, "r".into(), 5, serde_json::json!(5));
    two.fan_in(vec![fanned(5)]);
    let got = drain_reg(&two, &mut receiver);
    assert_eq!(offsets(&got), vec![4, 5]);
    assert!(matches!(&got[0], ServerMsg::Message { data, .. } if *data == serde_json::json!(4)));
    // A batch taken at once, out of order and with a repeat: each offset once, in order.
    for id in 6..=8 {
        one.publish(publisher.peer.id, "r".into(), id, serde_json::json!(id));
    }
    two.fan_in(vec![fanned(7), fanned(6), fanned(8), fanned(8)]);
    assert_eq!(offsets(&drain_reg(&two, &mut receiver)), vec![6, 7, 8]);

    // Instance one goes away without a word: once its heartbeat expired, the next sweep of
    // instance two leaves its member out.
    drop(one);
    std::thread::sleep(Duration::from_millis(300));
    two.sweep();
    assert_eq!(
        presence(&drain_reg(&two, &mut receiver)),
        Some(vec!["r".to_string()]),
        "a dead instance's members leave the presence"
    );
    // Its publisher resumes its session on instance two and resends publish 5: acked as a
    // duplicate, not delivered again.
    let mut moved = two.register("p".into());
    two.hello(
        moved.peer.id,
        Some(session.clone()),
        Some("publisher-1".into()),
    );
    two.join(moved.peer.id, "r".into(), None);
    two.publish(moved.peer.id, "r".into(), 5, serde_json::json!(5));
    let got = drain_reg(&two, &mut moved);
    assert!(
        matches!(&got[0], ServerMsg::Welcome { resumed: true, .. }),
        "{got:?}"
    );
    assert!(
        got.contains(&ServerMsg::Ack {
            id: 5,
            offset: 5,
            duplicate: true
        }),
        "{got:?}"
    );
    assert!(offsets(&drain_reg(&two, &mut receiver)).is_empty());
}
