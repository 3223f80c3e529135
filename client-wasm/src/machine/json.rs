//! JSON by hand, for the few shapes the client reads and writes, and [`RawJson`].
//!
//! The client never needs a JSON tree: it reads the fields of protocol messages and hands
//! application data on as text (to `JSON.parse` in the JS API, to serde in the Rust API, only
//! when the application asks). serde_json's decoder, its error messages and its float
//! formatting were half of the npm package's wasm; this module replaces them.
//!
//! [`Scanner`] validates RFC 8259 JSON with serde_json's limits, so a frame is refused here
//! exactly when serde_json would refuse it:
//!
//! - nesting at most 127 deep below the frame (serde_json's recursion limit of 128);
//! - a number serde_json would read as an infinite float is refused, as it is there;
//! - a lone surrogate in a `\u` escape is refused, as serde_json refuses it;
//! - keys compare after unescaping.
//!
//! The proptests in `server_frame.rs`, `client_frame.rs` and `config.rs` check the decoders
//! built on it against serde_json.

use std::fmt;

/// serde_json's recursion limit: 128 levels counted down, refused on reaching zero.
pub(crate) const MAX_DEPTH: u32 = 127;

/// A JSON value kept as its text: application data of `publish` and `message`.
///
/// The client validates it (the server would refuse a frame that is not JSON) but does not
/// decode it; [`decode`](RawJson::decode) does, into the application's type.
///
/// ```
/// use ws_lifeline::RawJson;
/// let data = RawJson::new(r#" {"t": "hi"} "#).unwrap();
/// assert_eq!(data.as_str(), r#"{"t": "hi"}"#);
/// assert_eq!(data.decode::<serde_json::Value>().unwrap()["t"], "hi");
/// assert!(RawJson::new("{").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawJson(Box<str>);

/// Text that is not one JSON value (or is beyond serde_json's limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a JSON value")]
pub struct InvalidJson;

impl RawJson {
    /// Checks that `text` is exactly one JSON value (surrounding whitespace is dropped).
    pub fn new(text: impl Into<String>) -> Result<RawJson, InvalidJson> {
        let text = text.into();
        let mut scan = Scanner::new(&text);
        scan.skip_ws();
        let start = scan.at;
        scan.value(MAX_DEPTH + 1).ok_or(InvalidJson)?;
        let end = scan.at;
        scan.skip_ws();
        if !scan.at_end() {
            return Err(InvalidJson);
        }
        Ok(RawJson::trusted(text.get(start..end).unwrap_or_default()))
    }

    /// `value` as JSON, with serde.
    pub fn from_serialize<T: serde::Serialize + ?Sized>(
        value: &T,
    ) -> Result<RawJson, serde_json::Error> {
        serde_json::to_string(value).map(|text| RawJson(text.into_boxed_str()))
    }

