//! The borrowed JSON path against what serde_json (`preserve_order`) writes for the same input.

use super::{ObjectParser, Projection, RawJson};

/// `json` parsed and written back whole.
fn compact(json: &str) -> String {
    let mut parser = ObjectParser::new();
    let mut out = Vec::new();
    let doc = parser.parse(json.as_bytes()).expect("a JSON object");
    doc.write_compact(&mut out).expect("writable");
    String::from_utf8(out).expect("UTF-8 output")
}

/// The `fields` of `json`, in that order.
fn project(json: &str, fields: &[&str]) -> String {
    let mut parser = ObjectParser::new();
    let mut out = Vec::new();
    let doc = parser.parse(json.as_bytes()).expect("a JSON object");
    doc.write_projection(&Projection::new(fields), &mut out)
        .expect("writable");
    String::from_utf8(out).expect("UTF-8 output")
}

/// One value written compactly.
fn value(raw: &str) -> String {
    let mut out = Vec::new();
    RawJson(raw).write_compact(&mut out).expect("writable");
    String::from_utf8(out).expect("UTF-8 output")
}

#[test]
fn projection_follows_the_order_of_the_fields_and_skips_missing_ones() {
    let doc = r#"{"user":"bo","amount":25,"country":"PT","seq":0}"#;
    assert_eq!(
        project(doc, &["country", "missing", "user"]),
        r#"{"country":"PT","user":"bo"}"#
    );
    assert_eq!(project(doc, &["missing"]), "{}");
    assert_eq!(project(doc, &[]), "{}");
}

