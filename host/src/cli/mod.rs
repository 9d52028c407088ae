//! Subcommands of the `weir` binary beyond `run` and `validate`.

pub mod checkpoint;
pub mod nats_args;
pub mod plugin;
pub mod registry;
