//! weir: a stream processor whose operators are sandboxed WebAssembly components.
//!
//! The data path, folder by folder:
//! [`source`] (JetStream, JSON lines; event time, watermark markers) → [`operator`] (the
//! transform chain with poison isolation, then the stateful stage: a window aggregate or a
//! keyed process function, then `[[after]]` transforms) on the [`runtime`] (wasmtime engine,
//! sandbox, compile cache) → [`window`] (assigners, watermarks, the keyed window operator) and
//! [`state`] (keyed state and timers of process functions) → [`checkpoint`] (consistent
//! snapshots in JetStream, restore) → [`sink`] (JetStream with deterministic ids, dead
//! letters; stdout).
//!
//! [`pipeline`] holds the engine (`Stages`, the one orchestrator) and the run loop that every
//! driver (`weir run`, `weir run --local`, `weir plugin test`) uses; [`config`] reads pipeline
//! files; [`connect`] connects to NATS (credentials, TLS, clear refusals); [`admin`] serves liveness, readiness and metrics; [`toolchain`] builds plugins;
//! [`telemetry`] sets up logs and keeps them safe (escaped, secrets redacted).

pub mod admin;
pub mod checkpoint;
pub mod config;
pub mod connect;
pub mod join;
pub mod nexmark;
pub mod operator;
pub mod pipeline;
pub mod registry;
pub mod runtime;
pub mod serve;
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
