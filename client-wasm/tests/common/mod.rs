//! Helpers shared by the browser tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use futures::future::{Either, select};
use gloo_timers::future::TimeoutFuture;
use ws_lifeline::{Config, Event, EventStream};

/// The server-dev under test, as a ws:// base URL. It arrives at compile time, so a run
/// without it fails loudly instead of passing vacuously.
pub(crate) fn base() -> String {
    let Some(http) = option_env!("LIFELINE_TEST_SERVER") else {
        panic!("set LIFELINE_TEST_SERVER=http://127.0.0.1:PORT (server-dev --test-endpoints)");
    };
    let http = http.trim_end_matches('/');
    match http.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", http.trim_start_matches("http://")),
    }
}

pub(crate) fn url(path: &str) -> String {
    format!("{}{path}", base())
}

/// Fast retries and no heartbeat unless a test turns it on.
pub(crate) fn fast() -> Config {
    Config::default()
        .no_heartbeat()
        .backoff_min(Duration::from_millis(100))
        .backoff_max(Duration::from_millis(300))
}

pub(crate) async fn sleep(ms: u32) {
    TimeoutFuture::new(ms).await;
}

/// The next event, or `None` after `ms`.
pub(crate) async fn next(events: &mut EventStream, ms: u32) -> Option<Event> {
    match select(events.next(), TimeoutFuture::new(ms)).await {
        Either::Left((event, _)) => event,
        Either::Right(_) => None,
    }
}

/// Waits up to `ms` for an event matching `pred`; returns it and everything seen before it.
pub(crate) async fn wait_for(
    events: &mut EventStream,
    ms: u32,
    pred: impl Fn(&Event) -> bool,
) -> (Event, Vec<Event>) {
    let start = js_sys::Date::now();
    let mut seen = Vec::new();
    loop {
        let left = ms as f64 - (js_sys::Date::now() - start);
        if left <= 0.0 {
            panic!("timed out after {ms} ms; saw {seen:?}");
        }
        match next(events, left as u32).await {
            Some(e) if pred(&e) => return (e, seen),
            Some(e) => seen.push(e),
            None => panic!("timed out after {ms} ms; saw {seen:?}"),
        }
    }
}

/// Collects every event for `ms`.
pub(crate) async fn collect(events: &mut EventStream, ms: u32) -> Vec<Event> {
    let start = js_sys::Date::now();
    let mut seen = Vec::new();
    loop {
        let left = ms as f64 - (js_sys::Date::now() - start);
        if left <= 0.0 {
            return seen;
        }
        match next(events, left as u32).await {
            Some(e) => seen.push(e),
            None => return seen,
        }
    }
}

/// Waits until `done()`, failing the test with `what` after `ms`.
pub(crate) async fn wait_until(ms: u32, what: &str, done: impl Fn() -> bool) {
    let start = js_sys::Date::now();
    while !done() {
        assert!(
            js_sys::Date::now() - start < f64::from(ms),
            "timed out waiting for {what}"
        );
        sleep(20).await;
    }
}

/// A `<div>` of its own in the page's body for a Yew app under test: the test runner reports
/// through the body.
pub(crate) fn mount_root() -> web_sys::Element {
    let document = web_sys::window().unwrap().document().unwrap();
    let root = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&root).unwrap();
    root
}
