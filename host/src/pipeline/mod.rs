//! Running a pipeline: wiring source → operator chain → sink, and the run loop.
//!
//! - [`build_chain`] loads the operators' plugins (errors name the operator field and line);
//! - [`nats::run`] is `weir run`: JetStream in, JetStream out, at-least-once;
//! - [`local::run`] is `weir run --local`: JSON lines in, JSON lines out, no NATS.

pub mod local;
pub mod nats;

use crate::config::Pipeline;
use crate::operator::{Chain, Operator};
use crate::runtime::{Limits, Plugin, Runtime, TransformInstance};

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
