//! The stateful stage of a pipeline: what sits between the operator chain and the `[[after]]`
//! operators when a pipeline keeps state — the window aggregate
//! ([`super::aggregate::AggregateStage`]), the keyed process function
//! ([`super::process::ProcessStage`]) or the join of two inputs ([`super::join::JoinStage`]).
//!
//! The engine ([`crate::pipeline::stages::Stages`]) drives a stage through this trait only:
//! events in, watermarks and processing time forward, state out for a checkpoint and back in
//! at a restore. Each stage turns its own emissions (window results, timer events, late events,
//! dead letters) into [`BatchOutput`].

use super::EventBatch;
use super::output::BatchOutput;
use super::process::ProcessStateRef;
use crate::checkpoint::{Manifest, PluginVersion, StateBlob};
use crate::runtime::Runtime;
use crate::runtime::instance::AnyInstance;
use crate::source::Origin;
use crate::window::operator::WindowStateRef;

/// A stage that keeps keyed state in the host and is checkpointed.
pub trait StatefulStage: Send {
    /// The stage's name in the pipeline (dead letters, logs).
    fn name(&self) -> &str;

    /// `window`, `process` or `join`, as checkpoints and `/plugins` name the stage.
    fn kind(&self) -> &'static str;

    /// The plugin version the stage runs (`None`: a built-in stage, the join).
    fn plugin(&self) -> Option<&std::sync::Arc<crate::runtime::Plugin>>;

    /// Whether event-time watermarks drive it (a processing-time window follows the wall
    /// clock instead, and ignores watermark markers).
    fn uses_event_time(&self) -> bool {
        true
    }

    /// Processes a batch of events (the chain's output, lineage to the source batch, whose
    /// messages came from `origins`).
    fn process_batch(
        &mut self,
        runtime: &Runtime,
        events: &EventBatch,
        origins: &[Origin],
        out: &mut BatchOutput,
    );

    /// Advances event time to `watermark`: fires due windows and event-time timers.
    fn advance_watermark(&mut self, runtime: &Runtime, watermark: i64, out: &mut BatchOutput);

    /// Fires what the wall clock made due (processing-time windows and timers).
    fn on_processing_time(&mut self, runtime: &Runtime, out: &mut BatchOutput);

    /// Whether [`StatefulStage::on_processing_time`] has work on a quiet stream.
    fn needs_processing_time(&self) -> bool;

    /// The state to checkpoint, serialized in place (no copy) during the pause.
    fn state(&mut self) -> StageState<'_>;

    /// Puts checkpointed state back (the stage's part of `blob`, taken out of it), checking
    /// that it fits this stage and migrating what an older plugin version wrote.
    fn restore(
        &mut self,
        runtime: &Runtime,
        manifest: &Manifest,
        blob: &mut StateBlob,
    ) -> anyhow::Result<()>;

    /// Installs a new version of the stage's plugin between two batches (hot-loading),
    /// keeping the stage's state. On an error the running version stays.
    fn swap(&mut self, runtime: &Runtime, next: AnyInstance) -> anyhow::Result<()>;

    /// The plugin version the stage runs, as a checkpoint records it (`None`: no plugin).
    fn plugin_version(&mut self, runtime: &Runtime) -> anyhow::Result<Option<PluginVersion>>;

    /// Live entries of state (windows, or keys), for checkpoint manifests.
    fn state_entries(&mut self) -> u64;
}

/// A stage's state during a checkpoint pause, borrowed: the field of the state blob it goes
/// into.
pub enum StageState<'a> {
    Window(WindowStateRef<'a>),
    Process(ProcessStateRef<'a>),
    Join(crate::join::JoinState),
}
