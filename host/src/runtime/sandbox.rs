//! The sandbox: what a plugin may touch. Deny by default.
//!
//! - **Memory**: a cap per instance, enforced by a [`ResourceLimiter`] that remembers when it
//!   refused, so the error can say "memory cap exceeded" rather than a bare trap.
//! - **Time**: a deadline per call: a plugin looping in wasm code is interrupted by the epoch
//!   (see [`super::engine::EPOCH_TICK`]); one blocked in a host call (a WASI sleep or poll) is
//!   dropped at the deadline ([`super::deadline`]).
//! - **Stack**: bounded by the engine (`max_wasm_stack`); overflow traps.
//! - **WASI**: linked because language runtimes import it (CPython imports all of it, sockets
//!   included), but granting nothing: no preopened directories, no environment, no arguments,
//!   stdio discarded, and every socket operation and name lookup denied at run time (the
//!   plugin sees a permission error) unless the pipeline grants `network` to that plugin.
//!   Components importing interfaces the host does not provide are refused at load
//!   ([`check_imports`]).
//! - **Logs**: a plugin's log lines are capped in rate and length and scrubbed of its config's
//!   secrets ([`super::plugin_log`]).

use std::time::Duration;

use serde::Deserialize;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::plugin_log::PluginLog;
use crate::state::keyed::TimeDomain;

/// Resource limits of one plugin instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory (bytes, per memory) the instance may grow to.
    pub memory_bytes: u64,
    /// Longest one call may run.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            deadline: Duration::from_secs(5),
        }
    }
}

/// Capabilities a pipeline grants one plugin beyond pure computation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Outgoing TCP/UDP sockets and name lookup (`wasi:sockets`).
    #[serde(default)]
    pub network: bool,
    /// Environment variables passed through to the plugin (names).
    #[serde(default)]
    pub env: Vec<String>,
}

/// Interface prefixes every plugin may import: the weir contract and WASI, whose
/// capabilities the context denies unless granted (filesystem without preopens sees no file;
/// sockets refuse every address without the `network` grant).
const LINKED: &[&str] = &[
    "weir:operator/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// Checks a component's imports against what the host links. Returns a message naming the
/// first import refused.
pub fn check_imports<'a>(imports: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    for name in imports {
        if LINKED.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        return Err(format!(
            "imports `{name}`, which weir does not provide to plugins \
             (provided: weir:operator, wasi:cli, wasi:io, wasi:clocks, wasi:random, \
             wasi:filesystem, wasi:sockets — the network only when granted)"
        ));
    }
    Ok(())
}

/// A memory limiter that remembers refusing a growth.
#[derive(Debug)]
pub struct MemoryCap {
    pub cap: u64,
    pub hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired as u64 <= self.cap;
        self.hit |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Per-instance host state: the WASI context, resources, the memory limiter and the plugin's
/// log (tagged with its label, capped in rate and length).
pub struct StoreState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub memory: MemoryCap,
    pub log: PluginLog,
    /// Per-key state of a keyed `process` operator (empty for other worlds).
    pub keyed: crate::state::KeyedState,
}

impl StoreState {
    pub fn new(label: &str, limits: &Limits, grants: &Grants) -> Self {
        let mut b = WasiCtxBuilder::new();
        b.allow_tcp(grants.network)
            .allow_udp(grants.network)
            .allow_ip_name_lookup(grants.network);
        if grants.network {
            b.inherit_network();
        }
        for name in &grants.env {
            if let Ok(v) = std::env::var(name) {
                b.env(name, v);
            }
        }
        StoreState {
            wasi: b.build(),
            table: ResourceTable::new(),
            memory: MemoryCap {
                cap: limits.memory_bytes,
                hit: false,
            },
            log: PluginLog::new(label, Default::default()),
            keyed: crate::state::KeyedState::default(),
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl super::bindings::weir::operator::types::Host for StoreState {}

impl super::bindings_process::weir::operator::keyed::Host for StoreState {
    fn get(&mut self, name: String) -> Option<Vec<u8>> {
        self.keyed.get(&name)
    }
    fn set(&mut self, name: String, value: Vec<u8>) {
        self.keyed.set(name, value)
    }
    fn delete(&mut self, name: String) {
        self.keyed.delete(&name)
    }
    fn register_event_timer(&mut self, time: i64) {
        self.keyed.register_timer(TimeDomain::Event, time)
    }
    fn delete_event_timer(&mut self, time: i64) {
        self.keyed.delete_timer(TimeDomain::Event, time)
    }
    fn register_processing_timer(&mut self, time: i64) {
        self.keyed.register_timer(TimeDomain::Processing, time)
    }
    fn delete_processing_timer(&mut self, time: i64) {
        self.keyed.delete_timer(TimeDomain::Processing, time)
    }
    fn current_processing_time(&mut self) -> i64 {
        self.keyed.clock.now()
    }
    fn timer_domain(&mut self) -> super::bindings_process::weir::operator::keyed::TimeDomain {
        use super::bindings_process::weir::operator::keyed::TimeDomain as Wit;
        match self.keyed.domain {
            TimeDomain::Event => Wit::EventTime,
            TimeDomain::Processing => Wit::ProcessingTime,
        }
    }
}

impl super::bindings::weir::operator::log::Host for StoreState {
    fn log(&mut self, level: super::bindings::weir::operator::log::Level, message: String) {
        self.log.log(level, &message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasi_including_sockets_links_for_every_plugin() {
        assert!(check_imports(["wasi:io/streams@0.2.6", "wasi:sockets/tcp@0.2.6"]).is_ok());
    }

    #[test]
    fn unknown_interfaces_are_refused() {
        let err = check_imports(["wasi:http/outgoing-handler@0.2.6"]).unwrap_err();
        assert!(err.contains("wasi:http/outgoing-handler"), "{err}");
        assert!(check_imports(["weir:operator/log@0.1.0", "wasi:cli/environment@0.2.6"]).is_ok());
    }
}
