//! The sans-IO core on virtual time (native only). Covers:
//! - [x] backoff: delays within [min, ceiling], jitter spread, cap at max, seeded determinism
//! - [x] give-up after max attempts; terminal close codes (default set and user predicate)
//! - [x] minimum uptime before the attempt counter resets
//! - [x] heartbeat: ping cadence, pongs hidden, timeout -> close 4000 + reconnect, late timer grace
//! - [x] default heartbeat only with protocol v1 negotiated; a configured one always;
//!   offer_protocol
//! - [x] round-trip time: Event::Pong per pong after a ping, smoothed as SRTT (α = 1/8)
//! - [x] queue: order, flush before later sends, preamble first, bounds, QueueFull, high-water drain
//! - [x] sends while open (also from an open listener) go out behind the queue, never QueueFull
//!   below the high-water mark
//! - [x] offline stops retrying, online retries at once; visible checks liveness
//! - [x] close() while connecting / while waiting / while open; reconnect() while waiting
//! - [x] close() argument checks, URL validation, URL provider, stale events ignored
//! - [x] limits: layer frames ahead of the queue, paced, dropped with their connection; a send
//!   over max_message_bytes -> TooLarge; 1009 and 1013 retried
//! - [x] message pass-through: offered only for an open connection with no heartbeat on it,
//!   before `close()` and without the rooms layer; while offered, a frame only becomes its
//!   message
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)] // test helpers panic by design

mod machine_out;

use std::time::Duration;

use machine_out::{Out, poll};
use ws_lifeline::machine::{
    CLOSE_TIMEOUT_REASON, CloseInfo, Config, ConnId, Event, Input, Instant, Io, Machine, Message,
    Sent, State, Target,
};
use ws_lifeline::{Error, QueueLimit};

const URL: &str = "ws://127.0.0.1:1/echo";

struct H {
    m: Machine,
    now: u64,
}

impl H {
    fn new(config: Config) -> H {
        H::with_seed(config, 1)
    }

    fn with_seed(config: Config, seed: u64) -> H {
        H {
            m: Machine::new(config, Target::Url(URL.into()), seed, Instant(0)).unwrap(),
            now: 0,
        }
    }

    fn drain(&mut self) -> Vec<Out> {
        std::iter::from_fn(|| poll(&mut self.m)).collect()
    }

