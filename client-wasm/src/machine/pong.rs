//! The heartbeat's pong matcher: is this text exactly a frame that
//! `serde_json::from_str::<protocol::ServerMsg>` decodes as `ServerMsg::Pong`?
//!
//! Built on the validating scanner of `json.rs`, with the rules of serde's internally tagged
//! enums on top:
//!
//! - an object with exactly one `"type"` key whose value is the string `pong`, and exactly one
//!   `"id"` key whose value is an integer in `0..=u64::MAX`; other keys may hold any JSON;
//! - or the sequence form `["pong", id]`;
//! - surrounding whitespace only.
//!
//! The proptest in `config.rs` checks it against the protocol decoder.

use super::json::{Kind, MAX_DEPTH, Member, Scanner, members};

/// True when `text` is a protocol v1 `pong` frame (see the module docs).
pub(crate) fn is_pong(text: &str) -> bool {
    let mut scan = Scanner::new(text);
    scan.skip_ws();
    let pong = match scan.peek() {
        Some(b'{') => members(&mut scan, MAX_DEPTH + 1).is_some_and(|m| pong_object(text, &m)),
        Some(b'[') => tuple(&mut scan).unwrap_or(false),
        _ => false,
    };
    scan.skip_ws();
    pong && scan.at_end()
}

fn is_pong_string(text: &str, start: usize) -> bool {
    let mut scan = Scanner::new(text);
    scan.at = start;
    scan.owned_string().is_some_and(|s| s == "pong")
}

fn pong_object(text: &str, members: &[Member]) -> bool {
    let only = |key: &str| {
        let mut found = members.iter().filter(|m| m.key == key);
        found.next().filter(|_| found.next().is_none())
    };
    let tag = only("type").is_some_and(|m| m.kind == Kind::String && is_pong_string(text, m.start));
    let id = only("id").is_some_and(|m| matches!(m.kind, Kind::U64(_)));
    tag && id
}

/// The top-level sequence form: true for exactly `["pong", <integer id>]`.
fn tuple(scan: &mut Scanner<'_>) -> Option<bool> {
    if scan.enter(b']') {
        return Some(false);
    }
    let mut items = Vec::new();
    loop {
        scan.skip_ws();
        let start = scan.at;
        let item = scan.value(MAX_DEPTH)?;
        if items.is_empty() && !(item == Kind::String && is_pong_string(scan.text(), start)) {
            // Not a pong whatever follows: no need to scan a long batch frame.
            return Some(false);
        }
        items.push(item);
        if scan.next_or_end(b']')? {
            return Some(items.len() == 2 && matches!(items[1], Kind::U64(_)));
        }
    }
}
