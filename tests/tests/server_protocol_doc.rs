//! docs/PROTOCOL.md and the protocol crate cannot drift apart.
//!
//! Covers: every JSON example in the doc decodes into the Rust types (client messages as
//! `ClientMsg`, server frames through `decode_server_frame`, batches included) and re-encodes to
//! the same JSON; every message type and error code has an example or a row in the doc.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use protocol::{ClientMsg, ErrorCode, ServerMsg};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).expect("docs/PROTOCOL.md")
}

fn json_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```json") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => block.push_str(line),
            (None, _) => {}
        }
    }
    blocks
}

const CLIENT_TYPES: [&str; 6] = ["hello", "ping", "join", "leave", "publish", "list_rooms"];

#[test]
fn every_example_decodes_and_round_trips() {
    let blocks = json_blocks(&doc());
    assert!(blocks.len() >= 20, "found {} examples", blocks.len());
    let mut seen = std::collections::BTreeSet::new();
    for block in blocks {
        let value: serde_json::Value = serde_json::from_str(&block).expect(&block);
        let items = match &value {
            serde_json::Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        let ty = items[0]["type"].as_str().expect("tagged").to_string();
        if CLIENT_TYPES.contains(&ty.as_str()) {
            let msg: ClientMsg = serde_json::from_value(value.clone()).expect(&block);
            assert_eq!(serde_json::to_value(&msg).unwrap(), value, "{block}");
        } else {
            let msgs: Vec<ServerMsg> = protocol::decode_server_frame(&block).expect(&block);
            assert_eq!(msgs.len(), items.len());
            for (msg, item) in msgs.iter().zip(&items) {
                assert_eq!(&serde_json::to_value(msg).unwrap(), item, "{block}");
            }
        }
        for item in &items {
            seen.insert(item["type"].as_str().unwrap().to_string());
        }
    }
    let all = CLIENT_TYPES.iter().chain(&[
        "welcome", "pong", "joined", "left", "message", "ack", "rooms", "presence", "error",
    ]);
    for ty in all {
        assert!(
            seen.contains(*ty),
            "no example of `{ty}` in docs/PROTOCOL.md"
        );
    }
}

#[test]
fn every_error_code_and_close_code_is_documented() {
    let doc = doc();
    for code in ErrorCode::ALL {
        let name = serde_json::to_value(code).unwrap();
        let row = format!("| `{}` |", name.as_str().unwrap());
        assert!(doc.contains(&row), "{row} missing");
    }
    use protocol::close::*;
    for code in [
        NORMAL,
        GOING_AWAY,
        POLICY,
        TOO_BIG,
        TRY_AGAIN_LATER,
        HEARTBEAT_TIMEOUT,
    ] {
        assert!(
            doc.contains(&format!("| {code} |")),
            "close code {code} missing"
        );
    }
    assert!(doc.contains(protocol::SUBPROTOCOL));
}
