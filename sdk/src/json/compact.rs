//! When raw JSON text can be copied as it is, and the re-serialization when it cannot.
//!
//! "Compact" here means exactly what serde_json writes for the value once parsed into a
//! `serde_json::Value` with `preserve_order`: no whitespace; strings with only the escapes it
//! writes (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, and `\u00xx` in lowercase hex for the
//! other control characters — never `\/` or other `\u`); integers without sign `+`, fraction or
//! exponent that fit in `i64`/`u64` (anything else is an `f64` written by ryu), and `-0` is not
//! one (it is the float `-0.0`); objects without duplicate keys. The scanner runs on text
//! serde_json has already validated, so it checks form, not grammar.

use serde_json::value::RawValue;

use super::{ObjectParser, RawJson};

/// Objects with more keys, or values nested deeper, are re-serialized rather than scanned
/// (their duplicate-key check would need a buffer).
const MAX_KEYS: usize = 32;
const MAX_DEPTH: u32 = 64;

/// Whether `raw`, one valid JSON value, is already serde_json's compact form of it.
pub(super) fn is_compact(raw: &[u8]) -> bool {
    let mut scan = Scan { b: raw, i: 0 };
    scan.value(0) && scan.i == raw.len()
}

/// Writes `raw`, one valid JSON value, as serde_json's compact form of it.
pub(super) fn rewrite(raw: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match raw.as_bytes().first() {
        Some(b'{') => ObjectParser::new()
            .parse(raw.as_bytes())?
            .write_compact(out),
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(raw)?;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                RawJson(item.get()).write_compact(out)?;
            }
            out.push(b']');
            Ok(())
        }
        Some(b'"') => serde_json::to_writer(out, &serde_json::from_str::<String>(raw)?),
        Some(b't' | b'f' | b'n') => {
            out.extend_from_slice(raw.trim().as_bytes());
            Ok(())
        }
        _ => serde_json::to_writer(out, &serde_json::from_str::<serde_json::Number>(raw)?),
    }
}

/// A cursor over valid JSON text.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn peek(&self) -> u8 {
        self.b.get(self.i).copied().unwrap_or(0)
    }

    /// Consumes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == byte;
        self.i += usize::from(next);
        next
    }

    fn value(&mut self, depth: u32) -> bool {
        match self.peek() {
            b'{' => depth < MAX_DEPTH && self.object(depth + 1),
            b'[' => depth < MAX_DEPTH && self.array(depth + 1),
            b'"' => self.string().is_some(),
            b't' | b'n' => self.literal(4),
            b'f' => self.literal(5),
            b'-' | b'0'..=b'9' => self.number(),
            _ => false, // whitespace
        }
    }

    fn literal(&mut self, len: usize) -> bool {
        self.i += len;
        self.i <= self.b.len()
    }

    fn object(&mut self, depth: u32) -> bool {
        self.i += 1;
        if self.eat(b'}') {
            return true;
        }
        let mut keys = [(0usize, 0usize); MAX_KEYS];
        let mut n = 0;
        loop {
            let Some((start, end)) = self.string() else {
                return false;
            };
            // Keys in this form compare equal exactly when their raw texts do.
            let key = &self.b[start..end];
            if n == MAX_KEYS || keys[..n].iter().any(|&(s, e)| &self.b[s..e] == key) {
                return false;
            }
            keys[n] = (start, end);
            n += 1;
            if !(self.eat(b':') && self.value(depth)) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn array(&mut self, depth: u32) -> bool {
        self.i += 1;
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    /// A string whose escapes are all serde_json's: the range of its text, quotes included.
    fn string(&mut self) -> Option<(usize, usize)> {
        let start = self.i;
        self.i += 1;
        loop {
            let rest = self.b.get(self.i..)?;
            let at = rest.iter().position(|&c| c == b'"' || c == b'\\')?;
            self.i += at;
            if self.eat(b'"') {
                return Some((start, self.i));
            }
            let escape = self.b.get(self.i + 1..)?;
            self.i += match escape {
                [b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't', ..] => 2,
                [b'u', b'0', b'0', hi @ (b'0' | b'1'), lo, ..] if is_written_as_u(*hi, *lo) => 6,
                _ => return None,
            };
        }
    }

    /// An integer serde_json keeps as `i64`/`u64` and writes back digit for digit.
    fn number(&mut self) -> bool {
        let start = self.i;
        let negative = self.eat(b'-');
        let digits_start = self.i;
        while self.peek().is_ascii_digit() {
            self.i += 1;
        }
        let digits = &self.b[digits_start..self.i];
        if matches!(self.peek(), b'.' | b'e' | b'E') || digits == b"0" && negative {
            return false;
        }
        if digits.len() < 19 {
            return true;
        }
        let Ok(text) = std::str::from_utf8(&self.b[start..self.i]) else {
            return false;
        };
        if negative {
            text.parse::<i64>().is_ok()
        } else {
            text.parse::<u64>().is_ok()
        }
    }
}

/// Whether serde_json writes the control character `\u00{hi}{lo}` in this form (lowercase
/// hex, and not one of those it writes as `\b`, `\t`, `\n`, `\f`, `\r`).
fn is_written_as_u(hi: u8, lo: u8) -> bool {
    let Some(low) = (lo as char)
        .to_digit(16)
        .filter(|_| !lo.is_ascii_uppercase())
    else {
        return false;
    };
    let code = (hi - b'0') * 16 + low as u8;
    !matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)
}
