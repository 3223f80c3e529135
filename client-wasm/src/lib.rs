//! ws-lifeline: a browser WebSocket client that stays connected.
//!
//! - [`machine`]: the sans-IO core (reconnect with jittered backoff, heartbeat with half-open
//!   detection, bounded outbound queue, typed events). Pure Rust, tested natively.
//! - `web` (wasm32 only): the browser shell that drives the core with a real `WebSocket`.
#![deny(missing_docs)]

mod error;
pub mod machine;
pub mod typed;

pub use error::{Error, QueueLimit, Result};
pub use machine::{CloseInfo, Config, Event, Message, Sent, State, validate_url};
pub use protocol;

#[cfg(target_arch = "wasm32")]
pub mod web;
#[cfg(target_arch = "wasm32")]
pub use web::{Client, ClientHandle, EventStream, MessageStream, Subscription};

#[cfg(all(feature = "yew", target_arch = "wasm32"))]
pub mod yew;
