//! Browser: the Yew hooks with the persistent outbox (`Endpoint::persist`, features `yew` and
//! `persist`), mounted in a real component against a real server-dev at its defaults. A
//! "reload" is the component unmounted and a new one mounted on the same store. Covers:
//! - [x] the hook makes its client with `connect_persistent` once IndexedDB answers: a fresh
//!   store restores nothing (`restored_outbox` is an empty snapshot)
//! - [x] publishes made while nothing answers are stored; after the reload the new component's
//!   `restored_outbox` holds them (ids and data), the client resends them, `use_outbox_delivered`
//!   hears each id once, and `use_room` delivers each once, in order
//! - [x] unmounting leaves no socket, listener or timer, also when it happens before IndexedDB
//!   answered (the client made afterwards is dropped at once)
//!
//! Needs `LIFELINE_TEST_SERVER` (server-dev `--test-endpoints`) at compile time.
#![cfg(all(target_arch = "wasm32", feature = "yew", feature = "persist"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use wasm_bindgen_test::*;
use ws_lifeline::web::diagnostics::{Live, live};
use ws_lifeline::web::outbox::stored_outbox;
use ws_lifeline::yew::{
    Endpoint, OutboxConfig, PublishId, UseLifeline, UseRoom, use_lifeline, use_outbox_delivered,
    use_room,
};
use yew::prelude::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Loopback port 1: nothing listens there, so every attempt is refused.
const NOWHERE: &str = "ws://127.0.0.1:1/ws";

/// What the component rendered with, for the test to read and drive.
#[derive(Default)]
struct Seen {
    lifeline: RefCell<Option<UseLifeline>>,
    room: RefCell<Option<UseRoom<u32>>>,
    delivered: RefCell<Vec<u64>>,
}

#[derive(Clone, Default)]
struct Probe(Rc<Seen>);