    fn events(cmds: &[Out]) -> Vec<Event> {
        cmds.iter()
            .filter_map(|c| match c {
                Out::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn opened_conn(cmds: &[Out]) -> Option<ConnId> {
        cmds.iter().find_map(|c| match c {
            Out::Io(Io::Open { conn, .. }) => Some(*conn),
            _ => None,
        })
    }

    fn at(&mut self, ms: u64) -> Instant {
        assert!(ms >= self.now, "time goes forward");
        self.now = ms;
        Instant(ms)
    }

    fn input(&mut self, ms: u64, input: Input) -> Vec<Out> {
        let now = self.at(ms);
        self.m.handle(now, input);
        self.drain()
    }

    /// Jumps to the next deadline and runs it.
    fn fire(&mut self) -> Vec<Out> {
        let t = self.m.poll_timeout().expect("a timer is armed").0;
        let now = self.at(t.max(self.now));
        self.m.handle_timeout(now);
        self.drain()
    }

    fn open(&mut self, conn: ConnId) -> Vec<Out> {
        let now = self.now;
        self.input(
            now,
            Input::SocketOpened {
                conn,
                protocol: String::new(),
            },
        )
    }

    fn closed(&mut self, conn: ConnId, code: u16) -> Vec<Out> {
        let now = self.now;
        let info = CloseInfo {
            code,
            reason: String::new(),
            was_clean: code != 1006,
        };
        self.input(now, Input::SocketClosed { conn, info })
    }

    fn send(&mut self, text: &str) -> Result<Sent, Error> {
        let now = Instant(self.now);
        self.m.send(now, Message::Text(text.into()))
    }

    /// First connection open; returns its id.
    fn connected(config: Config) -> (H, ConnId) {
        H::connected_with(config, "")
    }

    /// First connection open, the server having selected `lifeline.v1`.
    fn connected_v1(config: Config) -> (H, ConnId) {
        H::connected_with(config, protocol::SUBPROTOCOL)
    }

    fn connected_with(config: Config, protocol: &str) -> (H, ConnId) {
        let mut h = H::new(config);
        let conn = H::opened_conn(&h.drain()).unwrap();
        let now = h.now;
        h.input(
            now,
            Input::SocketOpened {
                conn,
                protocol: protocol.into(),
            },
        );
        (h, conn)
    }
}

fn transmitted(cmds: &[Out]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Out::Io(Io::Transmit {
                message: Message::Text(t),
                ..
            }) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn reconnecting(cmds: &[Out]) -> Option<(u32, Duration)> {
    H::events(cmds).into_iter().find_map(|e| match e {
        Event::Reconnecting { attempt, delay } => Some((attempt, delay)),
        _ => None,
    })
}

fn quiet() -> Config {
    Config::default().no_heartbeat()
}

#[test]
fn first_attempt_opens_at_once_with_protocols() {
    let mut h = H::new(quiet().protocols(["lifeline.v1"]));
    let cmds = h.drain();
    assert_eq!(
        cmds[0],
        Out::Io(Io::Open {
            conn: ConnId(1),
            url: URL.into(),
            protocols: vec!["lifeline.v1".into()]
        })
    );
    assert_eq!(h.m.state(), State::Connecting);
    let cmds = h.open(ConnId(1));
    assert_eq!(
        H::events(&cmds),
        vec![Event::StateChange(State::Open), Event::Open]
    );
}

#[test]
fn backoff_stays_in_bounds_grows_and_caps() {
    let min = 100;
    let max = 5_000;
    let config = quiet()
        .backoff_min(Duration::from_millis(min))
        .backoff_max(Duration::from_millis(max))
        .backoff_factor(2.0)
        .connect_timeout(Duration::from_secs(3600));
    for seed in 0..20 {
        let mut h = H::with_seed(config.clone(), seed);
        let mut conn = H::opened_conn(&h.drain()).unwrap();
        for n in 1..=12u32 {
            let cmds = h.closed(conn, 1006);
            let (attempt, delay) = reconnecting(&cmds).unwrap();
            assert_eq!(attempt, n);
            let ceiling = (min * 2u64.pow(n)).min(max);
            let d = delay.as_millis() as u64;
            assert!(
                (min..=ceiling).contains(&d),
                "retry {n}: {d} not in [{min}, {ceiling}]"
            );
            assert_eq!(h.m.poll_timeout(), Some(Instant(h.now + d)));
            conn = H::opened_conn(&h.fire()).unwrap();
        }
    }
}

#[test]
fn jitter_spreads_and_is_deterministic_per_seed() {
    let config = quiet()
        .backoff_min(Duration::from_secs(1))
        .backoff_max(Duration::from_secs(10));
    let first_delay = |seed| {
        let mut h = H::with_seed(config.clone(), seed);
        let conn = H::opened_conn(&h.drain()).unwrap();
        reconnecting(&h.closed(conn, 1006)).unwrap().1
    };
    let delays: Vec<_> = (0..50).map(first_delay).collect();
    let distinct: std::collections::HashSet<_> = delays.iter().collect();
    assert!(
        distinct.len() > 40,
        "jitter should spread clients: {distinct:?}"
    );
    let first = Duration::from_secs(1)..=Duration::from_secs(2);
    assert!(delays.iter().all(|d| first.contains(d)), "{delays:?}");
    assert_eq!(first_delay(7), first_delay(7));
}

#[test]
fn gives_up_after_max_attempts() {
    let mut h = H::new(quiet().max_attempts(Some(2)));
    let conn = H::opened_conn(&h.drain()).unwrap();
    let c = h.closed(conn, 1006);
    assert_eq!(reconnecting(&c).unwrap().0, 1);
    let conn = H::opened_conn(&h.fire()).unwrap();
    let c = h.closed(conn, 1006);
    assert_eq!(reconnecting(&c).unwrap().0, 2);
    let conn = H::opened_conn(&h.fire()).unwrap();
    let c = h.closed(conn, 1006);
    let ev = H::events(&c);
    assert!(ev.contains(&Event::GaveUp), "{ev:?}");
    assert!(reconnecting(&c).is_none());
    assert_eq!(h.m.state(), State::Closed);
    assert_eq!(h.m.poll_timeout(), None);
    assert_eq!(h.send("x"), Err(Error::Closed));
    // A manual reconnect starts over.
    let now = Instant(h.now);
    h.m.reconnect(now);
    assert!(H::opened_conn(&h.drain()).is_some());
}

#[test]
fn terminal_codes_are_not_retried() {
    for code in [1008, 4400, 4499] {
        let (mut h, conn) = H::connected(quiet());
        let c = h.closed(conn, code);
        assert!(reconnecting(&c).is_none(), "{code} must be terminal");
        assert_eq!(h.m.state(), State::Closed);
        assert_eq!(h.m.poll_timeout(), None);
    }
    // 1013 (also the server's end for a sender above its rate) and 1009 are retried.
    for code in [1000, 1001, 1006, 1009, 1011, 1013, 4000, 4399, 4500] {
        let (mut h, conn) = H::connected(quiet());
        assert!(
            reconnecting(&h.closed(conn, code)).is_some(),
            "{code} must be retried"
        );
    }
    let (mut h, conn) = H::connected(quiet().terminal_close(|c| c == 4001));
    assert!(reconnecting(&h.closed(conn, 4001)).is_none());
    let (mut h, conn) = H::connected(quiet().terminal_close(|c| c == 4001));
    assert!(reconnecting(&h.closed(conn, 1008)).is_some());
}

#[test]
fn attempt_counter_resets_only_after_min_uptime() {
    let config = quiet().min_uptime(Duration::from_secs(5));
    let (mut h, conn) = H::connected(config);
    let c = h.closed(conn, 1006);
    assert_eq!(reconnecting(&c).unwrap().0, 1);
    // Accepted and dropped at once: the counter keeps growing.
    let conn = H::opened_conn(&h.fire()).unwrap();
    h.open(conn);
    let t = h.now + 4_999;
    let c = h.input(
        t,
        Input::SocketClosed {
            conn,
            info: CloseInfo {
                code: 1006,
                reason: String::new(),
                was_clean: false,
            },
        },
    );
    assert_eq!(reconnecting(&c).unwrap().0, 2);
    // Up for 5 s: back to 1.
    let conn = H::opened_conn(&h.fire()).unwrap();
    h.open(conn);
    let t = h.now + 5_000;
    let c = h.input(
        t,
        Input::SocketClosed {
            conn,
            info: CloseInfo {
                code: 1006,
                reason: String::new(),
                was_clean: false,
            },
        },
    );
    assert_eq!(reconnecting(&c).unwrap().0, 1);
}

#[test]
fn connect_timeout_fails_the_attempt() {
    let mut h = H::new(quiet().connect_timeout(Duration::from_secs(3)));
    let conn = H::opened_conn(&h.drain()).unwrap();
    assert_eq!(h.m.poll_timeout(), Some(Instant(3_000)));
    let c = h.fire();
    assert!(c.contains(&Out::Io(Io::Abandon {
        conn,
        code: 1000,
        reason: "connect timeout".into()
    })));
    assert!(H::events(&c).contains(&Event::Error(Error::ConnectTimeout { after_ms: 3_000 })));
    assert_eq!(reconnecting(&c).unwrap().0, 1);
    // The old socket's late events are ignored.
    assert!(h.open(conn).is_empty());
    assert_eq!(h.m.state(), State::Reconnecting);
}

#[test]
fn heartbeat_pings_hides_pongs_and_times_out() {
    let config = Config::default()
        .heartbeat_interval(Duration::from_secs(25))
        .heartbeat_timeout(Duration::from_secs(10));
    let (mut h, conn) = H::connected(config);
    assert_eq!(h.m.poll_timeout(), Some(Instant(25_000)));
    assert_eq!(transmitted(&h.fire()), vec![r#"{"type":"ping","id":1}"#]);
    // A pong counts as life and is not reported as a message, only as its round trip.
    let c = h.input(
        25_050,
        Input::SocketMessage {
            conn,
            message: r#"{"type":"pong","id":1}"#.into(),
        },
    );
    assert_eq!(
        c,
        vec![Out::Event(Event::Pong {
            rtt: Duration::from_millis(50)
        })]
    );
    assert_eq!(h.m.poll_timeout(), Some(Instant(50_000)));
    assert_eq!(transmitted(&h.fire()), vec![r#"{"type":"ping","id":2}"#]);
    // No answer: dead at 60 s.
    assert_eq!(h.m.poll_timeout(), Some(Instant(60_000)));
    let c = h.fire();
    assert_eq!(h.now, 60_000);
    assert!(c.contains(&Out::Io(Io::Abandon {
        conn,
        code: 4000,
        reason: "heartbeat timeout".into()
    })));
    let ev = H::events(&c);
    assert!(ev.contains(&Event::Close(CloseInfo {
        code: 4000,
        reason: "heartbeat timeout".into(),
        was_clean: false
    })));
    assert_eq!(
        reconnecting(&c).unwrap().0,
        1,
        "up 60 s > min_uptime: counter reset first"
    );
    assert!(H::opened_conn(&h.fire()).is_some());
}

#[test]
fn any_inbound_frame_counts_as_life_and_pongs_can_be_surfaced() {
    // The default heartbeat, which runs because the server selected protocol v1.
    let (mut h, conn) = H::connected_v1(Config::default().surface_pongs(true));
    h.fire(); // ping at 25 s
    let c = h.input(
        34_000,
        Input::SocketMessage {
            conn,
            message: Message::Binary(vec![1]),
        },
    );
    assert_eq!(
        H::events(&c),
        vec![Event::Message(Message::Binary(vec![1]))]
    );
    let c = h.input(
        34_001,
        Input::SocketMessage {
            conn,
            message: r#"{"type":"pong","id":1}"#.into(),
        },
    );
    assert_eq!(
        H::events(&c),
        vec![
            Event::Pong {
                rtt: Duration::from_millis(9_001)
            },
            Event::Message(r#"{"type":"pong","id":1}"#.into())
        ],
        "surfaced pong"
    );
    assert_eq!(
        h.m.poll_timeout(),
        Some(Instant(50_000)),
        "no deadline pending, next ping"
    );
}

#[test]
fn late_timer_gets_one_fresh_ping_before_timing_out() {
    // The default heartbeat, which runs because the server selected protocol v1.
    let (mut h, conn) = H::connected_v1(Config::default());
    h.fire(); // ping 1 at 25 s, deadline 35 s
    // Throttled: the timer fires at 95 s. Not dead yet: ping again, deadline 105 s.
    let now = h.at(95_000);
    h.m.handle_timeout(now);
    let c = h.drain();
    assert_eq!(transmitted(&c).len(), 1, "{c:?}");
    assert!(
        !c.iter()
            .any(|c| matches!(c, Out::Io(Io::Close { .. } | Io::Abandon { .. })))
    );
    assert_eq!(h.m.poll_timeout(), Some(Instant(105_000)));
    // The pong was waiting behind the timer.
    h.input(
        95_001,
        Input::SocketMessage {
            conn,
            message: "hi".into(),
        },
    );
    assert_eq!(h.m.state(), State::Open);
    // Dead for real: late again, but the grace is used up only once per silence.
    let next = h.m.poll_timeout().unwrap().0;
    h.at(next);
    h.m.handle_timeout(Instant(next));
    h.drain();
    let t = h.m.poll_timeout().unwrap().0; // deadline of that ping
    let now = h.at(t + 60_000);
    h.m.handle_timeout(now);
    assert!(transmitted(&h.drain()).len() == 1, "grace: one fresh ping");
    let now = h.at(h.m.poll_timeout().unwrap().0 + 60_000);
    h.m.handle_timeout(now);
    let c = h.drain();
    assert!(
        c.iter()
            .any(|c| matches!(c, Out::Io(Io::Abandon { code: 4000, .. }))),
        "{c:?}"
    );
}

#[test]
fn visible_checks_liveness_at_once() {
    // The default heartbeat, which runs because the server selected protocol v1.
    let (mut h, conn) = H::connected_v1(Config::default());
    h.input(1_000, Input::Hidden);
    let c = h.input(2_000, Input::Visible);
    assert_eq!(transmitted(&c), vec![r#"{"type":"ping","id":1}"#]);
    assert_eq!(
        h.m.poll_timeout(),
        Some(Instant(12_000)),
        "deadline tightened to now + timeout"
    );
    let c = h.fire();
    assert!(c.contains(&Out::Io(Io::Abandon {
        conn,
        code: 4000,
        reason: "heartbeat timeout".into()
    })));
}

#[test]
fn default_heartbeat_leaves_a_quiet_server_without_protocol_v1_alone() {
    let (mut h, conn) = H::connected(Config::default());
    assert_eq!(h.m.poll_timeout(), None, "no ping, no deadline");
    // Ten minutes of silence, with wake-ups that would otherwise check liveness.
    h.input(60_000, Input::Hidden);
    let c = h.input(300_000, Input::Visible);
    assert!(c.is_empty(), "{c:?}");
    let now = h.at(600_000);
    h.m.handle_timeout(now);
    assert!(h.drain().is_empty());
    assert_eq!(h.m.state(), State::Open);
    assert_eq!(h.m.conn_id(), Some(conn));
    // No ping went out, so a pong-like frame (an echo server's) is the page's message.
    let c = h.input(
        600_001,
        Input::SocketMessage {
            conn,
            message: r#"{"type":"pong","id":1}"#.into(),
        },
    );
    assert_eq!(H::events(&c).len(), 1, "{c:?}");
}

#[test]
fn default_heartbeat_runs_and_times_out_with_protocol_v1() {
    let (mut h, conn) = H::connected_v1(Config::default());
    assert_eq!(h.m.poll_timeout(), Some(Instant(25_000)));
    assert_eq!(transmitted(&h.fire()), vec![r#"{"type":"ping","id":1}"#]);
    let c = h.fire();
    assert_eq!(h.now, 35_000, "interval + timeout");
    assert!(c.contains(&Out::Io(Io::Abandon {
        conn,
        code: 4000,
        reason: "heartbeat timeout".into()
    })));
}

#[test]
fn configured_heartbeat_runs_whatever_the_protocol() {
    use ws_lifeline::machine::Heartbeat;
    let configs = [
        Config::default().heartbeat_interval(Duration::from_secs(25)),
        Config::default().heartbeat_timeout(Duration::from_secs(10)),
        Config::default().ping(|n| Message::Text(format!("p{n}"))),
        Config::default().is_pong(|t| t == "pong"),
        Config::default().heartbeat(Some(Heartbeat::default())),
    ];
    for config in configs {
        for protocol in ["", "chat"] {
            let (mut h, _) = H::connected_with(config.clone(), protocol);
            assert_eq!(h.m.poll_timeout(), Some(Instant(25_000)), "{protocol:?}");
            assert_eq!(transmitted(&h.fire()).len(), 1);
            let c = h.fire();
            assert!(
                c.iter()
                    .any(|c| matches!(c, Out::Io(Io::Abandon { code: 4000, .. })))
            );
        }
    }
}

#[test]
fn no_heartbeat_stays_off_with_protocol_v1() {
    let (h, _) = H::connected_v1(quiet());
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn offer_protocol_adds_to_the_next_attempt_once() {
    let (mut h, conn) = H::connected(Config::default().protocols(["chat"]));
    h.m.offer_protocol(protocol::SUBPROTOCOL);
    h.m.offer_protocol(protocol::SUBPROTOCOL);
    h.m.reconnect(Instant(1));
    let c = h.drain();
    let protocols = c.iter().find_map(|c| match c {
        Out::Io(Io::Open {
            conn: next,
            protocols,
            ..
        }) if *next != conn => Some(protocols.clone()),
        _ => None,
    });
    assert_eq!(
        protocols,
        Some(vec!["chat".to_owned(), protocol::SUBPROTOCOL.to_owned()])
    );
}

#[test]
fn offer_protocol_reaches_an_open_not_polled_yet() {
    let mut h = H::new(Config::default());
    h.m.offer_protocol(protocol::SUBPROTOCOL);
    let protocols = h.drain().into_iter().find_map(|c| match c {
        Out::Io(Io::Open { protocols, .. }) => Some(protocols),
        _ => None,
    });
    assert_eq!(protocols, Some(vec![protocol::SUBPROTOCOL.to_owned()]));
}

fn pong(h: &mut H, ms: u64, conn: ConnId) -> Vec<Event> {
    let c = h.input(
        ms,
        Input::SocketMessage {
            conn,
            message: r#"{"type":"pong","id":1}"#.into(),
        },
    );
    H::events(&c)
}

#[test]
fn rtt_is_measured_from_the_ping_and_smoothed_with_alpha_one_eighth() {
    let (mut h, conn) = H::connected_v1(Config::default());
    assert_eq!(h.m.rtt(), None);
    h.fire(); // ping at 25 s
    let ms = Duration::from_millis;
    assert_eq!(
        pong(&mut h, 25_080, conn),
        vec![Event::Pong { rtt: ms(80) }]
    );
    let rtt = h.m.rtt().unwrap();
    assert_eq!((rtt.last, rtt.smoothed), (ms(80), ms(80)), "first sample");
    // A second pong without a new ping measures nothing and is still hidden.
    assert_eq!(pong(&mut h, 25_100, conn), vec![]);
    h.fire(); // ping at 50 s
    pong(&mut h, 50_160, conn);
    let rtt = h.m.rtt().unwrap();
    assert_eq!(
        (rtt.last, rtt.smoothed),
        (ms(160), ms(90)),
        "80 + (160 - 80) / 8"
    );
    h.fire(); // ping at 75 s
    pong(&mut h, 75_010, conn);
    let rtt = h.m.rtt().unwrap();
    assert_eq!(
        (rtt.last, rtt.smoothed),
        (ms(10), ms(80)),
        "90 + (10 - 90) / 8"
    );
    // Kept across a reconnect.
    h.closed(conn, 1006);
    assert_eq!(h.m.rtt().unwrap().smoothed, ms(80));
}

#[test]
fn heartbeat_off_arms_no_timer_while_open() {
    let (h, _) = H::connected(quiet());
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn queue_flushes_in_order_before_later_sends() {
    // A protocol layer (it offers its protocol) says its preamble after the open's listeners.
    let mut h = H::new(quiet().protocols([protocol::SUBPROTOCOL]));
    let conn = H::opened_conn(&h.drain()).unwrap();
    assert_eq!(h.send("a"), Ok(Sent::Queued));
    assert_eq!(h.send("b"), Ok(Sent::Queued));
    let now = Instant(h.now);
    h.m.handle(
        now,
        Input::SocketOpened {
            conn,
            protocol: "p".into(),
        },
    );
    // Before the queue flushes, a send still goes behind it.
    assert_eq!(
        poll(&mut h.m),
        Some(Out::Event(Event::StateChange(State::Open)))
    );
    assert_eq!(poll(&mut h.m), Some(Out::Event(Event::Open)));
    h.m.send_preamble(now, "hello".into()).unwrap();
    assert_eq!(h.send("c"), Ok(Sent::Queued));
    let c = h.drain();
    assert_eq!(transmitted(&c), vec!["hello", "a", "b", "c"]);
    assert_eq!(h.send("d"), Ok(Sent::Transmitted));
    assert_eq!(h.m.protocol(), "p");
    assert_eq!(h.m.queued_messages(), 0);
}

#[test]
fn sends_from_an_open_listener_go_out_behind_the_queue_unbounded() {
    // Issue 17: 20,000 sends from an `open` listener met QueueFull at the 1,024th.
    let mut h = H::new(quiet().queue_limits(2, 1 << 20).high_water_mark(u64::MAX));
    let conn = H::opened_conn(&h.drain()).unwrap();
    assert_eq!(h.send("queued 1"), Ok(Sent::Queued));
    assert_eq!(h.send("queued 2"), Ok(Sent::Queued));
    assert_eq!(
        h.send("one too many"),
        Err(Error::QueueFull {
            limit: QueueLimit::Messages(2)
        }),
        "the bounds hold while not open"
    );
    let now = Instant(h.now);
    h.m.handle(
        now,
        Input::SocketOpened {
            conn,
            protocol: String::new(),
        },
    );
    // The queue goes out before the open event...
    let mut before_open = Vec::new();
    while let Some(command) = poll(&mut h.m) {
        let open = command == Out::Event(Event::Open);
        before_open.push(command);
        if open {
            break;
        }
    }
    assert_eq!(transmitted(&before_open), vec!["queued 1", "queued 2"]);
    // ...so that in its listener each send goes to the socket at once, as the shell's direct
    // path (`send_now`) or as a command.
    assert!(h.m.send_now(now, conn, 2));
    for n in 0..20_000 {
        assert_eq!(
            h.send(&format!("m{n}")),
            Ok(Sent::Transmitted),
            "message {n}"
        );
    }
    assert_eq!(h.m.queued_messages(), 0);
    let sent = transmitted(&h.drain());
    assert_eq!(sent.len(), 20_000);
    assert_eq!((sent[0].as_str(), sent[19_999].as_str()), ("m0", "m19999"));
}

#[test]
fn an_open_socket_queues_past_the_bounds_only_above_the_high_water_mark() {
    let (mut h, conn) = H::connected(quiet().queue_limits(1, 1 << 20).high_water_mark(10));
    h.drain();
    assert_eq!(h.send("0123456789A"), Ok(Sent::Transmitted));
    // Above the mark, the backpressure the user asked for: queued, bounded.
    assert_eq!(h.send("b"), Ok(Sent::Queued));
    assert_eq!(
        h.send("c"),
        Err(Error::QueueFull {
            limit: QueueLimit::Messages(1)
        })
    );
    // Drained below it: "b" goes out, then "c" at once.
    let now = h.at(10);
    h.m.handle(now, Input::BufferedAmount { conn, amount: 0 });
    assert_eq!(h.send("c"), Ok(Sent::Transmitted));
    assert_eq!(transmitted(&h.drain()), vec!["0123456789A", "b", "c"]);
}

#[test]
fn layer_frames_go_ahead_of_the_queue_wait_for_the_pace_and_die_with_their_connection() {
    let (mut h, conn) = H::connected(quiet());
    h.drain();
    let limits = ws_lifeline::protocol::Limits {
        max_message_bytes: 100,
        rate_per_sec: 10,
        rate_burst: 1,
        dedupe_window: 8,
    };
    h.m.set_limits(Instant(0), Some(&limits));
    assert_eq!(h.send("user"), Ok(Sent::Transmitted), "the one token");
    h.m.send_layer(Instant(0), "layer 1".into()).unwrap();
    h.m.send_layer(Instant(0), "layer 2".into()).unwrap();
    assert_eq!(h.send("queued"), Ok(Sent::Queued));
    assert_eq!(transmitted(&h.drain()), vec!["user"]);
    assert_eq!(transmitted(&h.fire()), vec!["layer 1"]);
    assert_eq!(h.now, 100, "one frame per 100 ms");
    // The connection drops with "layer 2" still waiting: it is not carried over.
    h.closed(conn, 1006);
    let next = H::opened_conn(&h.fire()).unwrap();
    let c = h.open(next);
    assert_eq!(
        transmitted(&c),
        vec!["queued"],
        "the user's queue survives, the layer's not"
    );
    assert_eq!(
        h.m.send_layer(Instant(h.now), "x".repeat(101).into()),
        Ok(()),
        "the layer checks its own sizes"
    );
    assert_eq!(
        h.send(&"x".repeat(101)),
        Err(Error::TooLarge {
            size: 101,
            limit: 100
        })
    );
}

#[test]
fn preamble_needs_an_open_socket() {
    let mut h = H::new(quiet());
    assert_eq!(
        h.m.send_preamble(Instant(0), "x".into()),
        Err(Error::NotOpen)
    );
}

#[test]
fn queue_bounds_refuse_without_dropping() {
    let mut h = H::new(quiet().queue_limits(2, 10));
    h.drain();
    assert_eq!(h.send("12345"), Ok(Sent::Queued));
    assert_eq!(
        h.send("123456"),
        Err(Error::QueueFull {
            limit: QueueLimit::Bytes(10)
        })
    );
    assert_eq!(h.send("12345"), Ok(Sent::Queued));
    assert_eq!(
        h.send(""),
        Err(Error::QueueFull {
            limit: QueueLimit::Messages(2)
        })
    );
    assert_eq!(h.m.queued_messages(), 2);
    assert_eq!(h.m.queued_bytes(), 10);
    let conn = h.m.conn_id().unwrap();
    assert_eq!(transmitted(&h.open(conn)), vec!["12345", "12345"]);
}

#[test]
fn high_water_mark_queues_and_drains() {
    let (mut h, conn) = H::connected(
        quiet()
            .high_water_mark(10)
            .drain_poll(Duration::from_millis(50)),
    );
    assert_eq!(h.send("0123456789A"), Ok(Sent::Transmitted)); // estimate 11 > 10
    assert_eq!(h.send("b"), Ok(Sent::Queued));
    assert_eq!(h.send("c"), Ok(Sent::Queued));
    h.drain();
    assert_eq!(h.m.poll_timeout(), Some(Instant(50)));
    assert_eq!(h.fire(), vec![Out::Io(Io::PollBuffered { conn })]);
    // Still above: nothing flushed, poll again.
    assert!(transmitted(&h.input(50, Input::BufferedAmount { conn, amount: 11 })).is_empty());
    assert_eq!(h.m.poll_timeout(), Some(Instant(100)));
    h.fire();
    assert_eq!(
        transmitted(&h.input(100, Input::BufferedAmount { conn, amount: 0 })),
        vec!["b", "c"]
    );
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn offline_stops_retrying_and_online_retries_at_once() {
    let (mut h, conn) = H::connected(quiet());
    let c = h.input(10, Input::Offline);
    assert_eq!(H::events(&c), vec![Event::Offline]);
    let c = h.closed(conn, 1006);
    assert!(reconnecting(&c).is_none(), "no countdown while offline");
    assert_eq!(h.m.state(), State::Reconnecting);
    assert_eq!(h.m.poll_timeout(), None);
    let c = h.input(60_000, Input::Online);
    assert_eq!(H::events(&c)[0], Event::Online);
    assert!(H::opened_conn(&c).is_some(), "online retries at once");
    // Going offline while waiting cancels the wait.
    let conn = h.m.conn_id().unwrap();
    h.closed(conn, 1006);
    assert!(h.m.poll_timeout().is_some());
    h.input(60_001, Input::Offline);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn close_while_connecting() {
    let mut h = H::new(quiet());
    let conn = H::opened_conn(&h.drain()).unwrap();
    h.m.close(Instant(5), None, Some("bye")).unwrap();
    let c = h.drain();
    assert_eq!(
        c[0],
        Out::Io(Io::Abandon {
            conn,
            code: 1000,
            reason: "bye".into()
        })
    );
    assert_eq!(h.m.state(), State::Closed);
    assert_eq!(h.m.poll_timeout(), None);
    // The socket's late open/close are ignored.
    assert!(h.open(conn).is_empty());
    assert!(h.closed(conn, 1006).is_empty());
}

#[test]
fn close_while_waiting_to_retry() {
    let (mut h, conn) = H::connected(quiet());
    h.closed(conn, 1006);
    assert!(h.m.poll_timeout().is_some());
    h.m.close(Instant(h.now), Some(3000), None).unwrap();
    assert_eq!(
        H::events(&h.drain()),
        vec![Event::StateChange(State::Closed)]
    );
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn close_while_open_waits_for_the_close_event() {
    let (mut h, conn) = H::connected(Config::default());
    h.m.close(Instant(1), Some(4321), Some("done")).unwrap();
    assert_eq!(
        h.drain()[0],
        Out::Io(Io::Close {
            conn,
            code: 4321,
            reason: "done".into()
        })
    );
    assert_eq!(h.m.state(), State::Closing);
    assert_eq!(
        h.m.poll_timeout(),
        Some(Instant(2_001)),
        "the heartbeat stops; only the close reply is awaited"
    );
    // A frame after close() is not reported, as in a browser.
    let message = Message::Text("late".into());
    assert!(
        h.input(2, Input::SocketMessage { conn, message })
            .is_empty()
    );
    let c = h.closed(conn, 4321);
    assert_eq!(h.m.state(), State::Closed);
    assert!(reconnecting(&c).is_none());
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn close_gives_up_on_a_peer_that_never_replies() {
    let (mut h, conn) = H::connected(Config::default());
    h.m.close(Instant(1), Some(4321), Some("done")).unwrap();
    h.drain();
    let c = h.fire();
    assert_eq!(h.now, 2_001, "the default close_timeout, 2 s");
    assert_eq!(
        c,
        vec![
            Out::Io(Io::Abandon {
                conn,
                code: 1000,
                reason: CLOSE_TIMEOUT_REASON.into()
            }),
            // As a browser reports a closing handshake that timed out.
            Out::Event(Event::Close(CloseInfo::abnormal(CLOSE_TIMEOUT_REASON))),
            Out::Event(Event::StateChange(State::Closed)),
        ]
    );
    assert_eq!(h.m.poll_timeout(), None);
    // The socket's own close event, if it still comes, is stale.
    assert!(h.closed(conn, 1006).is_empty());
}

#[test]
fn close_arguments_follow_the_browser_rules() {
    let (mut h, _) = H::connected(quiet());
    let now = Instant(0);
    assert_eq!(
        h.m.close(now, Some(1001), None),
        Err(Error::InvalidCloseCode { code: 1001 })
    );
    assert_eq!(
        h.m.close(now, Some(2999), None),
        Err(Error::InvalidCloseCode { code: 2999 })
    );
    assert_eq!(
        h.m.close(now, Some(5000), None),
        Err(Error::InvalidCloseCode { code: 5000 })
    );
    let long = "é".repeat(62); // 124 bytes
    assert_eq!(
        h.m.close(now, None, Some(&long)),
        Err(Error::CloseReasonTooLong { bytes: 124 })
    );
    assert_eq!(h.m.state(), State::Open, "a refused close changes nothing");
    assert!(h.m.close(now, Some(4999), Some(&"x".repeat(123))).is_ok());
}

#[test]
fn reconnect_while_waiting_skips_the_wait() {
    let (mut h, conn) = H::connected(quiet());
    h.closed(conn, 1006);
    assert_eq!(h.m.state(), State::Reconnecting);
    h.m.reconnect(Instant(h.now));
    let c = h.drain();
    assert!(H::opened_conn(&c).is_some());
    assert_eq!(h.m.state(), State::Connecting);
    assert_eq!(h.m.attempt(), 0);
}

#[test]
fn reconnect_while_open_replaces_the_socket() {
    let (mut h, conn) = H::connected(quiet());
    h.m.reconnect(Instant(1));
    let c = h.drain();
    assert_eq!(
        c[0],
        Out::Io(Io::Abandon {
            conn,
            code: 1000,
            reason: "reconnect".into()
        })
    );
    let new = H::opened_conn(&c).unwrap();
    assert_ne!(new, conn);
    assert!(
        h.closed(conn, 1000).is_empty(),
        "old socket's close is stale"
    );
}

#[test]
fn invalid_urls_are_typed_errors() {
    for bad in [
        "ftp://x/y",
        "/relative",
        "ws://",
        "ws://host/#frag",
        "ws://host:99999/",
        "ws://a b",
    ] {
        let err = Machine::new(quiet(), Target::Url(bad.into()), 0, Instant(0)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidUrl { supplied, .. } if supplied == bad),
            "{bad}: {err:?}"
        );
    }
    let ok = |u: &str| ws_lifeline::validate_url(u).unwrap();
    assert_eq!(ok("http://h:80/p?q"), "ws://h:80/p?q");
    assert_eq!(ok("HTTPS://h/"), "wss://h/");
    assert_eq!(ok("wss://[::1]:9/x"), "wss://[::1]:9/x");
}

#[test]
fn url_provider_runs_before_each_attempt() {
    let mut m = Machine::new(quiet(), Target::Provider, 0, Instant(0)).unwrap();
    let cmds: Vec<_> = std::iter::from_fn(|| poll(&mut m)).collect();
    assert!(cmds.contains(&Out::Io(Io::ResolveUrl { conn: ConnId(1) })));
    m.handle(
        Instant(1),
        Input::UrlResolved {
            conn: ConnId(1),
            result: Err("no ticket".into()),
        },
    );
    let cmds: Vec<_> = std::iter::from_fn(|| poll(&mut m)).collect();
    assert!(H::events(&cmds).contains(&Event::Error(Error::UrlProvider {
        message: "no ticket".into()
    })));
    let t = m.poll_timeout().unwrap();
    m.handle_timeout(t);
    let cmds: Vec<_> = std::iter::from_fn(|| poll(&mut m)).collect();
    assert!(cmds.contains(&Out::Io(Io::ResolveUrl { conn: ConnId(2) })));
    // A late answer for the old attempt is ignored; a bad URL is a typed error.
    m.handle(
        t,
        Input::UrlResolved {
            conn: ConnId(1),
            result: Ok("ws://h/".into()),
        },
    );
    assert_eq!(poll(&mut m), None);
    m.handle(
        t,
        Input::UrlResolved {
            conn: ConnId(2),
            result: Ok("https://h/?ticket=1".into()),
        },
    );
    let cmds: Vec<_> = std::iter::from_fn(|| poll(&mut m)).collect();
    assert_eq!(
        cmds[0],
        Out::Io(Io::Open {
            conn: ConnId(2),
            url: "wss://h/?ticket=1".into(),
            protocols: vec![]
        })
    );
    assert_eq!(m.url(), Some("wss://h/?ticket=1"));
}

#[test]
fn typed_decode_errors_carry_the_raw_text() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Chat {
        text: String,
    }
    let ok = ws_lifeline::typed::decode::<Chat>(&Message::Text(r#"{"text":"hi"}"#.into()));
    assert_eq!(ok.unwrap(), Chat { text: "hi".into() });
    let err = ws_lifeline::typed::decode::<Chat>(&Message::Text("{oops".into())).unwrap_err();
    assert_eq!(err.raw, "{oops");
}

mod invariants {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Send,
        Advance(u64),
        Fire,
        Open,
        Close(u16),
        StaleClose,
        Error,
        Inbound(bool),
        Buffered(u64),
        UserClose,
        Reconnect,
        Online,
        Offline,
        Visible,
        Hidden,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Send),
            2 => (0u64..40_000).prop_map(Op::Advance),
            3 => Just(Op::Fire),
            3 => Just(Op::Open),
            2 => prop_oneof![Just(1000u16), Just(1006), Just(1008), Just(4000), Just(4404)].prop_map(Op::Close),
            1 => Just(Op::StaleClose),
            1 => Just(Op::Error),
            2 => any::<bool>().prop_map(Op::Inbound),
            1 => (0u64..200).prop_map(Op::Buffered),
            1 => Just(Op::UserClose),
            1 => Just(Op::Reconnect),
            1 => Just(Op::Online),
            1 => Just(Op::Offline),
            1 => Just(Op::Visible),
            1 => Just(Op::Hidden),
        ]
    }

    /// A fake browser: tracks which sockets exist and checks every command against the rules.
    #[derive(Default)]
    struct World {
        /// Sockets created and not yet closed by the machine or the network.
        live: Vec<ConnId>,
        /// Sockets that fired `open`.
        open: Vec<ConnId>,
        accepted: Vec<u64>,
        sent: Vec<u64>,
        user_closed: bool,
    }

    impl World {
        fn run(&mut self, m: &mut Machine) {
            while let Some(cmd) = poll(m) {
                match cmd {
                    Out::Io(Io::Open { conn, .. }) => {
                        self.live.push(conn);
                        assert!(self.live.len() <= 1, "two sockets at once: {:?}", self.live);
                    }
                    Out::Io(Io::Close { conn, .. } | Io::Abandon { conn, .. }) => {
                        self.live.retain(|c| *c != conn);
                        self.open.retain(|c| *c != conn);
                    }
                    Out::Io(Io::Transmit { conn, message }) => {
                        assert!(
                            self.open.contains(&conn),
                            "transmit on a socket that is not open"
                        );
                        if let Message::Text(t) = message
                            && let Some(n) = t.strip_prefix('u')
                        {
                            self.sent.push(n.parse().unwrap());
                        }
                    }
                    Out::Io(Io::ResolveUrl { .. }) => unreachable!("fixed URL"),
                    _ => {}
                }
            }
            // Transmitted exactly once, in acceptance order (gaps are messages lost with a
            // dropped socket, never reordered or duplicated).
            assert!(
                self.sent.windows(2).all(|w| w[0] < w[1]),
                "order: {:?}",
                self.sent
            );
            if self.user_closed {
                // Only the wait for the peer's close reply, which bounds `Closing`.
                let closing = m.state() == State::Closing;
                assert_eq!(
                    m.poll_timeout().is_some(),
                    closing,
                    "timer after a user close"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn random_inputs_keep_the_invariants(ops in proptest::collection::vec(op(), 1..80), seed in any::<u64>()) {
            let config = Config::default().queue_limits(8, 1000).high_water_mark(100);
            let mut m = Machine::new(config, Target::Url(URL.into()), seed, Instant(0)).unwrap();
            let mut w = World::default();
            let mut now = 0u64;
            let mut next_msg = 0u64;
            let mut old: Option<ConnId> = None;
            w.run(&mut m);
            for op in ops {
                let t = Instant(now);
                let live = w.live.last().copied();
                match op {
                    Op::Send => {
                        if m.send(t, Message::Text(format!("u{next_msg}"))).is_ok() {
                            w.accepted.push(next_msg);
                        }
                        next_msg += 1;
                    }
                    Op::Advance(ms) => {
                        now += ms;
                        if m.poll_timeout().is_some_and(|d| d.0 <= now) {
                            m.handle_timeout(Instant(now));
                        }
                    }
                    Op::Fire => {
                        if let Some(d) = m.poll_timeout() {
                            now = now.max(d.0);
                            m.handle_timeout(Instant(now));
                        }
                    }
                    Op::Open => if let Some(conn) = live.filter(|c| !w.open.contains(c)) {
                        w.open.push(conn);
                        m.handle(t, Input::SocketOpened { conn, protocol: String::new() });
                    },
                    Op::Close(code) => if let Some(conn) = live {
                        w.live.retain(|c| *c != conn);
                        w.open.retain(|c| *c != conn);
                        old = Some(conn);
                        m.handle(t, Input::SocketClosed { conn, info: CloseInfo { code, reason: String::new(), was_clean: false } });
                    },
                    Op::StaleClose => if let Some(conn) = old {
                        m.handle(t, Input::SocketClosed { conn, info: CloseInfo { code: 1006, reason: String::new(), was_clean: false } });
                    },
                    Op::Error => if let Some(conn) = live { m.handle(t, Input::SocketError { conn }) },
                    Op::Inbound(pong) => if let Some(conn) = live.filter(|c| w.open.contains(c)) {
                        let text = if pong { r#"{"type":"pong","id":1}"# } else { "hello" };
                        m.handle(t, Input::SocketMessage { conn, message: text.into() });
                    },
                    Op::Buffered(amount) => if let Some(conn) = live.filter(|c| w.open.contains(c)) {
                        m.handle(t, Input::BufferedAmount { conn, amount });
                    },
                    Op::UserClose => {
                        m.close(t, None, None).unwrap();
                        w.user_closed = true;
                    }
                    Op::Reconnect => {
                        m.reconnect(t);
                        w.user_closed = false;
                    }
                    Op::Online => m.handle(t, Input::Online),
                    Op::Offline => m.handle(t, Input::Offline),
                    Op::Visible => m.handle(t, Input::Visible),
                    Op::Hidden => m.handle(t, Input::Hidden),
                }
                w.run(&mut m);
                if w.user_closed {
                    prop_assert!(matches!(m.state(), State::Closed | State::Closing));
                }
            }
            // Finally bring a socket up and let it drain: every accepted message that was not
            // lost with a dropped socket goes out, exactly once and in order.
            let queued = m.queued_messages();
            m.handle(Instant(now), Input::Online);
            m.reconnect(Instant(now));
            w.user_closed = false;
            w.run(&mut m);
            let conn = w.live.last().copied().unwrap();
            w.open.push(conn);
            let before = w.sent.len();
            m.handle(Instant(now), Input::SocketOpened { conn, protocol: String::new() });
            w.run(&mut m);
            m.handle(Instant(now), Input::BufferedAmount { conn, amount: 0 });
            w.run(&mut m);
            for _ in 0..10 {
                m.handle(Instant(now), Input::BufferedAmount { conn, amount: 0 });
                w.run(&mut m);
            }
            prop_assert_eq!(m.queued_messages(), 0);
            prop_assert_eq!(w.sent.len() - before, queued);
            // Every accepted message was transmitted at most once and the queue is empty, and
            // the tail of what was accepted is exactly what the last flush sent.
            let mut dedup = w.sent.clone();
            dedup.dedup();
            prop_assert_eq!(dedup.len(), w.sent.len());
            prop_assert!(w.sent.iter().all(|n| w.accepted.contains(n)));
            prop_assert_eq!(&w.sent[before..], &w.accepted[w.accepted.len() - queued..]);
        }
    }
}

#[test]
fn a_close_without_a_frame_is_1006_and_a_frame_without_a_status_1005() {
    let lost = CloseInfo::abnormal("reset");
    assert_eq!(
        (lost.code, lost.reason.as_str(), lost.was_clean),
        (1006, "reset", false)
    );
    let bare = CloseInfo::clean(None);
    assert_eq!(
        (bare.code, bare.reason.as_str(), bare.was_clean),
        (1005, "", true)
    );
    let frame = CloseInfo::clean(Some((4001, "bye".into())));
    assert_eq!(
        (frame.code, frame.reason.as_str(), frame.was_clean),
        (4001, "bye", true)
    );
}

#[test]
fn an_error_during_the_handshake_ends_the_attempt_without_waiting_for_a_close() {
    // Node 20's `WebSocket` reports a refused handshake (HTTP 401) with `error` and never a
    // `close`; browsers send `close` right after. Either way the attempt ends at the error.
    let mut h = H::new(Config::default());
    let conn = H::opened_conn(&h.drain()).unwrap();
    let out = h.input(5, Input::SocketError { conn });
    assert!(out.contains(&Out::Io(Io::Abandon {
        conn,
        code: 1000,
        reason: String::new()
    })));
    let events = H::events(&out);
    assert_eq!(events[0], Event::Error(Error::Socket));
    assert_eq!(events[1], Event::Close(CloseInfo::abnormal("")));
    assert_eq!(reconnecting(&out).map(|(attempt, _)| attempt), Some(1));
    // The browser's own close event after it is stale.
    assert!(h.closed(conn, 1006).is_empty());
    // An error on an open connection is reported and waits for its close, as before.
    let (mut h, conn) = H::connected(Config::default());
    let out = h.input(5, Input::SocketError { conn });
    assert_eq!(H::events(&out), vec![Event::Error(Error::Socket)]);
    assert!(reconnecting(&h.closed(conn, 1006)).is_some());
}

#[test]
fn message_passthrough_only_where_a_frame_would_only_be_reported() {
    let mut h = H::new(quiet());
    let conn = H::opened_conn(&h.drain()).unwrap();
    assert_eq!(h.m.message_passthrough(), None, "not open yet");
    h.open(conn);
    assert_eq!(h.m.message_passthrough(), Some(conn));
    // What a shell that skips `handle` must reproduce: the frame as its message, and nothing
    // else (no I/O, no other event, no deadline).
    let deadline = h.m.poll_timeout();
    let pong = r#"{"type":"pong","id":1}"#;
    let c = h.input(
        1,
        Input::SocketMessage {
            conn,
            message: pong.into(),
        },
    );
    assert_eq!(c, vec![Out::Event(Event::Message(pong.into()))]);
    assert_eq!(h.m.poll_timeout(), deadline);
    h.m.close(Instant(2), None, None).unwrap();
    h.drain();
    assert_eq!(
        h.m.message_passthrough(),
        None,
        "after close() no frame is a message"
    );
    let c = h.input(
        3,
        Input::SocketMessage {
            conn,
            message: pong.into(),
        },
    );
    assert!(H::events(&c).is_empty(), "{c:?}");

    // The default heartbeat runs only with protocol v1; a configured one always.
    let (h, conn) = H::connected(Config::default());
    assert_eq!(h.m.message_passthrough(), Some(conn));
    let (h, _) = H::connected_v1(Config::default());
    assert_eq!(
        h.m.message_passthrough(),
        None,
        "pongs to test, liveness to note"
    );
    let (h, _) = H::connected(Config::default().heartbeat_interval(Duration::from_secs(25)));
    assert_eq!(h.m.message_passthrough(), None);
    let (mut h, conn) = H::connected(quiet());
    h.closed(conn, 1006);
    assert_eq!(h.m.message_passthrough(), None, "the connection is gone");
}

#[cfg(feature = "rooms")]
#[test]
fn no_message_passthrough_while_the_rooms_layer_runs() {
    use ws_lifeline::machine::session::Session;
    let mut s = Session::new(quiet(), Target::Url(URL.into()), 1, Instant(0)).unwrap();
    let Some(Io::Open { conn, .. }) = s.poll_io() else {
        panic!("an open first")
    };
    let protocol = String::new();
    s.handle(Instant(1), Input::SocketOpened { conn, protocol });
    assert_eq!(s.message_passthrough(), Some(conn));
    s.start_rooms(Instant(2));
    assert_eq!(
        s.message_passthrough(),
        None,
        "every frame goes to the rooms layer"
    );
}
