//! `nexmark`: the stateless Nexmark queries over bid events, as nexmark-flink's SQL has them
//! (`nexmark-flink/src/main/resources/queries/q1.sql`, `q2.sql`).
//!
//! Config: `{"query": "q1"}` or `{"query": "q2"}`.
//!
//! - q1, currency conversion: `SELECT auction, bidder, 0.908 * price AS price, dateTime, extra
//!   FROM bid` → `{"auction":…,"bidder":…,"price":…,"dateTime":…,"extra":…}`, the other
//!   fields copied, `price` the `f64` nearest to the exact `0.908 * price` (Flink's result is a
//!   `DECIMAL`: 4242 → `3851.736`, where the `f64` product `0.908 * 4242.0` would be
//!   `3851.7360000000003`), written as serde_json writes an `f64` — the shortest text that
//!   reads back as the same value, `908.0` for a whole number.
//! - q2, selection: `SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0` →
//!   `{"auction":…,"price":…}` for the bids on every 123rd auction; other bids are dropped.
//!
//! The input is a bid as weir's Nexmark generator writes it (`weir nexmark`): a JSON object
//! with `auction`, `bidder`, `price`, `dateTime` integers and `channel`, `url`, `extra` strings.
//! A field a query reads must be there with that type (q1: `auction`, `bidder`, `price`,
//! `dateTime`, `extra`; q2: `auction`, `price`); a payload that is not a JSON object, or lacks
//! one of them, fails for that event (dead-lettered) with a message naming the field. Fields
//! the query does not read are neither checked nor copied.
//!
//! Each output keeps the input's key, time and headers. Built on the SDK's borrowed JSON
//! (`weir_sdk::json`): the object is parsed into the reused member list of one
//! [`ObjectParser`], and the output is written straight into the output batch, the values it
//! copies taken from their raw text — no allocation per event beyond the output itself.

use std::convert::Infallible;

use serde::Deserialize;
use weir_sdk::json::{ObjectParser, RawJson, RawObject};
use weir_sdk::{Event, Output, Transform};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    query: Option<String>,
}

/// The query the operator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    Q1,
    Q2,
}

impl Query {
    /// The query of the JSON configuration `config`.
    fn from_config(config: &str) -> Result<Query, String> {
        let c: Config = serde_json::from_str(config).map_err(|e| format!("nexmark config: {e}"))?;
        match c.query.as_deref() {
            Some("q1") => Ok(Query::Q1),
            Some("q2") => Ok(Query::Q2),
            Some(other) => Err(format!(
                "nexmark config: unknown query {other:?} (the queries are \"q1\" and \"q2\")"
            )),
            None => Err(
                "nexmark config: missing `query` (the queries are \"q1\" and \"q2\")".to_owned(),
            ),
        }
    }
}

/// The Q1 currency conversion rate, dollars to euros, 0.908: in thousandths.
const DOLLAR_TO_EURO_MILLIS: f64 = 908.0;

/// `0.908 * price` as the `f64` nearest to the exact product, Flink's `DECIMAL` value: while
/// `|price * 908|` stays below 2^53 (prices up to about 9.9e12 cents) the product is exact and
/// the division rounds once; beyond, the conversion and the product round too, a few ulps
/// at most.
fn in_euros(price: i64) -> f64 {
    price as f64 * DOLLAR_TO_EURO_MILLIS / 1000.0
}

/// The Q2 selection: bids on auctions whose id is a multiple of this.
const AUCTION_MODULUS: i64 = 123;

/// Member `name` of the bid; an error naming it when it is missing.
fn field<'a>(bid: &RawObject<'a>, name: &str) -> Result<RawJson<'a>, String> {
    bid.get(name)
        .ok_or_else(|| format!("not a bid: field `{name}` is missing"))
}

/// Integer member `name` of the bid: its value, and its raw text — the integer as serde_json
/// writes it (the JSON grammar allows no sign, leading zero or exponent in an integer, and
/// `-0` is not one), so it is copied as it is.
fn int_field<'a>(bid: &RawObject<'a>, name: &str) -> Result<(i64, &'a str), String> {
    let raw = field(bid, name)?;
    match raw.as_i64() {
        Some(v) => Ok((v, raw.text())),
        None => Err(format!(
            "not a bid: field `{name}` is not an integer (a 64-bit one)"
        )),
    }
}

/// String member `name` of the bid, raw.
fn str_field<'a>(bid: &RawObject<'a>, name: &str) -> Result<RawJson<'a>, String> {
    let raw = field(bid, name)?;
    if raw.text().starts_with('"') {
        Ok(raw)
    } else {
        Err(format!("not a bid: field `{name}` is not a string"))
    }
}

