//! The sandbox: plugins that loop, hoard memory, overflow their stack or use capabilities
//! they were not granted are stopped or denied, and the host keeps going.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::operator::{Chain, EventBatch, Operator};
use weir::runtime::{Grants, Limits, Plugin, Runtime, TransformInstance};
use weir_packed::BatchBuilder;

use crate::support::*;

fn runtime() -> Runtime {
    Runtime::new(Some(cache_dir())).unwrap()
}

fn batch(payloads: &[&str]) -> EventBatch {
    let mut b = BatchBuilder::new();
    for (i, p) in payloads.iter().enumerate() {
        b.push(b"k", i as i64, &[], p.as_bytes(), i as u32);
    }
    EventBatch::from_source(b)
}

fn hostile_chain(rt: &Runtime, mode: &str, limits: Limits) -> Chain {
    let plugin: Arc<Plugin> =
        Plugin::load_transform(rt, &plugin("hostile"), limits, Grants::default()).unwrap();
    let config = format!(r#"{{"mode":"{mode}","trigger":"bad"}}"#);
    let instance = TransformInstance::new(rt, plugin, &config).unwrap();
    Chain {
        runtime: rt.clone(),
        operators: vec![Operator::new(mode.into(), instance, Default::default())],
    }
}

fn payloads(b: &EventBatch) -> Vec<String> {
    b.view()
        .iter()
        .map(|e| String::from_utf8(e.payload.to_vec()).unwrap())
        .collect()
}

/// Runs a batch with one misbehaving event through `mode` and checks the outcome, then that
/// the same chain still processes a clean batch.
fn misbehaving_event_is_isolated(mode: &str, limits: Limits, expect_error: &str) -> Duration {
    let traps = mode != "error";
    let rt = runtime();
    let mut chain = hostile_chain(&rt, mode, limits);
    let started = Instant::now();
    let out = chain.run(batch(&["a", "b", "bad", "c"]));
    let took = started.elapsed();
    assert_eq!(payloads(&out.events), ["a", "b", "c"]);
    assert_eq!(out.dead.len(), 1);
    assert_eq!(out.dead[0].payload, b"bad");
    assert_eq!(out.dead[0].source, 2);
    assert!(
        out.dead[0].error.contains(expect_error),
        "{}",
        out.dead[0].error
    );
    // The host keeps running: the replaced instance handles the next batch.
    let next = chain.run(batch(&["d", "e"]));
    assert_eq!(payloads(&next.events), ["d", "e"]);
    assert!(next.dead.is_empty());
    assert_eq!(chain.operators[0].instance.restarts >= 1, traps);
    took
}

#[test]
fn a_looping_plugin_is_stopped_at_its_deadline() {
    plugins_dir();
    let limits = Limits {
        deadline: Duration::from_millis(200),
        ..Limits::default()
    };
    let took = misbehaving_event_is_isolated("loop", limits, "deadline exceeded");
    // Bisection of 4 events calls the looping event's batch 3 times: ~3 deadlines.
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn a_plugin_sleeping_in_a_host_call_is_stopped_at_its_deadline() {
    plugins_dir();
    let limits = Limits {
        deadline: Duration::from_millis(200),
        ..Limits::default()
    };
    // The plugin blocks in WASI (a clock subscription polled by the host), not in wasm code,
    // so the epoch interruption alone cannot reach it: the call's deadline must.
    let took = misbehaving_event_is_isolated("sleep", limits, "deadline exceeded");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn a_plugin_sleeping_in_configure_fails_at_its_deadline() {
    let rt = runtime();
    let limits = Limits {
        deadline: Duration::from_millis(200),
        ..Limits::default()
    };
    let plugin =
        Plugin::load_transform(&rt, &plugin("hostile"), limits, Grants::default()).unwrap();
    let started = Instant::now();
    let err = TransformInstance::new(&rt, plugin, r#"{"mode":"sleep-configure"}"#)
        .err()
        .expect("configure sleeping for an hour must fail");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let err = format!("{err:#}");
    assert!(
        err.contains("configure") && err.contains("deadline exceeded"),
        "{err}"
    );
}

#[test]
fn a_plugin_sleeping_briefly_within_its_deadline_is_not_stopped() {
    let rt = runtime();
    let plugin = Plugin::load_transform(
        &rt,
        &plugin("hostile"),
        Limits::default(),
        Grants::default(),
    )
    .unwrap();
    let config = r#"{"mode":"sleep","trigger":"nap","sleep_ms":20}"#;
    let instance = TransformInstance::new(&rt, plugin, config).unwrap();
    let mut chain = Chain {
        runtime: rt.clone(),
        operators: vec![Operator::new("nap".into(), instance, Default::default())],
    };
    let out = chain.run(batch(&["a", "nap", "b"]));
    assert_eq!(payloads(&out.events), ["a", "nap", "b"]);
    assert!(out.dead.is_empty());
    assert_eq!(chain.operators[0].instance.restarts, 0);
}

#[test]
fn a_plugin_allocating_without_bound_hits_the_memory_cap() {
    plugins_dir();
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    misbehaving_event_is_isolated("alloc", limits, "memory cap exceeded");
}

#[test]
fn a_plugin_overflowing_its_stack_is_stopped() {
    plugins_dir();
    misbehaving_event_is_isolated("recurse", Limits::default(), "stack overflow");
}

#[test]
fn an_error_value_dead_letters_only_the_named_event() {
    plugins_dir();
    misbehaving_event_is_isolated("error", Limits::default(), "poison payload at index");
}

#[test]
fn a_plugin_without_the_network_grant_is_denied_every_connection() {
    let rt = runtime();
    let plugin =
        Plugin::load_transform(&rt, &plugin("netcat"), Limits::default(), Grants::default())
            .unwrap();
    let instance = TransformInstance::new(&rt, plugin, "{}").unwrap();
    let mut chain = Chain {
        runtime: rt.clone(),
        operators: vec![Operator::new("netcat".into(), instance, Default::default())],
    };
    // The plugin's connect fails inside the sandbox: its event is dead-lettered with the
    // denial, and the host carries on.
    let out = chain.run(batch(&["a", "b"]));
    assert!(out.events.is_empty());
    assert_eq!(out.dead.len(), 2);
    let error = &out.dead[0].error;
    assert!(
        error.to_lowercase().contains("denied") || error.to_lowercase().contains("permission"),
        "{error}"
    );
}
