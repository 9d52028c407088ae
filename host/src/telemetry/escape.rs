//! Escaping text for a terminal or a text log: one log line stays one line, and nothing a
//! plugin (or an event, or a remote server) wrote reaches the terminal as a control sequence.
//!
//! - [`escape_control`] spells out control characters (`\n`, `\r`, `\t`, and `\u{1b}` for
//!   ESC and every other C0/C1 control character and DEL), the Unicode line and paragraph
//!   separators, and the bidirectional overrides and isolates (which reorder what a reader
//!   sees). Other text, backslashes included, is left as it is.
//! - [`EscapedFields`] formats the fields of text log lines (the message and every `key=value`)
//!   through [`escape_control`]; [`super::init`] installs it for text logs. JSON logs need no
//!   such care: the JSON encoder escapes control characters itself.
//!
//! Not for JSON or headers: those have their own encodings.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Whether `c` must be spelled out rather than written.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with control characters spelled out (see the module docs); borrowed when there is
/// nothing to escape.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Formats the fields of a text log line like `tracing-subscriber`'s default (the message,
/// then `name=value` pairs), every value passed through [`escape_control`].
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        let name = field.name();
        // Metadata of records bridged from the `log` crate, shown elsewhere on the line.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let sep = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        let value = escape_control(value);
        self.result = match name {
            "message" => write!(self.writer, "{sep}{value}"),
            name => {
                let name = name.strip_prefix("r#").unwrap_or(name);
                if self.writer.has_ansi_escapes() {
                    write!(
                        self.writer,
                        "{sep}\x1b[3m{name}\x1b[23m\x1b[2m=\x1b[22m{value}"
                    )
                } else {
                    write!(self.writer, "{sep}{name}={value}")
                }
            }
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = r"C:\plugins\a.wasm: event 3 failed — «ok»";
        assert!(matches!(escape_control(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn line_breaks_and_terminal_sequences_are_spelled_out() {
        assert_eq!(
            escape_control("a\nERROR forged\r\x1b[2J\u{9b}31m\x07\x7f\tz"),
            r"a\nERROR forged\r\u{1b}[2J\u{9b}31m\u{7}\u{7f}\tz"
        );
    }

    #[test]
    fn unicode_separators_and_bidi_overrides_are_spelled_out() {
        assert_eq!(
            escape_control("a\u{2028}b\u{202e}c\u{2066}d"),
            r"a\u{2028}b\u{202e}c\u{2066}d"
        );
    }

    #[test]
    fn a_text_log_line_carries_an_escaped_message_and_escaped_fields() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapedFields)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let message = "hello\nERROR weir: forged";
            tracing::info!(plugin = "p\x1b[31m", error = %"x\ny", "{message}");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(r"hello\nERROR weir: forged plugin=p\u{1b}[31m error=x\ny"),
            "{text}"
        );
    }
}
