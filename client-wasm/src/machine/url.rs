//! URL checks done before a socket is created, so a bad URL is a typed error, not an exception.

use crate::{Error, Result};

/// Checks a WebSocket URL and returns it in the form the socket is opened with.
///
/// - `ws://` and `wss://` pass unchanged;
/// - `http://` and `https://` are mapped to `ws://` and `wss://`, as the
///   [WebSocket standard](https://websockets.spec.whatwg.org/#dom-websocket-websocket) does;
/// - any other scheme, a relative URL, a missing host, a fragment (`#`) or whitespace is
///   refused with [`Error::InvalidUrl`].
///
/// ```
/// use ws_lifeline::{validate_url, Error};
/// assert_eq!(validate_url("https://example.com/ws").unwrap(), "wss://example.com/ws");
/// assert!(matches!(validate_url("ftp://x"), Err(Error::InvalidUrl { supplied, .. }) if supplied == "ftp://x"));
/// ```
pub fn validate_url(supplied: &str) -> Result<String> {
    let bad = |reason: &str| Error::InvalidUrl {
        supplied: supplied.to_owned(),
        reason: reason.to_owned(),
    };
    let Some((scheme, rest)) = split_once(supplied, b"://") else {
        return Err(bad(
            "expected an absolute ws://, wss://, http:// or https:// URL",
        ));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err(bad("the scheme must be ws, wss, http or https")),
    };
    if supplied
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad("URLs may not contain whitespace or control characters"));
    }
    if rest.contains('#') {
        return Err(bad("WebSocket URLs may not have a fragment"));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host_only = if host.starts_with('[') {
        host.split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or_default()
    };
    if host_only.is_empty() {
        return Err(bad("the URL has no host"));
    }
    if let Some(port) = host
        .strip_prefix('[')
        .and_then(|h| split_once(h, b"]:"))
        .map(|(_, p)| p)
        .or_else(|| {
            if host.starts_with('[') {
                None
            } else {
                host.split_once(':').map(|(_, p)| p)
            }
        })
        && (port.is_empty() || port.parse::<u16>().is_err())
    {
        return Err(bad("the port is not a number from 0 to 65535"));
    }
    let mut url = String::with_capacity(scheme.len() + 3 + rest.len());
    url.push_str(scheme);
    url.push_str("://");
    url.push_str(rest);
    Ok(url)
}

/// `text.split_once(separator)` for an ASCII separator, by a plain byte scan: `str`'s
/// substring search (Two-Way) is kilobytes of wasm for what is a two- or three-byte needle.
pub(crate) fn split_once<'a>(text: &'a str, separator: &[u8]) -> Option<(&'a str, &'a str)> {
    let at = find(text.as_bytes(), separator)?;
    // An ASCII separator starts and ends on char boundaries, so both `get`s succeed.
    Some((text.get(..at)?, text.get(at + separator.len()..)?))
}

/// The first index of `needle` in `haystack` (a naive scan: needles here are a few bytes).
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
