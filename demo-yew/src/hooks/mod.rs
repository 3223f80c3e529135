//! App-level effects: the connection and what it feeds into the reducer.

mod use_chat;

pub(crate) use use_chat::{Chat, RoomLink, use_chat};
