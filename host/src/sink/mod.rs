//! Sinks: where results leave a pipeline.
//!
//! - [`jetstream`]: publishes results and dead letters to JetStream with deterministic
//!   `Nats-Msg-Id`s and many acks in flight, retrying until the stream confirms;
//! - [`stdout`]: JSON lines, for `weir run --local`.

pub mod jetstream;
pub mod stdout;
