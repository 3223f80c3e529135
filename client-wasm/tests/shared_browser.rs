//! Browser: the Rust side of shared mode (`web/shared.rs`) against a stand-in for the npm
//! package's `ws-lifeline/shared` entry. The real entry runs its hub in a SharedWorker, which
//! the wasm-bindgen test runner's page cannot start from another origin; the demo's e2e tests
//! (`tests/e2e/demo_shared.test.mjs`, `demo_firefox.test.mjs`) run the real one. Here the
//! stand-in (a `data:` module with the entry's `LifelineSocket` API) dispatches the events the
//! entry dispatches and records the calls, so every mapping is checked. Covers:
//! - [x] calls made before the entry loaded reach it in order, with the settings as options
//! - [x] every connection and room event maps to its `Event` / `RoomEvent`, typed errors too
//! - [x] a publish settles its future and its `Acked` / `PublishFailed` under the tab's id
//! - [x] what is refused synchronously (room names, not joined, close codes, preamble); the
//!   outbox's clearing reaches the entry
//! - [x] an entry that cannot be loaded is an error event and state `Closed`
//! - [x] dropping the client disposes the entry's socket and removes every listener
#![cfg(all(target_arch = "wasm32", feature = "shared"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;
use ws_lifeline::machine::rooms::{PublishAck, RoomError, RoomEvent};
use ws_lifeline::web::diagnostics::live;
use ws_lifeline::{Client, CloseInfo, Config, Error, Event, Message, QueueLimit, Share, State};

wasm_bindgen_test_configure!(run_in_browser);

/// The stand-in entry: the `LifelineSocket` API of `ws-lifeline/shared`, recording its calls.
const STAND_IN: &str = r#"
export class LifelineSocket extends EventTarget {
  constructor(url, protocols, options) {
    super();
    this.args = { url: typeof url === "function" ? "provider" : url, protocols, options };
    this.provider = typeof url === "function" ? url : undefined;
    this.calls = [];
    this.pending = [];
    this.state = "connecting";
    this.url = typeof url === "string" ? url : "";
    this.protocol = "";
    this.queuedMessages = 0;
    this.bufferedAmount = 0;
    globalThis.__standIn = this;
  }
  send(data) { this.calls.push(["send", typeof data === "string" ? data : [...new Uint8Array(data)]]); return "queued"; }
  close(code, reason) { this.calls.push(["close", code, reason]); }
  reconnect() { this.calls.push(["reconnect"]); }
  join(room) { this.calls.push(["join", room]); }
  leave(room) { this.calls.push(["leave", room]); return true; }
  publish(room, data) {
    this.calls.push(["publish", room, data]);
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }
  listRooms() { this.calls.push(["listRooms"]); return this.state === "open"; }
  dispose() { this.calls.push(["dispose"]); }
  clearOutbox() { this.calls.push(["clearOutbox"]); }
}
"#;

#[wasm_bindgen(inline_js = r#"
export function stand_in_made() { return !!globalThis.__standIn; }
export function forget_stand_in() { globalThis.__standIn = undefined; }
export function calls() { return JSON.stringify(globalThis.__standIn.calls); }
export function args() { return JSON.stringify(globalThis.__standIn.args); }
export function fire(type, json) {
  globalThis.__standIn.dispatchEvent(Object.assign(new Event(type), JSON.parse(json)));
}
export function fire_bytes(bytes) {
  globalThis.__standIn.dispatchEvent(Object.assign(new Event("message"), { data: new Uint8Array(bytes).buffer }));
}
export function settle(index, ok, json) {
  const { resolve, reject } = globalThis.__standIn.pending[index];
  if (ok) resolve(JSON.parse(json));
  else reject(Object.assign(new Error("refused by the stand-in"), { name: "LifelineError" }, JSON.parse(json)));
}
export function set_state(state) { globalThis.__standIn.state = state; }
export async function ask_url() { return await globalThis.__standIn.provider(); }
"#)]
extern "C" {
    fn stand_in_made() -> bool;
    fn forget_stand_in();
    fn calls() -> String;
    fn args() -> String;
    fn fire(kind: &str, json: &str);
    fn fire_bytes(bytes: &[u8]);
    fn settle(index: u32, ok: bool, json: &str);
    fn set_state(state: &str);
    async fn ask_url() -> JsValue;
}

fn stand_in() -> Share {
    let module = String::from(js_sys::encode_uri_component(STAND_IN));
    Share::new("tests").module(format!("data:text/javascript,{module}"))
}

