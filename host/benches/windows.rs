//! Window operator throughput, in process (no NATS): events generated in memory, keyed by one of
//! 10,000 keys, event time increasing with small disorder, in batches of 1024, the watermark
//! advancing after each batch. Each case runs in alternating rounds in the same process: with a native Rust
//! count aggregator (the baseline: the host's window operator alone) and with the
//! `window-stats` aggregate plugin (the real path, one plugin call per batch). Sliding windows
//! run twice: as a pipeline holds them (`PanePolicy::Auto`: as panes, both aggregators merging
//! cheaply; every window due at a watermark merged from its panes in one `merge` call) and held
//! whole (one accumulator per window). Also reports the cost of one plugin `merge` call and
//! the memory held by 1,000,000 live keys.
//!
//! Plugin calls are made inside a Tokio runtime, as in a pipeline (outside one, wasmtime-wasi
//! runs every call through its own runtime's `block_on` after a `yield_now`: ~1 µs per call
//! that a pipeline does not pay).
//!
//! Run: `bash plugins/build.sh && cargo bench -p weir-host --bench windows`
//! (`WEIR_BENCH_CASE=tumbling`: one case; `WEIR_BENCH_BATCH=4096`: another batch size;
//! `WEIR_BENCH_KEYS=100`: another number of keys;
//! `WEIR_BENCH_ROUNDS=9`: more alternating rounds, medians reported).

use std::sync::Arc;
use std::time::Instant;

use weir::operator::aggregate::AggregateStage;
use weir::operator::isolate::CallFailure;
use weir::runtime::bindings::weir::operator::types::Accumulators;
use weir::runtime::{AggregateInstance, Grants, Limits, Plugin, Runtime, World};
use weir::window::{
    Aggregator, BoundedOutOfOrderness, Emission, Firing, WindowOperator, WindowSpec, merge_pairwise,
};
use weir_packed::{BatchBuilder, BatchView, push_item};

/// Count in an 8-byte accumulator: the baseline without a plugin.
struct NativeCount;

impl Aggregator for NativeCount {
    fn create(&mut self) -> Result<Vec<u8>, String> {
        Ok(vec![0; 8])
    }
    fn add(
        &mut self,
        accs: &mut [Vec<u8>],
        targets: &[u32],
        _events: &BatchView<'_>,
    ) -> Result<(), CallFailure> {
        for &t in targets {
            let a = &mut accs[t as usize];
            let n = u64::from_le_bytes(a[..8].try_into().unwrap()) + 1;
            a.copy_from_slice(&n.to_le_bytes());
        }
        Ok(())
    }
    fn merge(
        &mut self,
        accs: &[&[u8]],
        ends: &[u32],
        merged: &mut Vec<Vec<u8>>,
    ) -> Result<(), CallFailure> {
        merge_pairwise(accs, ends, merged, |a, b| {
            let n = u64::from_le_bytes(a.try_into().unwrap())
                + u64::from_le_bytes(b.try_into().unwrap());
            Ok(n.to_le_bytes().to_vec())
        })
    }
    fn merges_cheaply(&self) -> bool {
        true
    }
    fn finish(
        &mut self,
        windows: &[Firing<'_>],
        results: &mut Vec<(u32, Vec<u8>)>,
    ) -> Result<(), CallFailure> {
        results.extend(
            windows
                .iter()
                .enumerate()
                .map(|(i, w)| (i as u32, w.acc.to_vec())),
        );
        Ok(())
    }
}

fn batches(n: usize, keys: usize, batch: usize, step_us: i64) -> Vec<BatchBuilder> {
    let key_names: Vec<Vec<u8>> = (0..keys)
        .map(|k| format!("user-{k:06}").into_bytes())
        .collect();
    let payload = br#"{"v":1,"page":"/index.html","ref":"search"}"#;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::new();
    let mut b = BatchBuilder::with_capacity(batch, payload.len());
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let t = (i as i64 * step_us) / 1000 - (x % 50) as i64;
        b.push(
            &key_names[(x as usize) % keys],
            t,
            &[],
            payload,
            b.len() as u32,
        );
        if b.len() == batch {
            out.push(std::mem::take(&mut b));
        }
    }
    if !b.is_empty() {
        out.push(b);
    }
    out
}

enum Agg<'a> {
    Native,
    Plugin(&'a Runtime, &'a Arc<Plugin>),
}

