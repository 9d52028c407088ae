//! Property tests of sliding windows held as panes: on random keyed input — out of order,
//! with late-but-allowed and too-late events, events the aggregate refuses, random
//! micro-batches — the pane operator emits exactly what the operator holding every window
//! whole emits (the oracle), in the same order. Also across checkpoints: pane state restored,
//! and per-window state (as written before panes) restored into the pane operator.

use weir_packed::{BatchBuilder, BatchView};

use super::conformance::TestAggregate;
use super::*;
use crate::operator::isolate::CallFailure;
use crate::window::merge_pairwise;

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

/// Sums `v` (an event without one is refused); `merge` fails when `fail_merge` and the two
/// accumulators sum to a multiple of 7.
struct Summing {
    inner: TestAggregate,
    fail_merge: bool,
}

fn read(acc: &[u8]) -> i64 {
    acc.try_into().map_or(-1, i64::from_le_bytes)
}

impl Aggregator for Summing {
    fn create(&mut self) -> Result<Vec<u8>, String> {
        self.inner.create()
    }
    fn add(
        &mut self,
        accs: &mut [Vec<u8>],
        targets: &[u32],
        events: &BatchView<'_>,
    ) -> Result<(), CallFailure> {
        self.inner.add(accs, targets, events)
    }
    fn merge(
        &mut self,
        accs: &[&[u8]],
        ends: &[u32],
        merged: &mut Vec<Vec<u8>>,
    ) -> Result<(), CallFailure> {
        let fail = self.fail_merge;
        merge_pairwise(accs, ends, merged, |a, b| {
            if fail && (read(a) + read(b)) % 7 == 0 {
                return Err(format!("refusing {} + {}", read(a), read(b)));
            }
            Ok((read(a) + read(b)).to_le_bytes().to_vec())
        })
    }
    fn finish(
        &mut self,
        windows: &[Firing<'_>],
        results: &mut Vec<(u32, Vec<u8>)>,
    ) -> Result<(), CallFailure> {
        self.inner.finish(windows, results)
    }
}

/// An input: events (key, time, payload) cut into micro-batches.
struct Input {
    events: Vec<(String, i64, String)>,
    batches: Vec<usize>,
}

/// Increasing times, most shifted back by up to `disorder` ms, some by up to `far` ms (late
/// or too late); a few payloads the aggregate refuses.
fn input(rng: &mut Rng, n: usize, keys: u64, disorder: i64, far: i64) -> Input {
    let mut t = 1_000i64;
    let events = (0..n)
        .map(|_| {
            t += rng.below(30) as i64;
            let back = if rng.below(20) == 0 { far } else { disorder };
            let time = t - rng.below(back as u64 + 1) as i64;
            let payload = match rng.below(40) {
                0 => "not json".to_string(),
                _ => format!("{{\"v\":{}}}", rng.below(100)),
            };
            (format!("k{}", rng.below(keys)), time, payload)
        })
        .collect();
    let mut batches = Vec::new();
    let mut left = n;
    while left > 0 {
        let b = (1 + rng.below(48) as usize).min(left);
        batches.push(b);
        left -= b;
    }
    Input { events, batches }
}

/// Runs `input` through `op`, advancing a bounded-out-of-orderness watermark after every
/// batch; after batch `swap_at`, the operator's state goes through a checkpoint blob into
/// `swap` (a fresh operator). Returns every emission, in order.
fn drive(
    op: WindowOperator,
    agg: &mut impl Aggregator,
    input: &Input,
    bound: i64,
    swap: Option<(usize, WindowOperator)>,
) -> Vec<Emission> {
    drive_steps(op, agg, input, bound, swap)
        .into_iter()
        .flatten()
        .collect()
}

/// [`drive`], with the emissions of each call (batch, or watermark) apart.
fn drive_steps(
    mut op: WindowOperator,
    agg: &mut impl Aggregator,
    input: &Input,
    bound: i64,
    swap: Option<(usize, WindowOperator)>,
) -> Vec<Vec<Emission>> {
    let mut wm = BoundedOutOfOrderness::new(bound);
    let mut steps = Vec::new();
    let mut out = Vec::new();
    let mut swap = swap;
    let mut from = 0;
    for (n, &len) in input.batches.iter().enumerate() {
        let mut b = BatchBuilder::new();
        for (k, t, p) in &input.events[from..from + len] {
            b.push(k.as_bytes(), *t, &[], p.as_bytes(), 0);
            wm.observe(*t);
        }
        from += len;
        op.process_batch(&b.view(), agg, &mut out);
        steps.push(std::mem::take(&mut out));
        if let Some(w) = wm.watermark() {
            op.advance_watermark(w, agg, &mut out);
            steps.push(std::mem::take(&mut out));
        }
        if swap.as_ref().is_some_and(|(at, _)| *at == n)
            && let Some((_, mut next)) = swap.take()
        {
            let bytes = postcard::to_stdvec(&op.state_ref()).expect("state encodes");
            let state = postcard::from_bytes(&bytes).expect("state decodes");
            next.restore(state, Ok).expect("state restores");
            op = next;
        }
    }
    op.advance_watermark(i64::MAX, agg, &mut out);
    steps.push(out);
    steps
}

const SPECS: [(i64, i64, i64); 6] = [
    (1_000, 250, 0),
    (1_000, 200, 50),
    (900, 600, 0),
    (1_000, 400, 0),
    (60, 20, -7),
    (300, 100, 0),
];

fn sliding((size, slide, offset): (i64, i64, i64)) -> WindowSpec {
    WindowSpec::Sliding {
        size,
        slide,
        offset,
    }
}

/// The operator under test: new sliding windows held as panes.
fn panes(spec: WindowSpec, lateness: i64) -> WindowOperator {
    WindowOperator::new(spec, lateness).with_pane_policy(PanePolicy::Always)
}

fn summing(fail_merge: bool) -> Summing {
    Summing {
        inner: TestAggregate { sum: true },
        fail_merge,
    }
}

#[test]
fn panes_emit_what_per_window_accumulators_emit_with_lateness_and_refused_events() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let spec = sliding(SPECS[seed as usize % SPECS.len()]);
        let lateness = [0, 150, 700][rng.below(3) as usize];
        let disorder = rng.below(200) as i64;
        let keys = 1 + rng.below(12);
        let input = input(&mut rng, 1_500, keys, disorder, 2_500);
        assert!(PaneLayout::of(&spec).is_some(), "{spec:?} is held as panes");
        let want = drive(
            WindowOperator::per_window(spec, lateness),
            &mut summing(false),
            &input,
            disorder,
            None,
        );
        let got = drive(
            panes(spec, lateness),
            &mut summing(false),
            &input,
            disorder,
            None,
        );
        assert!(want.iter().any(|e| matches!(e, Emission::Late { .. })));
        assert_eq!(got, want, "seed {seed}, {spec:?}, lateness {lateness}");
    }
}

