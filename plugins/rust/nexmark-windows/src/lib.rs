//! `nexmark-windows`: the windowed Nexmark queries over bid events as one window aggregate, as
//! nexmark-flink's SQL has them (`nexmark-flink/src/main/resources/queries/q5.sql`, `q7.sql`).
//!
//! Config: `{"query": "q5"}` or `{"query": "q7"}`. The pipelines
//! (`plugins/pipelines/nexmark/q5.toml`, `q7.toml`) give the windows and no key: every bid of a
//! window is in one group, as in the SQL, which groups by window only.
//!
//! - q5, hot items: `HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10'
//!   SECOND)`, then `count(*) AS num … GROUP BY auction, window_start, window_end`, joined with
//!   the `max(num)` of the same window `ON … AuctionBids.num >= MaxBids.maxn`: per sliding
//!   window of 10 s every 2 s, the auctions with the most bids — every one of them on a tie.
//!   The accumulator is the count per auction (merged by adding counts: the host may hold a
//!   sliding window as panes and merge them). Result, one per window that holds bids:
//!   `{"start":…,"end":…,"num":<the highest count>,"auctions":[<its auctions, ascending>]}`.
//!   Reads `auction` (an integer) only.
//! - q7, highest bid: `SELECT MAX(price) AS maxprice, window_end … FROM TABLE(TUMBLE(TABLE bid,
//!   DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) GROUP BY window_start, window_end`, joined
//!   back to the bids `ON B.price = B1.maxprice`: per tumbling window of 10 s, the bids at the
//!   window's highest price — every one of them on a tie, in arrival order. The accumulator is
//!   those bids (auction, bidder, price, dateTime, extra); merging keeps the higher price's, or
//!   both lists, concatenated, on equal prices. Result, one per window that holds bids:
//!   `{"start":…,"end":…,"price":<max>,"bids":[{"auction":…,"price":…,"bidder":…,"dateTime":…,
//!   "extra":…},…]}`. Reads `auction`, `bidder`, `price`, `dateTime` (integers) and `extra` (a
//!   string), on every bid. (The SQL's join takes the bids `BETWEEN window_end - 10 s AND
//!   window_end`, both ends included; here a window's bids are those of `[start, end)`, the
//!   ones the window holds.)
//!
//! The input is a bid as weir's Nexmark generator writes it (`weir nexmark`): a JSON object
//! with `auction`, `bidder`, `price`, `dateTime` integers and `channel`, `url`, `extra`
//! strings; the window's time is the pipeline's (`time = { field = "dateTime" }`). A payload
//! that is not a JSON object, or lacks a field the query reads (or has it with another type),
//! fails for that event (dead-lettered) with a message naming the field. `start` and `end` are
//! the window's bounds, ms since the epoch, `end` excluded; a window whose bids all failed emits
//! nothing. Each bid is read with the SDK's borrowed JSON (`weir_sdk::json`, one reused
//! [`ObjectParser`]); only the bids q7 keeps are copied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_sdk::json::{ObjectParser, RawJson, RawObject};
use weir_sdk::{Aggregate, Event, Window};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    query: Option<String>,
}

/// The queries there are, for configuration errors.
const QUERIES: &str = "(the queries are \"q5\" and \"q7\")";

/// The query the aggregate runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    Q5,
    Q7,
}

impl Query {
    /// The query of the JSON configuration `config`.
    fn from_config(config: &str) -> Result<Query, String> {
        let c: Config =
            serde_json::from_str(config).map_err(|e| format!("nexmark-windows config: {e}"))?;
        match c.query.as_deref() {
            Some("q5") => Ok(Query::Q5),
            Some("q7") => Ok(Query::Q7),
            Some(other) => Err(format!(
                "nexmark-windows config: unknown query {other:?} {QUERIES}"
            )),
            None => Err(format!("nexmark-windows config: missing `query` {QUERIES}")),
        }
    }
}

