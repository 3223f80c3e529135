//! Browser: the Yew hooks mounted in a real component against server-dev. Covers:
//! - [x] `use_lifeline` connects on mount and its status re-renders the component (`Open`)
//! - [x] unmount drops the client: no socket, listener or timer remains, and afterwards no
//!   callback runs and no status arrives, even with a retry that was due
//! - [x] a server that keeps dropping the connection: each retry waits the configured backoff
//!   (not a fixed 3 s), and reconnects replace the socket and its listeners instead of adding
//!   to them (yew-hooks' `use_websocket` leaks a closure per connect)
//! - [x] with `max_attempts`, a refused server ends in "gave up" and then nothing is retried
//!   while the component stays mounted (no blind reconnect loop)
//! - [x] 20 mount/unmount cycles leave nothing behind
//! - [x] `send_json` and `use_lifeline_messages`: typed messages through /echo, and a frame
//!   that does not decode arrives as a `DecodeError` while the connection goes on
//! - [x] `use_room` (protocol v1 through the library's rooms layer): joins, shows presence,
//!   publishes with an ack, delivers the message back; unmount drops the layer too (a pending
//!   publish fails with `Closed`) and leaves nothing behind
//!
//! Needs `LIFELINE_TEST_SERVER` (server-dev `--test-endpoints`) at compile time. The tests in
//! this file run one after another, each starting from zero live resources.
#![cfg(all(target_arch = "wasm32", feature = "yew"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use wasm_bindgen_test::*;
use ws_lifeline::web::diagnostics::{Live, callbacks_run, live};
use ws_lifeline::yew::{
    DecodeError, Endpoint, RoomError, Status, UseLifeline, UseRoom, use_lifeline,
    use_lifeline_messages, use_room,
};
use ws_lifeline::{Config, State};
use yew::prelude::*;

wasm_bindgen_test_configure!(run_in_browser);

/// online + offline + visibilitychange
const ENV_LISTENERS: usize = 3;
/// open, message, error, close
const SOCKET_LISTENERS: usize = 4;

type Seen = Rc<RefCell<Vec<Status>>>;

#[derive(Properties, PartialEq)]
struct ProbeProps {
    path: AttrValue,
    /// Fixed retry delay in ms.
    retry_ms: u64,
    max_attempts: Option<u32>,
    report: Callback<Status>,
}

/// A component that only uses the hook and reports every status it renders with.
#[component]
fn Probe(props: &ProbeProps) -> Html {
    let delay = Duration::from_millis(props.retry_ms);
    let config = Config::default()
        .no_heartbeat()
        .backoff_min(delay)
        .backoff_max(delay)
        .max_attempts(props.max_attempts);
    let lifeline = use_lifeline(Endpoint::url(url(&props.path)), config);
    let report = props.report.clone();
    use_effect_with(lifeline.status().clone(), move |status| {
        report.emit(status.clone())
    });
    html! { <p>{ format!("{:?}", lifeline.state()) }</p> }
}

fn mount(path: &str, retry_ms: u64, max_attempts: Option<u32>) -> (AppHandle<Probe>, Seen) {
    let seen: Seen = Rc::default();
    let sink = seen.clone();
    let props = ProbeProps {
        path: AttrValue::from(path.to_owned()),
        retry_ms,
        max_attempts,
        report: Callback::from(move |status| sink.borrow_mut().push(status)),
    };
    let root = mount_root();
    (
        yew::Renderer::<Probe>::with_root_and_props(root, props).render(),
        seen,
    )
}

/// Unmounts, lets Yew run the teardown, and checks nothing is left or runs afterwards.
async fn unmount_and_check_silence(app: AppHandle<Probe>, seen: &Seen, quiet_ms: u32) {
    app.destroy();
    sleep(50).await;
    assert_eq!(live(), Live::default(), "resources left after unmount");
    let (calls, statuses) = (callbacks_run(), seen.borrow().len());
    sleep(quiet_ms).await;
    assert_eq!(
        callbacks_run(),
        calls,
        "a listener or timer ran after unmount"
    );
    assert_eq!(
        seen.borrow().len(),
        statuses,
        "a status arrived after unmount"
    );
    assert_eq!(live(), Live::default());
}