fn config() -> Config {
    Config::default()
        .protocols(["lifeline.v1"])
        .backoff_min(Duration::from_millis(250))
        .share(stand_in())
}

/// Connects through a fresh stand-in, with a recorder of every event.
async fn connected(
    client: impl FnOnce() -> Client,
) -> (
    Client,
    Rc<RefCell<Vec<Event>>>,
    Rc<RefCell<Vec<RoomEvent>>>,
    Vec<ws_lifeline::Subscription<Event>>,
    ws_lifeline::Subscription<RoomEvent>,
) {
    forget_stand_in();
    let client = client();
    let events = Rc::new(RefCell::new(Vec::new()));
    let room_events = Rc::new(RefCell::new(Vec::new()));
    let (e, r) = (events.clone(), room_events.clone());
    let subs = vec![client.on_event(move |event| e.borrow_mut().push(event.clone()))];
    let room_sub = client.on_room_event(move |event| r.borrow_mut().push(event.clone()));
    wait_until(5_000, "the stand-in entry loaded", stand_in_made).await;
    (client, events, room_events, subs, room_sub)
}

#[wasm_bindgen_test]
async fn calls_before_the_entry_loads_reach_it_in_order() {
    forget_stand_in();
    let client = Client::connect("ws://127.0.0.1:9/ws", config()).unwrap();
    assert_eq!(client.state(), State::Connecting);
    client.join("lobby").unwrap();
    assert_eq!(client.send("early").unwrap(), ws_lifeline::Sent::Queued);
    drop(
        client
            .publish("lobby", &serde_json::json!({ "n": 1 }))
            .unwrap(),
    );
    assert_eq!(client.unacked(), 1);
    wait_until(5_000, "the stand-in entry loaded", stand_in_made).await;
    sleep(50).await;
    assert_eq!(
        calls(),
        r#"[["join","lobby"],["send","early"],["publish","lobby",{"n":1}]]"#
    );
    let args: serde_json::Value = serde_json::from_str(&args()).unwrap();
    assert_eq!(args["url"], "ws://127.0.0.1:9/ws");
    assert_eq!(args["protocols"], serde_json::json!(["lifeline.v1"]));
    let options = &args["options"];
    assert_eq!(options["share"], "tests");
    assert_eq!(options["minDelay"], 250.0);
    assert_eq!(options["maxDelay"], 30_000.0);
    assert_eq!(options["maxQueuedMessages"], 1024.0);
    // The default heartbeat is the entry's default: not given.
    assert!(options.get("heartbeat").is_none());
    assert_eq!(client.url().as_deref(), Some("ws://127.0.0.1:9/ws"));
}

#[wasm_bindgen_test]
async fn a_url_provider_stays_in_the_tab() {
    let (_client, ..) = connected(|| {
        Client::with_url_provider(config(), || async {
            Ok::<_, String>("ws://127.0.0.1:9/ticketed".to_owned())
        })
        .unwrap()
    })
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&args()).unwrap()["url"],
        "provider"
    );
    assert_eq!(
        ask_url().await.as_string().as_deref(),
        Some("ws://127.0.0.1:9/ticketed")
    );
}