    /// Text already known to be one JSON value.
    pub(crate) fn trusted(text: &str) -> RawJson {
        RawJson(text.into())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Decodes the value into `T` with serde.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a scanned value was. Strings are validated but not kept; numbers are kept only when
/// they are what serde hands a `u64` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    /// A non-negative integer that fits a `u64`.
    U64(u64),
    /// Any other finite number.
    Number,
    Bool(bool),
    Null,
    Array,
    Object,
}

/// A validating JSON reader over one text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    pub(crate) at: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Scanner { text, at: 0 }
    }

    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.at == self.text.len()
    }

    pub(crate) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    pub(crate) fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    /// After an element of a container closed by `close`: true at its end, false before the
    /// next element; `None` for anything else.
    pub(crate) fn next_or_end(&mut self, close: u8) -> Option<bool> {
        self.skip_ws();
        let byte = self.peek()?;
        self.at += 1;
        match byte {
            b',' => Some(false),
            b if b == close => Some(true),
            _ => None,
        }
    }

    /// Enters the container at the cursor (`{` or `[`, checked by the caller); true when it is
    /// empty (and then already left).
    pub(crate) fn enter(&mut self, close: u8) -> bool {
        self.at += 1;
        self.skip_ws();
        let empty = self.peek() == Some(close);
        if empty {
            self.at += 1;
        }
        empty
    }

    /// Any JSON value, validated; `depth` is the nesting still allowed at this point (a
    /// container needs at least 1).
    pub(crate) fn value(&mut self, depth: u32) -> Option<Kind> {
        self.skip_ws();
        match self.peek()? {
            b'"' => {
                self.string(None)?;
                Some(Kind::String)
            }
            open @ (b'{' | b'[') => {
                let (close, kind) = if open == b'{' {
                    (b'}', Kind::Object)
                } else {
                    (b']', Kind::Array)
                };
                if depth <= 1 {
                    return None;
                }
                if self.enter(close) {
                    return Some(kind);
                }
                loop {
                    if close == b'}' {
                        self.skip_ws();
                        self.string(None)?;
                        self.eat(b':')?;
                    }
                    self.value(depth - 1)?;
                    if self.next_or_end(close)? {
                        return Some(kind);
                    }
                }
            }
            b't' => self.literal("true", Kind::Bool(true)),
            b'f' => self.literal("false", Kind::Bool(false)),
            b'n' => self.literal("null", Kind::Null),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &str, kind: Kind) -> Option<Kind> {
        let end = self.at + word.len();
        (self.text.as_bytes().get(self.at..end)? == word.as_bytes()).then(|| {
            self.at = end;
            kind
        })
    }

    /// A JSON number: `U64` for an integer in `0..=u64::MAX`, `Number` for any other finite
    /// number, `None` for bad syntax or a number serde_json reads as infinite.
    fn number(&mut self) -> Option<Kind> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let bytes = self.text.as_bytes();
        let int = &bytes[int_start..self.at];
        let mut fraction: &[u8] = &[];
        let mut exponent: i64 = 0;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.at += 1;
            let start = self.at;
            self.digits();
            if self.at == start {
                return None;
            }
            fraction = &bytes[start..self.at];
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            let negative_exponent = match self.peek() {
                Some(b'-') => {
                    self.at += 1;
                    true
                }
                Some(b'+') => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            let start = self.at;
            self.digits();
            if self.at == start {
                return None;
            }
            for &digit in &bytes[start..self.at] {
                exponent = exponent
                    .saturating_mul(10)
                    .saturating_add(i64::from(digit - b'0'));
            }
            if negative_exponent {
                exponent = -exponent;
            }
            float = true;
        }
        if !float
            && !negative
            && let Some(n) = parse_u64(int)
        {
            return Some(Kind::U64(n));
        }
        finite(int, fraction, exponent).then_some(Kind::Number)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    /// A JSON string at the cursor, validated; unescaped into `out` when given.
    pub(crate) fn string(&mut self, mut out: Option<&mut String>) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        loop {
            let start = self.at;
            while matches!(self.peek(), Some(byte) if byte != b'"' && byte != b'\\' && byte >= 0x20)
            {
                self.at += 1;
            }
            if let Some(out) = out.as_deref_mut() {
                // The run ends at an ASCII byte (or the end), so it is whole UTF-8.
                out.push_str(self.text.get(start..self.at)?);
            }
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => {
                    self.at += 1;
                    let escaped = self.peek()?;
                    self.at += 1;
                    let c = match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    if let Some(out) = out.as_deref_mut() {
                        out.push(c);
                    }
                }
                // A control character inside a string.
                _ => return None,
            }
        }
    }

    /// A decoded JSON string at the cursor.
    pub(crate) fn owned_string(&mut self) -> Option<String> {
        let mut out = String::new();
        self.string(Some(&mut out))?;
        Some(out)
    }

    /// The code point of a `\u` escape (after the `u`), joining a surrogate pair; a lone
    /// surrogate is refused, as serde_json refuses it.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        match first {
            0xD800..=0xDBFF => {
                if self.text.as_bytes().get(self.at..self.at + 2)? != b"\\u" {
                    return None;
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return None;
                }
                char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
            }
            0xDC00..=0xDFFF => None,
            _ => char::from_u32(first),
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut n = 0;
        for _ in 0..4 {
            let digit = char::from(self.peek()?).to_digit(16)?;
            self.at += 1;
            n = n * 16 + digit;
        }
        Some(n)
    }
}

/// One member of a scanned object: its unescaped key, and where its value lies.
pub(crate) struct Member {
    pub(crate) key: String,
    pub(crate) start: usize,
    #[cfg_attr(not(feature = "rooms"), allow(dead_code))]
    pub(crate) end: usize,
    pub(crate) kind: Kind,
}

