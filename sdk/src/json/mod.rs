//! Borrowed JSON: read the top-level object of a payload without building a document, and
//! write JSON by copying the raw text of its values.
//!
//! The usual way to read a payload, `event.json::<serde_json::Value>()`, allocates a map, a
//! string per key and a value per member, and writing it back serializes every value again.
//! An operator that filters on a field and passes other fields through (a projection, a
//! router) needs none of that. [`ObjectParser`] parses the top-level object once per event
//! into a reusable list of members — keys borrowed from the payload (decoded only when they
//! contain escapes), values kept as their raw JSON text ([`RawJson`]) — so a warm parser does
//! not allocate. A value is read only when asked ([`RawJson::as_f64`], [`RawJson::as_str`],
//! [`RawJson::parse`]), and [`RawObject::write_projection`] / [`RawObject::write_compact`]
//! write the output by copying raw values.
//!
//! The output is byte for byte what serde_json writes for the same document parsed into a
//! `serde_json::Value` with `preserve_order` (compact, non-ASCII kept as UTF-8): a raw value is
//! copied only when its text already is that form (no whitespace, escapes written as serde_json
//! writes them, integers in range, no duplicate keys); otherwise it is re-serialized. Duplicate
//! keys behave as in that map: a key keeps the position of its first occurrence and the value
//! of its last.
//!
//! What it is not: a document model. Nested objects and arrays stay raw text; parse them with
//! [`RawJson::parse`] into a `serde_json::Value` or your own type. The whole payload is
//! validated, including the values that are never read, as serde_json validates it: a small
//! scanner finds the members of the usual object (keys without escapes, scalar values) and
//! hands nested values to serde_json; any other object is parsed by serde_json itself.
//!
//! ```
//! use weir_sdk::json::{ObjectParser, Projection};
//!
//! let mut parser = ObjectParser::new(); // keep it in the operator: reused for every event
//! let keep = Projection::new(["user", "amount"]);
//! let mut out = Vec::new();
//!
//! let doc = parser.parse(br#"{"amount": 25, "user": "bo", "note": "x"}"#).unwrap();
//! assert_eq!(doc.get("amount").and_then(|v| v.as_f64()), Some(25.0));
//! doc.write_projection(&keep, &mut out).unwrap();
//! assert_eq!(out, br#"{"user":"bo","amount":25}"#);
//! ```

mod compact;
mod scan;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Parses top-level JSON objects into a [`RawObject`], reusing its buffers from one call to
/// the next: keep one in the operator and call [`ObjectParser::parse`] (or
/// [`Event::json_object`](crate::Event::json_object)) for each event.
#[derive(Debug, Default)]
pub struct ObjectParser {
    members: Vec<Member>,
    /// Keys that contained escapes, decoded (a borrowed key cannot hold its decoded form).
    decoded_keys: String,
}

/// One member of the parsed object: where its key and raw value are.
#[derive(Debug, Clone, Copy)]
struct Member {
    key: Span,
    /// The key is in [`ObjectParser::decoded_keys`], not in the text.
    key_decoded: bool,
    value: Span,
}

/// A byte range of the parsed text (or of the decoded keys).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// The span of `part`, a slice borrowed from `whole`; `None` when it is not.
    fn of(whole: &str, part: &str) -> Option<Span> {
        let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
        let end = start + part.len();
        (end <= whole.len()).then_some(Span { start, end })
    }
}

impl ObjectParser {
    /// A parser with empty buffers (they grow to the largest object seen).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `json`, which must be one JSON object (surrounding whitespace allowed). Every
    /// value is validated; none is decoded.
    ///
    /// The error is serde_json's (``invalid type: integer `5`, expected a JSON object at line 1
    /// column 1``, `EOF while parsing an object ...`), or names invalid UTF-8.
    pub fn parse<'a>(&'a mut self, json: &'a [u8]) -> Result<RawObject<'a>, serde_json::Error> {
        let text = std::str::from_utf8(json).map_err(|e| {
            de::Error::custom(format_args!("invalid UTF-8 at byte {}", e.valid_up_to()))
        })?;
        self.members.clear();
        self.decoded_keys.clear();
        if scan::scan_object(text, &mut self.members).is_none() {
            self.members.clear();
            let mut de = serde_json::Deserializer::from_str(text);
            de.deserialize_map(MembersVisitor { text, parser: self })?;
            de.end()?;
        }
        Ok(RawObject {
            text,
            decoded_keys: &self.decoded_keys,
            members: &self.members,
        })
    }
}

