//! The native client's URL provider, against a real server-dev, at the default settings.
//! Covers:
//! - [x] a provider that fails is reported as `Error::UrlProvider` and asked again after the
//!   backoff; its next answer is connected to
//! - [x] the provider runs before every attempt: after the server closes the connection, the
//!   next attempt goes to the URL the provider names then
//! - [x] dropping the client drops a provider's future that never finishes (nothing left
//!   running)
#![allow(clippy::unwrap_used)] // test code panics by design

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lifeline_tests::events::until;
use lifeline_tests::server::RunningServer;
use ws_lifeline::native::{Client, ClientEvent};
use ws_lifeline::{Config, Error, Event};

const LIMIT: Duration = Duration::from_secs(10);

/// server-dev in this process on a free port, at its defaults but for logins.
async fn server() -> RunningServer {
    let config = server_dev::Config::default().no_auth(true);
    RunningServer::start(config).await.unwrap()
}

#[tokio::test]
async fn a_failed_provider_is_reported_and_asked_again() {
    let (one, two) = (server().await, server().await);
    let calls = Arc::new(AtomicUsize::new(0));
    let asked = Arc::clone(&calls);
    let (one_url, two_url) = (one.ws_url("/ws?name=ann"), two.ws_url("/ws?name=ann"));
    let mut client = Client::with_url_provider(Config::default(), move || {
        let call = asked.fetch_add(1, Ordering::SeqCst);
        let answer = match call {
            0 => Err("ticket service down"),
            1 => Ok(one_url.clone()),
            _ => Ok(two_url.clone()),
        };
        async move { answer }
    })
    .unwrap();
    let seen = until(&mut client, LIMIT, |e| {
        matches!(e, ClientEvent::Connection(Event::Open))
    })
    .await;
    assert!(
        seen.iter().any(|e| matches!(
            e,
            ClientEvent::Connection(Event::Error(Error::UrlProvider { message }))
                if message.contains("ticket service down")
        )),
        "the provider's error is reported: {seen:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "asked again after the failure"
    );
    assert_eq!(client.url(), Some(one.ws_url("/ws?name=ann")));

    // A reconnect asks the provider again, which now names the other server.
    client.reconnect();
    until(&mut client, LIMIT, |e| {
        matches!(e, ClientEvent::Connection(Event::Open))
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(client.url(), Some(two.ws_url("/ws?name=ann")));
    drop(client);
    one.stop().await;
    two.stop().await;
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn dropping_the_client_drops_a_pending_provider() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (flag, count) = (Arc::clone(&dropped), Arc::clone(&started));
    let client = Client::with_url_provider(Config::default(), move || {
        let guard = DropFlag(Arc::clone(&flag));
        count.fetch_add(1, Ordering::SeqCst);
        async move {
            let _guard = guard;
            std::future::pending::<Result<String, String>>().await
        }
    })
    .unwrap();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while started.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(started.load(Ordering::SeqCst), 1, "the provider was asked");
    assert_eq!(dropped.load(Ordering::SeqCst), 0, "its future is pending");
    drop(client);
    while dropped.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "dropping the client dropped its future"
    );
}
