//! Operators: what runs between the source and the sink.
//!
//! - [`batch`]: the host's packed batch with per-event lineage back to source messages;
//! - [`chain`]: a chain of `transform` plugins (the `[[operators]]` and `[[after]]` lists);
//! - [`stage`]: the stateful stage trait, implemented by [`aggregate`] (a window aggregate:
//!   the host's window operator driving an `aggregate` plugin) and [`process`] (a keyed
//!   process function with host-kept state and timers);
//! - [`isolate`]: failure isolation shared by every plugin call over many items;
//! - [`output`]: what processing produces (results, dead letters, window results, timer
//!   events) before a sink turns it into messages.

pub mod aggregate;
pub mod batch;
pub mod canary;
pub mod chain;
pub mod isolate;
pub mod join;
pub mod output;
pub mod process;
pub mod stage;

pub use batch::EventBatch;
pub use chain::{Chain, ChainOutput, Operator};
pub use output::{BatchOutput, DeadLetter};
pub use stage::StatefulStage;
