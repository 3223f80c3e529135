//! The ws-lifeline chatroom demo: a Yew app built with trunk from the top-level `index.html`.
//!
//! `state` is the whole chat as a reducer, `hooks` connect it to the server through the
//! library's Yew hooks, and `components` only draw. The reducer and the components also build
//! natively, so `cargo test -p demo-yew` runs their tests without a browser.
// Natively only the tests use the state and the components; the app itself is wasm-only.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unused_imports))]

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod app;
mod components;
#[cfg(target_arch = "wasm32")]
mod hooks;
mod state;

#[cfg(target_arch = "wasm32")]
fn main() {
    yew::Renderer::<app::App>::new().render();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {}
