//! The HTTP side of server-dev: `POST /api/login {name}` gives a one-time ticket for `/ws`.

use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestInit, Response};

/// A one-time ticket for the WebSocket endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Ticket {
    /// Opaque; goes into `/ws?ticket=`.
    pub(crate) ticket: String,
}

#[derive(Serialize)]
struct LoginRequest<'a> {
    name: &'a str,
}

fn js_error(value: JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|error| String::from(error.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| "network error".to_owned())
}

/// Asks server-dev for a fresh ticket for `name`.
pub(crate) async fn login(name: &str) -> Result<Ticket, String> {
    let window = web_sys::window().ok_or("no window")?;
    let headers = Headers::new().map_err(js_error)?;
    headers
        .set("content-type", "application/json")
        .map_err(js_error)?;
    let body = serde_json::to_string(&LoginRequest { name }).map_err(|error| error.to_string())?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&body));
    let response = JsFuture::from(window.fetch_with_str_and_init("/api/login", &init))
        .await
        .map_err(|error| format!("cannot reach the server: {}", js_error(error)))?;
    let response: Response = response.dyn_into().map_err(js_error)?;
    let text = JsFuture::from(response.text().map_err(js_error)?)
        .await
        .map_err(js_error)?;
    let text = text.as_string().unwrap_or_default();
    if !response.ok() {
        let detail = if text.trim().is_empty() {
            response.status_text()
        } else {
            text
        };
        return Err(format!(
            "login refused ({}): {}",
            response.status(),
            detail.trim()
        ));
    }
    serde_json::from_str(&text).map_err(|error| format!("unexpected login answer: {error}"))
}

/// The WebSocket URL for a ticket, on the page's own host (`wss:` when the page is `https:`).
pub(crate) fn ws_url(ticket: &str) -> Result<String, String> {
    let location = web_sys::window().ok_or("no window")?.location();
    let protocol = location.protocol().map_err(js_error)?;
    let host = location.host().map_err(js_error)?;
    let scheme = if protocol == "https:" { "wss:" } else { "ws:" };
    let ticket = String::from(js_sys::encode_uri_component(ticket));
    Ok(format!("{scheme}//{host}/ws?ticket={ticket}"))
}