/// How the operator holds sliding windows.
#[derive(Clone, Copy)]
enum Held {
    /// As the aggregator suggests (`PanePolicy::Auto`): what a pipeline runs.
    Auto,
    Whole,
}

fn operator(spec: WindowSpec, held: Held) -> WindowOperator {
    match held {
        Held::Auto => WindowOperator::new(spec, 0),
        Held::Whole => WindowOperator::per_window(spec, 0),
    }
}

/// Runs all batches; returns (events/s, results).
fn run(spec: WindowSpec, held: Held, input: &[BatchBuilder], agg: &Agg<'_>) -> (f64, usize) {
    let mut out: Vec<Emission> = Vec::new();
    let mut wm = BoundedOutOfOrderness::new(100);
    let events: usize = input.iter().map(BatchBuilder::len).sum();
    let mut results = 0;
    let started;
    match agg {
        Agg::Native => {
            let mut op = operator(spec, held);
            let mut a = NativeCount;
            started = Instant::now();
            for b in input {
                let view = b.view();
                op.process_batch(&view, &mut a, &mut out);
                wm.observe(view.time(view.len() - 1));
                op.advance_watermark(wm.watermark().unwrap_or(i64::MIN), &mut a, &mut out);
                results += out.len();
                out.clear();
            }
        }
        Agg::Plugin(rt, plugin) => {
            let instance = AggregateInstance::new(rt, Arc::clone(plugin), "{}").unwrap();
            let mut w = AggregateStage::new(
                "count".into(),
                instance,
                operator(spec, held),
                false,
                Arc::new(weir::operator::isolate::Breaker::new(0)),
            );
            started = Instant::now();
            for b in input {
                let view = b.view();
                w.add(rt, &view, &mut out);
                wm.observe(view.time(view.len() - 1));
                w.fire_until(rt, wm.watermark().unwrap_or(i64::MIN), &mut out);
                results += out.len();
                out.clear();
            }
        }
    }
    (events as f64 / started.elapsed().as_secs_f64(), results)
}

/// The cost of plugin merges, what a window held as panes pays when it fires: one `merge` call
/// of one pair, and per window in one call for 1,000 windows of five panes (sliding 10 s /
/// 2 s), the way the operator merges every window firing at one watermark.
fn merge_cost(rt: &Runtime, plugin: &Arc<Plugin>) {
    let mut instance = AggregateInstance::new(rt, Arc::clone(plugin), "{}").unwrap();
    let mut stage = AggregateStage::new(
        "count".into(),
        AggregateInstance::new(rt, Arc::clone(plugin), "{}").unwrap(),
        WindowOperator::new(WindowSpec::Session { gap: 10 }, 0),
        false,
        Arc::new(weir::operator::isolate::Breaker::new(0)),
    );
    // Two accumulators of three events, as the plugin encodes them (read from a checkpoint).
    let mut b = BatchBuilder::new();
    for t in [0, 1, 2, 100, 101, 102] {
        b.push(b"k", t, &[], br#"{"v":1}"#, b.len() as u32);
    }
    stage.add(rt, &b.view(), &mut Vec::new());
    let state = stage.windows.snapshot();
    let accs: Vec<&[u8]> = state.keys[0].windows.iter().map(|w| &w.acc[..]).collect();
    let packed = |groups: usize, panes: usize| {
        let mut a = Accumulators {
            data: Vec::new(),
            ends: Vec::new(),
        };
        let mut ends = Vec::new();
        for g in 0..groups {
            for p in 0..panes {
                push_item(&mut a.data, &mut a.ends, accs[p % 2]);
            }
            ends.extend_from_slice(&(((g + 1) * panes) as u32).to_le_bytes());
        }
        (a, ends)
    };
    let (pair, pair_ends) = packed(1, 2);
    let n = 100_000;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(instance.merge(rt, &pair, &pair_ends).unwrap());
    }
    let one = started.elapsed().as_nanos() as f64 / f64::from(n);
    let (many, many_ends) = packed(1000, 5);
    let calls = 200;
    let started = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(instance.merge(rt, &many, &many_ends).unwrap());
    }
    let per_window = started.elapsed().as_nanos() as f64 / f64::from(calls * 1000);
    println!(
        "\nwindow-stats `merge`: one call of one pair {one:.0} ns; per window of five panes \
         in calls of 1,000 windows {per_window:.0} ns"
    );
}