#[test]
fn whitespace_in_the_input_is_not_copied() {
    let doc = " {\n \"a\" : [ 1 , { \"b\" : null } ] ,\t\"c\":{ }, \"d\" : [ ] } \n";
    assert_eq!(compact(doc), r#"{"a":[1,{"b":null}],"c":{},"d":[]}"#);
    assert_eq!(project(doc, &["a"]), r#"{"a":[1,{"b":null}]}"#);
}

#[test]
fn nested_values_already_compact_are_copied_as_they_are() {
    let nested = r#"{"a":[1,-2,"x",true,false,null,{"b":{"c":[]}}],"e":"\"q\" \\ \n\t\u001f"}"#;
    assert!(super::compact::is_compact(nested.as_bytes()));
    assert_eq!(value(nested), nested);
}

#[test]
fn escaped_strings_are_written_with_serde_jsons_escapes() {
    // `\/`, `\u` for printable and non-ASCII characters and uppercase hex are rewritten;
    // serde_json's own escapes are kept as they are.
    assert_eq!(value(r#""a\/b""#), r#""a/b""#);
    assert_eq!(value(r#""\u00e9\u0041""#), "\"éA\"");
    assert_eq!(value(r#""\u001F\u0008""#), r#""\u001f\b""#);
    assert_eq!(value(r#""\ud83d\ude00""#), "\"😀\"");
    assert_eq!(value(r#""q\"b\\s\r""#), r#""q\"b\\s\r""#);
    assert_eq!(value("\"é\u{7f}\""), "\"é\u{7f}\"");
}

#[test]
fn escaped_keys_are_decoded_for_lookup_and_rewritten_on_output() {
    let doc = r#"{"\u0061mount":5,"tab\tkey":1,"q\"":2,"\u00e9":3}"#;
    let mut parser = ObjectParser::new();
    let obj = parser.parse(doc.as_bytes()).expect("a JSON object");
    assert_eq!(obj.get("amount").and_then(|v| v.as_i64()), Some(5));
    assert_eq!(obj.get("tab\tkey").and_then(|v| v.as_i64()), Some(1));
    assert_eq!(obj.get("é").and_then(|v| v.as_i64()), Some(3));
    assert_eq!(compact(doc), r#"{"amount":5,"tab\tkey":1,"q\"":2,"é":3}"#);
    assert_eq!(project(doc, &["q\"", "amount"]), r#"{"q\"":2,"amount":5}"#);
}

#[test]
fn numbers_are_written_as_serde_json_writes_them() {
    assert_eq!(value("-9223372036854775808"), "-9223372036854775808");
    assert_eq!(value("18446744073709551615"), "18446744073709551615");
    assert_eq!(value("18446744073709551616"), "1.8446744073709552e+19");
    assert_eq!(value("-0"), "-0.0");
    assert_eq!(value("1.50"), "1.5");
    assert_eq!(value("1E2"), "100.0");
    assert_eq!(value("[1.0,2]"), "[1.0,2]");
}

#[test]
fn a_duplicate_key_keeps_its_first_position_and_its_last_value() {
    let doc = r#"{"a":1,"b":2,"a":3}"#;
    assert_eq!(compact(doc), r#"{"a":3,"b":2}"#);
    assert_eq!(project(doc, &["a"]), r#"{"a":3}"#);
    assert_eq!(
        value(r#"{"x":{"a":1,"b":2,"a":3}}"#),
        r#"{"x":{"a":3,"b":2}}"#
    );
    let mut parser = ObjectParser::new();
    let obj = parser.parse(doc.as_bytes()).expect("a JSON object");
    assert_eq!(obj.len(), 3);
    assert_eq!(obj.iter().count(), 2);
}

#[test]
fn wide_or_deep_nested_values_are_rewritten_identically() {
    let wide: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
    let wide = format!("{{{}}}", wide.join(","));
    assert!(!super::compact::is_compact(wide.as_bytes()));
    assert_eq!(value(&wide), wide);
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert_eq!(value(&deep), deep);
}

#[test]
fn a_payload_that_is_not_an_object_is_an_error() {
    let mut parser = ObjectParser::new();
    for bad in [
        &b"5"[..],
        b"[1]",
        b"\"s\"",
        b"",
        b"{\"a\":1",
        b"{\"a\":1} x",
        b"{\"a\":\xff}",
    ] {
        assert!(
            parser.parse(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let e = parser.parse(b"[1]").expect_err("an array");
    assert!(e.to_string().contains("expected a JSON object"), "{e}");
    let e = parser.parse(b"{\"a\":\xff}").expect_err("not UTF-8");
    assert!(e.to_string().contains("invalid UTF-8 at byte 5"), "{e}");
}

#[test]
fn numbers_are_read_from_the_raw_text() {
    let doc = r#"{"i":-12,"u":18446744073709551615,"f":2.5e1,"s":"12","b":true,"n":null,"z":-0}"#;
    let mut parser = ObjectParser::new();
    let obj = parser.parse(doc.as_bytes()).expect("a JSON object");
    let get = |k: &str| obj.get(k).expect("present");
    assert_eq!(get("i").as_f64(), Some(-12.0));
    assert_eq!(get("i").as_i64(), Some(-12));
    assert_eq!(get("i").as_u64(), None);
    assert_eq!(get("u").as_u64(), Some(u64::MAX));
    assert_eq!(get("u").as_f64(), Some(u64::MAX as f64));
    assert_eq!(get("f").as_f64(), Some(25.0));
    assert_eq!(get("f").as_i64(), None);
    assert_eq!(get("z").as_f64(), Some(-0.0));
    assert_eq!(get("z").as_i64(), None);
    for not_a_number in ["s", "b", "n"] {
        assert_eq!(get(not_a_number).as_f64(), None, "{not_a_number}");
    }
    assert_eq!(get("b").as_bool(), Some(true));
    assert!(get("n").is_null());
    assert_eq!(obj.get("missing"), None);
}

#[test]
fn strings_are_borrowed_unless_escaped() {
    let mut parser = ObjectParser::new();
    let obj = parser
        .parse(br#"{"plain":"ab","esc":"a\nb","n":1}"#)
        .expect("a JSON object");
    let plain = obj.get("plain").and_then(|v| v.as_str()).expect("a string");
    assert!(matches!(plain, std::borrow::Cow::Borrowed("ab")));
    let esc = obj.get("esc").and_then(|v| v.as_str()).expect("a string");
    assert_eq!(esc, "a\nb");
    assert_eq!(obj.get("n").and_then(|v| v.as_str()), None);
    let n: u8 = obj.get("n").expect("present").parse().expect("a u8");
    assert_eq!(n, 1);
}

#[test]
fn a_parser_is_reused_without_keeping_members_of_the_previous_object() {
    let mut parser = ObjectParser::new();
    assert_eq!(
        parser.parse(br#"{"\u0061":1,"b":2}"#).map(|o| o.len()).ok(),
        Some(2)
    );
    let obj = parser.parse(br#"{"c":3}"#).expect("a JSON object");
    assert_eq!((obj.len(), obj.get("a"), obj.get("b")), (1, None, None));
    assert_eq!(obj.get("c").and_then(|v| v.as_i64()), Some(3));
}

#[test]
fn the_fast_scanner_accepts_what_serde_json_accepts_and_finds_the_same_members() {
    use serde_json::value::RawValue;
    use std::collections::HashMap;
    let cases = [
        r#"{"a":01}"#,
        r#"{"a":1.}"#,
        r#"{"a":-}"#,
        "{\"a\":\"\u{1}\"}",
        r#"{"a":"\q"}"#,
        r#"{"a":"\u12"}"#,
        r#"{"a":tru}"#,
        r#"{"a":1,}"#,
        r#"{,}"#,
        r#"{"a" 1}"#,
        r#"{"a":[1,]}"#,
        r#"{"a":1}}"#,
        r#"{"a":"\ud800"}"#, // a lone surrogate: serde_json skips it in a raw value too
        r#"{"a":1e400}"#,
        r#"{"a":-0.5E+3,"b":[{"c":"\u00e9"}],"d":{}}"#,
        " { } ",
    ];
    for case in cases {
        let serde = serde_json::from_str::<HashMap<String, &RawValue>>(case).ok();
        let mut members = Vec::new();
        let fast = super::scan::scan_object(case, &mut members);
        if fast.is_some() {
            let serde = serde
                .as_ref()
                .expect("serde_json accepts what the scanner accepts");
            assert_eq!(members.len(), serde.len(), "{case}");
            for m in &members {
                let key = &case[m.key.start..m.key.end];
                assert_eq!(
                    &case[m.value.start..m.value.end],
                    serde[key].get(),
                    "{case}"
                );
            }
        }
        let mut parser = ObjectParser::new();
        assert_eq!(
            parser.parse(case.as_bytes()).is_ok(),
            serde.is_some(),
            "{case}"
        );
    }
}

#[test]
fn strings_are_scanned_a_word_at_a_time_yet_stop_at_every_special_byte() {
    // A quote, a backslash escape, a control character or a non-ASCII character at every
    // offset of a long string value and key, and a string ending at every offset: the same
    // members as serde_json finds, and the same refusals.
    let specials = [
        "\\\"", "\\\\", "\\n", "\u{1}", "\u{1f}", " ", "é", "\u{7f}", "~",
    ];
    for special in specials {
        for at in 0..20 {
            for tail in [0, 1, 7, 8, 9, 17] {
                let text = format!("{}{special}{}", "x".repeat(at), "y".repeat(tail));
                for case in [
                    format!(r#"{{"a":"{text}","b":1}}"#),
                    format!(r#"{{"{text}":2}}"#),
                ] {
                    let serde = serde_json::from_str::<
                        std::collections::HashMap<String, &serde_json::value::RawValue>,
                    >(&case);
                    let mut parser = ObjectParser::new();
                    match (parser.parse(case.as_bytes()), serde) {
                        (Ok(obj), Ok(serde)) => {
                            assert_eq!(obj.len(), serde.len(), "{case:?}");
                            for (key, value) in obj.iter() {
                                assert_eq!(value.text(), serde[key].get(), "{case:?}");
                            }
                        }
                        (Err(_), Err(_)) => {}
                        (ours, theirs) => {
                            panic!(
                                "{case:?}: ours {:?}, serde_json {:?}",
                                ours.is_ok(),
                                theirs.is_ok()
                            )
                        }
                    }
                }
            }
        }
    }
}
