//! Property tests: for random out-of-order inputs whose disorder is within the watermark bound,
//! processed in random micro-batches, the window results equal a simple batch recomputation.

use std::collections::BTreeMap;

use weir_packed::BatchBuilder;

use super::conformance::TestAggregate;
use super::*;

/// xorshift64*: deterministic, seeded, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// (key, time) events: increasing base times, each shifted back by up to `disorder` ms.
fn events(rng: &mut Rng, n: usize, keys: u64, disorder: i64) -> Vec<(String, i64)> {
    let mut t = 1_000i64;
    (0..n)
        .map(|_| {
            t += rng.below(40) as i64;
            let jitter = rng.below(disorder as u64 + 1) as i64;
            (format!("k{}", rng.below(keys)), (t - jitter).max(0))
        })
        .collect()
}

/// Counts per (key, window) computed from the whole input at once.
fn recompute(spec: WindowSpec, events: &[(String, i64)]) -> BTreeMap<(String, i64, i64), i64> {
    let mut counts = BTreeMap::new();
    match spec {
        WindowSpec::Session { gap } => {
            let mut by_key: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
            for (k, t) in events {
                by_key.entry(k).or_default().push(*t);
            }
            for (k, mut ts) in by_key {
                ts.sort();
                let (mut start, mut end, mut n) = (ts[0], ts[0] + gap, 0);
                for t in ts {
                    if t > end {
                        counts.insert((k.to_owned(), start, end), n);
                        (start, n) = (t, 0);
                    }
                    end = end.max(t + gap);
                    n += 1;
                }
                counts.insert((k.to_owned(), start, end), n);
            }
        }
        _ => {
            let mut ws = Vec::new();
            for (k, t) in events {
                ws.clear();
                spec.assign(*t, &mut ws);
                for w in &ws {
                    *counts.entry((k.clone(), w.start, w.end)).or_insert(0) += 1;
                }
            }
        }
    }
    counts
}

fn run(
    spec: WindowSpec,
    events: &[(String, i64)],
    bound: i64,
    rng: &mut Rng,
) -> BTreeMap<(String, i64, i64), i64> {
    let mut op = WindowOperator::new(spec, 0);
    let mut agg = TestAggregate { sum: false };
    let mut wm = BoundedOutOfOrderness::new(bound);
    let mut out = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let n = (1 + rng.below(64) as usize).min(events.len() - i);
        let mut b = BatchBuilder::new();
        for (k, t) in &events[i..i + n] {
            b.push(k.as_bytes(), *t, &[], b"{}", 0);
            wm.observe(*t);
        }
        op.process_batch(&b.view(), &mut agg, &mut out);
        if let Some(w) = wm.watermark() {
            op.advance_watermark(w, &mut agg, &mut out);
        }
        i += n;
    }
    op.advance_watermark(i64::MAX, &mut agg, &mut out);
    let mut got = BTreeMap::new();
    for e in out {
        match e {
            Emission::Fired {
                key,
                window,
                payload,
                ..
            } => {
                let v: i64 = String::from_utf8(payload).unwrap().parse().unwrap();
                let prev = got.insert(
                    (String::from_utf8(key).unwrap(), window.start, window.end),
                    v,
                );
                assert!(prev.is_none(), "a window fired twice without late data");
            }
            other => panic!("unexpected {other:?} with disorder within the bound"),
        }
    }
    got
}

#[test]
fn windows_over_out_of_order_input_equal_batch_recomputation() {
    for seed in 1..=30u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let disorder = rng.below(500) as i64;
        let keys = 1 + rng.below(20);
        let input = events(&mut rng, 2_000, keys, disorder);
        for spec in [
            WindowSpec::Tumbling {
                size: 1_000,
                offset: 0,
            },
            WindowSpec::Sliding {
                size: 1_000,
                slide: 250,
                offset: 0,
            },
            WindowSpec::Session { gap: 45 },
        ] {
            let want = recompute(spec, &input);
            let got = run(spec, &input, disorder, &mut rng);
            assert_eq!(got, want, "seed {seed}, {spec:?}, disorder {disorder}");
        }
    }
}
