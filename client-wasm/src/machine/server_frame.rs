//! Decoding server frames for the rooms layer, as [`protocol::decode_server_frame`] does, in
//! a fraction of the wasm.
//!
//! serde decodes an internally tagged enum (`#[serde(tag = "type")]`) by first buffering the
//! whole object into its private `Content` tree and then replaying it into the variant: in a
//! wasm build that machinery was the largest single item (about 49 KB before compression).
//! Here the tag is read first (every other field skipped), then the same text is decoded
//! straight into a plain struct for that variant. The result is the same [`ServerMsg`] for
//! every frame the protocol decoder accepts, and an error for every frame it refuses (the
//! test below checks both); only the position quoted in an error message may differ.

use protocol::{ErrorCode, MsgId, Offset, RoomInfo, ServerMsg};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// The `type` of a server message; the other fields are skipped on this pass.
#[derive(Deserialize)]
struct Tag {
    #[serde(rename = "type")]
    kind: Kind,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Welcome,
    Pong,
    Joined,
    Left,
    Message,
    Ack,
    Rooms,
    Presence,
    Error,
}

// One plain struct per variant, with the fields (and serde attributes) of `ServerMsg`.

#[derive(Deserialize)]
struct Welcome {
    session: String,
    resumed: bool,
    name: String,
}

#[derive(Deserialize)]
struct Pong {
    id: u64,
}

#[derive(Deserialize)]
struct Joined {
    room: String,
    epoch: String,
    offset: Offset,
    recovered: bool,
}

#[derive(Deserialize)]
struct Left {
    room: String,
}

#[derive(Deserialize)]
struct Message {
    room: String,
    offset: Offset,
    from: String,
    data: protocol::Data,
    ts: u64,
}

#[derive(Deserialize)]
struct Ack {
    id: MsgId,
    offset: Offset,
    #[serde(default)]
    duplicate: bool,
}

#[derive(Deserialize)]
struct Rooms {
    rooms: Vec<RoomInfo>,
}

#[derive(Deserialize)]
struct Presence {
    room: String,
    members: Vec<String>,
}

#[derive(Deserialize)]
struct Error {
    code: ErrorCode,
    message: String,
    #[serde(default, rename = "ref")]
    reference: Option<u64>,
}

fn body<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    serde_json::from_str(text)
}

/// One message: an object, or the array form serde also accepts for a tagged enum
/// (`["pong", 1]`: the tag, then the variant's fields in order).
pub(crate) fn decode_message(text: &str) -> serde_json::Result<ServerMsg> {
    if text.trim_start().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text)?;
        let Some((tag, fields)) = items.split_first() else {
            return Err(serde::de::Error::invalid_length(0, &"a tag and fields"));
        };
        let kind = serde_json::from_str(tag.get())?;
        let fields: Vec<&str> = fields.iter().map(|f| f.get()).collect();
        return variant(kind, &format!("[{}]", fields.join(",")));
    }
    let Tag { kind } = serde_json::from_str(text)?;
    variant(kind, text)
}

/// The message of type `kind` from `text`, which is an object or an array of its fields.
fn variant(kind: Kind, text: &str) -> serde_json::Result<ServerMsg> {
    Ok(match kind {
        Kind::Welcome => {
            let Welcome {
                session,
                resumed,
                name,
            } = body(text)?;
            ServerMsg::Welcome {
                session,
                resumed,
                name,
            }
        }
        Kind::Pong => {
            let Pong { id } = body(text)?;
            ServerMsg::Pong { id }
        }
        Kind::Joined => {
            let Joined {
                room,
                epoch,
                offset,
                recovered,
            } = body(text)?;
            ServerMsg::Joined {
                room,
                epoch,
                offset,
                recovered,
            }
        }
        Kind::Left => {
            let Left { room } = body(text)?;
            ServerMsg::Left { room }
        }
        Kind::Message => {
            let Message {
                room,
                offset,
                from,
                data,
                ts,
            } = body(text)?;
            ServerMsg::Message {
                room,
                offset,
                from,
                data,
                ts,
            }
        }
        Kind::Ack => {
            let Ack {
                id,
                offset,
                duplicate,
            } = body(text)?;
            ServerMsg::Ack {
                id,
                offset,
                duplicate,
            }
        }
        Kind::Rooms => {
            let Rooms { rooms } = body(text)?;
            ServerMsg::Rooms { rooms }
        }
        Kind::Presence => {
            let Presence { room, members } = body(text)?;
            ServerMsg::Presence { room, members }
        }
        Kind::Error => {
            let Error {
                code,
                message,
                reference,
            } = body(text)?;
            ServerMsg::Error {
                code,
                message,
                reference,
            }
        }
    })
}

