//! Browser: the persistent outbox (feature `persist`) in IndexedDB, against a real server-dev
//! at its defaults, in headless browsers. A "reload" is the client dropped and a new one made
//! on the same store. Covers:
//! - [x] publishes made while nothing answers at the client's URL are written to IndexedDB
//!   (read back with `stored_outbox`), with the client's publisher id
//! - [x] after the reload, the new client on the same store, connected to server-dev, resends
//!   them with their ids: `OutboxDelivered` names each once, and the room delivers each once,
//!   in order, stamped with the stored publisher id
//! - [x] the store then holds no publish; `clear_outbox` fails what it held
//! - [ ] a real page reload and a discarded tab: the JS side's Playwright tests (not built yet)
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures::StreamExt;
use futures::future::{Either, select};
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen_test::*;
use ws_lifeline::machine::rooms::outbox::OutboxConfig;
use ws_lifeline::machine::rooms::{RoomError, RoomEvent};
use ws_lifeline::web::outbox::stored_outbox;
use ws_lifeline::{Client, Config, EventStream};

wasm_bindgen_test_configure!(run_in_browser);

/// Loopback port 1: nothing listens there, so every attempt is refused.
const NOWHERE: &str = "ws://127.0.0.1:1/ws";
const LIMIT_MS: f64 = 15_000.0;

/// Room events until `done` holds for one (bounded); returns them all.
async fn until(
    events: &mut EventStream<RoomEvent>,
    mut done: impl FnMut(&RoomEvent) -> bool,
) -> Vec<RoomEvent> {
    let start = js_sys::Date::now();
    let mut seen = Vec::new();
    loop {
        assert!(
            js_sys::Date::now() - start < LIMIT_MS,
            "timed out; saw {seen:?}"
        );
        if let Either::Left((Some(e), _)) = select(events.next(), TimeoutFuture::new(200)).await {
            let last = done(&e);
            seen.push(e);
            if last {
                return seen;
            }
        }
    }
}

#[wasm_bindgen_test]
async fn publishes_made_offline_survive_a_reload_and_arrive_once() {
    let tag = (js_sys::Math::random() * 1e9) as u64;
    let (store, room) = (format!("outbox-test-{tag}"), format!("outbox-{tag}"));
    let outbox = OutboxConfig::default();

    let page = Client::connect_persistent(NOWHERE, Config::default(), outbox.clone(), &store)
        .await
        .unwrap();
    page.join(&room).unwrap();
    for n in 0..3 {
        // Dropping the future does not cancel the publish.
        drop(page.publish(&room, &n).unwrap());
    }
    let start = js_sys::Date::now();
    let stored = loop {
        assert!(js_sys::Date::now() - start < LIMIT_MS, "stored in time");
        match stored_outbox(&store).await.unwrap() {
            Some(s) if s.publishes.len() == 3 => break s,
            _ => sleep(20).await,
        }
    };
    assert_eq!(Some(&stored), page.outbox_snapshot().as_ref());
    drop(page);

    let url = url(&format!("/ws?name=outbox-{tag}"));
    let page = Client::connect_persistent(&url, Config::default(), outbox, &store)
        .await
        .unwrap();
    let mut events = page.room_events();
    let want: Vec<u64> = stored.publishes.iter().map(|p| p.id).collect();
    let mut delivered = Vec::new();
    let mut got = Vec::new();
    until(&mut events, |e| {
        match e {
            RoomEvent::OutboxDelivered { ids } => delivered.extend(ids.iter().map(|id| id.0)),
            RoomEvent::Message(m) => {
                assert_eq!(m.publisher.as_deref(), Some(stored.publisher.as_str()));
                got.push((m.id.unwrap(), m.data.as_str().to_owned()));
            }
            _ => {}
        }
        delivered.len() >= want.len() && got.len() >= want.len()
    })
    .await;
    assert_eq!(delivered, want, "each restored publish reported once");
    let data: Vec<String> = (0..3).map(|n: u32| n.to_string()).collect();
    let expected: Vec<(u64, String)> = want.iter().copied().zip(data).collect();
    assert_eq!(got, expected, "each reached the room once, in order");

    // A marker: anything delivered twice would come before it.
    drop(page.publish(&room, "end").unwrap());
    let rest = until(
        &mut events,
        |e| matches!(e, RoomEvent::Message(m) if m.data.as_str() == "\"end\""),
    )
    .await;
    let again = rest
        .iter()
        .filter(|e| matches!(e, RoomEvent::Message(m) if m.id.is_some_and(|id| want.contains(&id))))
        .count();
    assert_eq!(again, 0, "nothing delivered twice");

    let start = js_sys::Date::now();
    while !(stored_outbox(&store).await.unwrap()).is_some_and(|s| s.publishes.is_empty()) {
        assert!(js_sys::Date::now() - start < LIMIT_MS, "emptied in time");
        sleep(20).await;
    }
    drop(page);
}

#[wasm_bindgen_test]
async fn clearing_the_outbox_fails_what_it_held() {
    let tag = (js_sys::Math::random() * 1e9) as u64;
    let store = format!("outbox-clear-{tag}");
    let page =
        Client::connect_persistent(NOWHERE, Config::default(), OutboxConfig::default(), &store)
            .await
            .unwrap();
    page.join("r").unwrap();
    let publish = page.publish("r", &1).unwrap();
    page.clear_outbox()
        .expect("a client of its own clears its outbox");
    assert!(matches!(
        publish.await,
        Err(RoomError::OutboxCleared { .. })
    ));
    assert!(page.outbox_snapshot().unwrap().publishes.is_empty());
}
