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
    if rest.as_bytes().contains(&b'#') {
        return Err(bad("WebSocket URLs may not have a fragment"));
    }
    // Byte scans for the ASCII delimiters rather than `str::split`: the same slices, without
    // core's string-pattern machinery in the wasm (about 2 KB).
    let authority = until(rest, |b| b == b'/' || b == b'?');
    let host = match authority.bytes().rposition(|b| b == b'@') {
        Some(at) => authority.get(at + 1..).unwrap_or_default(),
        None => authority,
    };
    let bracketed = host.as_bytes().first() == Some(&b'[');
    let host_only = if bracketed {
        let inner = until(host, |b| b == b']');
        let brackets = inner.bytes().take_while(|&b| b == b'[').count();
        inner.get(brackets..).unwrap_or_default()
    } else {
        until(host, |b| b == b':')
    };
    if host_only.is_empty() {
        return Err(bad("the URL has no host"));
    }
    let port = if bracketed {
        host.get(1..)
            .and_then(|h| split_once(h, b"]:"))
            .map(|(_, p)| p)
    } else {
        host.bytes()
            .position(|b| b == b':')
            .and_then(|at| host.get(at + 1..))
    };
    if let Some(port) = port
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
/// `text` up to the first byte that `stop` accepts (an ASCII delimiter, so a char boundary).
fn until(text: &str, stop: impl Fn(u8) -> bool) -> &str {
    let end = text.bytes().position(stop).unwrap_or(text.len());
    text.get(..end).unwrap_or_default()
}

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

// proptest is a native-only dev-dependency.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::{split_once, validate_url};
    use crate::{Error, Result};
    use proptest::prelude::*;

    /// The `str::split` version this module had before its byte scans, as the oracle.
    fn validate_url_by_split(supplied: &str) -> Result<String> {
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
        Ok(format!("{scheme}://{rest}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Same answer as the split-based version for URL-shaped text: every scheme, user
        /// info, brackets, ports, paths, queries and fragments in any mix.
        #[test]
        fn byte_scans_agree_with_str_split(
            scheme in "(ws|wss|http|https|WS|Https|ftp|)",
            sep in "(://|:/|//|)",
            rest in "[a-zA-Z0-9:/?#@\\[\\]+. é-]{0,24}",
        ) {
            let url = format!("{scheme}{sep}{rest}");
            prop_assert_eq!(validate_url(&url), validate_url_by_split(&url), "{}", url);
        }

        /// Authorities built from the parts the scans look at: user info, brackets, host,
        /// ports (good and bad), then a path, query or fragment.
        #[test]
        fn byte_scans_agree_on_authorities(
            scheme in "(ws|wss|http|https)",
            rest in "([a-z]{0,3}@){0,2}\\[{0,3}[a-z0-9:.]{0,5}\\]{0,2}(:[0-9+a-]{0,6}){0,2}([/?#][a-z0-9@:\\[\\]/?#]{0,6}){0,2}",
        ) {
            let url = format!("{scheme}://{rest}");
            prop_assert_eq!(validate_url(&url), validate_url_by_split(&url), "{}", url);
        }

        /// And for arbitrary text.
        #[test]
        fn byte_scans_agree_on_any_text(text in any::<String>()) {
            prop_assert_eq!(validate_url(&text), validate_url_by_split(&text));
        }
    }
}