/// Member `name` of the bid; an error naming it when it is missing.
fn field<'a>(bid: &RawObject<'a>, name: &str) -> Result<RawJson<'a>, String> {
    bid.get(name)
        .ok_or_else(|| format!("not a bid: field `{name}` is missing"))
}

/// Integer member `name` of the bid.
fn int_field(bid: &RawObject<'_>, name: &str) -> Result<i64, String> {
    field(bid, name)?
        .as_i64()
        .ok_or_else(|| format!("not a bid: field `{name}` is not an integer (a 64-bit one)"))
}

/// String member `name` of the bid, raw (decoded only when kept).
fn str_field<'a>(bid: &RawObject<'a>, name: &str) -> Result<RawJson<'a>, String> {
    let raw = field(bid, name)?;
    if raw.text().starts_with('"') {
        Ok(raw)
    } else {
        Err(format!("not a bid: field `{name}` is not a string"))
    }
}

/// A bid as q7 keeps it (and writes it: the members in this order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Q7Bid {
    auction: i64,
    price: i64,
    bidder: i64,
    #[serde(rename = "dateTime")]
    date_time: i64,
    extra: String,
}

/// A bid as q7 reads it, borrowed from the payload.
struct Q7Row<'a> {
    auction: i64,
    price: i64,
    bidder: i64,
    date_time: i64,
    extra: RawJson<'a>,
}

impl<'a> Q7Row<'a> {
    /// The row of `bid`; an error naming the first field that is missing or of another type.
    fn read(bid: &RawObject<'a>) -> Result<Self, String> {
        Ok(Q7Row {
            auction: int_field(bid, "auction")?,
            price: int_field(bid, "price")?,
            bidder: int_field(bid, "bidder")?,
            date_time: int_field(bid, "dateTime")?,
            extra: str_field(bid, "extra")?,
        })
    }

    /// The row as an owned bid, `extra` decoded.
    fn to_owned_bid(&self) -> Result<Q7Bid, String> {
        let extra = self
            .extra
            .as_str()
            .ok_or("not a bid: field `extra` is not a string")?;
        Ok(Q7Bid {
            auction: self.auction,
            price: self.price,
            bidder: self.bidder,
            date_time: self.date_time,
            extra: extra.into_owned(),
        })
    }
}

/// What is kept per window: each query fills its own part and leaves the other empty.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Acc {
    /// q5: bids per auction.
    counts: BTreeMap<i64, u64>,
    /// q7: the bids at the highest price so far (all at that one price), in arrival order.
    highest: Vec<Q7Bid>,
}

/// Offers `row` to the q7 bids at the highest price: kept on a tie, alone when higher.
fn offer(highest: &mut Vec<Q7Bid>, row: &Q7Row<'_>) -> Result<(), String> {
    if let Some(max) = highest.first().map(|b| b.price) {
        if row.price < max {
            return Ok(());
        }
        if row.price > max {
            highest.clear();
        }
    }
    highest.push(row.to_owned_bid()?);
    Ok(())
}

/// The q7 bids of two accumulators: the higher price's, or both, `a`'s first, on a tie.
fn merge_highest(mut a: Vec<Q7Bid>, b: Vec<Q7Bid>) -> Vec<Q7Bid> {
    let (pa, pb) = (a.first().map(|x| x.price), b.first().map(|x| x.price));
    match (pa, pb) {
        (_, None) => a,
        (None, Some(_)) => b,
        (Some(pa), Some(pb)) if pa > pb => a,
        (Some(pa), Some(pb)) if pa < pb => b,
        _ => {
            a.extend(b);
            a
        }
    }
}

/// The q5 result of a window.
#[derive(Debug, Serialize)]
struct HotItems {
    start: i64,
    end: i64,
    num: u64,
    auctions: Vec<i64>,
}

