//! Operators: what runs between the source and the sink.
//!
//! - [`batch`]: the host's packed batch with per-event lineage back to source messages;
//! - [`chain`]: a chain of `transform` plugins with poison-event isolation.

pub mod batch;
pub mod chain;
pub mod process;
pub mod window;

pub use batch::EventBatch;
pub use chain::{Chain, ChainOutput, DeadLetter, Operator};
