//! ws-lifeline: a browser WebSocket client that stays connected.
//!
//! - Reconnects with exponential backoff and full jitter, gives up after a configurable number
//!   of attempts, and never retries terminal close codes.
//! - Detects half-open connections with an application-level heartbeat (browsers cannot send
//!   ping frames), using timestamps so throttled background tabs see no false timeouts.
//! - Queues messages while disconnected (bounded by count and bytes) and flushes them in order.
//! - Reports everything as a typed [`Event`], to a callback or as a `futures::Stream`.
//!
//! The behaviour lives in [`machine`], a sans-IO state machine with no clock, no randomness
//! and no I/O of its own; `web` (wasm32 only) is the thin browser shell around it, exported as
//! `Client`:
//!
//! ```ignore
//! use ws_lifeline::{Client, Config, Event};
//!
//! let client = Client::connect("wss://example.com/ws", Config::default())?;
//! let _subscription = client.on_event(|event| {
//!     if let Event::Message(message) = event { /* ... */ }
//! });
//! client.send("hello")?; // queued until the socket is open
//! // Dropping `client` closes the socket and removes every listener and timer.
//! ```
//!
//! Errors are values of [`Error`]: a bad URL, close code or reason, or a full queue is refused
//! before anything reaches the browser.
#![deny(missing_docs)]

// talc instead of std's dlmalloc (feature `talc`): 2.7 KB less gzip in the npm package, as fast.
#[cfg(all(
    feature = "talc",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[cfg(any(target_arch = "wasm32", feature = "native"))]
mod client;
mod error;
pub mod machine;
// The publish future, whose senders the session keeps.
#[cfg(feature = "rooms")]
mod publish;
pub mod typed;

#[cfg(any(target_arch = "wasm32", feature = "native"))]
pub use client::{MaybeSend, MaybeSendSync};
pub use error::{Error, QueueLimit, Result};
#[cfg(feature = "shared")]
pub use machine::Share;
pub use machine::{
    CloseInfo, Config, Event, InvalidJson, Message, RawJson, Sent, State, validate_url,
};
pub use protocol;
#[cfg(feature = "rooms")]
pub use publish::PublishFuture;

#[cfg(all(feature = "js", target_arch = "wasm32"))]
pub mod js;
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod web;
#[cfg(target_arch = "wasm32")]
pub use web::{Client, ClientHandle, EventStream, MessageStream, Subscription};

#[cfg(all(feature = "yew", target_arch = "wasm32"))]
pub mod yew;
