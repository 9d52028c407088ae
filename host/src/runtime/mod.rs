//! The WebAssembly runtime: one wasmtime [`Engine`](wasmtime::Engine) for the process, a compile
//! cache on disk, the sandbox every plugin runs in, and plugin instances.
//!
//! - [`engine`]: engine configuration (pooling allocator, epoch interruption) and its ticker;
//! - [`cache`]: compiled components keyed by content hash, so large components compile once;
//! - [`sandbox`]: what a plugin may touch (memory cap, deadline, WASI grants) and import checks;
//! - [`plugin`]: a loaded plugin version (`InstancePre`) and the world it implements;
//! - [`instance`]: a live, initialised instance of a `transform` plugin.
//!
//! A plugin version is an `Arc<Plugin>`; an operator holds one and can swap it for another
//! between two batches (hot reload builds on that).

pub mod cache;
pub mod engine;
pub mod instance;
pub mod plugin;
pub mod sandbox;

pub use engine::Runtime;
pub use instance::{CallError, TransformInstance};
pub use plugin::{Plugin, PluginError};
pub use sandbox::{Grants, Limits};

/// Generated host bindings of the `transform` world (from `wit/`).
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "transform",
        path: "../wit",
    });
}
