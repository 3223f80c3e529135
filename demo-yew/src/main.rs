//! The ws-lifeline chatroom demo: a Yew app built with trunk from the top-level `index.html`.
//!
//! `state` is the whole chat as a reducer, `hooks` connect it to the server through the
//! library's Yew hooks, and `components` only draw.

mod api;
mod app;
mod components;
mod hooks;
mod state;

fn main() {
    yew::Renderer::<app::App>::new().render();
}
