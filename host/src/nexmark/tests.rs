//! The generator as a whole: what the reference guarantees about the stream (proportions,
//! ids that refer to earlier records, event times, expiry), determinism, the JSON form, and
//! equality with the reference's output.

use std::collections::BTreeSet;

use super::*;

fn events(config: GeneratorConfig, n: u64) -> Vec<Event> {
    Generator::new(GeneratorConfig {
        events: Some(n),
        ..config
    })
    .unwrap()
    .collect()
}

fn json_line(event: &Event) -> String {
    let mut out = Vec::new();
    event.to_json(&mut out);
    String::from_utf8(out).unwrap()
}

/// FNV-1a (64 bit) of the JSON lines of events `0..n`, each followed by `\n`.
fn fnv1a_of_json_lines(config: GeneratorConfig, n: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut line = Vec::new();
    for event in events(config, n) {
        line.clear();
        event.to_json(&mut line);
        line.push(b'\n');
        for &b in &line {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[test]
fn fifty_thousand_events_hold_exactly_the_default_proportions() {
    let mut counts = [0; 3];
    for event in events(GeneratorConfig::default(), 50_000) {
        let i = ["person", "auction", "bid"]
            .iter()
            .position(|&k| k == event.kind());
        counts[i.unwrap()] += 1;
    }
    assert_eq!(counts, [1_000, 3_000, 46_000]);
}

#[test]
fn every_cycle_is_one_person_then_three_auctions_then_bids() {
    let kinds: Vec<&str> = events(GeneratorConfig::default(), 50)
        .iter()
        .map(Event::kind)
        .collect();
    assert_eq!(kinds[0], "person");
    assert_eq!(kinds[1..4], ["auction"; 3]);
    assert!(kinds[4..].iter().all(|&k| k == "bid"));
}

#[test]
fn two_generators_give_the_same_stream_and_event_n_is_the_nth_event() {
    let config = GeneratorConfig::default();
    let first = events(config.clone(), 5_000);
    let second = events(config.clone(), 5_000);
    assert_eq!(first, second);
    let generator = Generator::new(config).unwrap();
    for n in [0, 1, 4, 49, 50, 1_234, 4_999] {
        assert_eq!(generator.event(n), first[n as usize], "event {n}");
    }
}

#[test]
fn persons_and_auctions_are_numbered_consecutively() {
    let all = events(GeneratorConfig::default(), 10_000);
    let persons: Vec<i64> = all
        .iter()
        .filter_map(|e| match e {
            Event::Person(p) => Some(p.id),
            _ => None,
        })
        .collect();
    let auctions: Vec<i64> = all
        .iter()
        .filter_map(|e| match e {
            Event::Auction(a) => Some(a.id),
            _ => None,
        })
        .collect();
    assert_eq!(
        persons,
        (FIRST_PERSON_ID..FIRST_PERSON_ID + 200).collect::<Vec<_>>()
    );
    assert_eq!(
        auctions,
        (FIRST_AUCTION_ID..FIRST_AUCTION_ID + 600).collect::<Vec<_>>()
    );
}

/// The reference's rule: a bid names an auction among the `num_in_flight_auctions` last
/// generated or up to 10 ahead; bidders and sellers are among the `num_active_people` last
/// persons or up to 10 ahead.
#[test]
fn bids_and_auctions_refer_to_recent_persons_and_auctions() {
    let config = GeneratorConfig::default();
    let (in_flight, active) = (
        i64::from(config.num_in_flight_auctions),
        i64::from(config.num_active_people),
    );
    let lead = 10;
    let (mut last_person, mut last_auction) = (FIRST_PERSON_ID - 1, FIRST_AUCTION_ID - 1);
    let mut random_bidders = BTreeSet::new();
    let person_ok =
        |id: i64, last: i64| id >= FIRST_PERSON_ID.max(last + 1 - active) && id <= last + lead;
    for event in events(config, 200_000) {
        match event {
            Event::Person(p) => last_person = p.id,
            Event::Auction(a) => {
                last_auction = a.id;
                assert!(
                    person_ok(a.seller, last_person),
                    "{a:?}, last person {last_person}"
                );
            }
            Event::Bid(b) => {
                let auction_ok = b.auction >= FIRST_AUCTION_ID.max(last_auction - in_flight)
                    && b.auction <= last_auction + lead;
                assert!(auction_ok, "{b:?}, last auction {last_auction}");
                assert!(
                    person_ok(b.bidder, last_person),
                    "{b:?}, last person {last_person}"
                );
                random_bidders.insert(b.bidder);
            }
        }
    }
    // Not only the hot ones: the random choices spread over the active persons.
    assert!(
        random_bidders.len() > 1_000,
        "{} bidders",
        random_bidders.len()
    );
}

#[test]
fn event_times_advance_by_the_inter_event_delay() {
    let config = GeneratorConfig {
        base_time_ms: 1_700_000_000_000,
        ..GeneratorConfig::default()
    };
    assert_eq!(config.inter_event_delay_us(), 100.0);
    let all = events(config.clone(), 20_000);
    for (n, event) in all.iter().enumerate() {
        assert_eq!(
            event.timestamp_ms(),
            1_700_000_000_000 + n as i64 / 10,
            "event {n}"
        );
    }
    assert!(
        all.windows(2)
            .all(|w| w[0].timestamp_ms() <= w[1].timestamp_ms())
    );

    // 3,333 events/s: 300.03 µs apart, truncated to whole ms as the reference does.
    let config = GeneratorConfig {
        first_event_rate: 3_333,
        ..config
    };
    let expected = |n: i64| 1_700_000_000_000 + n * 1_000_000 / 3_333 / 1_000;
    for (n, event) in events(config, 10_000).iter().enumerate() {
        assert_eq!(event.timestamp_ms(), expected(n as i64), "event {n}");
    }
}

#[test]
fn out_of_order_groups_shuffle_events_within_the_group_only() {
    // 1,000 events/s: one millisecond apart, so the shuffle shows in event time.
    let config = GeneratorConfig {
        out_of_order_group_size: 10,
        first_event_rate: 1_000,
        ..GeneratorConfig::default()
    };
    let numbers: Vec<u64> = (0..7_000)
        .map(|n| config.adjusted_event_number(n))
        .collect();
    // 953 × n mod 10: 0, 3, 6, 9, 2, 5, 8, 1, 4, 7 — a permutation of each group.
    assert_eq!(numbers[10..20], [10, 13, 16, 19, 12, 15, 18, 11, 14, 17]);
    for (g, group) in numbers.chunks(10).enumerate() {
        let set: BTreeSet<u64> = group.iter().copied().collect();
        let expected: BTreeSet<u64> = (g as u64 * 10..g as u64 * 10 + 10).collect();
        assert_eq!(set, expected, "group {g}");
    }
    let generator = Generator::new(config).unwrap();
    let times: Vec<i64> = (0..7_000)
        .map(|n| generator.event(n).timestamp_ms())
        .collect();
    assert_eq!(times[10..14], [10, 13, 16, 19]);
    // The watermark after event n is at most the time of every event from n on.
    let mut later_min = i64::MAX;
    for n in (0..7_000).rev() {
        later_min = later_min.min(times[n]);
        assert!(
            generator.watermark_ms(n as u64) <= later_min,
            "watermark after {n}"
        );
    }
    assert_eq!(generator.watermark_ms(15), 10);
}

#[test]
fn auctions_expire_after_they_open() {
    let mut auctions = 0;
    for event in events(GeneratorConfig::default(), 100_000) {
        if let Event::Auction(a) = event {
            assert!(a.expires > a.date_time, "{a:?}");
            assert!(a.reserve >= a.initial_bid, "{a:?}");
            assert!((FIRST_CATEGORY_ID..FIRST_CATEGORY_ID + 5).contains(&a.category));
            auctions += 1;
        }
    }
    assert_eq!(auctions, 6_000);
}

#[test]
fn json_parses_and_has_exactly_the_reference_fields() {
    let expected: [(&str, &[&str]); 3] = [
        (
            "person",
            &[
                "id",
                "name",
                "emailAddress",
                "creditCard",
                "city",
                "state",
                "dateTime",
                "extra",
            ],
        ),
        (
            "auction",
            &[
                "id",
                "itemName",
                "description",
                "initialBid",
                "reserve",
                "dateTime",
                "expires",
                "seller",
                "category",
                "extra",
            ],
        ),
        (
            "bid",
            &[
                "auction", "bidder", "price", "channel", "url", "dateTime", "extra",
            ],
        ),
    ];
    let mut escaped = 0;
    for event in events(GeneratorConfig::default(), 5_000) {
        let json = json_line(&event);
        let value: serde_json::Value = serde_json::from_str(&json).expect(&json);
        let object = value.as_object().unwrap();
        let fields = expected.iter().find(|(k, _)| *k == event.kind()).unwrap().1;
        let names: Vec<&str> = object.keys().map(String::as_str).collect();
        let mut sorted_fields = fields.to_vec();
        sorted_fields.sort_unstable();
        assert_eq!(names, sorted_fields, "{json}");
        assert_eq!(object["dateTime"].as_i64(), Some(event.timestamp_ms()));
        let extra = match &event {
            Event::Person(p) => &p.extra,
            Event::Auction(a) => &a.extra,
            Event::Bid(b) => &b.extra,
        };
        assert_eq!(object["extra"].as_str(), Some(extra.as_str()));
        escaped += usize::from(extra.contains('\\'));
    }
    // The reference's padding holds backslashes; they must have come through escaped.
    assert!(escaped > 100);
}

/// Events as the reference prints them: computed with OpenJDK 17 from a transcription of
/// Beam's generator (real `java.util.Random`, `Math.pow`, `String.format`), with weir's
/// channel and URL scheme added after `extra`.
#[test]
fn events_equal_the_reference_output() {
    let generator = Generator::new(GeneratorConfig::default()).unwrap();
    let person_0 = concat!(
        r#"{"id":1000,"name":"Peter Jones","emailAddress":"nhd@xcat.com","#,
        r#""creditCard":"7241 7320 9143 4888","city":"Portland","state":"WY","dateTime":0,"#,
        r#""extra":"WN_HS_bnpkkiwhwana_L^`KZjdgsid`K]MLU[aaOH`ztxbulvlxtkn_ZZ^T\\mqgdjzvlky"#,
        r#"msmfrhkfVYSXK_OY[aVYVKa\\X^]RO]OYguwiduWJNQLLaMLHOTaHY_J[YKWaUOSJN_VHWXZ]`SgbnjqeV"#,
        r#"VQ\\[["}"#
    );
    let auction_1 = concat!(
        r#"{"id":1000,"itemName":"wkx mgee","description":"eszpqxtdxrvwmmywkmogoahf","#,
        r#""initialBid":28873,"reserve":29448,"dateTime":0,"expires":11,"seller":1000,"#,
        r#""category":13,"extra":"zcurskufssowmihzpmZHWQM^fnleramznyyqimoheaRSWV^OjtfjhgXRa"#,
        r#"`[PVHUOMTbrqqzjyztfwnhstxbu]\\V_XPldnjuo^^PJQMnwhlsenoniir^aNZI__IP[QLYPROSNW]HYP\\"#,
        r#"L]W^PTkfnbtwuqucwreikflftlgtebaurwml^RMRIPqevmpqsnxmcblfvpfeajfopsHS^U[Jzxwajo_W`"#,
        r#"RXa[XWI[`VXZOR^lghgmwHITMP[dbwdgtPQJYHLjnubcsjgszqvyzeoeqjcbaazmrqamxoxgrjh`L`]_Y"#,
        r#"^OQM]ItjxtuwZJS[RTmrkpofsnuysxuvwbuzrqkrkkqpiz"}"#
    );
    let bid_4 = concat!(
        r#"{"auction":1000,"bidder":1001,"price":32530001,"channel":"Facebook","#,
        r#""url":"https://www.nexmark.com/wry/sjse/dciw/item.htm?query=1","dateTime":0,"#,
        r#""extra":"fdiysaV^]NLVsbolvyqwgticfdrwdyiyofziYMU\\Z`UaTQO][NX\\RM]WPYTOuwogvszlx"#,
        r#"jrcNOORM"}"#
    );
    let bid_12345 = concat!(
        r#"{"auction":1710,"bidder":1201,"price":31819124,"channel":"channel-8303","#,
        r#""url":"https://www.nexmark.com/ptaa/hyz/fvw/item.htm?query=1&channel_id=167510016","#,
        r#""dateTime":1234,"extra":"blklaoshpsbtfxwpdhubxcumcctffwU[HZY]qcsizf`ZJO^\\`HJKMa"#,
        r#"yknk"}"#
    );
    assert_eq!(json_line(&generator.event(0)), person_0);
    assert_eq!(json_line(&generator.event(1)), auction_1);
    assert_eq!(json_line(&generator.event(4)), bid_4);
    assert_eq!(json_line(&generator.event(12_345)), bid_12345);
}

/// The first 20,000 events, hashed; the same from the Java transcription for the defaults
/// and for a shifted base time, out-of-order groups of 10 and 3,333 events/s.
#[test]
fn streams_hash_like_the_reference_output() {
    assert_eq!(
        fnv1a_of_json_lines(GeneratorConfig::default(), 20_000),
        0x68b8_c944_e34c_e112
    );
    let config = GeneratorConfig {
        base_time_ms: 1_700_000_000_000,
        out_of_order_group_size: 10,
        first_event_rate: 3_333,
        ..GeneratorConfig::default()
    };
    assert_eq!(fnv1a_of_json_lines(config, 20_000), 0x3339_c37e_8d66_8b19);
}

#[test]
fn the_iterator_stops_after_the_configured_events_or_not_at_all() {
    let bounded = Generator::new(GeneratorConfig {
        events: Some(123),
        ..GeneratorConfig::default()
    })
    .unwrap();
    assert_eq!(bounded.size_hint(), (123, Some(123)));
    assert_eq!(bounded.count(), 123);
    let unbounded = Generator::new(GeneratorConfig::default()).unwrap();
    assert_eq!(unbounded.skip(10_000).take(5).count(), 5);
}

#[test]
fn a_zero_ratio_is_refused_with_the_field_named() {
    let error = Generator::new(GeneratorConfig {
        hot_bidders_ratio: 0,
        ..GeneratorConfig::default()
    })
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "nexmark generator: hot_bidders_ratio is 0; it must be at least 1"
    );
    let error = GeneratorConfig {
        avg_bid_byte_size: u32::MAX,
        ..GeneratorConfig::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(error.field, "avg_bid_byte_size");
}