/// One output row of q1, read from a bid.
#[derive(Debug, Clone, Copy)]
struct Q1Row<'a> {
    auction: &'a str,
    bidder: &'a str,
    /// In euros: `0.908 * price` ([`in_euros`]).
    price: f64,
    date_time: &'a str,
    extra: RawJson<'a>,
}

impl<'a> Q1Row<'a> {
    /// The row of `bid`; an error naming the first field that is missing or of another type.
    fn read(bid: &RawObject<'a>) -> Result<Self, String> {
        let (_, auction) = int_field(bid, "auction")?;
        let (_, bidder) = int_field(bid, "bidder")?;
        let (price, _) = int_field(bid, "price")?;
        let (_, date_time) = int_field(bid, "dateTime")?;
        let extra = str_field(bid, "extra")?;
        Ok(Q1Row {
            auction,
            bidder,
            price: in_euros(price),
            date_time,
            extra,
        })
    }

    /// Appends the row to `out` as a compact JSON object.
    fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.extend_from_slice(b"{\"auction\":");
        out.extend_from_slice(self.auction.as_bytes());
        out.extend_from_slice(b",\"bidder\":");
        out.extend_from_slice(self.bidder.as_bytes());
        out.extend_from_slice(b",\"price\":");
        // A finite f64 (an i64 times 0.908), written by ryu: the shortest text that reads back
        // as the same value.
        serde_json::to_writer(&mut *out, &self.price)?;
        out.extend_from_slice(b",\"dateTime\":");
        out.extend_from_slice(self.date_time.as_bytes());
        out.extend_from_slice(b",\"extra\":");
        // Copied when already compact (the usual case), re-escaped as serde_json would otherwise.
        self.extra.write_compact(out)?;
        out.push(b'}');
        Ok(())
    }
}

/// One output row of q2, read from a bid.
#[derive(Debug, Clone, Copy)]
struct Q2Row<'a> {
    auction: &'a str,
    price: &'a str,
}

impl<'a> Q2Row<'a> {
    /// The row of `bid` when it passes the selection (`None` when it does not); an error naming
    /// the first field that is missing or not an integer.
    fn select(bid: &RawObject<'a>) -> Result<Option<Self>, String> {
        let (auction_id, auction) = int_field(bid, "auction")?;
        let (_, price) = int_field(bid, "price")?;
        // SQL's MOD takes the sign of the dividend, as `%` does: either is 0 on a multiple.
        Ok((auction_id % AUCTION_MODULUS == 0).then_some(Q2Row { auction, price }))
    }

    /// Appends the row to `out` as a compact JSON object.
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"auction\":");
        out.extend_from_slice(self.auction.as_bytes());
        out.extend_from_slice(b",\"price\":");
        out.extend_from_slice(self.price.as_bytes());
        out.push(b'}');
    }
}

struct Nexmark {
    query: Query,
    parser: ObjectParser,
}

impl Transform for Nexmark {
    fn configure(config: &str) -> Result<Self, String> {
        Ok(Nexmark {
            query: Query::from_config(config)?,
            parser: ObjectParser::new(),
        })
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        let bid = event.json_object(&mut self.parser)?;
        match self.query {
            Query::Q1 => {
                let row = Q1Row::read(&bid)?;
                out.write(|buf| row.write(buf))
            }
            Query::Q2 => match Q2Row::select(&bid)? {
                Some(row) => out.write(|buf| {
                    row.write(buf);
                    Ok::<(), Infallible>(())
                }),
                None => Ok(()),
            },
        }
    }
}

