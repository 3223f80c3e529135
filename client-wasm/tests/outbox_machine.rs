//! The persistent outbox (feature `persist`) on virtual time, against a model server (native
//! only). Covers:
//! - [x] proptest: a "page" (a `Rooms` layer with the outbox on) publishes, its shell stores the
//!   latest snapshot only now and then (stores lag behind), the connection drops and opens,
//!   the server restarts (sessions and epochs lost), and the page is dropped at any point and
//!   a new one restored from the last stored snapshot. Checked: within a server generation no
//!   `(publisher, id)` is accepted twice and each publisher's ids are accepted in increasing
//!   order; after settling, every publish that was in a stored snapshot (or made by the last
//!   page) was accepted; the last page hears `OutboxDelivered` exactly for its restored
//!   publishes; no publish fails; the publisher id survives every restore
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used)]

mod model_server;

use std::collections::{BTreeSet, HashSet};

use model_server::Model;
use proptest::prelude::*;
use serde_json::json;
use ws_lifeline::RawJson;
use ws_lifeline::machine::rooms::outbox::{OutboxConfig, OutboxSnapshot};
use ws_lifeline::machine::rooms::{RoomEvent, Rooms, RoomsConfig};
use ws_lifeline::machine::{CloseInfo, Event, Instant};

#[derive(Debug, Clone)]
enum Step {
    /// The page publishes to room `r`.
    Publish(u8),
    /// The shell stores the latest snapshot it was handed.
    Store,
    /// Up to `k` server frames reach the page.
    Deliver(u8),
    /// The connection drops.
    Drop,
    /// The connection opens again.
    Open,
    /// The server restarts: sessions, history and epochs lost.
    Restart,
    /// The page is gone; a new one starts from the stored snapshot.
    Reload,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0u8..2).prop_map(Step::Publish),
        3 => Just(Step::Store),
        5 => (1u8..5).prop_map(Step::Deliver),
        1 => Just(Step::Drop),
        2 => Just(Step::Open),
        1 => Just(Step::Restart),
        2 => Just(Step::Reload),
    ]
}

const ROOMS: [&str; 2] = ["r0", "r1"];

/// The model server for these tests. Unbounded history: a rejoin in the same epoch always
/// recovers.
fn server() -> Model {
    Model::new(usize::MAX)
}

/// A page: its layer, the shell's latest snapshot, and what it heard.
struct Page {
    rooms: Rooms,
    latest: Option<OutboxSnapshot>,
    /// Ids restored from the stored snapshot.
    restored: BTreeSet<u64>,
    /// Ids named by `OutboxDelivered`.
    delivered: Vec<u64>,
}

impl Page {
    /// A page restored from `stored`, or without it a new client whose publisher id comes from
    /// `seed`.
    fn new(stored: Option<&OutboxSnapshot>, seed: u64) -> Page {
        let config = RoomsConfig::default().max_unacked(64);
        let (rooms, restored) = match stored {
            Some(s) => {
                let restored = s.publishes.iter().map(|p| p.id).collect();
                let r = Rooms::restore(config, OutboxConfig::default(), s.clone(), Instant(0));
                (r.unwrap(), restored)
            }
            None => {
                let mut r = Rooms::new(config, seed);
                r.persist(OutboxConfig::default());
                for room in ROOMS {
                    r.join(Instant(0), room).unwrap();
                }
                (r, BTreeSet::new())
            }
        };
        Page {
            rooms,
            latest: None,
            restored,
            delivered: Vec::new(),
        }
    }
}

/// Moves frames from the page to the server and takes the page's events and snapshot, as a
/// shell does after each run.
fn pump(page: &mut Page, model: &mut Model) -> Result<(), TestCaseError> {
    while let Some(o) = page.rooms.poll_transmit() {
        let Some(frame) = o.message() else { continue };
        model.handle(serde_json::from_str(frame.as_text().unwrap()).unwrap());
    }
    while let Some(ev) = page.rooms.poll_event() {
        match ev {
            RoomEvent::PublishFailed { id, error, .. } => {
                prop_assert!(false, "publish {} failed: {}", id, error);
            }
            RoomEvent::OutboxDelivered { ids } => {
                page.delivered.extend(ids.iter().map(|id| id.0));
            }
            _ => {}
        }
    }
    if let Some(s) = page.rooms.poll_snapshot() {
        page.latest = Some(s);
    }
    Ok(())
}

/// The shell's store completes: the latest snapshot is what the next page starts from.
fn store(page: &mut Page, stored: &mut Option<OutboxSnapshot>, kept: &mut BTreeSet<u64>) {
    if let Some(s) = page.latest.take() {
        kept.extend(s.publishes.iter().map(|p| p.id));
        page.rooms.outbox_stored(&s);
        *stored = Some(s);
    }
}

fn deliver(page: &mut Page, model: &mut Model, k: usize) {
    if let Some(frame) = model.take_frame(k) {
        page.rooms.handle_event(Instant(0), &frame);
    }
}