/// Collects the members of the top-level object into the parser.
struct MembersVisitor<'p, 'a> {
    text: &'a str,
    parser: &'p mut ObjectParser,
}

impl<'de> Visitor<'de> for MembersVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ObjectParser {
            members,
            decoded_keys,
        } = self.parser;
        while let Some((key, key_decoded)) = map.next_key_seed(KeySeed {
            text: self.text,
            decoded_keys: &mut *decoded_keys,
        })? {
            let raw: &'de RawValue = map.next_value()?;
            let value = Span::of(self.text, raw.get())
                .ok_or_else(|| de::Error::custom("a raw value not borrowed from the payload"))?;
            members.push(Member {
                key,
                key_decoded,
                value,
            });
        }
        Ok(())
    }
}

/// Reads one key: its span in the text, or — when it had escapes — in the decoded keys.
struct KeySeed<'p, 'a> {
    text: &'a str,
    decoded_keys: &'p mut String,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, 'de> {
    type Value = (Span, bool);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(Span, bool), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, 'de> {
    type Value = (Span, bool);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<(Span, bool), E> {
        match Span::of(self.text, key) {
            Some(span) => Ok((span, false)),
            None => self.visit_str(key),
        }
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(Span, bool), E> {
        let start = self.decoded_keys.len();
        self.decoded_keys.push_str(key);
        let end = self.decoded_keys.len();
        Ok((Span { start, end }, true))
    }
}

/// A JSON object parsed by an [`ObjectParser`]: its members in input order, each value its raw
/// JSON text. Borrows the parser and the parsed text.
#[derive(Debug, Clone, Copy)]
pub struct RawObject<'a> {
    text: &'a str,
    decoded_keys: &'a str,
    members: &'a [Member],
}

impl<'a> RawObject<'a> {
    /// Where the key of `m` is: the parsed text, or the decoded keys.
    fn keys_of(&self, m: &Member) -> &'a str {
        if m.key_decoded {
            self.decoded_keys
        } else {
            self.text
        }
    }

    fn key_of(&self, m: &Member) -> &'a str {
        &self.keys_of(m)[m.key.start..m.key.end]
    }

    /// The key as bytes: cheaper to compare than `&str` slices (no boundary checks).
    fn key_bytes(&self, m: &Member) -> &'a [u8] {
        self.keys_of(m)
            .as_bytes()
            .get(m.key.start..m.key.end)
            .unwrap_or_default()
    }

    fn value_of(&self, m: &Member) -> RawJson<'a> {
        RawJson(&self.text[m.value.start..m.value.end])
    }

    /// The value of member `key` (of its last occurrence, when the key repeats).
    pub fn get(&self, key: &str) -> Option<RawJson<'a>> {
        let key = key.as_bytes();
        self.members
            .iter()
            .rev()
            .find(|m| m.key.end - m.key.start == key.len() && self.key_bytes(m) == key)
            .map(|m| self.value_of(m))
    }

    /// The members as a `serde_json::Map` with `preserve_order` holds them: each distinct key
    /// once, at the position of its first occurrence, with the value of its last. (Duplicates
    /// are found by comparing keys pairwise: fine for the objects events carry.)
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, RawJson<'a>)> + 'a {
        let this = *self;
        this.members.iter().enumerate().filter_map(move |(i, m)| {
            let key = this.key_of(m);
            if this.members[..i].iter().any(|e| this.key_of(e) == key) {
                return None;
            }
            Some((key, this.get(key)?))
        })
    }

    /// How many members the object has, duplicates included.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the object has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Appends the whole object to `out` as compact JSON: the members of [`RawObject::iter`],
    /// in that order.
    pub fn write_compact(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.push(b'{');
        for (i, (key, value)) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_key(key, out)?;
            out.push(b':');
            value.write_compact(out)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// Appends the object's members named in `fields`, in the order of `fields`, as compact
    /// JSON (`{}` when none is present).
    pub fn write_projection(
        &self,
        fields: &Projection,
        out: &mut Vec<u8>,
    ) -> Result<(), serde_json::Error> {
        out.push(b'{');
        let mut first = true;
        for (name, prefix) in &fields.fields {
            let Some(value) = self.get(name) else {
                continue;
            };
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(prefix);
            value.write_compact(out)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// Writes `key` as a JSON string.
fn write_key(key: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    serde_json::to_writer(out, key)
}

/// The fields of a projection, in output order, each with its `"name":` text written once.
///
/// ```
/// use weir_sdk::json::Projection;
///
/// let keep = Projection::new(["user", "amount", "user"]); // a repeated name counts once
/// assert_eq!(keep.names().collect::<Vec<_>>(), ["user", "amount"]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Projection {
    /// (name, the name as a JSON string followed by `:`)
    fields: Vec<(String, Vec<u8>)>,
}

impl Projection {
    /// The projection on `names`, in this order; a repeated name keeps its first position.
    pub fn new<I>(names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
        for name in names {
            let name = name.as_ref();
            if fields.iter().any(|(n, _)| n == name) {
                continue;
            }
            let mut prefix = Vec::with_capacity(name.len() + 3);
            // Serializing a string into a Vec cannot fail.
            if write_key(name, &mut prefix).is_ok() {
                prefix.push(b':');
                fields.push((name.to_owned(), prefix));
            }
        }
        Projection { fields }
    }

    /// The field names, in output order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(n, _)| n.as_str())
    }

    /// Whether the projection names no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// One JSON value as its raw text, borrowed from the parsed payload (valid JSON, no
/// surrounding whitespace). Read it with the `as_*` methods or [`RawJson::parse`], copy it with
/// [`RawJson::write_compact`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RawJson<'a>(&'a str);

impl fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawJson({})", self.0)
    }
}