weir_sdk::export_transform!(Nexmark);

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use weir_sdk::json::ObjectParser;
    use weir_sdk::testing::{TestEvent, TransformHarness};

    use super::{Nexmark, Q1Row, Q2Row, Query, in_euros};

    /// A bid as the generator writes it (`host/src/nexmark/model.rs`).
    const BID: &str = concat!(
        r#"{"auction":1107,"bidder":1001,"price":4242,"channel":"Google","#,
        r#""url":"https://www.nexmark.com/abc/de_f/ghi/item.htm?query=1","#,
        r#""dateTime":1700000000000,"extra":"x\\y"}"#
    );

    fn q1(payload: &str) -> Result<String, String> {
        let mut parser = ObjectParser::new();
        let bid = parser
            .parse(payload.as_bytes())
            .map_err(|e| e.to_string())?;
        let row = Q1Row::read(&bid)?;
        let mut out = b"[".to_vec(); // the row is appended, as in the output batch
        row.write(&mut out).unwrap();
        Ok(String::from_utf8(out[1..].to_vec()).unwrap())
    }

    fn q2(payload: &str) -> Result<Option<String>, String> {
        let mut parser = ObjectParser::new();
        let bid = parser
            .parse(payload.as_bytes())
            .map_err(|e| e.to_string())?;
        Ok(Q2Row::select(&bid)?.map(|row| {
            let mut out = Vec::new();
            row.write(&mut out);
            String::from_utf8(out).unwrap()
        }))
    }

    fn harness(query: &str) -> TransformHarness<Nexmark> {
        TransformHarness::configure(&json!({ "query": query }).to_string()).unwrap()
    }

    #[test]
    fn the_config_names_the_query_and_an_unknown_or_missing_one_is_refused() {
        assert_eq!(Query::from_config(r#"{"query":"q1"}"#), Ok(Query::Q1));
        assert_eq!(Query::from_config(r#"{"query":"q2"}"#), Ok(Query::Q2));
        let err = Query::from_config(r#"{"query":"q5"}"#).unwrap_err();
        assert!(err.contains("unknown query \"q5\""), "{err}");
        let err = Query::from_config("{}").unwrap_err();
        assert!(err.contains("missing `query`"), "{err}");
        let err = Query::from_config(r#"{"query":"q1","x":1}"#).unwrap_err();
        assert!(
            err.starts_with("nexmark config: unknown field `x`"),
            "{err}"
        );
        let err = TransformHarness::<Nexmark>::configure(r#"{"query":"Q1"}"#)
            .err()
            .unwrap();
        assert!(err.contains("\"Q1\""), "{err}");
    }

    #[test]
    fn q1_converts_the_price_and_keeps_the_reference_columns_in_order() {
        assert_eq!(
            q1(BID).unwrap(),
            concat!(
                r#"{"auction":1107,"bidder":1001,"price":3851.736,"#,
                r#""dateTime":1700000000000,"extra":"x\\y"}"#
            )
        );
        // Members in any order, with whitespace and escapes: the same row, compact.
        let shuffled = r#"{ "extra" : "\u00e9", "dateTime": 5, "price": 1000,
            "bidder": -2, "auction": 0 }"#;
        assert_eq!(
            q1(shuffled).unwrap(),
            r#"{"auction":0,"bidder":-2,"price":908.0,"dateTime":5,"extra":"é"}"#
        );
    }

    #[test]
    fn q1_prices_are_the_nearest_f64_to_the_decimal_product_and_read_back_as_it() {
        let mut parser = ObjectParser::new();
        for price in [
            0,
            1,
            -1,
            3,
            7,
            99,
            1000,
            4242,
            123_456_789,
            9_919_909_090_909, // |price * 908| just below 2^53
            9_007_199_254_740_993,
            i64::MAX,
            i64::MIN,
        ] {
            let bid =
                json!({"auction": 1, "bidder": 2, "price": price, "dateTime": 3, "extra": ""});
            let row = q1(&bid.to_string()).unwrap();
            let row = parser.parse(row.as_bytes()).unwrap();
            // std's parse rounds correctly (serde_json's, without `float_roundtrip`, may not).
            let written: f64 = row.get("price").unwrap().text().parse().unwrap();
            assert_eq!(written, in_euros(price), "price {price}");
            // Flink's DECIMAL(23, 3) value, as text, then rounded once to the nearest f64.
            let millis = i128::from(price) * 908;
            let sign = if millis < 0 { "-" } else { "" };
            let (int, frac) = (millis.abs() / 1000, millis.abs() % 1000);
            let exact: f64 = format!("{sign}{int}.{frac:03}").parse().unwrap();
            if millis.abs() < 1 << 53 {
                assert_eq!(written, exact, "price {price}");
            } else {
                assert!((written - exact).abs() <= 2.0 * exact.abs() * f64::EPSILON);
            }
        }
    }

    #[test]
    fn q2_selects_every_123rd_auction_and_keeps_auction_and_price() {
        let bid = |auction: i64| {
            json!({"auction": auction, "bidder": 1, "price": 77, "dateTime": 3, "extra": ""})
                .to_string()
        };
        assert_eq!(
            q2(&bid(1107)).unwrap().as_deref(),
            Some(r#"{"auction":1107,"price":77}"#)
        );
        assert_eq!(
            q2(&bid(0)).unwrap().as_deref(),
            Some(r#"{"auction":0,"price":77}"#)
        );
        assert_eq!(
            q2(&bid(-246)).unwrap().as_deref(),
            Some(r#"{"auction":-246,"price":77}"#)
        );
        assert_eq!(q2(&bid(1108)).unwrap(), None);
        assert_eq!(q2(&bid(-1)).unwrap(), None);
        // Only the two columns are read: the others may be anything.
        assert_eq!(
            q2(r#"{"price":5,"auction":123}"#).unwrap().as_deref(),
            Some(r#"{"auction":123,"price":5}"#)
        );
    }

    #[test]
    fn a_bid_without_a_needed_field_or_with_one_of_another_type_is_named() {
        let cases = [
            (
                r#"{"bidder":1,"price":2,"dateTime":3,"extra":""}"#,
                "`auction` is missing",
            ),
            (
                r#"{"auction":"1","bidder":1,"price":2,"dateTime":3,"extra":""}"#,
                "`auction` is not an integer",
            ),
            (
                r#"{"auction":1,"bidder":1,"price":2.5,"dateTime":3,"extra":""}"#,
                "`price` is not an integer",
            ),
            (
                r#"{"auction":1,"bidder":1,"price":1e3,"dateTime":3,"extra":""}"#,
                "`price` is not an integer",
            ),
            (
                r#"{"auction":1,"bidder":1,"price":99999999999999999999,"dateTime":3,"extra":""}"#,
                "`price` is not an integer",
            ),
            (
                r#"{"auction":1,"bidder":null,"price":2,"dateTime":3,"extra":""}"#,
                "`bidder` is not an integer",
            ),
            (
                r#"{"auction":1,"bidder":1,"price":2,"extra":""}"#,
                "`dateTime` is missing",
            ),
            (
                r#"{"auction":1,"bidder":1,"price":2,"dateTime":3}"#,
                "`extra` is missing",
            ),
            (
                r#"{"auction":1,"bidder":1,"price":2,"dateTime":3,"extra":7}"#,
                "`extra` is not a string",
            ),
        ];
        for (payload, why) in cases {
            let err = q1(payload).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "not a bid: field {why}{}",
                    if why.ends_with("integer") {
                        " (a 64-bit one)"
                    } else {
                        ""
                    }
                )
            );
        }
        assert_eq!(
            q2(r#"{"price":2}"#).unwrap_err(),
            "not a bid: field `auction` is missing"
        );
        // Checked even on a bid the selection drops.
        assert_eq!(
            q2(r#"{"auction":1,"price":"2"}"#).unwrap_err(),
            "not a bid: field `price` is not an integer (a 64-bit one)"
        );
    }

    #[test]
    fn events_keep_their_key_time_and_headers_and_bad_payloads_fail_alone() {
        for query in ["q1", "q2"] {
            let mut op = harness(query);
            let run = op.process(&[
                TestEvent::new(BID)
                    .key("k")
                    .time(1_700_000_000_000)
                    .header("trace", "t"),
                TestEvent::new("not json"),
                TestEvent::new("[1107]"),
                TestEvent::new(r#"{"auction":1107}"#),
                TestEvent::new(BID.replace("1107", "1108")),
            ]);
            let failed: Vec<_> = run.failures.iter().map(|f| f.index).collect();
            assert_eq!(failed, [1, 2, 3], "{query}");
            assert!(
                run.failures[0]
                    .message
                    .starts_with("payload is not a JSON object")
            );
            assert!(
                run.failures[1]
                    .message
                    .starts_with("payload is not a JSON object")
            );
            assert!(
                run.failures[2].message.contains("`price`")
                    || run.failures[2].message.contains("`bidder`")
            );
            let first = &run.outputs[0];
            assert_eq!(first.origin(), Some(0));
            assert_eq!(
                (first.key(), first.time(), first.header("trace")),
                (Some("k"), 1_700_000_000_000, Some(&b"t"[..]))
            );
            let rows = run.json::<Value>().unwrap();
            match query {
                "q1" => assert_eq!(
                    rows,
                    [
                        json!({"auction": 1107, "bidder": 1001, "price": 3851.736,
                               "dateTime": 1_700_000_000_000_i64, "extra": "x\\y"}),
                        json!({"auction": 1108, "bidder": 1001, "price": 3851.736,
                               "dateTime": 1_700_000_000_000_i64, "extra": "x\\y"}),
                    ]
                ),
                _ => assert_eq!(rows, [json!({"auction": 1107, "price": 4242})]),
            }
        }
    }
}
