//! Small presentational components: they get data and callbacks, and own no connection.

mod chat_view;
mod composer;
mod connection_bar;
mod login;
mod presence;
mod room_list;

pub(crate) use chat_view::ChatView;
pub(crate) use composer::Composer;
pub(crate) use connection_bar::ConnectionBar;
pub(crate) use login::Login;
pub(crate) use presence::PresenceList;
pub(crate) use room_list::{JoinedRoom, RoomList};

/// Formats a server timestamp (ms since the Unix epoch) as local `HH:MM`.
fn clock(ts_ms: u64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ts_ms as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

/// A stable colour for a display name, so people are easy to tell apart.
fn hue(name: &str) -> u32 {
    name.bytes().fold(7u32, |acc, byte| {
        acc.wrapping_mul(31).wrapping_add(u32::from(byte))
    }) % 360
}
