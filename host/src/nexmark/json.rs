//! A flat JSON object written straight into a byte buffer: integer and string fields, no
//! intermediate values, no allocation beyond the buffer's own growth.
//!
//! Only what the Nexmark records need; not a general JSON writer. Strings are escaped as
//! RFC 8259 requires (`"`, `\` and control characters); the generated text is ASCII and
//! rarely holds any of them, so the common case copies the string in one piece.

/// Writes `{"name":value,...}` into `out`, field by field.
pub(crate) struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> JsonObject<'a> {
    /// Opens an object at the end of `out`.
    pub(crate) fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        JsonObject { out, empty: true }
    }

    /// Adds `"name":value`. `name` is written as is: it must not need escaping.
    pub(crate) fn int(&mut self, name: &str, value: i64) -> &mut Self {
        self.key(name);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// Adds `"name":"value"`, `value` escaped.
    pub(crate) fn str(&mut self, name: &str, value: &str) -> &mut Self {
        self.key(name);
        write_string(self.out, value);
        self
    }

    /// Closes the object.
    pub(crate) fn end(&mut self) {
        self.out.push(b'}');
    }

    fn key(&mut self, name: &str) {
        debug_assert!(!name.bytes().any(needs_escape), "field name {name:?}");
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }
}

fn needs_escape(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// Writes `value` as a JSON string, quotes included.
fn write_string(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    let bytes = value.as_bytes();
    // The common case, nothing to escape, tested without an early exit (so it vectorizes)
    // and copied in one piece.
    if !bytes.iter().fold(false, |any, &b| any | needs_escape(b)) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(build: impl FnOnce(&mut JsonObject<'_>)) -> String {
        let mut out = Vec::new();
        let mut object = JsonObject::begin(&mut out);
        build(&mut object);
        object.end();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_are_separated_and_integers_plain() {
        let json = object(|o| {
            o.int("id", -5).str("name", "Kate Smith");
        });
        assert_eq!(json, r#"{"id":-5,"name":"Kate Smith"}"#);
        assert_eq!(object(|_| {}), "{}");
    }

    #[test]
    fn strings_that_need_it_are_escaped_and_read_back_unchanged() {
        let nasty = "a\"b\\c\nd\te\u{1}f\u{1f}g é ✓";
        let json = object(|o| {
            o.str("extra", nasty);
        });
        assert_eq!(json, r#"{"extra":"a\"b\\c\nd\te\u0001f\u001fg é ✓"}"#);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["extra"], nasty);
    }
}
