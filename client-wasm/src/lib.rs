//! ws-lifeline: a browser WebSocket client that stays connected.
#![deny(missing_docs)]

pub use protocol;

#[cfg(all(feature = "yew", target_arch = "wasm32"))]
pub mod yew;
