//! Per-language cost of operators: the same two transforms in Rust, Python, JavaScript and C
//! — `forward` (every event out unchanged: the SDK and the component boundary alone) and the
//! kit's `kit-filter` (JSON parse, filter, projection, JSON write) — measured in one process:
//! component size, compile time (empty cache), load time from the compile cache, instantiate
//! time, and ns/event through the operator chain at batch 256 (host encode/decode included).
//!
//! Run: `bash tests/setup.sh && bash plugins/build.sh && cargo build &&
//! cargo bench -p weir-host --bench languages` (non-Rust plugins are built with
//! `weir plugin build`; the C ones need the `sdk/c` toolchain).

#[path = "../../tests/e2e/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;
use weir::operator::{Chain, EventBatch, Operator};
use weir::runtime::{Grants, Limits, Plugin, Runtime, TransformInstance};
use weir::source::json_lines::{JsonEvent, PushScratch};
use weir_packed::BatchBuilder;

const BATCH: usize = 256;
const FILTER: &str = r#"{"field":"amount","min":10,"keep":["user","amount","country","note"]}"#;

/// `weir plugin build DIR` → the component.
fn build(dir: &Path) -> Option<PathBuf> {
    let out = weir().args(["plugin", "build"]).arg(dir).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "skipping {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
}

/// 256 valid kit events (JSON objects with an integer amount), cycled.
fn batch() -> EventBatch {
    let text = std::fs::read_to_string(root().join("plugins/kit/events.jsonl")).unwrap();
    let events: Vec<JsonEvent> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<JsonEvent>(l).ok())
        .filter(|e| {
            e.payload.as_ref().is_some_and(|p| {
                serde_json::from_str::<serde_json::Value>(p.get())
                    .is_ok_and(|v| v["amount"].is_i64())
            })
        })
        .collect();
    let mut b = BatchBuilder::new();
    let mut scratch = PushScratch::default();
    for i in 0..BATCH {
        events[i % events.len()]
            .push_to(&mut b, i as u32, &mut scratch)
            .expect("the kit's events have one payload each");
    }
    EventBatch::from_source(b)
}

struct Row {
    size: u64,
    compile: Duration,
    cached_load: Duration,
    instantiate: Duration,
    ns_per_event: f64,
}

fn measure(path: &Path, config: &str, batch: &EventBatch) -> Row {
    let cache = tempfile::tempdir().unwrap();
    let cold = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    let t = Instant::now();
    Plugin::load_transform(&cold, path, Limits::default(), Grants::default()).unwrap();
    let compile = t.elapsed();
    let warm = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    let t = Instant::now();
    let plugin = Plugin::load_transform(&warm, path, Limits::default(), Grants::default()).unwrap();
    let cached_load = t.elapsed();
    let t = Instant::now();
    for _ in 0..5 {
        TransformInstance::new(&warm, plugin.clone(), config).unwrap();
    }
    let instantiate = t.elapsed() / 5;
    let instance = TransformInstance::new(&warm, plugin, config).unwrap();
    let mut chain = Chain {
        runtime: warm.clone(),
        operators: vec![Operator::new("op".into(), instance, Default::default())],
    };
    for _ in 0..20 {
        let out = chain.run(batch.clone());
        assert!(
            out.dead.is_empty(),
            "{}: {:?}",
            path.display(),
            out.dead.first()
        );
    }
    let t = Instant::now();
    let mut calls = 0u64;
    while t.elapsed() < Duration::from_secs(2) {
        chain.run(batch.clone());
        calls += 1;
    }
    Row {
        size: std::fs::metadata(path).unwrap().len(),
        compile,
        cached_load,
        instantiate,
        ns_per_event: t.elapsed().as_nanos() as f64 / (calls * BATCH as u64) as f64,
    }
}

fn main() {
    let batch = batch();
    let plugins = root().join("plugins");
    let cases: Vec<(&str, &str, Option<PathBuf>, &str)> = vec![
        ("Rust", "forward", Some(plugin("passthrough")), "{}"),
        ("Rust", "kit-filter", Some(plugin("kit_filter")), FILTER),
        ("C", "forward", build(&plugins.join("c/forward")), "{}"),
        (
            "C",
            "kit-filter",
            build(&plugins.join("c/kit-filter")),
            FILTER,
        ),
        (
            "JavaScript",
            "forward",
            build(&plugins.join("js/forward")),
            "{}",
        ),
        (
            "JavaScript",
            "kit-filter",
            build(&plugins.join("js/kit-filter")),
            FILTER,
        ),
        (
            "Python",
            "forward",
            build(&plugins.join("python/forward")),
            "{}",
        ),
        (
            "Python",
            "kit-filter",
            build(&plugins.join("python/kit-filter")),
            FILTER,
        ),
    ];
    println!(
        "| language | operator | ns/event @256 | events/s | component | compile (no cache) | load from cache | instantiate |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (lang, op, path, config) in cases {
        let Some(path) = path else { continue };
        let r = measure(&path, config, &batch);
        println!(
            "| {lang} | {op} | {:.0} | {:.2} M | {:.2} MB | {:.0} ms | {:.1} ms | {:.2} ms |",
            r.ns_per_event,
            1e3 / r.ns_per_event,
            r.size as f64 / 1e6,
            r.compile.as_secs_f64() * 1e3,
            r.cached_load.as_secs_f64() * 1e3,
            r.instantiate.as_secs_f64() * 1e3,
        );
    }
}
