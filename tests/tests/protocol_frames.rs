//! The protocol-frame rule in the native shell (see `ws_lifeline::machine::session`), against a
//! real server-dev. Covers:
//! - [x] with the rooms layer running, no protocol v1 frame (welcome, joined, presence, ack,
//!   message) is reported as a connection `Message`; each arrives as a room event
//! - [x] a text frame that is not protocol v1 (from `/echo`) arrives as `RoomEvent::BadFrame`,
//!   not as a `Message`; a binary frame is still a `Message`
//! - [x] a `ClientHandle` acts on its client from another task, and fails with `Error::Closed`
//!   once the client is dropped
#![allow(clippy::unwrap_used)] // test code panics by design

use std::time::Duration;

use lifeline_tests::events::until;
use tokio::sync::oneshot;
use tokio::time::timeout;
use ws_lifeline::machine::rooms::RoomEvent;
use ws_lifeline::native::{Client, ClientEvent};
use ws_lifeline::{Config, Error, Event, Message, State};

const LIMIT: Duration = Duration::from_secs(10);

/// server-dev on a free port with its test endpoints; the sender stops it.
async fn server() -> (String, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let config = server_dev::Config::default()
        .no_auth(true)
        .test_endpoints(true);
    tokio::spawn(server_dev::serve(listener, config, None, async move {
        let _ = stopped.await;
    }));
    (format!("ws://{addr}"), stop)
}

fn text_messages(events: &[ClientEvent]) -> Vec<&ClientEvent> {
    events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Connection(Event::Message(Message::Text(_)))))
        .collect()
}

#[tokio::test]
async fn protocol_frames_are_room_events_never_messages() {
    let (base, stop) = server().await;
    let config = Config::default().no_heartbeat();
    let mut client = Client::connect(&format!("{base}/ws"), config).unwrap();
    client.join("frames").unwrap();
    let ack = client.publish("frames", &"hi").unwrap();
    let mut seen = until(
        &mut client,
        LIMIT,
        |e| matches!(e, ClientEvent::Room(RoomEvent::Message(m)) if m.data.as_str() == r#""hi""#),
    )
    .await;
    let ack = timeout(LIMIT, ack).await.unwrap().unwrap();
    assert_eq!(ack.room, "frames");
    // Whatever else is on its way (presence, the ack's event) goes the same way.
    tokio::time::sleep(Duration::from_millis(200)).await;
    seen.extend(std::iter::from_fn(|| client.try_next_event()));
    let rooms: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Room(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(rooms.iter().any(|e| matches!(e, RoomEvent::Welcome { .. })));
    assert!(rooms.iter().any(|e| matches!(e, RoomEvent::Joined { .. })));
    assert!(rooms.iter().any(|e| matches!(e, RoomEvent::Acked { .. })));
    assert_eq!(text_messages(&seen), Vec::<&ClientEvent>::new());
    let _ = stop.send(());
}

#[tokio::test]
async fn other_text_frames_are_bad_frames_and_binary_frames_messages() {
    let (base, stop) = server().await;
    let config = Config::default().no_heartbeat();
    let mut client = Client::connect(&format!("{base}/echo"), config).unwrap();
    client.send("plain text").unwrap();
    client.send(vec![1u8, 2, 3]).unwrap();
    let mut seen = until(
        &mut client,
        LIMIT,
        |e| matches!(e, ClientEvent::Room(RoomEvent::BadFrame(bad)) if bad.raw == "plain text"),
    )
    .await;
    if !seen.iter().any(|e| {
        matches!(
            e,
            ClientEvent::Connection(Event::Message(Message::Binary(_)))
        )
    }) {
        seen.extend(
            until(&mut client, LIMIT, |e| {
                matches!(
                    e,
                    ClientEvent::Connection(Event::Message(Message::Binary(_)))
                )
            })
            .await,
        );
    }
    let binary: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Connection(Event::Message(Message::Binary(b))) => Some(b.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(binary, vec![vec![1u8, 2, 3]]);
    // The echoed `hello` and the plain text are not protocol v1 from a server: bad frames.
    assert_eq!(text_messages(&seen), Vec::<&ClientEvent>::new());
    let _ = stop.send(());
}

#[tokio::test]
async fn a_handle_acts_on_its_client_until_the_client_is_dropped() {
    let (base, stop) = server().await;
    let config = Config::default().no_heartbeat();
    let mut client = Client::connect(&format!("{base}/echo"), config).unwrap();
    let handle = client.handle();
    // From another task, as a timer or a callback would.
    let sender = handle.clone();
    tokio::spawn(async move { sender.send(vec![7u8]).unwrap() })
        .await
        .unwrap();
    until(
        &mut client,
        LIMIT,
        |e| matches!(e, ClientEvent::Connection(Event::Message(Message::Binary(b))) if b == &[7]),
    )
    .await;
    assert_eq!(handle.state(), State::Open);
    drop(client);
    assert_eq!(handle.send("late"), Err(Error::Closed));
    assert_eq!(handle.close(None, None), Err(Error::Closed));
    assert_eq!(handle.state(), State::Closed);
    let _ = stop.send(());
}
