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
//! - the run loop ([`super::run_loop`]) swaps between two batches: the batch in flight
//!   finishes on the old version, the new one takes the next batch, and its outputs are held
//!   until a committed checkpoint records the new version (a barrier that does not stall).

use std::path::{Path, PathBuf};

use super::stages::Stages;
use crate::checkpoint::PluginVersion;
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

/// What the run loop did with a new version, told to whoever handed it over (the registry
/// follower keeps its idea of the running version, and the tag, in step with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapEvent {
    /// The version with content hash `digest` runs in `slot` from the next batch on.
    Installed { slot: Slot, digest: String },
    /// The version with content hash `digest` was refused; the running one stays.
    Refused {
        slot: Slot,
        digest: String,
        reason: String,
    },
    /// The canary of the version in `slot` failed: the previous version runs again.
    RolledBack { slot: Slot, reason: String },
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

/// The slot of the plugin a checkpoint records as `stage` (`operator`, `window`, `process`,
/// `after`) and `name`.
fn slot_of(pipeline: &Pipeline, stage: &str, name: &str) -> Option<Slot> {
    Slot::all(pipeline)
        .into_iter()
        .map(|(slot, op)| (slot, op.name.get_ref()))
        .find(|(slot, op)| {
            op.as_str() == name
                && matches!(
                    (slot, stage),
                    (Slot::Operator(_), "operator")
                        | (Slot::Window, "window")
                        | (Slot::Process, "process")
                        | (Slot::After(_), "after")
                )
        })
        .map(|(slot, _)| slot)
}

/// Puts in the plugin versions checkpoint `recorded` was written with where they differ from
/// the loaded ones (blocking), so that a replay runs each input on the version that ran it
/// before — a swap that happened after the checkpoint happens again at its next barrier. A
/// recorded version missing from the component cache is reported and the loaded one runs.
/// Returns the slots put back to a recorded version, with its content hash.
pub fn restore_versions(
    runtime: &Runtime,
    pipeline: &Pipeline,
    stages: &mut Stages,
    recorded: &[PluginVersion],
) -> anyhow::Result<Vec<(Slot, String)>> {
    let loaded = stages.plugin_versions()?;
    let mut restored = Vec::new();
    for r in recorded {
        let running = loaded
            .iter()
            .find(|l| l.stage == r.stage && l.name == r.name);
        if running.is_none_or(|l| l.sha256 == r.sha256) {
            continue;
        }
        let Some(slot) = slot_of(pipeline, &r.stage, &r.name) else {
            continue;
        };
        let path = runtime.cache().component_path(&r.sha256);
        if !path.is_file() {
            tracing::warn!(
                operator = %r.name, recorded = %&r.sha256[..12.min(r.sha256.len())],
                "the checkpoint was written by a plugin version not available here; \
                 replaying with the loaded version"
            );
            continue;
        }
        let origin = format!(
            "the checkpoint's version {}",
            &r.sha256[..12.min(r.sha256.len())]
        );
        let prepared = prepare(runtime, pipeline, slot, &path, origin)?;
        stages.swap(prepared)?;
        tracing::info!(operator = %r.name, "replaying with the plugin version the checkpoint records");
        restored.push((slot, r.sha256.clone()));
    }
    Ok(restored)
}

/// The component file of a file-referenced operator: its `plugin`, relative to the pipeline.
pub fn plugin_file(pipeline: &Pipeline, op: &OperatorConfig) -> PathBuf {
    pipeline.base_dir().join(op.plugin.get_ref())
}
