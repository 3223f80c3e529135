//! Browser: talking to a live server. Covers:
//! - [x] echo of text and binary (binary arrives as ArrayBuffer bytes)
//! - [x] messages sent before open are queued and flushed in order, before later sends
//! - [x] send_json and typed decoding; a bad frame gives a DecodeError with the raw text
//!   and the connection stays up
//! - [x] state(), url(), protocol(), buffered_amount()
//! - [x] close(): the browser's rules give typed errors before anything happens; a valid
//!   close ends in Closed with no retry
//! - [x] invalid URLs are typed errors carrying the URL
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use futures::StreamExt;
use wasm_bindgen_test::*;
use ws_lifeline::{Client, Error, Event, Message, Sent, State};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn echoes_text_and_binary_in_order_after_queueing() {
    let client = Client::connect(&url("/echo"), fast()).unwrap();
    let mut events = client.events();
    assert_eq!(client.state(), State::Connecting);
    assert_eq!(client.url().unwrap(), url("/echo"));
    // Not open yet: these wait in the queue.
    assert_eq!(client.send("one"), Ok(Sent::Queued));
    assert_eq!(client.send(vec![0u8, 1, 255]), Ok(Sent::Queued));
    wait_for(&mut events, 5_000, |e| *e == Event::Open).await;
    assert_eq!(client.state(), State::Open);
    assert_eq!(client.protocol(), "");
    assert_eq!(client.send("two"), Ok(Sent::Transmitted));
    let mut got = Vec::new();
    while got.len() < 3 {
        if let (Event::Message(m), _) =
            wait_for(&mut events, 5_000, |e| matches!(e, Event::Message(_))).await
        {
            got.push(m);
        }
    }
    assert_eq!(
        got,
        vec![
            Message::Text("one".into()),
            Message::Binary(vec![0, 1, 255]),
            Message::Text("two".into())
        ]
    );
    assert_eq!(client.buffered_amount(), 0);
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Chat {
    text: String,
}

#[wasm_bindgen_test]
async fn typed_json_round_trip_and_decode_errors_keep_the_connection() {
    let client = Client::connect(&url("/echo"), fast()).unwrap();
    let mut events = client.events();
    let mut chats = client.messages::<Chat>();
    client.send_json(&Chat { text: "hi".into() }).unwrap();
    client.send("not json").unwrap();
    client
        .send_json(&Chat {
            text: "still here".into(),
        })
        .unwrap();
    assert_eq!(chats.next().await.unwrap(), Ok(Chat { text: "hi".into() }));
    let err = chats.next().await.unwrap().unwrap_err();
    assert_eq!(err.raw, "not json");
    assert_eq!(
        chats.next().await.unwrap(),
        Ok(Chat {
            text: "still here".into()
        })
    );
    assert_eq!(client.state(), State::Open);
    let seen = collect(&mut events, 200).await;
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Close(_))),
        "{seen:?}"
    );
}

#[wasm_bindgen_test]
async fn close_checks_the_browser_rules_then_closes_for_good() {
    let client = Client::connect(&url("/echo"), fast()).unwrap();
    let mut events = client.events();
    wait_for(&mut events, 5_000, |e| *e == Event::Open).await;
    assert_eq!(
        client.close(Some(1001), None),
        Err(Error::InvalidCloseCode { code: 1001 })
    );
    let long = "x".repeat(124);
    assert_eq!(
        client.close(None, Some(&long)),
        Err(Error::CloseReasonTooLong { bytes: 124 })
    );
    assert_eq!(client.state(), State::Open);
    client.close(Some(4100), Some("done")).unwrap();
    assert_eq!(client.state(), State::Closing);
    let (close, _) = wait_for(&mut events, 5_000, |e| matches!(e, Event::Close(_))).await;
    let Event::Close(info) = close else {
        unreachable!()
    };
    // server-dev completes the closing handshake, echoing our code and reason (RFC 6455 §5.5.1).
    let got = (info.code, info.reason.as_str(), info.was_clean);
    assert_eq!(got, (4100, "done", true));
    assert_eq!(client.state(), State::Closed);
    assert_eq!(client.send("late"), Err(Error::Closed));
    let after = collect(&mut events, 500).await;
    assert!(
        !after
            .iter()
            .any(|e| matches!(e, Event::Reconnecting { .. } | Event::Open)),
        "{after:?}"
    );
}

#[wasm_bindgen_test]
fn invalid_urls_are_typed_errors() {
    for bad in ["ftp://127.0.0.1/", "not a url", "ws://host/#frag"] {
        match Client::connect(bad, fast()) {
            Err(Error::InvalidUrl { supplied, .. }) => assert_eq!(supplied, bad),
            other => panic!("{bad}: {other:?}"),
        }
    }
}
