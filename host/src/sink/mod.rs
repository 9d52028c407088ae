//! Sinks: where a pipeline's outputs leave it, behind one small trait ([`Sink`]) so that the
//! run loop is written once.
//!
//! - [`jetstream`]: publishes results, dead letters and late events to JetStream with
//!   deterministic `Nats-Msg-Id`s and many acks in flight, retrying until the stream confirms;
//! - [`stdout`]: JSON lines, for `weir run --local` and `weir plugin test`.
//!
//! A sink first *prepares* a batch's outputs ([`crate::operator::BatchOutput`]) into its own
//! messages — no I/O, each message with its identity — and then *delivers* them. Between the
//! two, the run loop may hold messages for the next checkpoint (`effectively-once`): held
//! messages travel inside the checkpoint as [`PendingMessage`]s and are delivered once it is
//! committed.

pub mod jetstream;
pub mod stdout;

use std::future::Future;

use crate::checkpoint::PendingMessage;
use crate::operator::BatchOutput;
use crate::source::Origin;

/// Which stage of a source message's processing produced an output: the operator chain or
/// the stateful stage (and the `[[after]]` operators over it). Keeps their identities apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Chain,
    Stateful,
}

/// Counts of what one batch produced, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub results: usize,
    pub dead_letters: usize,
    pub late: usize,
}

/// A destination for a pipeline's outputs.
pub trait Sink: Send + Sync + 'static {
    /// One output, ready to deliver.
    type Message: Send + 'static;

    /// Turns a batch's outputs into messages (no I/O). `origins[i]` is where source message
    /// `i` of the batch came from (the lineage of events and dead letters points there).
    fn prepare(
        &self,
        out: BatchOutput,
        origins: &[Origin],
        scope: Scope,
    ) -> (Vec<Self::Message>, Published);

    /// Delivers `msgs` in order. The future resolves once the destination has stored every
    /// one (it does not borrow the sink, so a delivery can run while the next batch is
    /// processed).
    fn deliver(
        &self,
        msgs: Vec<Self::Message>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static;

    /// Messages in the form a checkpoint holds them.
    fn hold(&self, msgs: Vec<Self::Message>) -> Vec<PendingMessage>;

    /// Held messages back in deliverable form.
    fn release(&self, held: Vec<PendingMessage>) -> Vec<Self::Message>;
}
