//! The WebAssembly runtime: one wasmtime [`Engine`](wasmtime::Engine) for the process, a compile
//! cache on disk, the sandbox every plugin runs in, and plugin instances.
//!
//! - [`engine`]: engine configuration (pooling allocator, epoch interruption) and its ticker;
//! - [`cache`]: compiled components keyed by content hash, so large components compile once;
//! - [`sandbox`]: what a plugin may touch (memory cap, deadline, WASI grants) and import checks;
//! - [`deadline`]: every call ends at its deadline, also when the plugin blocks in a host call;
//! - [`plugin_log`]: a plugin's log lines, capped in rate and length, scrubbed of secrets;
//! - [`plugin`]: a loaded plugin version (`InstancePre`) and the world it implements;
//! - [`instance`]: a live, initialised plugin instance (`transform` or `aggregate`), replaced
//!   transparently after a trap.
//!
//! A plugin version is an `Arc<Plugin>`; an operator holds one and can swap it for another
//! between two batches (hot reload builds on that).

pub mod cache;
pub mod deadline;
pub mod engine;
pub mod instance;
pub mod plugin;
pub mod plugin_log;
pub mod sandbox;

pub use engine::Runtime;
pub use instance::{AggregateInstance, CallError, ProcessInstance, TransformInstance};
pub use plugin::{Plugin, PluginError, World};
pub use sandbox::{Grants, Limits};

/// Generated host bindings of the `transform` world (from `wit/`).
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit",
        exports: { default: async },
    });
}

/// Generated host bindings of the `aggregate` world, sharing the types and the log interface
/// of [`bindings`].
pub mod bindings_aggregate {
    wasmtime::component::bindgen!({
        world: "aggregate",
        path: "../wit",
        exports: { default: async },
        with: {
            "weir:operator/types": super::bindings::weir::operator::types,
            "weir:operator/log": super::bindings::weir::operator::log,
        },
    });
}

/// Generated host bindings of the `process` world, sharing the types and the log interface of
/// [`bindings`].
pub mod bindings_process {
    wasmtime::component::bindgen!({
        world: "process",
        path: "../wit",
        exports: { default: async },
        with: {
            "weir:operator/types": super::bindings::weir::operator::types,
            "weir:operator/log": super::bindings::weir::operator::log,
        },
    });
}
