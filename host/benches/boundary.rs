//! Per-event cost of the plugin boundary, host-side encode and decode included.
//!
//! For batch sizes 1, 16, 256 and 1024 of events with a 12-byte key and a 100-byte payload, a
//! Rust passthrough plugin is called:
//! - `packed`: the weir contract — the host appends events into the packed columns, calls
//!   `process`, checks the output layout, maps lineage and reads every event's key, time and
//!   payload (what the sink does);
//! - `packed-call-only`: the same call with the batch already packed and the output dropped;
//! - `records` (baseline): the same passthrough over `list<record>`, the host building one
//!   record per event and reading them back.
//!
//! Run: `bash plugins/build.sh && cargo bench -p weir-host --bench boundary`.
//! Criterion reports throughput in events/s; ns/event = 1e9 / throughput.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wasmtime::Store;
use wasmtime::component::{Component, Linker};
use weir::operator::EventBatch;
use weir::runtime::sandbox::StoreState;
use weir::runtime::{Grants, Limits, Plugin, Runtime, TransformInstance};
use weir_packed::BatchBuilder;

mod records {
    wasmtime::component::bindgen!({
        world: "records",
        path: "../plugins/rust/bench-records/wit",
    });
}

fn plugin_path(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let p = root.join(format!(
        "target/plugins/wasm32-wasip2/release/weir_plugin_{name}.wasm"
    ));
    assert!(
        p.is_file(),
        "{} missing: run `bash plugins/build.sh` first",
        p.display()
    );
    p
}

struct Input {
    keys: Vec<Vec<u8>>,
    times: Vec<i64>,
    payloads: Vec<Vec<u8>>,
}

fn input(n: usize) -> Input {
    Input {
        keys: (0..n)
            .map(|i| format!("user-{i:07}").into_bytes())
            .collect(),
        times: (0..n).map(|i| 1_700_000_000_000 + i as i64).collect(),
        payloads: (0..n)
            .map(|i| {
                let mut p = format!(
                    "{{\"user\":{i},\"page\":\"/p/{}\",\"ms\":{}",
                    i % 97,
                    i % 1000
                )
                .into_bytes();
                p.resize(99, b' ');
                p.push(b'}');
                p
            })
            .collect(),
    }
}

fn packed_encode(inp: &Input, b: &mut BatchBuilder) {
    b.clear();
    for i in 0..inp.times.len() {
        b.push(&inp.keys[i], inp.times[i], &[], &inp.payloads[i], i as u32);
    }
}

fn boundary(c: &mut Criterion) {
    // Plugin calls run where the host makes them: on a thread of a tokio runtime.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _context = tokio.enter();
    let rt = Runtime::new(Some(std::env::temp_dir().join("weir-bench-cache"))).unwrap();
    let plugin = Plugin::load_transform(
        &rt,
        &plugin_path("passthrough"),
        Limits::default(),
        Grants::default(),
    )
    .unwrap();
    let mut inst = TransformInstance::new(&rt, plugin, "{}").unwrap();

    // The baseline component, in the same engine and sandbox.
    let bytes = std::fs::read(plugin_path("bench_records")).unwrap();
    let component = Component::new(rt.engine(), &bytes).unwrap();
    let mut linker: Linker<StoreState> = Linker::new(rt.engine());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let mut store = Store::new(
        rt.engine(),
        StoreState::new("bench-records", &Limits::default(), &Grants::default()),
    );
    store.set_epoch_deadline(u64::MAX / 2);
    let rec = records::Records::instantiate(&mut store, &component, &linker).unwrap();

    let mut group = c.benchmark_group("boundary");
    for &n in &[1usize, 16, 256, 1024] {
        let inp = input(n);
        group.throughput(Throughput::Elements(n as u64));

        let mut builder = BatchBuilder::with_capacity(n, 112);
        group.bench_with_input(BenchmarkId::new("packed", n), &n, |bench, _| {
            bench.iter(|| {
                packed_encode(&inp, &mut builder);
                let batch = EventBatch::from_source(std::mem::take(&mut builder));
                let out = inst.process(&rt, &batch.packed).unwrap();
                let out = EventBatch::from_plugin_output(out, &batch.lineage).unwrap();
                let mut touch = 0usize;
                for e in out.view().iter() {
                    touch += e.key.len() + e.payload.len() + e.time as usize;
                }
                builder = weir::operator::batch::into_builder(batch.packed);
                black_box(touch)
            })
        });

        packed_encode(&inp, &mut builder);
        let ready = EventBatch::from_source(builder.clone());
        group.bench_with_input(BenchmarkId::new("packed-call-only", n), &n, |bench, _| {
            bench.iter(|| black_box(inst.process(&rt, &ready.packed).unwrap()))
        });

        group.bench_with_input(BenchmarkId::new("records", n), &n, |bench, _| {
            bench.iter(|| {
                let batch: Vec<records::Event> = (0..n)
                    .map(|i| records::Event {
                        key: inp.keys[i].clone(),
                        time: inp.times[i],
                        payload: inp.payloads[i].clone(),
                        headers: Vec::new(),
                    })
                    .collect();
                let out = rec.call_process(&mut store, &batch).unwrap();
                let mut touch = 0usize;
                for e in &out {
                    touch += e.key.len() + e.payload.len() + e.time as usize;
                }
                black_box(touch)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, boundary);
criterion_main!(benches);
