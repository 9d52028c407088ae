//! Running a pipeline: wiring source → operator chain → sink, and the run loop.
//!
//! - [`build_chain`], [`build_window`], [`build_process`], [`build_after`] load the stages'
//!   plugins (errors name the field and line);
//! - [`nats::run`] is `weir run`: JetStream in, JetStream out, at-least-once;
//! - [`local::run`] is `weir run --local`: JSON lines in, JSON lines out, no NATS.

pub mod local;
pub mod nats;
pub mod stages;

use crate::config::{OperatorConfig, Pipeline, config_json};
use crate::operator::process::KeyedProcess;
use crate::operator::window::WindowedAggregate;
use crate::operator::{Chain, Operator};
use crate::runtime::instance::{Instance, WorldBindings};
use crate::runtime::{Limits, Plugin, Runtime, World};
use crate::window::WindowOperator;

/// Loads the plugin of operator block `op` (named `field` in errors, e.g.
/// `operators[0]`) as a plugin of `world`, and starts an instance with its config.
fn start_instance<B: WorldBindings>(
    runtime: &Runtime,
    pipeline: &Pipeline,
    op: &OperatorConfig,
    field: &str,
    world: World,
) -> anyhow::Result<Instance<B>> {
    let at = Some(op.plugin.span().start);
    let limits = Limits {
        memory_bytes: op.memory_limit_mib << 20,
        deadline: op.deadline,
    };
    let path = pipeline.base_dir().join(op.plugin.get_ref());
    let plugin = Plugin::load(runtime, &path, world, limits, op.grants.clone())
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
        operators.push(Operator {
            name: op.name.get_ref().clone(),
            instance: start_instance(runtime, pipeline, op, &field, World::Transform)?,
        });
    }
    Ok(Chain {
        runtime: runtime.clone(),
        operators,
    })
}

/// Loads and initialises the pipeline's window aggregate, if it has a `[window]`.
pub fn build_window(
    runtime: &Runtime,
    pipeline: &Pipeline,
) -> anyhow::Result<Option<WindowedAggregate>> {
    let Some(w) = &pipeline.config.window else {
        return Ok(None);
    };
    let op = &w.aggregate;
    let lateness = w.allowed_lateness.as_millis().min(i64::MAX as u128) as i64;
    Ok(Some(WindowedAggregate::new(
        op.name.get_ref().clone(),
        start_instance(runtime, pipeline, op, "window.aggregate", World::Aggregate)?,
        WindowOperator::new(w.spec(), lateness),
    )))
}

/// Loads and initialises the pipeline's keyed process function, if it has a `[process]`.
pub fn build_process(
    runtime: &Runtime,
    pipeline: &Pipeline,
) -> anyhow::Result<Option<KeyedProcess>> {
    let Some(p) = &pipeline.config.process else {
        return Ok(None);
    };
    let op = &p.function;
    let instance = start_instance(runtime, pipeline, op, "process.function", World::Process)?;
    Ok(Some(KeyedProcess::new(op.name.get_ref().clone(), instance)))
}
