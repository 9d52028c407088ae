//! Tests of `[[sources]]`: several named inputs, each checked like `[source]`, with errors
//! naming the input's field and line.

use super::*;

fn parse_text(text: &str) -> Result<Pipeline, ConfigError> {
    parse(Path::new("/tmp/p.toml"), text.to_owned())
}

const TWO: &str = r#"
name = "enrich"
[[sources]]
name = "bids"
stream = "BIDS"
key = { field = "auction" }
time = { field = "dateTime" }
[[sources]]
name = "auctions"
stream = "AUCTIONS"
subjects = ["auctions.>"]
key = { field = "id" }
[sources.watermarks]
out_of_orderness = "2s"
[sink]
subject = "out"
dead_letter = "dlq"
"#;

#[test]
fn two_named_inputs_each_with_their_own_key_time_watermarks_and_consumer() {
    let p = parse_text(TWO).unwrap();
    let inputs = p.config.inputs();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0].key, KeyFrom::Field("auction".into()));
    assert_eq!(inputs[0].time, TimeFrom::Field("dateTime".into()));
    assert_eq!(inputs[1].subjects, ["auctions.>"]);
    assert_eq!(
        inputs[1].watermarks.out_of_orderness,
        Duration::from_secs(2)
    );
    assert_eq!(inputs[0].watermarks.out_of_orderness, Duration::ZERO);
    // `source` is the first input, for what speaks of one.
    assert_eq!(p.config.source.stream, "BIDS");
    assert_eq!(p.consumer_name_of(0), "weir-enrich-bids");
    assert_eq!(p.consumer_name_of(1), "weir-enrich-auctions");
    assert_eq!(p.input_name(1), Some("auctions"));
    // One `[source]`: no input name in events, the consumer as before.
    let one = parse_text(
        "name = \"enrich\"\n[source]\nstream = \"BIDS\"\n[sink]\nsubject = \"out\"\n\
         dead_letter = \"dlq\"\n",
    )
    .unwrap();
    assert_eq!(one.config.inputs().len(), 1);
    assert_eq!(one.input_name(0), None);
    assert_eq!(one.consumer_name(), "weir-enrich");
}

#[test]
fn inputs_are_refused_with_the_field_and_line_that_is_wrong() {
    let cases: &[(&str, &str, &str, usize)] = &[
        (
            "name = \"auctions\"",
            "name = \"bids\"",
            "field `sources[1].name`: another input is named \"bids\" too",
            9,
        ),
        (
            "name = \"auctions\"\n",
            "",
            "field `sources[1].name` is missing",
            8,
        ),
        (
            "name = \"auctions\"",
            "name = \"a b\"",
            "field `sources[1].name`: \"a b\" must be",
            9,
        ),
        (
            "stream = \"AUCTIONS\"",
            "stream = \"AUC.TIONS\"",
            "field `sources[1].stream`",
            10,
        ),
        (
            "key = { field = \"id\" }",
            "key = { field = \"id.\" }",
            "field `sources[1].key.field`",
            12,
        ),
        (
            "stream = \"AUCTIONS\"",
            "stream = \"AUCTIONS\"\nconsumer = \"weir-enrich-bids\"",
            "field `sources[1].consumer`: another input uses consumer \"weir-enrich-bids\"",
            11,
        ),
        (
            "out_of_orderness = \"2s\"",
            "strategy = \"punctuated\"",
            "field `sources[1].watermarks.strategy`: punctuated watermarks need one input",
            14,
        ),
    ];
    for (from, to, message, line) in cases {
        let text = TWO.replacen(from, to, 1);
        let err = parse_text(&text).unwrap_err();
        assert!(err.message.contains(message), "{from} → {to}: {err}");
        assert_eq!(err.line, Some(*line), "{from} → {to}: {err}");
    }
}

#[test]
fn source_and_sources_together_or_neither_are_refused() {
    let both = TWO.replacen("[sink]", "[source]\nstream = \"X\"\n[sink]", 1);
    let err = parse_text(&both).unwrap_err().to_string();
    assert!(
        err.contains("`[source]` and `[[sources]]` cannot both be given"),
        "{err}"
    );
    let neither = "name = \"p\"\n[sink]\nsubject = \"out\"\ndead_letter = \"dlq\"\n";
    let err = parse_text(neither).unwrap_err().to_string();
    assert!(err.contains("the pipeline has no input"), "{err}");
    let named = "name = \"p\"\n[source]\nname = \"a\"\nstream = \"S\"\n[sink]\nsubject = \"o\"\ndead_letter = \"d\"\n";
    let err = parse_text(named).unwrap_err().to_string();
    assert!(err.contains("only `[[sources]]` inputs are named"), "{err}");
}