#[wasm_bindgen_test]
async fn every_event_maps_to_its_rust_event() {
    let (client, events, room_events, _subs, _room_sub) =
        connected(|| Client::connect("ws://127.0.0.1:9/ws", config()).unwrap()).await;
    set_state("open");
    fire("open", "{}");
    fire("statechange", r#"{"state":"open"}"#);
    fire("message", r#"{"data":"text"}"#);
    fire_bytes(&[1, 2, 3]);
    fire("pong", r#"{"rtt":12}"#);
    fire("close", r#"{"code":4001,"reason":"bye","wasClean":true}"#);
    fire("reconnecting", r#"{"attempt":2,"delay":1500}"#);
    fire("giveup", "{}");
    fire(
        "error",
        r#"{"error":{"code":"ERR_QUEUE_FULL","message":"full","limit":{"messages":1024}}}"#,
    );
    fire(
        "error",
        r#"{"error":{"code":"ERR_CONNECT_TIMEOUT","message":"slow","afterMs":10000}}"#,
    );
    fire("error", r#"{"error":{"message":"something else"}}"#);
    // The tab's own window says offline/online; the entry's events of those names are not used.
    fire("offline", "{}");
    sleep(20).await;
    assert_eq!(client.state(), State::Open);
    assert_eq!(
        *events.borrow(),
        vec![
            Event::Open,
            Event::StateChange(State::Open),
            Event::Message(Message::Text("text".into())),
            Event::Message(Message::Binary(vec![1, 2, 3])),
            Event::Pong {
                rtt: Duration::from_millis(12)
            },
            Event::Close(CloseInfo {
                code: 4001,
                reason: "bye".into(),
                was_clean: true
            }),
            Event::Reconnecting {
                attempt: 2,
                delay: Duration::from_millis(1500)
            },
            Event::GaveUp,
            Event::Error(Error::QueueFull {
                limit: QueueLimit::Messages(1024)
            }),
            Event::Error(Error::ConnectTimeout { after_ms: 10_000 }),
            Event::Error(Error::Platform {
                message: "something else".into()
            }),
        ]
    );

    fire("welcome", r#"{"resumed":true,"name":"ann"}"#);
    fire("joined", r#"{"room":"lobby","epoch":"e1","offset":4}"#);
    fire(
        "recovery",
        r#"{"room":"lobby","recovered":true,"since":{"epoch":"e0","offset":2},"epoch":"e1","offset":9}"#,
    );
    fire(
        "roomMessage",
        r#"{"room":"lobby","epoch":"e1","offset":5,"from":"bob","data":{"text":"hi"},"ts":7,"publisher":"00000000000000ab","id":3}"#,
    );
    fire("presence", r#"{"room":"lobby","members":["ann","bob"]}"#);
    fire("rooms", r#"{"rooms":[{"room":"lobby","members":2}]}"#);
    fire(
        "serverError",
        r#"{"code":"rate_limited","message":"slow down"}"#,
    );
    fire("badFrame", r#"{"raw":"nope","message":"not JSON"}"#);
    fire("left", r#"{"room":"lobby"}"#);
    sleep(20).await;
    let room_events = room_events.borrow();
    assert_eq!(room_events.len(), 9, "{room_events:?}");
    assert_eq!(
        room_events[0],
        RoomEvent::Welcome {
            resumed: true,
            name: "ann".into()
        }
    );
    assert_eq!(
        room_events[1],
        RoomEvent::Joined {
            room: "lobby".into(),
            epoch: "e1".into(),
            offset: 4
        }
    );
    assert!(matches!(
        &room_events[2],
        RoomEvent::Recovery { recovered: true, since, epoch, offset: 9, .. } if since.epoch == "e0" && since.offset == 2 && epoch == "e1"
    ));
    let RoomEvent::Message(message) = &room_events[3] else {
        panic!("not a message: {:?}", room_events[3]);
    };
    assert_eq!(
        (message.offset, message.from.as_str(), message.ts),
        (5, "bob", 7)
    );
    assert_eq!(message.data.as_str(), r#"{"text":"hi"}"#);
    assert_eq!(
        (message.publisher.as_deref(), message.id),
        (Some("00000000000000ab"), Some(3))
    );
    assert_eq!(
        room_events[4],
        RoomEvent::Presence {
            room: "lobby".into(),
            members: vec!["ann".into(), "bob".into()]
        }
    );
    assert!(
        matches!(&room_events[5], RoomEvent::Rooms(list) if list.len() == 1 && list[0].members == 2)
    );
    assert!(matches!(
        &room_events[6],
        RoomEvent::ServerError { code: ws_lifeline::protocol::ErrorCode::RateLimited, message } if message == "slow down"
    ));
    assert!(matches!(&room_events[7], RoomEvent::BadFrame(e) if e.raw == "nope"));
    assert_eq!(
        room_events[8],
        RoomEvent::Left {
            room: "lobby".into()
        }
    );
    assert_eq!(client.stats().delivered, 1);
}

#[wasm_bindgen_test]
async fn a_publish_settles_under_the_tabs_id() {
    let (client, _events, room_events, _subs, _room_sub) =
        connected(|| Client::connect("ws://127.0.0.1:9/ws", config()).unwrap()).await;
    client.join("lobby").unwrap();
    let first = client.publish("lobby", &"one").unwrap();
    let second = client.publish("lobby", &"two").unwrap();
    let (a, b) = (first.id(), second.id());
    assert_eq!(b.0, a.0 + 1);
    assert!(a.0 >= 1 << 53, "the tab's ids start above the hub's: {a}");
    assert_eq!(client.unacked(), 2);
    sleep(20).await;
    // The hub numbers them itself; the tab's future and events keep the tab's id.
    settle(
        0,
        true,
        r#"{"id":41,"room":"lobby","offset":9,"duplicate":true}"#,
    );
    settle(
        1,
        false,
        r#"{"code":"ERR_PUBLISH_TIMEOUT","publishId":42,"afterMs":10000}"#,
    );
    assert_eq!(
        first.await,
        Ok(PublishAck {
            id: a,
            room: "lobby".into(),
            offset: 9,
            duplicate: true
        })
    );
    assert_eq!(
        second.await,
        Err(RoomError::PublishTimeout {
            id: b,
            after_ms: 10_000
        })
    );
    sleep(20).await;
    assert_eq!(client.unacked(), 0);
    let room_events = room_events.borrow();
    assert_eq!(
        room_events[..],
        [
            RoomEvent::Acked {
                id: a,
                room: "lobby".into(),
                offset: 9,
                duplicate: true
            },
            RoomEvent::PublishFailed {
                id: b,
                room: "lobby".into(),
                error: RoomError::PublishTimeout {
                    id: b,
                    after_ms: 10_000
                }
            }
        ]
    );
    let stats = client.stats();
    assert_eq!(
        (
            stats.published,
            stats.acked,
            stats.duplicate_acks,
            stats.failed
        ),
        (2, 1, 1, 1)
    );
}

#[wasm_bindgen_test]
async fn what_cannot_be_done_is_refused_at_once() {
    let (client, ..) =
        connected(|| Client::connect("ws://127.0.0.1:9/ws", config()).unwrap()).await;
    assert!(matches!(
        client.join(""),
        Err(RoomError::InvalidRoom { .. })
    ));
    assert!(matches!(
        client.publish("elsewhere", &1),
        Err(RoomError::NotJoined { .. })
    ));
    assert_eq!(
        client.close(Some(1001), None),
        Err(Error::InvalidCloseCode { code: 1001 })
    );
    assert!(matches!(
        client.send_preamble("hello"),
        Err(Error::Platform { .. })
    ));
    assert!(!client.leave("never-joined"));
    assert!(
        !client.list_rooms(),
        "false while the shared socket is not open"
    );
    #[cfg(feature = "persist")]
    client.clear_outbox().unwrap();
    client.close(Some(4001), Some("done")).unwrap();
    assert_eq!(client.state(), State::Closed);
    assert_eq!(client.send("late"), Err(Error::Closed));
    sleep(20).await;
    let expected = if cfg!(feature = "persist") {
        r#"["clearOutbox"],["close",4001,"done"]]"#
    } else {
        r#"["close",4001,"done"]]"#
    };
    assert!(calls().ends_with(expected), "{}", calls());
    #[cfg(feature = "persist")]
    assert_eq!(client.clear_outbox(), Err(Error::Closed));
    assert!(
        matches!(
            Client::connect("ftp://nowhere", config()),
            Err(Error::InvalidUrl { .. })
        ),
        "the URL is checked before the entry is asked"
    );
}

#[wasm_bindgen_test]
async fn an_entry_that_cannot_load_is_an_error_and_closed() {
    let share = Share::new("tests").module("data:text/javascript,throw%20new%20Error('broken')");
    let client = Client::connect("ws://127.0.0.1:9/ws", Config::default().share(share)).unwrap();
    let mut events = client.events();
    let (error, _) = wait_for(&mut events, 5_000, |e| matches!(e, Event::Error(_))).await;
    assert!(
        matches!(&error, Event::Error(Error::Platform { message }) if message.contains("could not be loaded")),
        "{error:?}"
    );
    wait_for(&mut events, 1_000, |e| {
        *e == Event::StateChange(State::Closed)
    })
    .await;
    assert_eq!(client.state(), State::Closed);
    assert_eq!(client.send("x"), Err(Error::Closed));
}

#[wasm_bindgen_test]
async fn dropping_the_client_disposes_the_entry_and_its_listeners() {
    let before = live().listeners;
    let (client, events, _room_events, subs, room_sub) =
        connected(|| Client::connect("ws://127.0.0.1:9/ws", config()).unwrap()).await;
    // 8 connection events, 10 room events, online and offline.
    assert_eq!(live().listeners, before + 20);
    drop((subs, room_sub));
    let handle = client.handle();
    drop(client);
    assert_eq!(live().listeners, before);
    assert!(calls().ends_with(r#"["dispose"]]"#), "{}", calls());
    let heard = events.borrow().len();
    fire("open", "{}");
    sleep(20).await;
    assert_eq!(events.borrow().len(), heard, "nothing heard after the drop");
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.send("x"), Err(Error::Closed));
}
