//! Where a field sits in the pipeline file, for errors about values that parsed but that the
//! checks refuse (`field `source.batch_size`: 0 is out of range 1..=10000` at its line).
//!
//! The file is parsed again into TOML's spanned document tree only when an error is being
//! reported; the typed structs stay plain values.

use toml::de::{DeTable, DeValue};

use super::{ConfigError, Pipeline};

impl Pipeline {
    /// A [`ConfigError`] about field `path` (`source.batch_size`, `operators[1].name`) at its
    /// line: where the field is written, else where its nearest enclosing table is.
    pub fn field_error(&self, path: &str, message: impl Into<String>) -> ConfigError {
        self.error(offset_of(&self.text, path), message)
    }
}

/// The byte offset of field `path` in TOML `text` (see [`Pipeline::field_error`]).
fn offset_of(text: &str, path: &str) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut found = None;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, i)) => (k, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref() == key) else {
            break;
        };
        found = Some(k.span().start);
        let value = match (v.get_ref(), index) {
            (DeValue::Array(items), Some(i)) => match items.get(i) {
                Some(item) => {
                    found = Some(item.span().start);
                    item.get_ref()
                }
                None => break,
            },
            (value, _) => value,
        };
        match value {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, path: &str) -> Option<usize> {
        offset_of(text, path).map(|o| super::super::line_of(text, o))
    }

    #[test]
    fn fields_are_found_in_tables_inline_tables_and_arrays_of_tables() {
        let text = "name = \"p\"\n[source]\nstream = \"S\"\nbatch_size = 0\n\
                    time = { field = \"\" }\n[[operators]]\nname = \"a\"\n[[operators]]\n\
                    name = \"b\"\nmemory_limit_mib = 0\n";
        assert_eq!(line(text, "source.batch_size"), Some(4));
        assert_eq!(line(text, "source.time.field"), Some(5));
        assert_eq!(line(text, "operators[1].memory_limit_mib"), Some(10));
        // Not written: the enclosing table's line.
        assert_eq!(line(text, "source.max_wait"), Some(2));
        assert_eq!(line(text, "sink.subject"), None);
    }
}
