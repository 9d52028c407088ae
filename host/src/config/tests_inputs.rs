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
            "field `sources[1].watermarks.strategy`: every input uses one watermark strategy",
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

#[test]
fn a_join_names_its_two_inputs_and_its_bounds_or_windows() {
    let join = |lines: &str| TWO.replacen("[sink]", &format!("[join]\n{lines}\n[sink]"), 1);
    let p = parse_text(&join(
        "type = \"interval\"\nleft = \"auctions\"\nright = \"bids\"\nlower = \"-2s\"\nupper = \"5s\"",
    ))
    .unwrap();
    let j = p.config.join.as_ref().unwrap();
    assert_eq!((j.bounds().lower, j.bounds().upper), (-2_000, 5_000));
    assert!(p.config.stateful());
    let w = parse_text(&join(
        "type = \"window\"\nleft = \"bids\"\nright = \"auctions\"\nkind = \"full\"\n\
         window = { type = \"sliding\", size = \"10s\", slide = \"5s\" }",
    ))
    .unwrap();
    assert!(
        w.config
            .state_description()
            .unwrap()
            .contains("Full window join"),
        "{:?}",
        w.config.state_description()
    );
    let cases: &[(&str, &str)] = &[
        (
            "type = \"interval\"\nleft = \"people\"\nright = \"bids\"\nlower = \"0s\"\nupper = \"1s\"",
            "field `join.left`: \"people\" is not one of the pipeline's inputs",
        ),
        (
            "type = \"interval\"\nleft = \"bids\"\nright = \"bids\"\nlower = \"0s\"\nupper = \"1s\"",
            "two different inputs",
        ),
        (
            "type = \"interval\"\nleft = \"auctions\"\nright = \"bids\"",
            "an interval join needs `lower` and `upper`",
        ),
        (
            "type = \"interval\"\nleft = \"auctions\"\nright = \"bids\"\nlower = \"2s\"\nupper = \"1s\"",
            "lower 2000 ms (inclusive) is after upper 1000 ms",
        ),
        (
            "type = \"interval\"\nleft = \"auctions\"\nright = \"bids\"\nlower = \"soon\"\nupper = \"1s\"",
            "\"soon\" is not a duration",
        ),
        (
            "type = \"window\"\nleft = \"auctions\"\nright = \"bids\"",
            "a window join needs `window`",
        ),
        (
            "type = \"window\"\nleft = \"auctions\"\nright = \"bids\"\n\
             window = { type = \"sliding\", size = \"10s\", slide = \"3s\" }",
            "slide 3000 ms must divide size 10000 ms",
        ),
        (
            "type = \"interval\"\nleft = \"auctions\"\nright = \"bids\"\nkind = \"left\"\n\
             lower = \"0s\"\nupper = \"1s\"",
            "an interval join is an inner join",
        ),
    ];
    for (lines, message) in cases {
        let err = parse_text(&join(lines)).unwrap_err();
        assert!(err.message.contains(message), "{lines}: {err}");
        assert!(err.line.is_some(), "{lines}: {err}");
    }
    let with_window = join(
        "type = \"interval\"\nleft = \"auctions\"\nright = \"bids\"\nlower = \"0s\"\nupper = \"1s\"",
    )
    .replacen(
        "[sink]",
        "[window]\ntype = \"tumbling\"\nsize = \"1s\"\n[window.aggregate]\nname = \"a\"\nplugin = \"x.wasm\"\n[sink]",
        1,
    );
    let err = parse_text(&with_window).unwrap_err().to_string();
    assert!(err.contains("cannot both end one pipeline"), "{err}");
}