impl HotItems {
    /// The auctions with the most bids of `counts`; `None` when there are none.
    fn of(window: Window, counts: &BTreeMap<i64, u64>) -> Option<Self> {
        let num = *counts.values().max()?;
        let auctions = counts
            .iter()
            .filter(|&(_, &n)| n == num)
            .map(|(&auction, _)| auction)
            .collect();
        Some(HotItems {
            start: window.start,
            end: window.end,
            num,
            auctions,
        })
    }
}

/// The q7 result of a window.
#[derive(Debug, Serialize)]
struct HighestBid {
    start: i64,
    end: i64,
    price: i64,
    bids: Vec<Q7Bid>,
}

impl HighestBid {
    /// The bids at the highest price; `None` when there are none.
    fn of(window: Window, bids: Vec<Q7Bid>) -> Option<Self> {
        let price = bids.first()?.price;
        Some(HighestBid {
            start: window.start,
            end: window.end,
            price,
            bids,
        })
    }
}

/// The result of a window, of either query.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Out {
    HotItems(HotItems),
    HighestBid(HighestBid),
}

struct NexmarkWindows {
    query: Query,
    parser: ObjectParser,
}

impl Aggregate for NexmarkWindows {
    type Acc = Acc;
    type Out = Out;

    fn configure(config: &str) -> Result<Self, String> {
        Ok(NexmarkWindows {
            query: Query::from_config(config)?,
            parser: ObjectParser::new(),
        })
    }

    fn add(&mut self, acc: &mut Acc, event: &Event<'_>) -> Result<(), String> {
        let bid = event.json_object(&mut self.parser)?;
        match self.query {
            Query::Q5 => {
                let auction = int_field(&bid, "auction")?;
                let n = acc.counts.entry(auction).or_default();
                *n = n.saturating_add(1);
                Ok(())
            }
            Query::Q7 => offer(&mut acc.highest, &Q7Row::read(&bid)?),
        }
    }

    fn merge(&mut self, mut a: Acc, b: Acc) -> Result<Acc, String> {
        for (auction, n) in b.counts {
            let m = a.counts.entry(auction).or_default();
            *m = m.saturating_add(n);
        }
        a.highest = merge_highest(a.highest, b.highest);
        Ok(a)
    }

    fn finish(&mut self, _: Option<&str>, window: Window, acc: Acc) -> Result<Option<Out>, String> {
        Ok(match self.query {
            Query::Q5 => HotItems::of(window, &acc.counts).map(Out::HotItems),
            Query::Q7 => HighestBid::of(window, acc.highest).map(Out::HighestBid),
        })
    }
}