fn with_count((rate, results): (f64, usize)) -> (f64, Option<usize>) {
    (rate, Some(results))
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn main() {
    // Plugin calls poll their future once inside the runtime's context, as in a pipeline.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let _context = tokio.enter();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("target/plugins/wasm32-wasip2/release/weir_plugin_window_stats.wasm");
    assert!(path.is_file(), "run `bash plugins/build.sh` first");
    let rt = Runtime::new(Some(std::env::temp_dir().join("weir-bench-cache"))).unwrap();
    let plugin = Plugin::load(
        &rt,
        &path,
        World::Aggregate,
        Limits::default(),
        Grants::default(),
    )
    .unwrap();

    let n = 2_000_000;
    // 2 M events over ~200 s of event time: 10 k keys, ~10 events per key per 10 s window.
    // `WEIR_BENCH_BATCH` sets the batch size (a pipeline's `source.batch_size`, up to 10000).
    let batch = std::env::var("WEIR_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    // `WEIR_BENCH_KEYS` sets the number of keys (fewer keys: more events per key and pane).
    let keys = std::env::var("WEIR_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let input = batches(n, keys, batch, 100);
    let rounds: usize = std::env::var("WEIR_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    println!("{keys} keys, batches of {batch} events; median of {rounds} alternating rounds");
    println!(
        "| case | native count (events/s) | window-stats plugin (events/s) | plugin / native |"
    );
    println!("|---|---:|---:|---:|");
    let sliding = WindowSpec::Sliding {
        size: 10_000,
        slide: 2_000,
        offset: 0,
    };
    for (label, spec, held) in [
        (
            "tumbling 10 s",
            WindowSpec::Tumbling {
                size: 10_000,
                offset: 0,
            },
            Held::Auto,
        ),
        ("sliding 10 s / 2 s (auto)", sliding, Held::Auto),
        ("sliding 10 s / 2 s (whole windows)", sliding, Held::Whole),
        (
            "session gap 5 s",
            WindowSpec::Session { gap: 5_000 },
            Held::Auto,
        ),
    ] {
        // `WEIR_BENCH_CASE=tumbling` runs only the cases whose label starts so (for profiles).
        if let Ok(only) = std::env::var("WEIR_BENCH_CASE")
            && !label.starts_with(only.as_str())
        {
            continue;
        }
        // Alternating rounds, medians: the machine is shared and noisy.
        let (mut natives, mut wasms, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        // `WEIR_BENCH_SIDE=plugin` (or `native`) runs one side only (for profiles).
        let side = std::env::var("WEIR_BENCH_SIDE").unwrap_or_default();
        for _ in 0..rounds {
            let (native, r1) = match side.as_str() {
                "plugin" => (f64::NAN, None),
                _ => with_count(run(spec, held, &input, &Agg::Native)),
            };
            let (wasm, r2) = match side.as_str() {
                "native" => (f64::NAN, None),
                _ => with_count(run(spec, held, &input, &Agg::Plugin(&rt, &plugin))),
            };
            if let (Some(r1), Some(r2)) = (r1, r2) {
                assert_eq!(r1, r2, "both aggregators fire the same windows");
            }
            natives.push(native);
            wasms.push(wasm);
            ratios.push(wasm / native);
        }
        println!(
            "| {label} | {:.0} | {:.0} | {:.2} |",
            median(&mut natives),
            median(&mut wasms),
            median(&mut ratios)
        );
    }

    merge_cost(&rt, &plugin);
    if std::env::var("WEIR_BENCH_CASE").is_ok() {
        return;
    }
    // Memory: 1 M keys with one live tumbling window each (native 8-byte accumulators).
    let before = rss_bytes();
    let mut op = WindowOperator::new(
        WindowSpec::Tumbling {
            size: 3_600_000,
            offset: 0,
        },
        0,
    );
    let mut a = NativeCount;
    let mut out = Vec::new();
    let mut b = BatchBuilder::with_capacity(1024, 8);
    for k in 0..1_000_000u32 {
        b.push(
            format!("user-{k:07}").as_bytes(),
            1_000,
            &[],
            b"{}",
            b.len() as u32,
        );
        if b.len() == 1024 {
            op.process_batch(&b.view(), &mut a, &mut out);
            b.clear();
        }
    }
    op.process_batch(&b.view(), &mut a, &mut out);
    let held = rss_bytes().saturating_sub(before);
    println!(
        "\n1,000,000 live keys × 1 window: {} live windows, {:.0} MiB resident ({:.0} bytes per key, 12-byte keys, 8-byte accumulators)",
        op.live_windows(),
        held as f64 / (1 << 20) as f64,
        held as f64 / 1e6
    );
}
