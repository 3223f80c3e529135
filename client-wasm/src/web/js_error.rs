//! The one place where JS exceptions become [`Error`]s in the Rust shell.

use wasm_bindgen::{JsCast, JsValue};

use crate::Error;

/// Converts a thrown JS value. `SyntaxError` from the `WebSocket` constructor means a bad URL.
pub(crate) fn from_js(value: JsValue, url: Option<&str>) -> Error {
    let (name, message) = match value.dyn_ref::<js_sys::Error>() {
        Some(e) => (String::from(e.name()), String::from(e.message())),
        None => (
            String::new(),
            value.as_string().unwrap_or_else(|| {
                let mut text = String::from("a thrown ");
                text.push_str(&value.js_typeof().as_string().unwrap_or_default());
                text
            }),
        ),
    };
    Error::from_exception(&name, message, url)
}
