//! The heartbeat's pong matcher, by hand: is this text exactly a frame that
//! `serde_json::from_str::<protocol::ServerMsg>` decodes as `ServerMsg::Pong`?
//!
//! The raw resilient socket needs no JSON beyond this one question, and answering it with
//! serde_json put the whole JSON decoder, its error messages and float formatting into the
//! build. This is a validating scanner of RFC 8259 JSON with serde_json's limits, and the
//! rules of serde's internally tagged enums on top:
//!
//! - an object with exactly one `"type"` key whose value is the string `pong`, and exactly one
//!   `"id"` key whose value is an integer in `0..=u64::MAX`; other keys may hold any JSON;
//!   keys and the tag compare after unescaping;
//! - or the sequence form `["pong", id]`;
//! - surrounding whitespace only; nesting at most 127 deep; a number that serde_json would
//!   read as an infinite float is refused, as it is there.
//!
//! The proptest in `config.rs` checks it against the protocol decoder.

/// serde_json's recursion limit: 128 levels counted down, refused on reaching zero.
const MAX_DEPTH: u32 = 127;

/// True when `text` is a protocol v1 `pong` frame (see the module docs).
pub(crate) fn is_pong(text: &str) -> bool {
    let mut scan = Scanner {
        bytes: text.as_bytes(),
        at: 0,
    };
    scan.frame().is_some()
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// What an `"id"` value turned out to be.
#[derive(PartialEq)]
enum Value {
    /// A non-negative integer that fits a `u64`.
    Id,
    /// The string `pong`.
    Pong,
    /// Anything else that is valid JSON.
    Other,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    fn frame(&mut self) -> Option<()> {
        self.skip_ws();
        let pong = match self.peek()? {
            b'{' => self.object(MAX_DEPTH)?,
            b'[' => self.tuple()?,
            _ => return None,
        };
        self.skip_ws();
        (pong && self.at == self.bytes.len()).then_some(())
    }

    /// The top-level object: true when it has one `type: "pong"` and one integer `id`.
    fn object(&mut self, depth: u32) -> Option<bool> {
        self.at += 1;
        let (mut tag, mut id) = (0u32, 0u32);
        let (mut tag_ok, mut id_ok) = (true, true);
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Some(false);
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.eat(b':')?;
            let value = self.value(depth - 1)?;
            match key.as_str() {
                "type" => {
                    tag += 1;
                    tag_ok &= value == Value::Pong;
                }
                "id" => {
                    id += 1;
                    id_ok &= value == Value::Id;
                }
                _ => {}
            }
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(tag == 1 && tag_ok && id == 1 && id_ok);
                }
                _ => return None,
            }
        }
    }

    /// The top-level sequence form: true for exactly `["pong", <integer id>]`.
    fn tuple(&mut self) -> Option<bool> {
        self.at += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(false);
        }
        loop {
            let item = self.value(MAX_DEPTH - 1)?;
            if items.is_empty() && item != Value::Pong {
                // Not a pong whatever follows: no need to scan a long batch frame.
                return Some(false);
            }
            items.push(item);
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(items == [Value::Pong, Value::Id]);
                }
                _ => return None,
            }
        }
    }

    /// Any JSON value, validated; `depth` is the nesting still allowed below this point.
    fn value(&mut self, depth: u32) -> Option<Value> {
        self.skip_ws();
        match self.peek()? {
            b'"' => Some(if self.string()? == "pong" {
                Value::Pong
            } else {
                Value::Other
            }),
            b'{' | b'[' => {
                let close = if self.peek()? == b'{' { b'}' } else { b']' };
                if depth == 0 {
                    return None;
                }
                self.at += 1;
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.at += 1;
                    return Some(Value::Other);
                }
                loop {
                    if close == b'}' {
                        self.skip_ws();
                        self.string()?;
                        self.eat(b':')?;
                    }
                    self.value(depth - 1)?;
                    self.skip_ws();
                    match self.peek()? {
                        b',' => self.at += 1,
                        byte if byte == close => {
                            self.at += 1;
                            return Some(Value::Other);
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<Value> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| {
            self.at = end;
            Value::Other
        })
    }

    /// A JSON number: `Id` for an integer in `0..=u64::MAX` (what serde_json hands a `u64`
    /// field), `Other` for any other finite number, `None` for bad syntax or overflow.
    fn number(&mut self) -> Option<Value> {
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
        let int = &self.bytes[int_start..self.at];
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
            fraction = &self.bytes[start..self.at];
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
            for &digit in &self.bytes[start..self.at] {
                exponent = exponent
                    .saturating_mul(10)
                    .saturating_add(i64::from(digit - b'0'));
            }
            if negative_exponent {
                exponent = -exponent;
            }
            float = true;
        }
        if !float && !negative && fits_u64(int) {
            return Some(Value::Id);
        }
        finite(int, fraction, exponent).then_some(Value::Other)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    /// A JSON string, unescaped (keys and the tag compare by their unescaped text).
    fn string(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        let mut out = String::new();
        loop {
            let start = self.at;
            while matches!(self.peek(), Some(byte) if byte != b'"' && byte != b'\\' && byte >= 0x20)
            {
                self.at += 1;
            }
            // The run ends at an ASCII byte (or the end), so it is whole UTF-8.
            out.push_str(std::str::from_utf8(&self.bytes[start..self.at]).ok()?);
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.at += 1;
                    let escaped = self.peek()?;
                    self.at += 1;
                    out.push(match escaped {
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
                    });
                }
                // A control character inside a string.
                _ => return None,
            }
        }
    }

    /// The code point of a `\u` escape (after the `u`), joining a surrogate pair; a lone
    /// surrogate is refused, as serde_json refuses it.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.at..self.at + 2)? != b"\\u" {
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

/// True when the decimal digits `int` (no sign, no leading zero but a lone `0`) fit a `u64`.
fn fits_u64(int: &[u8]) -> bool {
    const MAX: &[u8] = b"18446744073709551615";
    int.len() < MAX.len() || (int.len() == MAX.len() && int <= MAX)
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