#[wasm_bindgen_test]
async fn mount_connects_and_unmount_leaves_nothing() {
    assert_eq!(live(), Live::default());
    let (app, seen) = mount("/echo", 300, None);
    wait_until(5_000, "Open", || {
        seen.borrow().iter().any(|s| s.state == State::Open)
    })
    .await;
    let open = live();
    assert_eq!(open.sockets, 1);
    assert_eq!(open.listeners, SOCKET_LISTENERS + ENV_LISTENERS);
    assert_eq!(seen.borrow().last().unwrap().opens, 1);
    // Longer than yew-hooks' fixed 3 s reconnect interval.
    unmount_and_check_silence(app, &seen, 3_500).await;
}

#[wasm_bindgen_test]
async fn reconnects_follow_the_backoff_and_do_not_pile_up() {
    assert_eq!(live(), Live::default());
    // The server drops every connection after 150 ms; retries wait exactly 250 ms.
    let (app, seen) = mount("/drop?after_ms=150", 250, None);
    let mut peak = Live::default();
    let start = js_sys::Date::now();
    while seen.borrow().last().map_or(0, |s| s.opens) < 5 {
        assert!(
            js_sys::Date::now() - start < 10_000.0,
            "5 connections took over 10 s"
        );
        let now = live();
        peak.sockets = peak.sockets.max(now.sockets);
        peak.listeners = peak.listeners.max(now.listeners);
        peak.timers = peak.timers.max(now.timers);
        sleep(10).await;
    }
    // Five connections and four waits took about 5 × 150 + 4 × 250 ms, nowhere near the
    // 4 × 3 s a fixed reconnect interval would need.
    assert!(js_sys::Date::now() - start < 6_000.0);
    let waits: Vec<Duration> = seen
        .borrow()
        .iter()
        .filter_map(|s| s.reconnecting.map(|r| r.delay))
        .collect();
    assert!(!waits.is_empty(), "no reconnecting status was rendered");
    assert!(
        waits.iter().all(|d| *d <= Duration::from_millis(250)),
        "waits: {waits:?}"
    );
    // One socket with its four listeners at most, however many reconnects happened.
    assert_eq!(peak.sockets, 1, "sockets piled up: {peak:?}");
    assert_eq!(
        peak.listeners,
        SOCKET_LISTENERS + ENV_LISTENERS,
        "listeners piled up: {peak:?}"
    );
    unmount_and_check_silence(app, &seen, 1_000).await;
}

#[wasm_bindgen_test]
async fn giving_up_stops_retrying_while_mounted() {
    assert_eq!(live(), Live::default());
    let (app, seen) = mount("/reject", 100, Some(2));
    wait_until(10_000, "gave up", || {
        seen.borrow().iter().any(|s| s.gave_up)
    })
    .await;
    assert_eq!(seen.borrow().last().unwrap().state, State::Closed);
    let calls = callbacks_run();
    sleep(3_500).await;
    assert_eq!(
        callbacks_run(),
        calls,
        "something was retried after giving up"
    );
    assert_eq!(live().sockets, 0);
    unmount_and_check_silence(app, &seen, 200).await;
}

#[wasm_bindgen_test]
async fn many_mounts_leave_nothing_behind() {
    for _ in 0..20 {
        assert_eq!(live(), Live::default());
        let (app, seen) = mount("/echo", 300, None);
        wait_until(5_000, "Open", || {
            seen.borrow().iter().any(|s| s.state == State::Open)
        })
        .await;
        app.destroy();
        sleep(10).await;
    }
    assert_eq!(live(), Live::default());
}

type Room = Rc<RefCell<Option<UseRoom<String>>>>;

#[derive(Properties, PartialEq)]
struct RoomProbeProps {
    name: AttrValue,
    room: AttrValue,
    report: Callback<UseRoom<String>>,
}

/// A component with a connection and one room; it reports the room on every render.
#[component]
fn RoomProbe(props: &RoomProbeProps) -> Html {
    let config = fast().protocols([ws_lifeline::protocol::SUBPROTOCOL]);
    let lifeline = use_lifeline(
        Endpoint::url(url(&format!("/ws?name={}", props.name))),
        config,
    );
    let room = use_room::<String>(&lifeline, &props.room);
    let report = props.report.clone();
    use_effect_with(room.clone(), move |room| report.emit(room.clone()));
    html! { <p>{ room.messages().len() }</p> }
}

