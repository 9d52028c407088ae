//! Sources: where events enter a pipeline.
//!
//! - [`jetstream`]: a durable JetStream pull consumer; key and event time extracted per the
//!   pipeline's `[source]` section; messages stay unacknowledged until the sink confirms
//!   everything they produced;
//! - [`local`]: JSON lines from a file, for `weir run --local` and `weir plugin test`.

pub mod jetstream;
pub mod local;
pub mod time;
