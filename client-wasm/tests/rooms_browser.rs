//! Browser: protocol v1 rooms over real server-dev `/ws` in headless browsers. Covers:
//! - [x] A publishes 500 numbered messages while the server cuts its connection 5 times
//!   (server-dev's `POST /test/cut`): 3 drops (TCP ends without a close frame) and 2 silences
//!   (half-open: TCP stays up, nothing flows); B, in the same room, receives every one exactly
//!   once and in order, and A reconnects at least 5 times
//! - [x] each silence is found by A's heartbeat (close 4000) within interval + timeout plus a
//!   margin; each drop shows as a close without a close frame (1006)
//! - [x] B's own connection is silenced once: it rejoins with `since` and gets
//!   `recovered: true`
//! - [x] every publish future resolves with an ack; resent publishes are deduplicated
//! - [ ] blackholing the handshake itself, refused connections, added latency: the native soak
//!   (through its fault proxy) covers those
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::json;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use ws_lifeline::machine::rooms::{RoomError, RoomEvent, RoomsConfig};
use ws_lifeline::{Client, Event};

wasm_bindgen_test_configure!(run_in_browser);

const N: u64 = 500;
const HEARTBEAT_INTERVAL_MS: u64 = 300;
const HEARTBEAT_TIMEOUT_MS: u64 = 700;
/// How long after a silence the heartbeat may take to call the connection dead: one interval
/// (the ping may have just gone out) plus the timeout, plus a margin for busy timers.
const DETECT_BOUND_MS: f64 = (HEARTBEAT_INTERVAL_MS + HEARTBEAT_TIMEOUT_MS + 1000) as f64;

fn config() -> ws_lifeline::Config {
    fast()
        .protocols([ws_lifeline::protocol::SUBPROTOCOL])
        .heartbeat_interval(Duration::from_millis(HEARTBEAT_INTERVAL_MS))
        .heartbeat_timeout(Duration::from_millis(HEARTBEAT_TIMEOUT_MS))
}

fn get(target: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(target, &JsValue::from_str(key)).unwrap()
}

/// `POST /test/cut?name=&mode=` on the server under test (through the page's `fetch`, which
/// server-dev allows from loopback origins); returns how many connections it cut.
async fn cut_once(name: &str, mode: &str) -> u64 {
    // ws://host:port -> http://host:port (wss -> https).
    let http = base().replacen("ws", "http", 1);
    let url = format!("{http}/test/cut?name={name}&mode={mode}");
    let global = js_sys::global();
    let fetch: js_sys::Function = get(&global, "fetch").dyn_into().unwrap();
    let init = js_sys::Object::new();
    js_sys::Reflect::set(&init, &"method".into(), &"POST".into()).unwrap();
    let promise = fetch.call2(&global, &url.into(), &init).unwrap();
    let resp = JsFuture::from(js_sys::Promise::from(promise))
        .await
        .unwrap();
    assert_eq!(get(&resp, "status").as_f64(), Some(200.0), "POST /test/cut");
    let json: js_sys::Function = get(&resp, "json").dyn_into().unwrap();
    let body = JsFuture::from(js_sys::Promise::from(json.call0(&resp).unwrap()))
        .await
        .unwrap();
    get(&body, "cut").as_f64().unwrap() as u64
}

/// Cuts the one live connection of `name`, waiting (bounded) for it to be back first.
/// Returns `Date.now()` from just before the request that made the cut.
async fn cut(name: &str, mode: &str) -> f64 {
    let start = js_sys::Date::now();
    loop {
        let asked = js_sys::Date::now();
        match cut_once(name, mode).await {
            1 => return asked,
            0 => {
                assert!(
                    js_sys::Date::now() - start < 10_000.0,
                    "{name} connected again in time to be cut"
                );
                sleep(50).await;
            }
            n => panic!("{name} has {n} connections"),
        }
    }
}

async fn joined(client: &Client) {
    let mut events = client.room_events();
    let start = js_sys::Date::now();
    loop {
        assert!(js_sys::Date::now() - start < 10_000.0, "joined in time");
        let next =
            futures::future::select(events.next(), gloo_timers::future::TimeoutFuture::new(200))
                .await;
        if let futures::future::Either::Left((Some(RoomEvent::Joined { .. }), _)) = next {
            return;
        }
    }
}

