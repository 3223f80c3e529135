//! Browser: the protocol-frame rule in the Rust browser shell (see
//! `ws_lifeline::machine::session`), against a real server-dev. Covers:
//! - [x] with the rooms layer started on the client, no protocol v1 frame (welcome, joined, ack,
//!   message) reaches the client's subscribers as `Event::Message`; each is a room event
//! - [x] a text frame that is not protocol v1 (from `/echo`) is a `RoomEvent::BadFrame`, not a
//!   message; a binary frame is still a message
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use wasm_bindgen_test::*;
use ws_lifeline::machine::rooms::RoomEvent;
use ws_lifeline::{Client, Event, Message};

wasm_bindgen_test_configure!(run_in_browser);

/// The client's and the rooms layer's events, as they arrive.
struct Heard {
    messages: Rc<RefCell<Vec<Message>>>,
    rooms: Rc<RefCell<Vec<RoomEvent>>>,
    _subs: (
        ws_lifeline::Subscription,
        ws_lifeline::Subscription<RoomEvent>,
    ),
}

fn listen(client: &Client) -> Heard {
    let messages: Rc<RefCell<Vec<Message>>> = Rc::default();
    let room_events: Rc<RefCell<Vec<RoomEvent>>> = Rc::default();
    let m = messages.clone();
    let a = client.on_event(move |e| {
        if let Event::Message(message) = e {
            m.borrow_mut().push(message.clone());
        }
    });
    let r = room_events.clone();
    let b = client.on_room_event(move |e| r.borrow_mut().push(e.clone()));
    Heard {
        messages,
        rooms: room_events,
        _subs: (a, b),
    }
}

async fn until(ms: u32, done: impl Fn() -> bool) {
    let start = js_sys::Date::now();
    while !done() {
        assert!(js_sys::Date::now() - start < f64::from(ms), "timed out");
        sleep(20).await;
    }
}

#[wasm_bindgen_test]
async fn protocol_frames_are_room_events_never_messages() {
    let client = Client::connect(&url("/ws"), fast()).unwrap();
    let heard = listen(&client);
    let room = format!("frames-{}", (js_sys::Math::random() * 1e9) as u64);
    client.join(&room).unwrap();
    let ack = client.publish(&room, &"hi").unwrap().await.unwrap();
    assert_eq!(ack.room, room);
    until(5_000, || {
        heard
            .rooms
            .borrow()
            .iter()
            .any(|e| matches!(e, RoomEvent::Message(m) if m.data.as_str() == r#""hi""#))
    })
    .await;
    sleep(200).await;
    let events = heard.rooms.borrow();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RoomEvent::Welcome { .. }))
    );
    assert!(events.iter().any(|e| matches!(e, RoomEvent::Joined { .. })));
    assert!(events.iter().any(|e| matches!(e, RoomEvent::Acked { .. })));
    assert_eq!(*heard.messages.borrow(), Vec::<Message>::new());
}

#[wasm_bindgen_test]
async fn other_text_frames_are_bad_frames_and_binary_frames_messages() {
    let client = Client::connect(&url("/echo"), fast()).unwrap();
    let heard = listen(&client);
    client.send("plain text").unwrap();
    client.send(vec![1u8, 2, 3]).unwrap();
    until(5_000, || {
        let bad = heard
            .rooms
            .borrow()
            .iter()
            .any(|e| matches!(e, RoomEvent::BadFrame(bad) if bad.raw == "plain text"));
        bad && !heard.messages.borrow().is_empty()
    })
    .await;
    sleep(100).await;
    // The echoed `hello` and the plain text are not protocol v1 from a server: bad frames.
    assert_eq!(
        *heard.messages.borrow(),
        vec![Message::Binary(vec![1, 2, 3])]
    );
}