/// Decodes one server text frame: a single message or a batch (a JSON array of messages).
pub(crate) fn decode(text: &str) -> serde_json::Result<Vec<ServerMsg>> {
    if text.trim_start().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text)?;
        items
            .into_iter()
            .map(|item| decode_message(item.get()))
            .collect()
    } else {
        decode_message(text).map(|msg| vec![msg])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of every kind, valid and not; each must decode exactly as the protocol crate's
    /// decoder does (the same messages, or an error for both).
    const FRAMES: &[&str] = &[
        r#"{"type":"welcome","session":"s","resumed":true,"name":"n"}"#,
        r#"{"name":"n","resumed":false,"session":"s","type":"welcome","extra":{"a":[1,2.5]}}"#,
        r#"{"type":"welcome","session":"s","resumed":"no","name":"n"}"#,
        r#"{"type":"welcome","session":"s","name":"n"}"#,
        r#"{"type":"pong","id":1}"#,
        r#"{"type":"pong","id":-1}"#,
        r#"{"type":"pong","id":1.5}"#,
        r#"{"type":"pong"}"#,
        r#"{"type":"joined","room":"r","epoch":"e","offset":3,"recovered":false}"#,
        r#"{"type":"joined","room":"r","epoch":"e","offset":3}"#,
        r#"{"type":"left","room":"r"}"#,
        r#"{"type":"left","room":null}"#,
        r#"{"type":"message","room":"r","offset":1,"from":"f","data":{"t":"hi","n":[1,null,true]},"ts":5}"#,
        r#"{"type":"message","room":"r","offset":1,"from":"f","data":null,"ts":5}"#,
        r#"{"type":"message","room":"r","offset":1,"from":"f","ts":5}"#,
        r#"{"type":"message","room":"r","offset":1,"from":"f","data":1e400,"ts":5}"#,
        r#"{"type":"ack","id":7,"offset":3}"#,
        r#"{"type":"ack","id":7,"offset":3,"duplicate":true}"#,
        r#"{"type":"ack","id":7,"offset":3,"duplicate":null}"#,
        r#"{"type":"rooms","rooms":[{"room":"a","members":2},{"room":"b","members":0}]}"#,
        r#"{"type":"rooms","rooms":[{"room":"a"}]}"#,
        r#"{"type":"presence","room":"r","members":["a","b"]}"#,
        r#"{"type":"presence","room":"r","members":"a"}"#,
        r#"{"type":"error","code":"not_joined","message":"m","ref":5}"#,
        r#"{"type":"error","code":"rate_limited","message":"m"}"#,
        r#"{"type":"error","code":"rate_limited","message":"m","ref":null}"#,
        r#"{"type":"error","code":"what","message":"m"}"#,
        r#"{"type":"nope"}"#,
        r#"{"type":1}"#,
        r#"{"room":"r"}"#,
        r#"{"type":"left","room":"r"} x"#,
        r#"  {"type":"left","room":"r"}  "#,
        r#"[{"type":"pong","id":1},{"type":"ack","id":7,"offset":3}]"#,
        r#" [ {"type":"left","room":"a"} , {"type":"left","room":"b"} ] "#,
        r#"[]"#,
        r#"[{"type":"pong","id":1},{"type":"nope"}]"#,
        r#"[{"type":"pong","id":1},3]"#,
        r#"[["pong",1]]"#,
        r#"[["ack",7,3]]"#,
        r#"[["ack",7,3,true]]"#,
        r#"[["ack",7]]"#,
        r#"[["pong",1,2]]"#,
        r#"[["pong"]]"#,
        r#"[[]]"#,
        r#"[["nope",1]]"#,
        r#"[{"#,
        r#"{nope"#,
        r#""text""#,
        "",
        "[",
        "42",
        "null",
    ];

    #[test]
    fn decodes_like_the_protocol_crate() {
        for text in FRAMES {
            let ours = decode(text);
            let theirs = protocol::decode_server_frame(text);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{text}: ours {ours:?}, protocol {theirs:?}"),
            }
        }
    }
}
