//! The windowed Nexmark queries of `plugins/pipelines/nexmark/` — q5 (hot items, sliding
//! windows) and q7 (highest bid, tumbling windows), both on the `nexmark-windows` aggregate —
//! run with `weir run --local` over generated bids and checked against a plain computation over
//! the same bids.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::nexmark::{bids, generated, run_query};

/// A window's bounds `(start, end)` and the output's result in it, checking that the output
/// event's time is the window's last millisecond.
fn window_of(out: &Value) -> ((i64, i64), &Value) {
    let p = &out["payload"];
    let bounds = (p["start"].as_i64().unwrap(), p["end"].as_i64().unwrap());
    assert_eq!(out["time"], bounds.1 - 1, "{out}");
    (bounds, p)
}

#[test]
fn q5_hot_items_per_sliding_window_match_a_plain_count() {
    // 1,000 events/s of event time: 20,000 events span 20 s, in 14 windows of 10 s every 2 s.
    let (n, rate) = (20_000, 1_000);
    let (size, slide) = (10_000, 2_000);
    let mut counts: BTreeMap<(i64, i64), BTreeMap<i64, u64>> = BTreeMap::new();
    for b in bids(&generated(n, rate)) {
        let last = b.date_time.div_euclid(slide) * slide;
        for start in (last - size + slide..=last).step_by(slide as usize) {
            let window = counts.entry((start, start + size)).or_default();
            *window.entry(b.auction).or_default() += 1;
        }
    }
    let want: BTreeMap<(i64, i64), (u64, Vec<i64>)> = counts
        .into_iter()
        .map(|(bounds, per_auction)| {
            let num = *per_auction.values().max().unwrap();
            let hot = per_auction.into_iter().filter(|&(_, c)| c == num);
            (bounds, (num, hot.map(|(a, _)| a).collect()))
        })
        .collect();
    let outputs = run_query("q5", "bid", n, rate);
    let mut got = BTreeMap::new();
    for out in &outputs {
        let (bounds, p) = window_of(out);
        let auctions = p["auctions"].as_array().unwrap();
        let auctions: Vec<i64> = auctions.iter().map(|a| a.as_i64().unwrap()).collect();
        let result = (p["num"].as_u64().unwrap(), auctions);
        assert!(got.insert(bounds, result).is_none(), "twice: {bounds:?}");
        assert_eq!(p.as_object().unwrap().len(), 4, "{p}");
    }
    assert!(want.len() > 5, "{}", want.len());
    assert_eq!(got, want);
}

/// A q7 bid as `(auction, price, bidder, dateTime, extra)`.
type Q7Bid = (i64, i64, i64, i64, String);

#[test]
fn q7_highest_bids_per_tumbling_window_match_a_plain_maximum() {
    // 100 events/s of event time: 20,000 events span 200 s, 20 windows of 10 s.
    let (n, rate, size) = (20_000, 100, 10_000);
    let mut want: BTreeMap<(i64, i64), (i64, Vec<Q7Bid>)> = BTreeMap::new();
    for b in bids(&generated(n, rate)) {
        let start = b.date_time.div_euclid(size) * size;
        let row = (b.auction, b.price, b.bidder, b.date_time, b.extra.clone());
        let (max, kept) = want
            .entry((start, start + size))
            .or_insert((b.price, Vec::new()));
        if b.price > *max {
            (*max, *kept) = (b.price, Vec::new());
        }
        if b.price == *max {
            kept.push(row);
        }
    }
    let outputs = run_query("q7", "bid", n, rate);
    let mut got = BTreeMap::new();
    for out in &outputs {
        let (bounds, p) = window_of(out);
        let bids: Vec<Q7Bid> = p["bids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                assert_eq!(b.as_object().unwrap().len(), 5, "{b}");
                let int = |f: &str| b[f].as_i64().unwrap();
                let extra = b["extra"].as_str().unwrap().to_owned();
                (
                    int("auction"),
                    int("price"),
                    int("bidder"),
                    int("dateTime"),
                    extra,
                )
            })
            .collect();
        let result = (p["price"].as_i64().unwrap(), bids);
        assert!(got.insert(bounds, result).is_none(), "twice: {bounds:?}");
    }
    assert!(want.len() > 5, "{}", want.len());
    assert_eq!(got, want);
}
