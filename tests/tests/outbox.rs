//! The persistent outbox (feature `persist`) of the native client against a real server-dev
//! in this process, at its defaults but for logins. A "reload" is the client dropped and a new
//! one made from the last snapshot its store was given. Covers:
//! - [x] publishes made while the server is down, the client dropped, a new client from the
//!   stored snapshot, the server back: each publish reaches the room once, in order, and the
//!   new client hears `OutboxDelivered` with their ids
//! - [x] a publish the server accepted although the stored snapshot still holds it (the page
//!   was lost before storing the next one): the new client resumes the stored session, the
//!   server answers the resend with `ack{duplicate: true}` and does not broadcast it again
//! - [x] the same after a server restart (sessions and history lost): the resend is accepted
//!   again in the new epoch, and a receiver that had the publish drops the re-broadcast by
//!   `(publisher, id)`, so its application sees it once (the limit docs/PROTOCOL.md states)
//! - [x] the snapshot example in docs/PROTOCOL.md is a valid version 1 snapshot and re-encodes
//!   to the same JSON
#![allow(clippy::unwrap_used)] // test code panics by design

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifeline_tests::events;
use lifeline_tests::server::RunningServer;
use tokio::time::timeout;
use ws_lifeline::Config;
use ws_lifeline::machine::rooms::outbox::{OutboxConfig, OutboxSnapshot};
use ws_lifeline::machine::rooms::{PublishAck, PublishId, RoomEvent, RoomMessage};
use ws_lifeline::native::{Client, ClientEvent};

const LIMIT: Duration = Duration::from_secs(30);
const ROOM: &str = "outbox";

fn config() -> server_dev::Config {
    server_dev::Config::default().no_auth(true)
}

/// Every snapshot a client's store was given, in order: the last is what a reload finds.
#[derive(Clone, Default)]
struct Store(Arc<Mutex<Vec<OutboxSnapshot>>>);

impl Store {
    fn saver(&self) -> impl FnMut(&OutboxSnapshot) + Send + 'static {
        let all = Arc::clone(&self.0);
        // Stored as text, as a real store keeps it.
        move |s| {
            all.lock()
                .unwrap()
                .push(OutboxSnapshot::from_json(&s.to_json()).unwrap())
        }
    }

    fn last(&self) -> Option<OutboxSnapshot> {
        self.0.lock().unwrap().last().cloned()
    }

    fn all(&self) -> Vec<OutboxSnapshot> {
        self.0.lock().unwrap().clone()
    }
}

fn persistent(url: &str, snapshot: Option<OutboxSnapshot>, store: &Store) -> Client {
    let outbox = OutboxConfig::default();
    Client::connect_persistent(url, Config::default(), outbox, snapshot, store.saver()).unwrap()
}

