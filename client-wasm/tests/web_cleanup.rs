//! Browser: nothing outlives a client. Covers:
//! - [x] while waiting to retry after a drop, the dead socket's listeners are gone
//! - [x] dropping the client removes every socket, listener and timer it held
//!   (counted by `web::diagnostics`, which wraps each RAII handle)
//! - [x] after the drop, no listener or timer callback runs and no event is delivered, even
//!   with an echo in flight and a retry that was due
//! - [x] a weak ClientHandle reports Closed once the client is gone
//!
//! Each test starts from zero live resources: the tests in this file run one after another.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use wasm_bindgen_test::*;
use ws_lifeline::web::diagnostics::{Live, callbacks_run, live};
use ws_lifeline::{Client, Error, Event, State};

wasm_bindgen_test_configure!(run_in_browser);

/// online + offline + visibilitychange
const ENV_LISTENERS: usize = 3;

#[wasm_bindgen_test]
async fn after_a_drop_nothing_fires_and_nothing_remains() {
    assert_eq!(live(), Live::default());
    let config = fast()
        .backoff_min(Duration::from_millis(400))
        .backoff_max(Duration::from_millis(400))
        .heartbeat_interval(Duration::from_secs(20));
    let client = Client::connect(&url("/drop?after_ms=200"), config).unwrap();
    let delivered = Rc::new(Cell::new(0u32));
    let count = delivered.clone();
    let _sub = client.on_event(move |_| count.set(count.get() + 1));
    let mut events = client.events();
    wait_for(&mut events, 5_000, |e| *e == Event::Open).await;
    assert_eq!(
        live(),
        Live {
            sockets: 1,
            listeners: 4 + ENV_LISTENERS,
            timers: 1
        }
    );
    // The server cuts TCP: the dead socket and its listeners go; the retry timer stays.
    wait_for(&mut events, 5_000, |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    assert_eq!(
        live(),
        Live {
            sockets: 0,
            listeners: ENV_LISTENERS,
            timers: 1
        }
    );

    let handle = client.handle();
    drop(events);
    drop(client);
    assert_eq!(live(), Live::default());
    let (calls, events_seen) = (callbacks_run(), delivered.get());
    // The retry was due in 400 ms: it must not happen.
    sleep(1_000).await;
    assert_eq!(callbacks_run(), calls, "a listener or timer ran after drop");
    assert_eq!(delivered.get(), events_seen, "an event arrived after drop");
    assert_eq!(live(), Live::default());
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.send("x"), Err(Error::Closed));
}

#[wasm_bindgen_test]
async fn dropping_an_open_client_with_traffic_in_flight() {
    assert_eq!(live(), Live::default());
    let client = Client::connect(
        &url("/echo"),
        fast().heartbeat_interval(Duration::from_millis(200)),
    )
    .unwrap();
    let delivered = Rc::new(Cell::new(0u32));
    let count = delivered.clone();
    let _sub = client.on_event(move |_| count.set(count.get() + 1));
    let mut events = client.events();
    wait_for(&mut events, 5_000, |e| *e == Event::Open).await;
    for i in 0..20 {
        client.send(format!("m{i}")).unwrap();
    }
    drop(events);
    drop(client);
    assert_eq!(live(), Live::default());
    let (calls, seen) = (callbacks_run(), delivered.get());
    sleep(600).await; // echoes and heartbeat ticks would land here
    assert_eq!(callbacks_run(), calls);
    assert_eq!(delivered.get(), seen);
}

#[wasm_bindgen_test]
async fn many_reconnects_hold_no_more_than_one_connection() {
    assert_eq!(live(), Live::default());
    let config = fast()
        .backoff_min(Duration::from_millis(10))
        .backoff_max(Duration::from_millis(20));
    let client = Client::connect(&url("/close?code=4001"), config).unwrap();
    let mut events = client.events();
    for _ in 0..20 {
        wait_for(&mut events, 5_000, |e| matches!(e, Event::Close(_))).await;
        let l = live();
        assert!(
            l.sockets <= 1 && l.listeners <= 4 + ENV_LISTENERS && l.timers <= 1,
            "{l:?}"
        );
    }
    drop(events);
    drop(client);
    assert_eq!(live(), Live::default());
}