fn drop_conn(page: &mut Page, model: &mut Model) {
    if model.disconnect() {
        let close = Event::Close(CloseInfo::abnormal(""));
        page.rooms.handle_event(Instant(0), &close);
    }
}

fn open(page: &mut Page, model: &mut Model) {
    drop_conn(page, model);
    model.connect();
    page.rooms.handle_event(Instant(0), &Event::Open);
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut model = server();
    let mut page = Page::new(None, 0);
    let mut publisher = page.rooms.publisher().to_owned();
    let mut stored: Option<OutboxSnapshot> = None;
    // Publishes that were in a stored snapshot: none of them may be lost.
    let mut kept: BTreeSet<u64> = BTreeSet::new();
    let (mut n, mut reloads) = (0u64, 0u64);
    for s in steps {
        match s {
            Step::Publish(r) => {
                n += 1;
                let room = ROOMS[usize::from(r)];
                let _ = page
                    .rooms
                    .publish(Instant(0), room, RawJson::new(n.to_string()).unwrap());
            }
            Step::Store => store(&mut page, &mut stored, &mut kept),
            Step::Deliver(k) => deliver(&mut page, &mut model, usize::from(k)),
            Step::Drop => drop_conn(&mut page, &mut model),
            Step::Open => open(&mut page, &mut model),
            Step::Restart => {
                drop_conn(&mut page, &mut model);
                model.restart();
            }
            Step::Reload => {
                // The page's socket closes with it; its frames in flight are lost.
                model.disconnect();
                reloads += 1;
                page = Page::new(stored.as_ref(), reloads);
                if stored.is_none() {
                    // Nothing stored: a new client, with its own publisher id.
                    publisher = page.rooms.publisher().to_owned();
                }
                prop_assert_eq!(page.rooms.publisher(), publisher.as_str());
            }
        }
        pump(&mut page, &mut model)?;
    }
    // The last page's own publishes count too: it settles now, without dropping, its shell
    // storing after every run.
    if let Some(s) = page.rooms.snapshot() {
        page.latest = Some(s);
    }
    store(&mut page, &mut stored, &mut kept);
    pump(&mut page, &mut model)?;
    open(&mut page, &mut model);
    for _ in 0..10_000 {
        pump(&mut page, &mut model)?;
        store(&mut page, &mut stored, &mut kept);
        pump(&mut page, &mut model)?;
        if model.wire.is_empty() {
            break;
        }
        deliver(&mut page, &mut model, 3);
    }
    pump(&mut page, &mut model)?;
    prop_assert_eq!(
        page.rooms.unacked(),
        0,
        "every publish acked after settling"
    );

    let mut once = HashSet::new();
    for key in &model.accepted {
        prop_assert!(once.insert(key.clone()), "{:?} accepted twice", key);
    }
    for w in model.accepted.windows(2) {
        if w[0].0 == w[1].0 && w[0].1 == w[1].1 {
            prop_assert!(w[0].2 < w[1].2, "ids out of order: {:?}", model.accepted);
        }
    }
    let accepted: HashSet<u64> = (model.accepted.iter())
        .filter(|(_, p, _)| *p == publisher)
        .map(|(_, _, id)| *id)
        .collect();
    if stored.is_some() {
        for id in &kept {
            prop_assert!(accepted.contains(id), "stored publish {} lost", id);
        }
    }
    let delivered: BTreeSet<u64> = page.delivered.iter().copied().collect();
    prop_assert_eq!(
        delivered.len(),
        page.delivered.len(),
        "delivered reported twice"
    );
    prop_assert_eq!(
        &delivered,
        &page.restored,
        "every restored publish reported"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn stored_publishes_reach_the_room_once_and_in_order_across_reloads(
        steps in proptest::collection::vec(step(), 0..120)
    ) {
        run(steps)?;
    }
}

/// The model's invariants hold for a plain run too (a check of the checker): a publish made
/// offline, stored, reloaded, delivered once.
#[test]
fn an_offline_publish_survives_a_reload() {
    let steps = vec![
        Step::Publish(0),
        Step::Store,
        Step::Reload,
        Step::Open,
        Step::Deliver(4),
    ];
    run(steps).unwrap();
    // And the server accepted exactly one publish.
    let mut model = server();
    let mut page = Page::new(None, 0);
    page.rooms
        .publish(
            Instant(0),
            "r0",
            RawJson::new(json!(1).to_string()).unwrap(),
        )
        .unwrap();
    pump(&mut page, &mut model).unwrap();
    let (mut stored, mut kept) = (None, BTreeSet::new());
    store(&mut page, &mut stored, &mut kept);
    let stored = stored.unwrap();
    let mut page = Page::new(Some(&stored), 0);
    open(&mut page, &mut model);
    let mut restored_store = None;
    for _ in 0..10 {
        pump(&mut page, &mut model).unwrap();
        store(&mut page, &mut restored_store, &mut kept);
        pump(&mut page, &mut model).unwrap();
        deliver(&mut page, &mut model, 4);
    }
    assert_eq!(model.accepted.len(), 1);
    assert_eq!(page.delivered, vec![stored.publishes[0].id]);
}
