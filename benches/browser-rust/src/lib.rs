//! Client (d) of the browser throughput bench (BENCHMARKS.md, section 1): ws-lifeline's Rust
//! API, driven from `benches/browser/page.html` in the same page and run as the bare socket,
//! partysocket and the JS API.
//!
//! The page calls two exported async functions (wasm32 only; built by `cargo xtask bench
//! browser` with wasm-pack into `benches/browser-rust/pkg`):
//!
//! - `rust_receive(url, n)` resolves to `{ ms, count }`: milliseconds from connecting to the
//!   `n`th event delivered to app code as a [`Delivered<Payload>`], decoded with serde by
//!   [`Client::on_message`](ws_lifeline::Client::on_message).
//! - `rust_send(url, n)` resolves to `{ ms, count, server_us }`: from the `open` event, where
//!   `n` [`Publish`] values go out through `send_json`, to the server's count report, itself
//!   decoded as a [`Delivered<Report>`].
//!
//! The client is configured as the page configures the JS API: no heartbeat, the outbound
//! queue and the high-water mark lifted (the bare socket has neither).

use serde::{Deserialize, Serialize};

#[cfg(target_arch = "wasm32")]
mod page;
#[cfg(target_arch = "wasm32")]
pub use page::{rust_receive, rust_send};

/// A protocol-v1 `message` event as app code would declare it, with its `data` typed as `D`.
#[derive(Debug, Deserialize)]
pub struct Delivered<D> {
    /// `"message"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Room name.
    pub room: String,
    /// Offset in the room.
    pub offset: u64,
    /// Display name of the publisher.
    pub from: String,
    /// The published data.
    pub data: D,
    /// Server time of publication, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// `data` of a `/bench/send` event.
#[derive(Debug, Deserialize)]
pub struct Payload {
    /// The event's number, from 1.
    pub seq: u64,
    /// Padding up to the asked size.
    pub pad: String,
}

/// `data` of the report `/bench/recv` sends once it has counted `n` messages.
#[derive(Debug, Deserialize)]
pub struct Report {
    /// Messages counted.
    pub received: u64,
    /// Frames they came in.
    pub frames: u64,
    /// Microseconds from the first frame to the `n`th message.
    pub elapsed_us: u64,
}

/// A protocol-v1 `publish`, the same object the page's JS clients `JSON.stringify`.
#[derive(Debug, Serialize)]
pub struct Publish<'a> {
    /// `"publish"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Room name.
    pub room: &'a str,
    /// Client message id.
    pub id: u64,
    /// The data.
    pub data: PublishData<'a>,
}

/// `data` of a [`Publish`].
#[derive(Debug, Serialize)]
pub struct PublishData<'a> {
    /// The message's number, from 1.
    pub seq: u64,
    /// Padding: 60 bytes, as in the page.
    pub pad: &'a str,
}
