//! What a name in a pipeline file may look like: pipeline and operator names, NATS subjects
//! and subject filters, stream and consumer names, header names and JSON paths.
//!
//! Each check returns what is wrong (`Some(reason)`), phrased to follow the value in an error
//! (`field `sink.subject`: "a..b" has an empty token`), so that `weir validate` refuses what the
//! server or the run would refuse later. Subjects follow NATS: `.`-separated non-empty tokens
//! without whitespace; in a filter `*` matches one token and `>` the rest (last token only).

/// Whether `s` is a pipeline, operator or bucket name: 1-64 of `A-Z a-z 0-9 - _`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What is wrong with subject `s`; `filter`: wildcards (`*`, `>`) are allowed.
pub fn subject_problem(s: &str, filter: bool) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!("{s:?} contains whitespace"));
    }
    let tokens: Vec<&str> = s.split('.').collect();
    if tokens.iter().any(|t| t.is_empty()) {
        return Some(format!("{s:?} has an empty token (`..`, or `.` at an end)"));
    }
    if !filter && s.contains(['*', '>']) {
        return Some(format!(
            "{s:?} has a wildcard (`*`, `>`); it must be a concrete subject"
        ));
    }
    for (i, t) in tokens.iter().enumerate() {
        if t.len() > 1 && t.contains(['*', '>']) {
            return Some(format!(
                "{s:?}: a wildcard (`*`, `>`) must be a whole token, not part of {t:?}"
            ));
        }
        if *t == ">" && i + 1 != tokens.len() {
            return Some(format!("{s:?}: `>` may only be the last token"));
        }
    }
    None
}

/// What is wrong with JetStream stream or consumer name `s` (the server refuses whitespace,
/// `.`, `*`, `>` and path separators).
pub fn stream_name_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if s.len() > 255 {
        return Some(format!("{s:?} is longer than 255 bytes"));
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || ".*>/\\".contains(c))
    {
        return Some(format!(
            "{s:?} must not contain whitespace, `.`, `*`, `>`, `/` or `\\`"
        ));
    }
    None
}

/// What is wrong with header name `s`.
pub fn header_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("names no header (empty)".into());
    }
    if s.chars().any(|c| !c.is_ascii_graphic() || c == ':') {
        return Some(format!(
            "{s:?} is not a header name (printable ASCII without `:` or spaces)"
        ));
    }
    None
}

/// What is wrong with the dotted JSON path `s` (`a.b.c`: field `c` of object `b` of `a`).
pub fn json_path_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("names no field (empty path)".into());
    }
    if s.split('.').any(str::is_empty) {
        return Some(format!("{s:?} has an empty part (`..`, or `.` at an end)"));
    }
    None
}

/// Whether every subject `filter` matches is one that `pattern` matches too (both may hold
/// wildcards): a source filter must lie within its stream's subjects.
pub fn filter_within(filter: &str, pattern: &str) -> bool {
    let mut f = filter.split('.');
    let mut p = pattern.split('.');
    loop {
        match (f.next(), p.next()) {
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(_), Some(">")) => return true,
            (Some(">"), Some(_)) => return false,
            (Some(_), Some("*")) => {}
            (Some(ft), Some(pt)) if ft == pt && ft != "*" => {}
            (Some(_), Some(_)) => return false,
        }
    }
}

/// Whether concrete `subject` is matched by `filter`.
pub fn subject_matches(subject: &str, filter: &str) -> bool {
    filter_within(subject, filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_need_nonempty_tokens_and_concrete_sinks_no_wildcards() {
        assert_eq!(subject_problem("orders.eu", false), None);
        assert_eq!(subject_problem("orders.*.>", true), None);
        for bad in ["", "a..b", ".a", "a.", "a b"] {
            assert!(subject_problem(bad, true).is_some(), "{bad:?}");
        }
        assert!(
            subject_problem("out.*", false)
                .unwrap()
                .contains("wildcard")
        );
        assert!(
            subject_problem("a.>.b", true)
                .unwrap()
                .contains("last token")
        );
        assert!(
            subject_problem("a.b*", true)
                .unwrap()
                .contains("whole token")
        );
    }

    #[test]
    fn stream_and_consumer_names_refuse_what_the_server_refuses() {
        assert_eq!(stream_name_problem("weir-orders_1"), None);
        for bad in ["", "a.b", "a*", "a>", "a/b", "a b"] {
            assert!(stream_name_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn json_paths_and_headers_must_name_something() {
        assert_eq!(json_path_problem("a.b"), None);
        assert!(json_path_problem("").is_some());
        assert!(json_path_problem("a..b").is_some());
        assert_eq!(header_problem("Weir-Key"), None);
        assert!(header_problem("").is_some());
        assert!(header_problem("a b").is_some());
    }

    #[test]
    fn a_filter_lies_within_a_pattern_when_the_pattern_matches_all_it_matches() {
        assert!(filter_within("in.a", "in.>"));
        assert!(filter_within("in.*.x", "in.>"));
        assert!(filter_within("in.*", "in.*"));
        assert!(filter_within("in.a", "in.*"));
        assert!(!filter_within("in.>", "in.*"));
        assert!(!filter_within("in", "in.>"));
        assert!(!filter_within("out.a", "in.>"));
        assert!(!filter_within("in.*", "in.a"));
        assert!(subject_matches("out", "out"));
        assert!(subject_matches("in.x.y", "in.>"));
        assert!(!subject_matches("in", "in.*"));
    }
}
