//! Typed messages: JSON in and out with serde, without ever panicking or dropping the socket.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Message, Result};

/// An inbound message that did not decode into the expected type. The connection stays up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not decode message: {error}")]
pub struct DecodeError {
    /// The frame as received (binary frames are shown lossily as UTF-8).
    pub raw: String,
    /// The decoder's message.
    pub error: String,
}

/// Encodes a value as a JSON text message.
///
/// ```
/// let m = ws_lifeline::typed::encode(&serde_json::json!({"a": 1})).unwrap();
/// assert_eq!(m.as_text(), Some(r#"{"a":1}"#));
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Message> {
    serde_json::to_string(value)
        .map(Message::Text)
        .map_err(|e| Error::Encode {
            message: e.to_string(),
        })
}

/// Decodes a message (text, or binary holding UTF-8 JSON) into `T`.
///
/// ```
/// use ws_lifeline::{Message, typed::decode};
/// let ok: Result<u32, _> = decode(&Message::Text("7".into()));
/// assert_eq!(ok, Ok(7));
/// let bad = decode::<u32>(&Message::Text("seven".into())).unwrap_err();
/// assert_eq!(bad.raw, "seven");
/// ```
pub fn decode<T: DeserializeOwned>(message: &Message) -> Result<T, DecodeError> {
    let result = match message {
        Message::Text(t) => serde_json::from_str(t),
        Message::Binary(b) => serde_json::from_slice(b),
    };
    result.map_err(|e| DecodeError {
        raw: match message {
            Message::Text(t) => t.clone(),
            Message::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        },
        error: e.to_string(),
    })
}