/// The object at the cursor (its `{` checked by the caller), validated, as its members in
/// order; `depth` as for [`Scanner::value`].
pub(crate) fn members(scan: &mut Scanner<'_>, depth: u32) -> Option<Vec<Member>> {
    if depth <= 1 {
        return None;
    }
    let mut out = Vec::new();
    if scan.enter(b'}') {
        return Some(out);
    }
    loop {
        scan.skip_ws();
        let key = scan.owned_string()?;
        scan.eat(b':')?;
        scan.skip_ws();
        let start = scan.at;
        let kind = scan.value(depth - 1)?;
        out.push(Member {
            key,
            start,
            end: scan.at,
            kind,
        });
        if scan.next_or_end(b'}')? {
            return Some(out);
        }
    }
}

/// The value of the decimal digits `int` (no sign, no leading zero but a lone `0`) if it
/// fits a `u64`.
fn parse_u64(int: &[u8]) -> Option<u64> {
    int.iter().try_fold(0u64, |n, &digit| {
        n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// Whether `int.fraction × 10^exponent` is below `f64::MAX` in magnitude, as serde_json
/// decides when it reads a number as a float (it refuses infinite ones). Exact except within
/// one unit in the 17th significant digit of `f64::MAX`, where serde_json's own rounding
/// decides.
fn finite(int: &[u8], fraction: &[u8], exponent: i64) -> bool {
    let digits = int.iter().chain(fraction);
    // Leading zeros carry no magnitude.
    let leading = digits.clone().take_while(|&&d| d == b'0').count();
    let significant: Vec<u8> = digits.skip(leading).copied().collect();
    if significant.iter().all(|&d| d == b'0') {
        return true;
    }
    // The value is in [10^(e-1), 10^e) for this decimal exponent e.
    let int_digits = int.len() as i64 - leading as i64;
    let e = exponent.saturating_add(int_digits);
    const MAX_DIGITS: &[u8] = b"17976931348623157";
    match e.cmp(&309) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => {
            let head = &significant[..significant.len().min(MAX_DIGITS.len())];
            head < MAX_DIGITS || (head == MAX_DIGITS && significant.len() == MAX_DIGITS.len())
        }
    }
}

/// Appends `text` as a JSON string, escaped as serde_json escapes it.
#[cfg_attr(not(feature = "rooms"), allow(dead_code))]
pub(crate) fn push_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(text.get(start..i).unwrap_or_default());
        start = i + 1;
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        } else {
            out.push_str(short);
        }
    }
    out.push_str(text.get(start..).unwrap_or_default());
    out.push('"');
}

/// Appends `n` in decimal.
#[cfg_attr(not(feature = "rooms"), allow(dead_code))]
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_json_accepts_exactly_what_serde_json_accepts() {
        let texts = [
            "1",
            " [1, {\"a\": null}] ",
            "\"\\ud800\"",
            "\"\\ud83d\\ude00\"",
            "1e400",
            "-1e308",
            "1 2",
            "",
            "{",
            "tru",
            "[1,]",
            "01",
            "\"a\tb\"",
            "18446744073709551616",
            "-0",
        ];
        for text in texts {
            assert_eq!(
                RawJson::new(text).is_ok(),
                serde_json::from_str::<serde_json::Value>(text).is_ok(),
                "{text}"
            );
        }
        for depth in [126, 127, 128, 129] {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(
                RawJson::new(text.as_str()).is_ok(),
                serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                "depth {depth}"
            );
        }
    }

    #[test]
    fn strings_and_numbers_are_written_as_serde_json_writes_them() {
        let texts = [
            "",
            "plain",
            "q\"b\\s/",
            "\u{0}\u{1f}\u{7f}\n\r\t\u{8}\u{c}",
            "é😀",
        ];
        for text in texts {
            let mut out = String::new();
            push_string(&mut out, text);
            assert_eq!(out, serde_json::to_string(text).unwrap());
        }
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_string_is_escaped_as_serde_json_escapes_it(text in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
                let mut out = String::new();
                push_string(&mut out, &text);
                prop_assert_eq!(out, serde_json::to_string(&text).unwrap());
            }

            #[test]
            fn raw_json_agrees_with_serde_json_on_any_text(text in "[\\[\\]{}\":,0-9.eE+\\-a-z\\\\ ]{0,24}") {
                prop_assert_eq!(
                    RawJson::new(text.as_str()).is_ok(),
                    serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                    "{}", text
                );
            }
        }
    }
}
