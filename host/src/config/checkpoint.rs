//! `[checkpoint]`: how often state is checkpointed, where, and which delivery guarantee the
//! pipeline gives (see `docs/guarantees.md`).

use std::time::Duration;

use serde::Deserialize;

/// What a crash may do to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// Every input affects the output once: outputs carry deterministic `Nats-Msg-Id`s (replays
    /// are dropped by the sink stream's duplicate window) and window/process results are
    /// published only once the checkpoint holding their state is durable.
    #[default]
    EffectivelyOnce,
    /// Nothing is lost; after a crash, outputs since the last checkpoint may be published again
    /// (no message ids, results published as soon as they are produced).
    AtLeastOnce,
    /// Nothing is published twice; after a crash, inputs since the last checkpoint may be lost
    /// (inputs are acknowledged when fetched).
    AtMostOnce,
}

impl Guarantee {
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::EffectivelyOnce => "effectively-once",
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::AtMostOnce => "at-most-once",
        }
    }
}

/// `[checkpoint]` of a pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Time between checkpoints (and the longest a window result waits to be published with
    /// `effectively-once`).
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// `effectively-once` (default), `at-least-once` or `at-most-once`.
    #[serde(default)]
    pub guarantee: Guarantee,
    /// Complete checkpoints kept (older ones are deleted after each commit).
    #[serde(default = "default_retain")]
    pub retain: usize,
    /// JetStream key-value bucket of checkpoint manifests (created if missing).
    #[serde(default = "default_bucket")]
    pub bucket: String,
    /// JetStream object store bucket of state blobs (created if missing).
    #[serde(default = "default_state_bucket")]
    pub state_bucket: String,
    /// How long a crashed host may take to be running again. With `effectively-once` the sink
    /// streams' duplicate windows must exceed `interval + recovery_time`, or replayed outputs
    /// could slip past deduplication; the host refuses to start otherwise.
    #[serde(default = "default_recovery_time", with = "humantime_serde")]
    pub recovery_time: Duration,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            interval: default_interval(),
            guarantee: Guarantee::default(),
            retain: default_retain(),
            bucket: default_bucket(),
            state_bucket: default_state_bucket(),
            recovery_time: default_recovery_time(),
        }
    }
}

impl CheckpointConfig {
    /// What is wrong with the settings, naming the field; `stateful`: the pipeline has a
    /// window or process stage.
    pub(super) fn check(&self, stateful: bool) -> Result<(), super::check::FieldProblem> {
        use super::check::problem;
        if self.interval < Duration::from_millis(10) {
            return problem(
                "checkpoint.interval",
                format!(
                    "field `checkpoint.interval`: {:?} is too short (at least 10ms)",
                    self.interval
                ),
            );
        }
        if self.retain == 0 {
            return problem(
                "checkpoint.retain",
                "field `checkpoint.retain` must be at least 1",
            );
        }
        for (field, bucket) in [
            ("checkpoint.bucket", &self.bucket),
            ("checkpoint.state_bucket", &self.state_bucket),
        ] {
            if !super::valid_name(bucket) {
                return problem(
                    field,
                    format!(
                        "field `{field}`: {bucket:?} must be 1-64 characters of A-Z a-z 0-9 - _"
                    ),
                );
            }
        }
        if stateful && self.guarantee == Guarantee::AtMostOnce {
            return problem(
                "checkpoint.guarantee",
                "field `checkpoint.guarantee`: \"at-most-once\" is for pipelines without \
                 `[window]` or `[process]`: restored state would fire windows and timers again \
                 whose results were already published; use \"at-least-once\" or \
                 \"effectively-once\"",
            );
        }
        Ok(())
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_retain() -> usize {
    3
}
fn default_bucket() -> String {
    "weir-checkpoints".into()
}
fn default_state_bucket() -> String {
    "weir-state".into()
}
fn default_recovery_time() -> Duration {
    Duration::from_secs(60)
}