#[wasm_bindgen_test]
async fn every_message_once_in_order_across_cut_connections() {
    let test_start = js_sys::Date::now();
    let tag = (js_sys::Math::random() * 1e9) as u64;
    let room = format!("browser-soak-{tag}");
    // Unique names: cuts go by name, and other suites may be connected to the same server.
    let (name_a, name_b) = (format!("soak-a-{tag}"), format!("soak-b-{tag}"));
    // 64, not the default 1,024: publishes made during a cut can reach it and take the
    // `TooManyUnacked` path below; at the default the other tests cover the same delivery.
    let config_a = config().rooms(RoomsConfig::default().max_unacked(64));
    let a = Client::connect(&url(&format!("/ws?name={name_a}")), config_a).unwrap();
    let b = Client::connect(&url(&format!("/ws?name={name_b}")), config()).unwrap();
    let closes_a: Rc<RefCell<Vec<(f64, u16)>>> = Rc::default();
    let _closes_sub = {
        let closes_a = closes_a.clone();
        a.on_event(move |e| {
            if let Event::Close(info) = e {
                closes_a.borrow_mut().push((js_sys::Date::now(), info.code));
            }
        })
    };
    let got: Rc<RefCell<Vec<u64>>> = Rc::default();
    let recoveries: Rc<RefCell<Vec<bool>>> = Rc::default();
    let _sub = {
        let (got, recoveries) = (got.clone(), recoveries.clone());
        b.on_room_event(move |e| match e {
            RoomEvent::Message(m) => got.borrow_mut().push(
                m.data.decode::<serde_json::Value>().unwrap()["n"]
                    .as_u64()
                    .unwrap(),
            ),
            RoomEvent::Recovery { recovered, .. } => recoveries.borrow_mut().push(*recovered),
            _ => {}
        })
    };
    let wait_b = joined(&b);
    b.join(&room).unwrap();
    wait_b.await;
    let wait_a = joined(&a);
    a.join(&room).unwrap();
    wait_a.await;

    let cuts_a = [
        (80, "drop"),
        (170, "silence"),
        (260, "drop"),
        (350, "silence"),
        (440, "drop"),
    ];
    let mut cut_at = Vec::new();
    let mut acks = Vec::new();
    let mut n = 1;
    let start = js_sys::Date::now();
    while n <= N {
        assert!(js_sys::Date::now() - start < 60_000.0, "published in time");
        match a.publish(&room, &json!({ "n": n })) {
            Ok(f) => acks.push(f),
            Err(RoomError::TooManyUnacked { .. }) => {
                sleep(20).await;
                continue;
            }
            Err(e) => panic!("publish {n}: {e}"),
        }
        if let Some(&(_, mode)) = cuts_a.iter().find(|(at, _)| *at == n) {
            cut_at.push((cut(&name_a, mode).await, mode));
        }
        if n == 300 {
            cut(&name_b, "silence").await;
        }
        n += 1;
        // Spread the publishes, and the cuts among them, over the run. The rate limit needs no
        // care here: the client paces itself to the limits server-dev advertises.
        sleep(25).await;
    }
    for f in acks {
        f.await.unwrap();
    }
    let start = js_sys::Date::now();
    while got.borrow().last() != Some(&N) {
        assert!(
            js_sys::Date::now() - start < 20_000.0,
            "B got the last message in time"
        );
        sleep(50).await;
    }
    let got = got.borrow();
    assert_eq!(
        *got,
        (1..=N).collect::<Vec<_>>(),
        "every message once, in order"
    );
    assert_eq!(*recoveries.borrow(), vec![true], "B's rejoin recovered");
    let sa = a.stats();
    assert_eq!(sa.acked, N);
    assert!(
        sa.opens >= 6,
        "five cuts, five reconnects: {} opens",
        sa.opens
    );
    // How A saw each cut: the first close after it.
    let closes_a = closes_a.borrow();
    let mut detect_ms = Vec::new();
    for &(at, mode) in &cut_at {
        let &(closed, code) = closes_a
            .iter()
            .find(|(t, _)| *t >= at)
            .unwrap_or_else(|| panic!("A saw the {mode} cut at {at}: {closes_a:?}"));
        if mode == "silence" {
            assert_eq!(
                code,
                ws_lifeline::protocol::close::HEARTBEAT_TIMEOUT,
                "{mode}"
            );
            let took = closed - at;
            assert!(took <= DETECT_BOUND_MS, "half-open found in {took} ms");
            detect_ms.push(took);
        } else {
            assert_eq!(code, 1006, "{mode}: closed without a close frame");
        }
    }
    console_log!(
        "{}",
        format!(
            "browser soak: sent {} (resent {}), acked {}, duplicate acks {}, delivered B {}, duplicates suppressed B {}, opens A {}, half-open detected in {:?} ms, took {} ms",
            sa.published,
            sa.resent,
            sa.acked,
            sa.duplicate_acks,
            b.stats().delivered,
            b.stats().duplicates_dropped,
            sa.opens,
            detect_ms,
            js_sys::Date::now() - test_start
        )
    );
}