impl PartialEq for Probe {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

#[derive(Properties, PartialEq)]
struct PageProps {
    url: AttrValue,
    store: AttrValue,
    room: AttrValue,
    probe: Probe,
}

#[component]
fn Page(props: &PageProps) -> Html {
    let endpoint = Endpoint::url(props.url.to_string())
        .persist(props.store.to_string(), OutboxConfig::default());
    // The client's defaults, but for quick retries (the server is refused on purpose).
    let lifeline = use_lifeline(endpoint, fast());
    let room = use_room::<u32>(&lifeline, &props.room);
    let probe = props.probe.clone();
    use_outbox_delivered(
        &lifeline,
        Callback::from(move |ids: Vec<PublishId>| {
            probe
                .0
                .delivered
                .borrow_mut()
                .extend(ids.iter().map(|id| id.0));
        }),
    );
    *props.probe.0.lifeline.borrow_mut() = Some(lifeline);
    *props.probe.0.room.borrow_mut() = Some(room);
    Html::default()
}

fn mount(url: &str, store: &str, room: &str) -> (AppHandle<Page>, Probe) {
    let probe = Probe::default();
    let props = PageProps {
        url: AttrValue::from(url.to_owned()),
        store: AttrValue::from(store.to_owned()),
        room: AttrValue::from(room.to_owned()),
        probe: probe.clone(),
    };
    let root = mount_root();
    (
        yew::Renderer::<Page>::with_root_and_props(root, props).render(),
        probe,
    )
}

/// The hook's handle as of the last render; `None` before the first.
fn rendered(probe: &Probe) -> Option<UseLifeline> {
    probe.0.lifeline.borrow().clone()
}

fn lifeline(probe: &Probe) -> UseLifeline {
    rendered(probe).unwrap()
}

/// Waits until the hook's client exists, made from what the store held.
async fn restored(probe: &Probe) {
    wait_until(10_000, "the store read", || {
        rendered(probe).is_some_and(|l| l.restored_outbox().is_some())
    })
    .await;
}

/// Unmounts and checks that nothing of the client is left.
async fn unmount(app: AppHandle<Page>, probe: Probe) {
    app.destroy();
    drop(probe);
    sleep(100).await;
    assert_eq!(live(), Live::default(), "resources left after unmount");
}

#[wasm_bindgen_test]
async fn publishes_typed_offline_survive_a_remount_and_are_reported_delivered() {
    assert_eq!(live(), Live::default());
    let tag = (js_sys::Math::random() * 1e9) as u64;
    let (store, room) = (format!("yew-outbox-{tag}"), format!("yew-outbox-{tag}"));

    let (app, probe) = mount(NOWHERE, &store, &room);
    restored(&probe).await;
    let fresh = lifeline(&probe).restored_outbox().unwrap();
    assert!(fresh.publishes.is_empty(), "a new store restores nothing");
    for n in 0..3u32 {
        drop(lifeline(&probe).publish(&room, &n).unwrap());
    }
    let start = js_sys::Date::now();
    let stored = loop {
        assert!(js_sys::Date::now() - start < 15_000.0, "stored in time");
        match stored_outbox(&store).await.unwrap() {
            Some(s) if s.publishes.len() == 3 => break s,
            _ => sleep(20).await,
        }
    };
    unmount(app, probe).await;

    let (app, probe) = mount(&url(&format!("/ws?name=yew-{tag}")), &store, &room);
    restored(&probe).await;
    let restored = lifeline(&probe).restored_outbox().unwrap();
    assert_eq!(
        restored.publishes, stored.publishes,
        "what the last page left"
    );
    let want: Vec<u64> = stored.publishes.iter().map(|p| p.id).collect();
    let room_view = || probe.0.room.borrow().clone().unwrap();
    let start = js_sys::Date::now();
    while probe.0.delivered.borrow().len() < 3 || room_view().messages().len() < 3 {
        assert!(
            js_sys::Date::now() - start < 15_000.0,
            "timed out: delivered {:?}, messages {:?}, status {:?}",
            probe.0.delivered.borrow(),
            room_view().messages(),
            lifeline(&probe).status(),
        );
        sleep(20).await;
    }
    assert_eq!(*probe.0.delivered.borrow(), want, "each reported once");
    let got: Vec<(Option<u64>, u32)> = room_view()
        .messages()
        .iter()
        .map(|m| (m.id, m.data))
        .collect();
    let expected: Vec<(Option<u64>, u32)> = want.iter().map(|id| Some(*id)).zip(0..3).collect();
    assert_eq!(got, expected, "each reached the room once, in order");
    unmount(app, probe).await;
}

/// The outbox's IndexedDB database held busy: an open connection that ignores `versionchange`
/// and a delete of the database queued behind it, so every later open waits until
/// [`release`](Self::release). The browser answers an open too fast to catch otherwise
/// (Firefox often before the first render).
struct HeldDatabase(web_sys::IdbDatabase);

impl HeldDatabase {
    async fn hold() -> HeldDatabase {
        let factory = web_sys::window().unwrap().indexed_db().unwrap().unwrap();
        let open = factory.open("ws-lifeline-outbox").unwrap();
        let opened = js_sys::Promise::new(&mut |resolve, reject| {
            open.set_onsuccess(Some(&resolve));
            open.set_onerror(Some(&reject));
        });
        wasm_bindgen_futures::JsFuture::from(opened).await.unwrap();
        let db: web_sys::IdbDatabase = open.result().unwrap().into();
        // Blocked by `db`, which stays open: the opens after it queue behind the delete.
        let _ = factory.delete_database("ws-lifeline-outbox").unwrap();
        HeldDatabase(db)
    }

    fn release(self) {
        self.0.close();
    }
}

#[wasm_bindgen_test]
async fn unmounting_before_the_store_answers_leaves_nothing() {
    assert_eq!(live(), Live::default());
    let tag = (js_sys::Math::random() * 1e9) as u64;
    let held = HeldDatabase::hold().await;
    let (app, probe) = mount(NOWHERE, &format!("yew-outbox-early-{tag}"), "r");
    // Rendered, so the hook's effect has asked IndexedDB, which cannot answer yet.
    wait_until(5_000, "the first render", || rendered(&probe).is_some()).await;
    sleep(200).await;
    assert!(
        lifeline(&probe).restored_outbox().is_none(),
        "the store answered while held"
    );
    let seen = probe.0.clone();
    unmount(app, probe).await;
    held.release();
    // The client made when IndexedDB answered was dropped at once: still nothing after a while.
    sleep(500).await;
    assert_eq!(live(), Live::default());
    let lifeline = seen.lifeline.borrow().clone().unwrap();
    assert!(lifeline.restored_outbox().is_none(), "never attached");
    assert_eq!(lifeline.live_state(), ws_lifeline::State::Closed);
}
