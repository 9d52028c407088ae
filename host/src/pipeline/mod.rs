//! Running a pipeline: wiring source → operator chain → sink, and the run loop.
//!
//! - [`build_chain`] loads the operators' plugins (errors name the operator field and line);
//! - [`nats::run`] is `weir run`: JetStream in, JetStream out, at-least-once;
//! - [`local::run`] is `weir run --local`: JSON lines in, JSON lines out, no NATS.

pub mod local;
pub mod nats;

use crate::config::{Pipeline, config_json};
use crate::operator::process::KeyedProcess;
use crate::operator::window::WindowedAggregate;
use crate::operator::{Chain, Operator};
use crate::runtime::{
    AggregateInstance, Limits, Plugin, ProcessInstance, Runtime, TransformInstance, World,
};
use crate::window::WindowOperator;

/// Loads and initialises every operator of `pipeline`.
pub fn build_chain(runtime: &Runtime, pipeline: &Pipeline) -> anyhow::Result<Chain> {
    let mut operators = Vec::new();
    for (i, op) in pipeline.config.operators.iter().enumerate() {
        let at = Some(op.plugin.span().start);
        let limits = Limits {
            memory_bytes: op.memory_limit_mib << 20,
            deadline: op.deadline,
        };
        let path = pipeline.plugin_path(i);
        let plugin = Plugin::load_transform(runtime, &path, limits, op.grants.clone())
            .map_err(|e| pipeline.error(at, format!("field `operators[{i}].plugin`: {e}")))?;
        let config = pipeline.operator_config_json(i);
        let instance = TransformInstance::new(runtime, plugin, &config).map_err(|e| {
            pipeline.error(
                at,
                format!("operator `{}` (operators[{i}]): {e:#}", op.name.get_ref()),
            )
        })?;
        tracing::info!(operator = %op.name.get_ref(), plugin = %instance.plugin().label(), "operator ready");
        operators.push(Operator {
            name: op.name.get_ref().clone(),
            instance,
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
    let at = Some(op.plugin.span().start);
    let limits = Limits {
        memory_bytes: op.memory_limit_mib << 20,
        deadline: op.deadline,
    };
    let path = pipeline.base_dir().join(op.plugin.get_ref());
    let plugin = Plugin::load(runtime, &path, World::Aggregate, limits, op.grants.clone())
        .map_err(|e| pipeline.error(at, format!("field `window.aggregate.plugin`: {e}")))?;
    let instance = AggregateInstance::new(runtime, plugin, &config_json(op)).map_err(|e| {
        pipeline.error(
            at,
            format!("window aggregate `{}`: {e:#}", op.name.get_ref()),
        )
    })?;
    tracing::info!(aggregate = %op.name.get_ref(), plugin = %instance.plugin().label(), "window ready");
    let lateness = w.allowed_lateness.as_millis().min(i64::MAX as u128) as i64;
    Ok(Some(WindowedAggregate {
        name: op.name.get_ref().clone(),
        instance,
        windows: WindowOperator::new(w.spec(), lateness),
    }))
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
    let at = Some(op.plugin.span().start);
    let limits = Limits {
        memory_bytes: op.memory_limit_mib << 20,
        deadline: op.deadline,
    };
    let path = pipeline.base_dir().join(op.plugin.get_ref());
    let plugin = Plugin::load(runtime, &path, World::Process, limits, op.grants.clone())
        .map_err(|e| pipeline.error(at, format!("field `process.function.plugin`: {e}")))?;
    let instance = ProcessInstance::new(runtime, plugin, &config_json(op)).map_err(|e| {
        pipeline.error(
            at,
            format!("process function `{}`: {e:#}", op.name.get_ref()),
        )
    })?;
    tracing::info!(function = %op.name.get_ref(), plugin = %instance.plugin().label(), "keyed process ready");
    Ok(Some(KeyedProcess::new(op.name.get_ref().clone(), instance)))
}
