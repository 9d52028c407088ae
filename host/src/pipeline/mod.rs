//! Running a pipeline: the engine and its drivers.
//!
//! - [`stages`]: the engine — operator chain → stateful stage (window or process) → `[[after]]`
//!   — the one orchestrator of processing, whoever drives it;
//! - [`operator_thread`]: where the engine runs (a blocking thread, plugins are synchronous);
//! - [`run_loop`]: the loop over a [`Source`](crate::source::Source) and a
//!   [`Sink`](crate::sink::Sink), with checkpoints, written once;
//! - [`nats`] is `weir run` (JetStream in and out, checkpoints in JetStream, effectively-once
//!   by default); [`local`] is `weir run --local` and `weir plugin test` (JSON lines in, JSON
//!   lines out, no NATS);
//! - [`build_chain`], [`build_stateful`], [`build_after`] load the stages' plugins (errors name
//!   the field and line); [`hotload`] swaps a new version of one into a running engine.

pub mod follow;
pub mod hotload;
pub mod local;
pub mod nats;
pub mod operator_thread;
pub mod run_loop;
pub mod stages;
pub mod watch;

use crate::config::{OperatorConfig, Pipeline, WindowTime, config_json};
use std::sync::Arc;

use crate::operator::aggregate::AggregateStage;
use crate::operator::isolate::Breaker;
use crate::operator::join::JoinStage;
use crate::operator::process::ProcessStage;
use crate::operator::{Chain, Operator, StatefulStage};
use crate::runtime::instance::{Instance, WorldBindings};
use crate::runtime::{Limits, Plugin, Runtime, World};
use crate::window::WindowOperator;
use anyhow::Context;

/// Loads the plugin of operator block `op` (named `field` in errors, e.g.
/// `operators[0]`) as a plugin of `world`, and starts an instance with its config.
fn start_instance<B: WorldBindings>(
    runtime: &Runtime,
    pipeline: &Pipeline,
    op: &OperatorConfig,
    field: &str,
    world: World,
) -> anyhow::Result<Instance<B>> {
    let path = hotload::plugin_file(pipeline, op);
    start_instance_at(runtime, pipeline, op, field, world, &path)
}

/// [`start_instance`] with the component at `path` (a new version being hot-loaded).
fn start_instance_at<B: WorldBindings>(
    runtime: &Runtime,
    pipeline: &Pipeline,
    op: &OperatorConfig,
    field: &str,
    world: World,
    path: &std::path::Path,
) -> anyhow::Result<Instance<B>> {
    let at = Some(op.plugin.span().start);
    let limits = Limits {
        memory_bytes: op.memory_limit_mib << 20,
        deadline: op.deadline,
    };
    let plugin = Plugin::load(runtime, path, world, limits, op.grants.clone())
        .map_err(|e| pipeline.error(at, format!("field `{field}.plugin`: {e}")))?;
    let instance = Instance::<B>::new(runtime, plugin, &config_json(op)).map_err(|e| {
        pipeline.error(
            at,
            format!("{} `{}` ({field}): {e:#}", world.name(), op.name.get_ref()),
        )
    })?;
    tracing::info!(
        operator = %op.name.get_ref(),
        world = world.name(),
        plugin = %instance.plugin().label(),
        "plugin ready"
    );
    Ok(instance)
}

/// Loads and initialises the transform operators of `pipeline` (`[[operators]]`).
pub fn build_chain(runtime: &Runtime, pipeline: &Pipeline) -> anyhow::Result<Chain> {
    chain_of(runtime, pipeline, &pipeline.config.operators, "operators")
}

/// Loads and initialises the transform operators over the stateful stage's results
/// (`[[after]]`).
pub fn build_after(runtime: &Runtime, pipeline: &Pipeline) -> anyhow::Result<Chain> {
    chain_of(runtime, pipeline, &pipeline.config.after, "after")
}

fn chain_of(
    runtime: &Runtime,
    pipeline: &Pipeline,
    ops: &[OperatorConfig],
    list: &str,
) -> anyhow::Result<Chain> {
    let mut operators = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let field = format!("{list}[{i}]");
        let instance = start_instance(runtime, pipeline, op, &field, World::Transform)?;
        let breaker = Arc::new(Breaker::new(op.max_consecutive_failures));
        let mut operator = Operator::new(op.name.get_ref().clone(), instance, breaker);
        operator.rollout = op.rollout;
        operators.push(operator);
    }
    Ok(Chain {
        runtime: runtime.clone(),
        operators,
    })
}

/// Loads and initialises the pipeline's stateful stage: its `[window]` aggregate or its
/// `[process]` function, if it has either.
pub fn build_stateful(
    runtime: &Runtime,
    pipeline: &Pipeline,
) -> anyhow::Result<Option<Box<dyn StatefulStage>>> {
    let c = &pipeline.config;
    if let Some(w) = &c.window {
        let op = &w.aggregate;
        let lateness = w.allowed_lateness.as_millis().min(i64::MAX as u128) as i64;
        return Ok(Some(Box::new(AggregateStage::new(
            op.name.get_ref().clone(),
            start_instance(runtime, pipeline, op, "window.aggregate", World::Aggregate)?,
            WindowOperator::new(w.spec(), lateness),
            w.time == WindowTime::Processing,
            Arc::new(Breaker::new(op.max_consecutive_failures)),
        ))));
    }
    if let Some(p) = &c.process {
        let op = &p.function;
        let instance = start_instance(runtime, pipeline, op, "process.function", World::Process)?;
        return Ok(Some(Box::new(ProcessStage::new(
            op.name.get_ref().clone(),
            instance,
            Arc::new(Breaker::new(op.max_consecutive_failures)),
        ))));
    }
    if let Some(j) = &c.join {
        let index = |name: &str| -> anyhow::Result<u16> {
            c.sources
                .iter()
                .position(|s| s.name.as_ref().is_some_and(|n| n.get_ref() == name))
                .map(|i| i as u16)
                .with_context(|| format!("`[join]`: no input is named {name:?}"))
        };
        let stage = JoinStage::new(j, index(&j.left)?, index(&j.right)?)?;
        return Ok(Some(Box::new(stage)));
    }
    Ok(None)
}
