//! Browser: losing and regaining the connection against server-dev's test endpoints.
//! Covers:
//! - [x] server-initiated close: code, reason and was_clean reach the app (/close)
//! - [x] a terminal close code (4404) is not retried (/close)
//! - [x] reconnect after the server cuts TCP without a close frame (/drop)
//! - [x] messages queued while disconnected are flushed in order after reconnect, through
//!   an async URL provider that picks the endpoint per attempt
//! - [x] half-open detection: heartbeat timeout closes with 4000 and reconnects (/silent)
//! - [x] a refused handshake (/reject) is retried and ends in GaveUp after max attempts
//! - [x] a URL the browser's parser refuses is an `InvalidUrl` event that a subscriber added
//!   right after `connect` still hears
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use wasm_bindgen_test::*;
use ws_lifeline::{Client, Error, Event, Message, Sent, State};

wasm_bindgen_test_configure!(run_in_browser);

fn close_info(e: &Event) -> Option<(u16, String, bool)> {
    match e {
        Event::Close(i) => Some((i.code, i.reason.clone(), i.was_clean)),
        _ => None,
    }
}

#[wasm_bindgen_test]
async fn server_close_code_and_reason_reach_the_app_and_are_retried() {
    let client = Client::connect(&url("/close?code=4001&reason=going"), fast()).unwrap();
    let mut events = client.events();
    let (close, seen) = wait_for(&mut events, 5_000, |e| matches!(e, Event::Close(_))).await;
    assert!(seen.contains(&Event::Open), "{seen:?}");
    assert_eq!(
        close_info(&close).unwrap(),
        (4001, "going".to_owned(), true)
    );
    let (e, _) = wait_for(&mut events, 2_000, |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    assert!(matches!(e, Event::Reconnecting { attempt: 1, .. }), "{e:?}");
    wait_for(&mut events, 5_000, |e| *e == Event::Open).await;
}

#[wasm_bindgen_test]
async fn a_url_the_browser_refuses_reaches_a_subscriber_added_after_connect() {
    // Passes the library's own check; the browser's URL parser refuses the host.
    let refused = "ws://exa<mple.com/";
    let client = Client::connect(refused, fast().max_attempts(Some(0))).unwrap();
    let mut events = client.events();
    let (_, seen) = wait_for(&mut events, 2_000, |e| *e == Event::GaveUp).await;
    assert!(
        seen.iter().any(
            |e| matches!(e, Event::Error(Error::InvalidUrl { supplied, .. }) if supplied == refused)
        ),
        "{seen:?}"
    );
    assert_eq!(ws_lifeline::web::diagnostics::live().sockets, 0);
}

#[wasm_bindgen_test]
async fn terminal_close_is_not_retried() {
    let client = Client::connect(&url("/close?code=4404&reason=gone"), fast()).unwrap();
    let mut events = client.events();
    let (close, _) = wait_for(&mut events, 5_000, |e| matches!(e, Event::Close(_))).await;
    assert_eq!(close_info(&close).unwrap().0, 4404);
    // Longer than any backoff delay of `fast()`.
    let after = collect(&mut events, 1_000).await;
    assert!(
        !after
            .iter()
            .any(|e| matches!(e, Event::Reconnecting { .. } | Event::Open)),
        "{after:?}"
    );
    assert_eq!(client.state(), State::Closed);
    assert_eq!(ws_lifeline::web::diagnostics::live().timers, 0);
}

#[wasm_bindgen_test]
async fn reconnects_after_a_dropped_connection() {
    let client = Client::connect(&url("/drop?after_ms=200"), fast()).unwrap();
    let mut events = client.events();
    wait_for(&mut events, 5_000, |e| *e == Event::Open).await;
    let (close, _) = wait_for(&mut events, 5_000, |e| matches!(e, Event::Close(_))).await;
    let (code, _, clean) = close_info(&close).unwrap();
    assert_eq!((code, clean), (1006, false), "no close frame");
    let (e, _) = wait_for(&mut events, 2_000, |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    let Event::Reconnecting { delay, .. } = e else {
        unreachable!()
    };
    assert!((Duration::from_millis(100)..=Duration::from_millis(300)).contains(&delay));
    wait_for(&mut events, 5_000, |e| *e == Event::Open).await;
    assert_eq!(client.state(), State::Open);
}

#[wasm_bindgen_test]
async fn queued_messages_flush_in_order_after_reconnect() {
    let attempts = Rc::new(Cell::new(0u32));
    let counter = attempts.clone();
    let (drop_url, echo_url) = (url("/drop?after_ms=200"), url("/echo"));
    let client = Client::with_url_provider(fast(), move || {
        let n = counter.get();
        counter.set(n + 1);
        let url = if n == 0 {
            drop_url.clone()
        } else {
            echo_url.clone()
        };
        async move {
            sleep(10).await; // really async
            Ok::<_, String>(url)
        }
    })
    .unwrap();
    let mut events = client.events();
    wait_for(&mut events, 5_000, |e| *e == Event::Open).await;
    wait_for(&mut events, 5_000, |e| matches!(e, Event::Close(_))).await;
    for i in 0..5 {
        assert_eq!(client.send(format!("q{i}")), Ok(Sent::Queued));
    }
    assert_eq!(client.queued_messages(), 5);
    let (_, seen) = wait_for(&mut events, 5_000, |e| *e == Event::Open).await;
    assert!(
        seen.iter().any(|e| matches!(e, Event::Reconnecting { .. })),
        "{seen:?}"
    );
    // The queue was flushed when the socket opened, before this event reached the stream.
    assert_eq!(client.queued_messages(), 0);
    client.send("after").unwrap();
    let mut got = Vec::new();
    while got.len() < 6 {
        if let (Event::Message(Message::Text(t)), _) =
            wait_for(&mut events, 5_000, |e| matches!(e, Event::Message(_))).await
        {
            got.push(t);
        }
    }
    assert_eq!(got, ["q0", "q1", "q2", "q3", "q4", "after"]);
    assert_eq!(attempts.get(), 2);
}

#[wasm_bindgen_test]
async fn half_open_is_detected_by_the_heartbeat() {
    let config = fast()
        .heartbeat_interval(Duration::from_millis(300))
        .heartbeat_timeout(Duration::from_millis(500));
    let client = Client::connect(&url("/silent"), config).unwrap();
    let mut events = client.events();
    wait_for(&mut events, 5_000, |e| *e == Event::Open).await;
    let opened = js_sys::Date::now();
    let (close, _) = wait_for(&mut events, 5_000, |e| matches!(e, Event::Close(_))).await;
    let elapsed = js_sys::Date::now() - opened;
    assert_eq!(close_info(&close).unwrap().0, 4000);
    // First ping at 300 ms, dead 500 ms later; generous upper bound for slow CI timers.
    assert!(
        (750.0..3_000.0).contains(&elapsed),
        "detected after {elapsed} ms"
    );
    wait_for(&mut events, 2_000, |e| {
        matches!(e, Event::Reconnecting { attempt: 1, .. })
    })
    .await;
    wait_for(&mut events, 5_000, |e| *e == Event::Open).await;
}

#[wasm_bindgen_test]
async fn refused_handshakes_end_in_gave_up() {
    let client = Client::connect(&url("/reject?status=503"), fast().max_attempts(Some(2))).unwrap();
    let mut events = client.events();
    let (_, seen) = wait_for(&mut events, 10_000, |e| *e == Event::GaveUp).await;
    let retries = seen
        .iter()
        .filter(|e| matches!(e, Event::Reconnecting { .. }))
        .count();
    assert_eq!(retries, 2, "{seen:?}");
    assert!(!seen.contains(&Event::Open));
    assert_eq!(client.state(), State::Closed);
}