#[wasm_bindgen_test]
async fn use_room_joins_publishes_receives_and_tears_down() {
    assert_eq!(live(), Live::default());
    let seen: Room = Rc::default();
    let sink = seen.clone();
    let props = RoomProbeProps {
        name: "hooks".into(),
        room: AttrValue::from(format!("hooks-{}", js_sys::Math::random())),
        report: Callback::from(move |room| *sink.borrow_mut() = Some(room)),
    };
    let root = mount_root();
    let app = yew::Renderer::<RoomProbe>::with_root_and_props(root, props).render();
    let room = || seen.borrow().clone().unwrap();
    wait_until(5_000, "joined with presence", || {
        seen.borrow()
            .as_ref()
            .is_some_and(|r| r.joined() && r.members() == ["hooks"])
    })
    .await;
    assert_eq!(room().recovered(), Some(true));

    let ack = room().publish("hello").unwrap().await.unwrap();
    assert_eq!(ack.offset, 1);
    wait_until(5_000, "the message back", || {
        seen.borrow()
            .as_ref()
            .is_some_and(|r| r.messages().len() == 1)
    })
    .await;
    let message = room().messages().remove(0);
    assert_eq!(
        (message.from.as_str(), message.data.as_str(), message.offset),
        ("hooks", "hello", 1)
    );

    // A publish whose ack cannot arrive before the unmount: the layer goes with the component.
    let pending = room().publish("bye").unwrap();
    app.destroy();
    assert_eq!(pending.await, Err(RoomError::Closed));
    sleep(50).await;
    assert_eq!(live(), Live::default());
    let calls = callbacks_run();
    sleep(500).await;
    assert_eq!(callbacks_run(), calls);
    assert!(
        room().publish("after").is_err(),
        "a publish after unmount must fail"
    );
}

type Echoed = Rc<RefCell<Vec<Result<serde_json::Value, DecodeError>>>>;

#[derive(Properties, PartialEq)]
struct EchoProbeProps {
    handle: Callback<UseLifeline>,
    received: Callback<Result<serde_json::Value, DecodeError>>,
}

#[component]
fn EchoProbe(props: &EchoProbeProps) -> Html {
    let lifeline = use_lifeline(Endpoint::url(url("/echo")), fast());
    use_lifeline_messages(&lifeline, props.received.clone());
    let handle = props.handle.clone();
    use_effect_with(lifeline.clone(), move |lifeline| {
        handle.emit(lifeline.clone())
    });
    Html::default()
}

#[wasm_bindgen_test]
async fn typed_messages_round_trip_through_echo() {
    assert_eq!(live(), Live::default());
    let handle: Rc<RefCell<Option<UseLifeline>>> = Rc::default();
    let received: Echoed = Rc::default();
    let (h, r) = (handle.clone(), received.clone());
    let props = EchoProbeProps {
        handle: Callback::from(move |l| *h.borrow_mut() = Some(l)),
        received: Callback::from(move |m| r.borrow_mut().push(m)),
    };
    let root = mount_root();
    let app = yew::Renderer::<EchoProbe>::with_root_and_props(root, props).render();
    wait_until(5_000, "Open", || {
        handle
            .borrow()
            .as_ref()
            .is_some_and(|l| l.state() == State::Open)
    })
    .await;
    let lifeline = handle.borrow().clone().unwrap();
    lifeline.send_json(&serde_json::json!({ "n": 1 })).unwrap();
    lifeline.send("not json").unwrap();
    wait_until(5_000, "two echoes", || received.borrow().len() == 2).await;
    assert_eq!(received.borrow()[0], Ok(serde_json::json!({ "n": 1 })));
    let bad = received.borrow()[1].clone().unwrap_err();
    assert_eq!(bad.raw, "not json");
    assert_eq!(
        lifeline.live_state(),
        State::Open,
        "a bad frame must not drop the connection"
    );
    app.destroy();
    sleep(50).await;
    assert_eq!(live(), Live::default());
    assert!(
        lifeline.send("after").is_err(),
        "sending after unmount must fail"
    );
}