/// Waits, bounded, until `done` holds for a room event; returns every room event seen.
async fn until(client: &mut Client, mut done: impl FnMut(&RoomEvent) -> bool) -> Vec<RoomEvent> {
    let seen = events::until(
        client,
        LIMIT,
        |e| matches!(e, ClientEvent::Room(r) if done(r)),
    );
    let room_event = |e| match e {
        ClientEvent::Room(event) => Some(event),
        _ => None,
    };
    seen.await.into_iter().filter_map(room_event).collect()
}

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Polls, bounded, until `ready` holds.
async fn eventually(what: &str, mut ready: impl FnMut() -> bool) {
    bounded(what, async {
        while !ready() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// An observer's messages from `publisher`, by publish id, until the marker `end` arrives.
async fn messages_until(
    observer: &mut Client,
    publisher: &str,
    end: &str,
) -> Vec<RoomMessage<serde_json::Value>> {
    let mut got = Vec::new();
    until(observer, |e| {
        let RoomEvent::Message(m) = e else {
            return false;
        };
        let m = m.decode::<serde_json::Value>().unwrap();
        if m.data == end {
            return true;
        }
        if m.publisher.as_deref() == Some(publisher) {
            got.push(m);
        }
        false
    })
    .await;
    got
}

#[tokio::test]
async fn publishes_made_offline_survive_a_reload_and_arrive_once() {
    let server = RunningServer::start(config()).await.unwrap();
    let addr = server.addr();
    let url = server.ws_url("/ws?name=ann");
    let mut observer = Client::connect(&server.ws_url("/ws?name=obs"), Config::default()).unwrap();
    observer.join(ROOM).unwrap();
    until(&mut observer, |e| matches!(e, RoomEvent::Joined { .. })).await;

    let store = Store::default();
    let mut page = persistent(&url, None, &store);
    page.join(ROOM).unwrap();
    until(&mut page, |e| matches!(e, RoomEvent::Joined { .. })).await;
    let publisher = store.last().unwrap().publisher.clone();

    server.stop().await;
    for n in 0..5 {
        // Dropping the future does not cancel the publish.
        drop(page.publish(ROOM, &n).unwrap());
    }
    eventually("five publishes stored", || {
        store.last().is_some_and(|s| s.publishes.len() == 5)
    })
    .await;
    let stored = store.last().unwrap();
    drop(page);

    let store = Store::default();
    let mut page = persistent(&url, Some(stored.clone()), &store);
    let server = RunningServer::start_at(addr, config()).await.unwrap();
    let want: Vec<PublishId> = stored.publishes.iter().map(|p| PublishId(p.id)).collect();
    // One report per frame of acks.
    let mut delivered = Vec::new();
    let events = until(&mut page, |e| {
        if let RoomEvent::OutboxDelivered { ids } = e {
            delivered.extend_from_slice(ids);
        }
        delivered.len() >= want.len()
    })
    .await;
    assert_eq!(delivered, want, "every restored publish reported once");
    let acked: Vec<PublishId> = (events.iter())
        .filter_map(|e| match e {
            RoomEvent::Acked { id, duplicate, .. } => Some((*id, *duplicate)),
            _ => None,
        })
        .map(|(id, duplicate)| {
            assert!(!duplicate, "the server never had them");
            id
        })
        .collect();
    assert_eq!(acked, want);

    let got = observed_before_a_marker(&mut page, &mut observer, &publisher).await;
    let ids: Vec<u64> = got.iter().map(|m| m.id.unwrap()).collect();
    let data: Vec<serde_json::Value> = got.iter().map(|m| m.data.clone()).collect();
    assert_eq!(ids, want.iter().map(|id| id.0).collect::<Vec<_>>());
    assert_eq!(
        data,
        (0..5).map(serde_json::Value::from).collect::<Vec<_>>()
    );
    assert_eq!(page.stats().resent, 5, "each sent once, as a resend");
    server.stop().await;
}

/// A page that published "once" to the room, with an observer in it, and got the ack; the
/// snapshot is the newest one its store was given that still holds that publish: what the next
/// page finds when this one is lost before it stores the snapshot after the ack.
struct Stale {
    server: RunningServer,
    url: String,
    observer: Client,
    page: Client,
    ack: PublishAck,
    snapshot: OutboxSnapshot,
}

async fn stale_snapshot() -> Stale {
    let server = RunningServer::start(config()).await.unwrap();
    let url = server.ws_url("/ws?name=ann");
    let mut observer = Client::connect(&server.ws_url("/ws?name=obs"), Config::default()).unwrap();
    observer.join(ROOM).unwrap();
    until(&mut observer, |e| matches!(e, RoomEvent::Joined { .. })).await;

    let store = Store::default();
    let mut page = persistent(&url, None, &store);
    page.join(ROOM).unwrap();
    until(&mut page, |e| matches!(e, RoomEvent::Joined { .. })).await;
    let ack = bounded("the ack", page.publish(ROOM, "once").unwrap())
        .await
        .unwrap();
    let snapshot = (store.all().into_iter().rev())
        .find(|s| s.publishes.iter().any(|p| p.id == ack.id.0))
        .unwrap();
    assert!(snapshot.session.is_some(), "sent only in a stored session");
    Stale {
        server,
        url,
        observer,
        page,
        ack,
        snapshot,
    }
}

/// The next page, from `snapshot`, until it reports its outbox delivered; with every room
/// event it heard.
async fn next_page(url: &str, snapshot: OutboxSnapshot) -> (Client, Vec<RoomEvent>) {
    let mut page = persistent(url, Some(snapshot), &Store::default());
    let events = until(&mut page, |e| {
        matches!(e, RoomEvent::OutboxDelivered { .. })
    })
    .await;
    (page, events)
}

/// The observer's messages from `publisher` that arrive before a marker the page publishes
/// now: whatever of them the observer would get arrives before it.
async fn observed_before_a_marker(
    page: &mut Client,
    observer: &mut Client,
    publisher: &str,
) -> Vec<RoomMessage<serde_json::Value>> {
    drop(page.publish(ROOM, "end").unwrap());
    bounded(
        "the observer's messages",
        messages_until(observer, publisher, "end"),
    )
    .await
}

#[tokio::test]
async fn a_resend_from_a_stale_snapshot_is_deduplicated_across_pages() {
    let mut stale = stale_snapshot().await;
    let (ack, publisher) = (stale.ack, stale.snapshot.publisher.clone());
    drop(stale.page);

    let (mut page, events) = next_page(&stale.url, stale.snapshot).await;
    let welcome = events.iter().find_map(|e| match e {
        RoomEvent::Welcome { resumed, .. } => Some(*resumed),
        _ => None,
    });
    assert_eq!(welcome, Some(true), "the stored session is resumed");
    let dup = events.iter().find_map(|e| match e {
        RoomEvent::Acked {
            id,
            offset,
            duplicate,
            ..
        } => Some((*id, *offset, *duplicate)),
        _ => None,
    });
    assert_eq!(dup, Some((ack.id, ack.offset, true)), "{events:?}");
    assert_eq!(
        events.last(),
        Some(&RoomEvent::OutboxDelivered { ids: vec![ack.id] })
    );

    let got = observed_before_a_marker(&mut page, &mut stale.observer, &publisher).await;
    let counts = got.iter().fold(HashMap::new(), |mut counts, m| {
        *counts.entry(m.id.unwrap()).or_insert(0) += 1;
        counts
    });
    assert_eq!(counts, HashMap::from([(ack.id.0, 1)]), "broadcast once");
    stale.server.stop().await;
}

#[tokio::test]
async fn after_a_server_restart_a_receiver_drops_the_rebroadcast_resend() {
    let mut stale = stale_snapshot().await;
    let (ack, publisher) = (stale.ack, stale.snapshot.publisher.clone());
    let addr = stale.server.addr();
    until(
        &mut stale.observer,
        |e| matches!(e, RoomEvent::Message(m) if m.id == Some(ack.id.0)),
    )
    .await;
    drop(stale.page);
    stale.server.stop().await;

    let server = RunningServer::start_at(addr, config()).await.unwrap();
    let (mut page, events) = next_page(&stale.url, stale.snapshot).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RoomEvent::Welcome { resumed: false, .. })),
        "the restarted server forgot the session: {events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            RoomEvent::Acked { id, duplicate: false, .. } if *id == ack.id
        )),
        "accepted again: {events:?}"
    );

    let got = observed_before_a_marker(&mut page, &mut stale.observer, &publisher).await;
    assert!(got.is_empty(), "the re-broadcast is not delivered: {got:?}");
    assert!(stale.observer.stats().resends_dropped >= 1);
    server.stop().await;
}

#[test]
fn the_documented_snapshot_is_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let block: String = (doc.lines())
        .skip_while(|l| l.trim() != "```json outbox-snapshot")
        .skip(1)
        .take_while(|l| l.trim() != "```")
        .collect();
    let snapshot = OutboxSnapshot::from_json(&block).unwrap();
    let again: serde_json::Value = serde_json::from_str(&snapshot.to_json()).unwrap();
    assert_eq!(
        again,
        serde_json::from_str::<serde_json::Value>(&block).unwrap()
    );
    let rooms = ws_lifeline::machine::rooms::RoomsConfig::default();
    let restored = ws_lifeline::machine::rooms::Rooms::restore(
        rooms,
        OutboxConfig::default(),
        snapshot,
        ws_lifeline::machine::Instant(0),
    )
    .unwrap();
    assert_eq!(restored.unacked(), 1);
}
