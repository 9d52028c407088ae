//! Sinks: where results leave a pipeline.
//!
//! - [`jetstream`]: publishes results and dead letters to JetStream with deterministic
//!   `Nats-Msg-Id`s and many acks in flight, retrying until the stream confirms;
//! - [`stdout`]: JSON lines, for `weir run --local`;
//! - [`output`]: what a batch produced, before it becomes messages.

pub mod jetstream;
pub mod output;
pub mod stdout;