#[test]
fn pane_state_and_per_window_state_restore_into_the_pane_operator() {
    for seed in 1..=24u64 {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let spec = sliding(SPECS[seed as usize % SPECS.len()]);
        let lateness = [0, 400][rng.below(2) as usize];
        let disorder = rng.below(150) as i64;
        let keys = 1 + rng.below(8);
        let input = input(&mut rng, 1_000, keys, disorder, 1_500);
        let at = rng.below(input.batches.len() as u64) as usize;
        // Timers are rebuilt on restore, key by key: windows of several keys due at one
        // watermark may fire in another order than without the restore.
        let sorted = |steps: Vec<Vec<Emission>>| -> Vec<Vec<String>> {
            steps
                .into_iter()
                .map(|s| {
                    let mut s: Vec<String> = s.iter().map(|e| format!("{e:?}")).collect();
                    s.sort();
                    s
                })
                .collect()
        };
        let want = sorted(drive_steps(
            WindowOperator::per_window(spec, lateness),
            &mut summing(false),
            &input,
            disorder,
            None,
        ));
        for (from, label) in [
            (panes(spec, lateness), "panes"),
            (WindowOperator::per_window(spec, lateness), "whole windows"),
        ] {
            let got = sorted(drive_steps(
                from,
                &mut summing(false),
                &input,
                disorder,
                Some((at, panes(spec, lateness))),
            ));
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g, w,
                    "seed {seed}, {spec:?}: {label} restored after batch {at}, step {i}"
                );
            }
        }
    }
}

/// With a `merge` that fails, each window whose panes could not be merged is reported instead
/// of its result — everything else is as without panes — and its panes are kept: a later
/// firing of the window (late-but-allowed data) has every event.
#[test]
fn a_failing_merge_reports_the_window_and_keeps_its_panes() {
    let mut failures = 0;
    for seed in 1..=30u64 {
        let mut rng = Rng(seed.wrapping_mul(0x94D0_49BB_1331_11EB));
        let spec = sliding(SPECS[seed as usize % SPECS.len()]);
        let lateness = [0, 500][rng.below(2) as usize];
        let disorder = rng.below(100) as i64;
        let keys = 1 + rng.below(6);
        let input = input(&mut rng, 800, keys, disorder, 1_000);
        let want = drive(
            WindowOperator::per_window(spec, lateness),
            &mut summing(true),
            &input,
            disorder,
            None,
        );
        let got = drive(
            panes(spec, lateness),
            &mut summing(true),
            &input,
            disorder,
            None,
        );
        assert_eq!(got.len(), want.len(), "seed {seed}");
        for (g, w) in got.iter().zip(&want) {
            match (g, w) {
                (
                    Emission::WindowFailed { key, window, error },
                    Emission::Fired {
                        key: k, window: w, ..
                    },
                ) => {
                    assert_eq!((key, window), (k, w), "seed {seed}");
                    assert!(
                        error.starts_with("merging the panes of the window: refusing"),
                        "{error}"
                    );
                    failures += 1;
                }
                _ => assert_eq!(g, w, "seed {seed}"),
            }
        }
    }
    assert!(failures > 10, "only {failures} merges failed");
}

