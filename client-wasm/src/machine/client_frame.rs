//! Encoding the rooms layer's frames by hand, byte for byte as serde_json writes
//! `protocol::ClientMsg` (the test below checks it), with `publish`'s data as given.

use protocol::{ClientMsg, Since};

use super::json::{RawJson, push_string, push_u64};

/// A client message as the layer builds it.
pub(crate) type Outgoing = ClientMsg<RawJson>;

/// The frame text of `msg`.
pub(crate) fn encode(msg: &Outgoing) -> String {
    let mut out = String::from(r#"{"type":"#);
    match msg {
        ClientMsg::Hello { session, publisher } => {
            out.push_str(r#""hello""#);
            if let Some(session) = session {
                key(&mut out, "session");
                push_string(&mut out, session);
            }
            if let Some(publisher) = publisher {
                key(&mut out, "publisher");
                push_string(&mut out, publisher);
            }
        }
        ClientMsg::Ping { id } => {
            out.push_str(r#""ping""#);
            key(&mut out, "id");
            push_u64(&mut out, *id);
        }
        ClientMsg::Join { room, since } => {
            out.push_str(r#""join""#);
            key(&mut out, "room");
            push_string(&mut out, room);
            if let Some(Since { epoch, offset }) = since {
                key(&mut out, "since");
                out.push_str(r#"{"epoch":"#);
                push_string(&mut out, epoch);
                key(&mut out, "offset");
                push_u64(&mut out, *offset);
                out.push('}');
            }
        }
        ClientMsg::Leave { room } => {
            out.push_str(r#""leave""#);
            key(&mut out, "room");
            push_string(&mut out, room);
        }
        ClientMsg::Publish { room, id, data } => {
            out.push_str(r#""publish""#);
            key(&mut out, "room");
            push_string(&mut out, room);
            key(&mut out, "id");
            push_u64(&mut out, *id);
            key(&mut out, "data");
            out.push_str(data.as_str());
        }
        ClientMsg::ListRooms => out.push_str(r#""list_rooms""#),
    }
    out.push('}');
    out
}

/// `,"name":`
fn key(out: &mut String, name: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
}

#[cfg(test)]
#[cfg(not(target_arch = "wasm32"))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with_value(msg: &Outgoing) -> ClientMsg {
        msg.clone().map_data(|data| data.decode().unwrap())
    }

    fn message() -> impl Strategy<Value = Outgoing> {
        let text = "\\PC{0,12}|[\\x00-\\x7f]{0,12}";
        prop_oneof![
            (prop::option::of(text), prop::option::of(text))
                .prop_map(|(session, publisher)| ClientMsg::Hello { session, publisher }),
            any::<u64>().prop_map(|id| ClientMsg::Ping { id }),
            (text, prop::option::of((text, any::<u64>()))).prop_map(|(room, since)| {
                ClientMsg::Join {
                    room,
                    since: since.map(|(epoch, offset)| Since { epoch, offset }),
                }
            }),
            text.prop_map(|room| ClientMsg::Leave { room }),
            (text, any::<u64>(), any::<i64>(), text).prop_map(|(room, id, n, s)| {
                ClientMsg::Publish {
                    room,
                    id,
                    data: RawJson::from_serialize(&serde_json::json!({ "n": n, "s": s })).unwrap(),
                }
            }),
            Just(ClientMsg::ListRooms),
        ]
    }

    proptest! {
        #[test]
        fn frames_are_what_serde_json_writes(msg in message()) {
            prop_assert_eq!(encode(&msg), serde_json::to_string(&with_value(&msg)).unwrap());
        }
    }
}