weir_sdk::export_aggregate!(NexmarkWindows);

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use weir_sdk::Window;
    use weir_sdk::testing::{AggregateHarness, TestEvent};

    use super::{NexmarkWindows, Q7Bid, Query};

    const W: Window = Window {
        start: 0,
        end: 10_000,
    };

    /// A bid as the generator writes it (`host/src/nexmark/model.rs`).
    fn bid(auction: i64, bidder: i64, price: i64, extra: &str) -> TestEvent {
        TestEvent::json(&json!({
            "auction": auction, "bidder": bidder, "price": price, "channel": "Google",
            "url": "https://www.nexmark.com/a/b/item.htm?query=1", "dateTime": 1_000,
            "extra": extra,
        }))
    }

    fn harness(query: &str) -> AggregateHarness<NexmarkWindows> {
        AggregateHarness::configure(&json!({ "query": query }).to_string()).unwrap()
    }

    /// Fires every window held: the results' payloads.
    fn fire_all(h: &mut AggregateHarness<NexmarkWindows>) -> Vec<Value> {
        let fired = h.fire(i64::MAX);
        assert!(fired.failures.is_empty(), "{:?}", fired.failures);
        fired.json().unwrap()
    }

    fn kept(auction: i64, bidder: i64, price: i64, extra: &str) -> Q7Bid {
        Q7Bid {
            auction,
            price,
            bidder,
            date_time: 1_000,
            extra: extra.to_owned(),
        }
    }

    #[test]
    fn the_config_names_the_query_and_an_unknown_or_missing_one_is_refused() {
        assert_eq!(Query::from_config(r#"{"query":"q5"}"#), Ok(Query::Q5));
        assert_eq!(Query::from_config(r#"{"query":"q7"}"#), Ok(Query::Q7));
        let err = Query::from_config(r#"{"query":"q1"}"#).unwrap_err();
        assert!(err.contains("unknown query \"q1\""), "{err}");
        assert!(err.contains("\"q5\" and \"q7\""), "{err}");
        let err = Query::from_config("{}").unwrap_err();
        assert!(err.contains("missing `query`"), "{err}");
        assert!(err.contains("\"q5\" and \"q7\""), "{err}");
        let err = Query::from_config(r#"{"query":"q5","x":1}"#).unwrap_err();
        assert!(err.contains("unknown field `x`"), "{err}");
    }

    #[test]
    fn q5_gives_the_auctions_with_the_most_bids_all_of_them_on_a_tie() {
        let mut h = harness("q5");
        let events = [7, 3, 9, 7, 3, 1].map(|a| bid(a, 1, 10, ""));
        assert!(h.add(W, &events).is_empty());
        let next = Window {
            start: 2_000,
            end: 12_000,
        };
        assert!(
            h.add(next, &[bid(5, 1, 1, ""), bid(4, 1, 1, "")])
                .is_empty()
        );
        assert!(h.add(next, &[bid(4, 1, 1, "")]).is_empty());
        assert_eq!(
            fire_all(&mut h),
            [
                json!({"start": 0, "end": 10_000, "num": 2, "auctions": [3, 7]}),
                json!({"start": 2_000, "end": 12_000, "num": 2, "auctions": [4]}),
            ]
        );
        // The payload, exactly.
        let mut h = harness("q5");
        h.add(W, &[bid(42, 1, 1, "")]);
        assert_eq!(
            h.fire(i64::MAX).results[0].payload(),
            br#"{"start":0,"end":10000,"num":1,"auctions":[42]}"#
        );
    }

    #[test]
    fn q5_merges_panes_by_adding_counts() {
        let mut h = harness("q5");
        let (a, b) = (
            Window {
                start: 0,
                end: 2_000,
            },
            Window {
                start: 2_000,
                end: 4_000,
            },
        );
        h.add(a, &[bid(1, 1, 1, ""), bid(1, 1, 1, ""), bid(2, 1, 1, "")]);
        h.add(b, &[bid(2, 1, 1, ""), bid(2, 1, 1, ""), bid(3, 1, 1, "")]);
        let into = h.merge("", a, b).unwrap();
        let acc = h.accumulator("", into).unwrap().unwrap();
        assert_eq!(
            acc.counts.into_iter().collect::<Vec<_>>(),
            [(1, 2), (2, 3), (3, 1)]
        );
        assert!(acc.highest.is_empty());
        assert_eq!(
            fire_all(&mut h),
            [json!({"start": 0, "end": 4_000, "num": 3, "auctions": [2]})]
        );
    }

    #[test]
    fn q7_keeps_the_bids_at_the_highest_price_in_arrival_order() {
        let mut h = harness("q7");
        let events = [
            bid(1, 10, 50, "a"),
            bid(2, 11, 80, "b"),
            bid(3, 12, 20, "c"),
            bid(4, 13, 80, "d\"e"),
        ];
        assert!(h.add(W, &events).is_empty());
        assert!(
            h.add(W, &[bid(5, 14, 80, "f"), bid(6, 15, 79, "g")])
                .is_empty()
        );
        let results = h.fire(i64::MAX).results;
        assert_eq!(
            std::str::from_utf8(results[0].payload()).unwrap(),
            concat!(
                r#"{"start":0,"end":10000,"price":80,"bids":["#,
                r#"{"auction":2,"price":80,"bidder":11,"dateTime":1000,"extra":"b"},"#,
                r#"{"auction":4,"price":80,"bidder":13,"dateTime":1000,"extra":"d\"e"},"#,
                r#"{"auction":5,"price":80,"bidder":14,"dateTime":1000,"extra":"f"}]}"#
            )
        );
        // A higher price replaces them all.
        let mut h = harness("q7");
        h.add(
            W,
            &[bid(1, 10, 5, "a"), bid(2, 11, 5, "b"), bid(3, 12, 6, "c")],
        );
        let acc = h.accumulator("", W).unwrap().unwrap();
        assert_eq!(acc.highest, [kept(3, 12, 6, "c")]);
        assert!(acc.counts.is_empty());
    }

    #[test]
    fn q7_merges_keep_the_higher_price_and_concatenate_on_a_tie() {
        let mut h = harness("q7");
        let (a, b, c) = (
            Window { start: 0, end: 1 },
            Window { start: 1, end: 2 },
            Window { start: 2, end: 3 },
        );
        h.add(a, &[bid(1, 10, 7, "a"), bid(2, 11, 7, "b")]);
        h.add(b, &[bid(3, 12, 7, "c")]);
        h.add(c, &[bid(4, 13, 3, "d")]);
        let ab = h.merge("", a, b).unwrap();
        let want = [
            kept(1, 10, 7, "a"),
            kept(2, 11, 7, "b"),
            kept(3, 12, 7, "c"),
        ];
        assert_eq!(h.accumulator("", ab).unwrap().unwrap().highest, want);
        // Lower on either side: the higher's bids, whichever side it is on.
        let abc = h.merge("", c, ab).unwrap();
        assert_eq!(h.accumulator("", abc).unwrap().unwrap().highest, want);
        let d = Window { start: 3, end: 4 };
        h.add(d, &[bid(5, 14, 9, "e")]);
        let all = h.merge("", abc, d).unwrap();
        assert_eq!(
            h.accumulator("", all).unwrap().unwrap().highest,
            [kept(5, 14, 9, "e")]
        );
    }

    #[test]
    fn a_bid_missing_a_field_the_query_reads_fails_alone_naming_it() {
        let mut h = harness("q7");
        let failures = h.add(
            W,
            &[
                bid(1, 10, 50, "a"),
                TestEvent::new(r#"{"auction":2,"bidder":1,"price":9,"dateTime":1}"#),
                TestEvent::new(r#"{"auction":2,"bidder":1,"price":"9","dateTime":1,"extra":""}"#),
                TestEvent::new(r#"{"auction":2,"bidder":1,"price":9,"dateTime":1,"extra":3}"#),
                TestEvent::new("[1]"),
            ],
        );
        let got: Vec<(usize, &str)> = failures
            .iter()
            .map(|f| (f.index, f.message.as_str()))
            .collect();
        assert_eq!(got[0], (1, "not a bid: field `extra` is missing"));
        assert_eq!(
            got[1],
            (
                2,
                "not a bid: field `price` is not an integer (a 64-bit one)"
            )
        );
        assert_eq!(got[2], (3, "not a bid: field `extra` is not a string"));
        assert_eq!(got[3].0, 4);
        assert!(
            got[3].1.starts_with("payload is not a JSON object"),
            "{got:?}"
        );
        assert_eq!(fire_all(&mut h)[0]["bids"][0]["auction"], 1);
        // q5 reads `auction` only; a window whose bids all failed emits nothing.
        let mut h = harness("q5");
        let failures = h.add(W, &[TestEvent::new(r#"{"price":1}"#)]);
        assert_eq!(failures[0].message, "not a bid: field `auction` is missing");
        assert!(
            h.add(
                Window { start: 5, end: 6 },
                &[TestEvent::new(r#"{"auction":1}"#)]
            )
            .is_empty()
        );
        assert_eq!(
            fire_all(&mut h),
            [json!({"start": 5, "end": 6, "num": 1, "auctions": [1]})]
        );
    }
}
