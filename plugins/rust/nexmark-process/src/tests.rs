//! The three queries on hand-made events, in the SDK's in-memory harness.

use serde_json::{Value, json};
use weir_sdk::testing::{ProcessHarness, TestEvent};

use super::Nexmark;

fn harness(query: &str) -> ProcessHarness<Nexmark> {
    ProcessHarness::configure(&json!({ "query": query }).to_string()).unwrap()
}

fn person(id: i64, state: &str, time: i64) -> TestEvent {
    let p = json!({"id": id, "name": format!("p{id}"), "city": "Boise", "state": state,
                   "dateTime": time});
    TestEvent::json(&p)
        .key(id.to_string())
        .time(time)
        .header("Weir-Input", "person")
}

fn auction(id: i64, seller: i64, category: i64, time: i64, expires: i64) -> TestEvent {
    let a = json!({"id": id, "seller": seller, "category": category, "dateTime": time,
                   "expires": expires});
    TestEvent::json(&a)
        .time(time)
        .header("Weir-Input", "auction")
}

fn bid(auction: i64, price: i64, time: i64) -> TestEvent {
    TestEvent::json(&json!({"auction": auction, "price": price, "dateTime": time}))
        .key(auction.to_string())
        .time(time)
        .header("Weir-Input", "bid")
}

#[test]
fn q3_pairs_local_sellers_with_their_category_10_auctions_whichever_comes_first() {
    let mut h = harness("q3");
    let key = |e: TestEvent, k: i64| e.key(k.to_string());
    let run = h.process(&[
        key(auction(100, 1, 10, 5, 99), 1), // before its seller: kept
        key(auction(101, 1, 9, 6, 99), 1),  // another category: dropped
        person(1, "OR", 7),                 // the seller: the kept auction joins
        key(auction(102, 1, 10, 8, 99), 1), // after: joins at once
        person(2, "NY", 9),                 // elsewhere
        key(auction(103, 2, 10, 10, 99), 2),
    ]);
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    let rows: Vec<Value> = run.json().unwrap();
    let row = |id| json!({"name": "p1", "city": "Boise", "state": "OR", "id": id});
    assert_eq!(rows, [row(100), row(102)]);
    assert!(run.outputs.iter().all(|o| o.header("Weir-Input").is_none()));
    // Nothing is kept for the seller elsewhere's auctions.
    assert_eq!(h.state::<Value>("2", "auctions").unwrap(), None);
}

#[test]
fn q4_emits_each_auctions_best_bid_within_its_lifetime_when_it_expires() {
    let mut h = harness("q4");
    let key = |e: TestEvent, k: i64| e.key(k.to_string());
    let run = h.process(&[
        bid(7, 900, 95), // before auction 7 arrives, and before it opens: not counted
        key(auction(7, 1, 3, 100, 200), 7),
        bid(7, 500, 150),
        bid(7, 700, 200), // at expiry: counted (BETWEEN is inclusive)
        bid(7, 400, 180),
        bid(7, 990, 201),                   // after expiry
        key(auction(8, 1, 3, 100, 300), 8), // no bids: no result
    ]);
    assert!(run.failures.is_empty(), "{:?}", run.failures);
    assert!(run.outputs.is_empty());
    assert!(h.advance_watermark(199).outputs.is_empty());
    let fired = h.advance_watermark(1_000);
    assert!(fired.failures.is_empty(), "{:?}", fired.failures);
    assert_eq!(fired.outputs.len(), 1);
    let out: Value = fired.outputs[0].json().unwrap();
    assert_eq!(out, json!({"auction": 7, "category": 3, "final": 700}));
    assert_eq!(fired.outputs[0].time(), 200);
    assert_eq!(h.state::<Value>("7", "auction").unwrap(), None);
    assert_eq!(h.state::<Value>("8", "auction").unwrap(), None);
}

#[test]
fn q4_counts_a_bid_that_comes_before_its_auction_and_drops_it_once_event_time_passes() {
    let mut h = harness("q4");
    let key = |e: TestEvent, k: i64| e.key(k.to_string());
    h.process(&[bid(7, 900, 150), bid(9, 50, 150)]);
    h.process(&[key(auction(7, 1, 3, 100, 200), 7)]);
    // Bid 9's auction never comes: its bid goes when event time passes it.
    assert!(h.advance_watermark(160).outputs.is_empty());
    assert_eq!(h.state::<Value>("9", "bids").unwrap(), None);
    let fired = h.advance_watermark(200);
    let out: Value = fired.outputs[0].json().unwrap();
    assert_eq!(out, json!({"auction": 7, "category": 3, "final": 900}));
}

#[test]
fn q4_average_updates_the_categorys_integer_average_with_every_final_price() {
    let mut h = harness("q4-average");
    let fin = |price: i64| {
        TestEvent::json(&json!({"auction": 1, "category": 3, "final": price})).key("3")
    };
    let run = h.process(&[fin(10), fin(15), fin(30)]);
    let rows: Vec<Value> = run.json().unwrap();
    assert_eq!(
        rows,
        [
            json!({"category": 3, "avg": 10, "auctions": 1}),
            json!({"category": 3, "avg": 12, "auctions": 2}),
            json!({"category": 3, "avg": 18, "auctions": 3}),
        ]
    );
}

#[test]
fn bad_events_fail_naming_the_field_or_input_and_keep_no_state() {
    let mut h = harness("q4");
    let no_input = TestEvent::json(&json!({"auction": 1})).key("1");
    let no_price = TestEvent::json(&json!({"auction": 1, "dateTime": 5}))
        .key("1")
        .header("Weir-Input", "bid");
    let run = h.process(&[no_input, no_price]);
    assert_eq!(run.failures.len(), 2);
    assert!(
        run.failures[0].message.contains("Weir-Input"),
        "{:?}",
        run.failures
    );
    assert!(
        run.failures[1].message.contains("`price`"),
        "{:?}",
        run.failures
    );
    assert_eq!(h.state::<Value>("1", "bids").unwrap(), None);
    let unknown = ProcessHarness::<Nexmark>::configure(r#"{"query":"q9"}"#).err();
    assert!(unknown.is_some_and(|e| e.contains("\"q9\"") && e.contains("q4-average")));
}
