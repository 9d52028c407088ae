//! Hot-loading: a new version of an operator's plugin, made ready off the hot path and swapped
//! into the running engine between two batches.
//!
//! - [`Slot`] names an operator by its place in the pipeline (`operators[1]`, the window's
//!   aggregate, the process function, `after[0]`);
//! - [`prepare`] loads a component (compile cache), checks its world, instantiates it and calls
//!   its `configure` with the operator's config — everything that can be slow or fail, on a
//!   blocking thread, while the old version keeps processing;
//! - [`Stages::swap`](super::stages::Stages::swap) installs a [`Prepared`] version between two
//!   batches: host-kept state (window accumulators, keyed state and timers) stays, an
//!   aggregate's accumulators are migrated to a newer `state_version`, a downgrade is refused
//!   and the old version keeps running;
//! - the run loop ([`super::run_loop`]) makes the swap a checkpoint barrier: the batch in
//!   flight finishes on the old version, the checkpoint taken right after the swap records the
//!   new version with the state, and the new version takes the next batch only once that
//!   checkpoint is committed.

use std::path::{Path, PathBuf};

use crate::config::{OperatorConfig, Pipeline};
use crate::runtime::instance::AnyInstance;
use crate::runtime::{Runtime, World};

/// An operator's place in a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// `[[operators]]` entry `i`.
    Operator(usize),
    /// `[window] aggregate`.
    Window,
    /// `[process] function`.
    Process,
    /// `[[after]]` entry `i`.
    After(usize),
}

impl Slot {
    /// Every operator of `pipeline` with its place.
    pub fn all(pipeline: &Pipeline) -> Vec<(Slot, &OperatorConfig)> {
        let c = &pipeline.config;
        let mut out: Vec<(Slot, &OperatorConfig)> = c
            .operators
            .iter()
            .enumerate()
            .map(|(i, op)| (Slot::Operator(i), op))
            .collect();
        if let Some(w) = &c.window {
            out.push((Slot::Window, &w.aggregate));
        }
        if let Some(p) = &c.process {
            out.push((Slot::Process, &p.function));
        }
        out.extend(
            c.after
                .iter()
                .enumerate()
                .map(|(i, op)| (Slot::After(i), op)),
        );
        out
    }

    /// The operator block of this slot in `pipeline`, if it has one.
    pub fn config(self, pipeline: &Pipeline) -> Option<&OperatorConfig> {
        let c = &pipeline.config;
        match self {
            Slot::Operator(i) => c.operators.get(i),
            Slot::Window => c.window.as_ref().map(|w| &w.aggregate),
            Slot::Process => c.process.as_ref().map(|p| &p.function),
            Slot::After(i) => c.after.get(i),
        }
    }

    /// The pipeline field naming this slot, as errors quote it (`operators[0]`).
    pub fn field(self) -> String {
        match self {
            Slot::Operator(i) => format!("operators[{i}]"),
            Slot::Window => "window.aggregate".into(),
            Slot::Process => "process.function".into(),
            Slot::After(i) => format!("after[{i}]"),
        }
    }

    /// The world a plugin in this slot implements.
    pub fn world(self) -> World {
        match self {
            Slot::Operator(_) | Slot::After(_) => World::Transform,
            Slot::Window => World::Aggregate,
            Slot::Process => World::Process,
        }
    }
}

/// A new version of the plugin of `slot`, ready to take over.
pub struct Prepared {
    pub slot: Slot,
    /// The operator's name in the pipeline.
    pub operator: String,
    pub instance: AnyInstance,
    /// Where the version came from, for logs (`file plugins/x.wasm`, `nats:x@3`).
    pub origin: String,
}

/// Loads the component at `path` as the new plugin of `slot` and starts it with the operator's
/// config and limits. Blocking (compiles and calls `configure`): run it off the hot path.
pub fn prepare(
    runtime: &Runtime,
    pipeline: &Pipeline,
    slot: Slot,
    path: &Path,
    origin: String,
) -> anyhow::Result<Prepared> {
    let op = slot
        .config(pipeline)
        .ok_or_else(|| anyhow::anyhow!("the pipeline has no {}", slot.field()))?;
    let field = slot.field();
    let instance = match slot.world() {
        World::Transform => AnyInstance::Transform(super::start_instance_at(
            runtime,
            pipeline,
            op,
            &field,
            World::Transform,
            path,
        )?),
        World::Aggregate => AnyInstance::Aggregate(super::start_instance_at(
            runtime,
            pipeline,
            op,
            &field,
            World::Aggregate,
            path,
        )?),
        World::Process => AnyInstance::Process(super::start_instance_at(
            runtime,
            pipeline,
            op,
            &field,
            World::Process,
            path,
        )?),
    };
    Ok(Prepared {
        slot,
        operator: op.name.get_ref().clone(),
        instance,
        origin,
    })
}

/// The component file of a file-referenced operator: its `plugin`, relative to the pipeline.
pub fn plugin_file(pipeline: &Pipeline, op: &OperatorConfig) -> PathBuf {
    pipeline.base_dir().join(op.plugin.get_ref())
}
