//! The fast path of [`ObjectParser::parse`](super::ObjectParser::parse): a scanner for the
//! top-level object of the usual payload — keys without escapes, scalar values — that finds
//! the members without going through serde's visitor machinery.
//!
//! It accepts exactly what serde_json accepts when it reads the members as `&RawValue` (the
//! slow path): strings without control characters and with valid escapes (a `\u` escape is
//! four hex digits; serde_json does not check surrogates in a value it skips either), numbers
//! by the JSON grammar, `true`/`false`/`null`. Nested objects and arrays are delegated to
//! serde_json. Anything else — a key with escapes, a syntax error, a payload that is not an
//! object — returns `None` and the caller parses with serde_json, which also words the errors.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Member, Span};

/// Appends the members of the object `text` to `members`; `None` when the fast path does not
/// handle `text` (`members` then holds garbage the caller clears).
pub(super) fn scan_object(text: &str, members: &mut Vec<Member>) -> Option<()> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i + 1, false)?;
        let key = Span {
            start: i + 1,
            end: key_end,
        };
        i = skip_ws(b, key_end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let end = value_end(text, i)?;
        members.push(Member {
            key,
            key_decoded: false,
            value: Span { start: i, end },
        });
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return (skip_ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the value starting at `i`.
fn value_end(text: &str, i: usize) -> Option<usize> {
    let b = text.as_bytes();
    match *b.get(i)? {
        b'"' => string_end(b, i + 1, true).map(|end| end + 1),
        b'-' | b'0'..=b'9' => number_end(b, i),
        b't' => literal_end(b, i, b"true"),
        b'f' => literal_end(b, i, b"false"),
        b'n' => literal_end(b, i, b"null"),
        b'{' | b'[' => {
            let mut de = serde_json::Deserializer::from_str(text.get(i..)?);
            let raw = <&RawValue>::deserialize(&mut de).ok()?;
            Some(i + raw.get().len())
        }
        _ => None,
    }
}

fn literal_end(b: &[u8], i: usize, literal: &[u8]) -> Option<usize> {
    b.get(i..)?
        .starts_with(literal)
        .then_some(i + literal.len())
}

/// The index of the closing quote of the string whose text starts at `i`; escapes are
/// accepted only when `escapes` (a key with escapes needs decoding: the slow path does it).
fn string_end(b: &[u8], mut i: usize, escapes: bool) -> Option<usize> {
    loop {
        i = plain_run_end(b, i);
        match *b.get(i)? {
            b'"' => return Some(i),
            b'\\' if escapes => {
                i += match *b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' if b.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                    _ => return None,
                }
            }
            0..0x20 | b'\\' => return None,
            _ => i += 1,
        }
    }
}

/// Skips, eight bytes at a time, the bytes from `i` that need no look in a string — neither
/// `"`, `\` nor a control character — stopping at the first word that holds one (or at the
/// last whole word): the byte loop of [`string_end`] takes over from there. Long string values
/// (descriptions, free text) are most of a payload's bytes.
fn plain_run_end(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    // Whether a byte of `x` is below `n` (n <= 128): exact as a whole, though a borrow may
    // mark a wrong byte — it only says whether to stop.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    while let Some(word) = b.get(i..i + 8) {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        let w = u64::from_le_bytes(bytes);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        if below(quote, 1) | below(backslash, 1) | below(w, 0x20) != 0 {
            break;
        }
        i += 8;
    }
    i
}

/// The end of the number starting at `i`: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |b: &[u8], mut i: usize| -> Option<usize> {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match b.get(i)? {
        b'0' => i + 1,
        _ => digits(b, i)?,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        i = digits(b, i)?;
    }
    Some(i)
}
