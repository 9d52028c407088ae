//! weir: a stream processor whose operators are sandboxed WebAssembly components.
//!
//! The data path, folder by folder:
//! [`source`] (JetStream, JSON lines) → [`operator`] (plugin chain, poison isolation) on the
//! [`runtime`] (wasmtime engine, sandbox, compile cache) → [`sink`] (JetStream with
//! deterministic ids, dead letters, stdout). [`config`] reads pipeline files; [`pipeline`]
//! wires the parts and runs them; [`telemetry`] sets up logs.

pub mod admin;
pub mod checkpoint;
pub mod config;
pub mod operator;
pub mod pipeline;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod state;
pub mod telemetry;
pub mod toolchain;
pub mod window;

/// The host allocates small, short-lived buffers at a high rate (accumulators, window results,
/// batch columns); mimalloc serves them faster than the system allocator and without its
/// periodic consolidation. Declared in the library so that the binary, tests and benches all
/// measure the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