impl<'a> RawJson<'a> {
    /// The raw text, as it appears in the input.
    pub fn text(&self) -> &'a str {
        self.0
    }

    /// The digits of an integer without fraction or exponent, `-` included; `None` for other
    /// values. (`-0` is not one: serde_json reads it as the float `-0.0`.)
    fn integer_text(&self) -> Option<&'a str> {
        let digits = self.0.strip_prefix('-').unwrap_or(self.0);
        let integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        (integer && self.0 != "-0").then_some(self.0)
    }

    /// A number as `f64`, the value `serde_json::Value::as_f64` gives for it (integers
    /// converted, other numbers parsed by serde_json); `None` when the value is not a number.
    pub fn as_f64(&self) -> Option<f64> {
        if let Some(int) = self.integer_text() {
            if let Ok(i) = int.parse::<i64>() {
                return Some(i as f64);
            }
            if let Ok(u) = int.parse::<u64>() {
                return Some(u as f64);
            }
        }
        match self.0.as_bytes().first() {
            Some(b'-' | b'0'..=b'9') => serde_json::from_str(self.0).ok(),
            _ => None,
        }
    }

    /// An integer that fits in `i64`; `None` otherwise (floats included, as serde_json).
    pub fn as_i64(&self) -> Option<i64> {
        self.integer_text()?.parse().ok()
    }

    /// A non-negative integer that fits in `u64`; `None` otherwise.
    pub fn as_u64(&self) -> Option<u64> {
        self.integer_text()?.parse().ok()
    }

    /// A boolean; `None` for other values.
    pub fn as_bool(&self) -> Option<bool> {
        match self.0 {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// Whether the value is `null`.
    pub fn is_null(&self) -> bool {
        self.0 == "null"
    }

    /// A string, decoded: borrowed when it has no escapes, owned otherwise; `None` for other
    /// values.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        let inner = self.0.strip_prefix('"')?.strip_suffix('"')?;
        if !inner.contains('\\') {
            return Some(Cow::Borrowed(inner));
        }
        serde_json::from_str::<String>(self.0).ok().map(Cow::Owned)
    }

    /// The value deserialized into `T` (a `serde_json::Value`, your own struct, `&RawValue`...).
    pub fn parse<T: serde::Deserialize<'a>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0)
    }

    /// Appends the value to `out` as compact JSON, as serde_json writes it: the raw text
    /// itself when it already is that form (the usual case), re-serialized otherwise (a
    /// nested value with whitespace, a float, a string with `\u` escapes, duplicate keys).
    pub fn write_compact(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        if compact::is_compact(self.0.as_bytes()) {
            out.extend_from_slice(self.0.as_bytes());
            Ok(())
        } else {
            compact::rewrite(self.0, out)
        }
    }
}