#[test]
fn windows_at_the_ends_of_the_time_range_give_the_same_results() {
    let spec = sliding((3_000, 1_000, 0));
    let mut times = Vec::new();
    for base in [i64::MIN, i64::MAX - 6_000] {
        times.extend((0..40).map(|i| base.saturating_add(i * 150)));
    }
    let events = times
        .iter()
        .enumerate()
        .map(|(i, &t)| (format!("k{}", i % 3), t, format!("{{\"v\":{i}}}")))
        .collect();
    let input = Input {
        events,
        batches: vec![7; 80 / 7].into_iter().chain([80 % 7]).collect(),
    };
    let want = drive(
        WindowOperator::per_window(spec, 0),
        &mut summing(false),
        &input,
        10_000,
        None,
    );
    let got = drive(panes(spec, 0), &mut summing(false), &input, 10_000, None);
    assert!(want.len() > 40, "{want:?}");
    assert_eq!(got, want);
}

/// The pane policy may change between batches (an aggregator's `merges_cheaply`, or a hot
/// swap): windows stay held as they were, new ones follow the policy, results do not change.
#[test]
fn windows_held_whole_and_as_panes_mix_when_the_policy_changes() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0xA076_1D64_78BD_642F));
        let spec = sliding(SPECS[seed as usize % SPECS.len()]);
        let lateness = [0, 300][rng.below(2) as usize];
        let disorder = rng.below(150) as i64;
        let keys = 1 + rng.below(8);
        let input = input(&mut rng, 1_000, keys, disorder, 1_500);
        let want = drive(
            WindowOperator::per_window(spec, lateness),
            &mut summing(false),
            &input,
            disorder,
            None,
        );
        let mut op = panes(spec, lateness);
        let mut agg = summing(false);
        let mut wm = BoundedOutOfOrderness::new(disorder);
        let mut got = Vec::new();
        let mut from = 0;
        let (mut whole, mut as_panes) = (false, false);
        for &len in &input.batches {
            let policy = [PanePolicy::Always, PanePolicy::Never][(rng.next() >> 63) as usize];
            op.set_pane_policy(policy);
            let mut b = BatchBuilder::new();
            for (k, t, p) in &input.events[from..from + len] {
                b.push(k.as_bytes(), *t, &[], p.as_bytes(), 0);
                wm.observe(*t);
            }
            from += len;
            op.process_batch(&b.view(), &mut agg, &mut got);
            if let Some(w) = wm.watermark() {
                op.advance_watermark(w, &mut agg, &mut got);
            }
            let state = op.snapshot();
            whole |= state.keys.iter().any(|k| !k.windows.is_empty());
            as_panes |= state.keys.iter().any(|k| !k.panes.is_empty());
        }
        op.advance_watermark(i64::MAX, &mut agg, &mut got);
        assert!(whole && as_panes, "seed {seed}: both kinds held");
        assert_eq!(got, want, "seed {seed}, {spec:?}, lateness {lateness}");
    }
}

/// Under `PanePolicy::Auto`, sliding windows are held as panes when the aggregator merges
/// cheaply (every plugin does) and whole when it does not; the results are those of whole
/// windows either way.
#[test]
fn auto_holds_panes_only_for_aggregators_that_merge_cheaply() {
    let spec = sliding((100, 20, 0));
    let input = Input {
        events: (0..4_000i64)
            .map(|i| (format!("k{}", i % 7), i, format!("{{\"v\":{}}}", i % 10)))
            .collect(),
        batches: vec![50; 80],
    };
    let want = drive(
        WindowOperator::per_window(spec, 0),
        &mut summing(false),
        &input,
        0,
        None,
    );
    /// The results, and the most panes held at once.
    fn run(agg: &mut impl Aggregator, spec: WindowSpec, input: &Input) -> (Vec<Emission>, usize) {
        let mut op = WindowOperator::new(spec, 0);
        let mut got = Vec::new();
        let mut panes = 0;
        let mut wm = BoundedOutOfOrderness::new(0);
        for chunk in input.events.chunks(50) {
            let mut b = BatchBuilder::new();
            for (k, t, p) in chunk {
                b.push(k.as_bytes(), *t, &[], p.as_bytes(), 0);
                wm.observe(*t);
            }
            op.process_batch(&b.view(), agg, &mut got);
            op.advance_watermark(wm.watermark().unwrap_or(i64::MIN), agg, &mut got);
            panes = panes.max(op.snapshot().keys.iter().map(|k| k.panes.len()).sum());
        }
        op.advance_watermark(i64::MAX, agg, &mut got);
        (got, panes)
    }
    let mut costly = summing(false);
    assert!(!costly.merges_cheaply());
    let (got, panes) = run(&mut costly, spec, &input);
    assert_eq!((panes, &got), (0, &want), "costly merges: whole windows");
    let mut cheap = TestAggregate { sum: true };
    assert!(cheap.merges_cheaply());
    let (got, panes) = run(&mut cheap, spec, &input);
    assert!(panes > 0, "cheap merges: panes");
    assert_eq!(got, want, "cheap merges");
}
