//! The pipeline file (TOML) → validated structs.
//!
//! Parsing is strict: unknown fields are errors, every error names the file, the line and the
//! field, and says what is wrong. [`load`] does syntax and semantic checks that need no plugin
//! or server; loading plugins (world, imports) happens in [`crate::pipeline`], whose errors
//! name the operator field too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::runtime::Grants;

mod check;
mod checkpoint;
pub use checkpoint::{CheckpointConfig, Guarantee};

/// A whole pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The pipeline's name: part of consumer names and message ids; `[A-Za-z0-9_-]+`.
    pub name: Spanned<String>,
    #[serde(default)]
    pub nats: NatsConfig,
    pub source: SourceConfig,
    /// Transform operators, run in order before the window (if any).
    #[serde(default)]
    pub operators: Vec<OperatorConfig>,
    /// A keyed event-time window with an aggregate plugin, after the operators.
    #[serde(default)]
    pub window: Option<WindowConfig>,
    /// A keyed process function with per-key state and timers, after the operators.
    #[serde(default)]
    pub process: Option<ProcessConfig>,
    /// Transform operators run in order on the results of the `[window]` or `[process]`
    /// stage, before the sink (`[[after]]`).
    #[serde(default)]
    pub after: Vec<OperatorConfig>,
    pub sink: SinkConfig,
    /// Checkpoints and the delivery guarantee.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
}

/// `[process]`: events (after the operators) go, key by key, to a `process` plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// The process plugin, as an operator.
    pub function: OperatorConfig,
}

/// The kind of window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Fixed windows of `size`.
    Tumbling,
    /// Windows of `size` every `slide` (`slide` divides `size`).
    Sliding,
    /// Per key, events closer than `gap` form one window.
    Session,
    /// Per key, every `count` events form one window (fires when full).
    Global,
}

/// Which clock assigns events to windows and fires them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowTime {
    /// The event's time (`[source] time`), fired by the watermark.
    #[default]
    Event,
    /// The host's wall clock when the event reaches the window, fired by the wall clock.
    Processing,
}

/// `[source.watermarks]`: how event time advances (for `[window]` and `[process]`).
///
/// Each entry of `source.subjects` is a partition with its own watermark; the pipeline's
/// watermark is the minimum over partitions that are not idle (no event for `idle_timeout`),
/// never moving back, recomputed at least every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkConfig {
    #[serde(default)]
    pub strategy: WatermarkStrategy,
    /// Bounded strategy: the watermark trails the newest event time by this much.
    #[serde(default, with = "humantime_serde")]
    pub out_of_orderness: Duration,
    /// A partition without events for this long stops holding the watermark back.
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// How often the watermark is recomputed while no events arrive.
    #[serde(default = "default_watermark_interval", with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for WatermarkConfig {
    fn default() -> Self {
        WatermarkConfig {
            strategy: WatermarkStrategy::Bounded,
            out_of_orderness: Duration::ZERO,
            idle_timeout: None,
            interval: default_watermark_interval(),
        }
    }
}

fn default_watermark_interval() -> Duration {
    Duration::from_millis(200)
}

/// How a pipeline's watermark advances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatermarkStrategy {
    /// Trails the newest event time by `out_of_orderness`.
    #[default]
    Bounded,
    /// Only explicit markers advance it: messages with a `Weir-Watermark` header (JetStream)
    /// or `{"watermark": W}` lines (`--local`).
    Punctuated,
}

/// `[window]`: events are keyed by their key, assigned to event-time windows and aggregated by
/// an `aggregate` plugin; results are events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    #[serde(rename = "type")]
    pub kind: WindowKind,
    /// Window length (tumbling, sliding).
    #[serde(default, with = "humantime_serde")]
    pub size: Option<Duration>,
    /// Distance between window starts (sliding).
    #[serde(default, with = "humantime_serde")]
    pub slide: Option<Duration>,
    /// Inactivity that closes a session (session).
    #[serde(default, with = "humantime_serde")]
    pub gap: Option<Duration>,
    /// Events per window (global).
    #[serde(default)]
    pub count: Option<u64>,
    /// Event time (default) or processing time.
    #[serde(default)]
    pub time: WindowTime,
    /// How long after a window's end late events still update (and re-fire) it.
    #[serde(default, with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// The aggregate plugin, as an operator.
    pub aggregate: OperatorConfig,
}

impl WindowConfig {
    /// The assigner of this window (sizes checked by [`load`]).
    pub fn spec(&self) -> crate::window::WindowSpec {
        let ms =
            |d: Option<Duration>| d.unwrap_or_default().as_millis().min(i64::MAX as u128) as i64;
        match self.kind {
            WindowKind::Tumbling => crate::window::WindowSpec::Tumbling {
                size: ms(self.size),
                offset: 0,
            },
            WindowKind::Sliding => crate::window::WindowSpec::Sliding {
                size: ms(self.size),
                slide: ms(self.slide),
                offset: 0,
            },
            WindowKind::Session => crate::window::WindowSpec::Session { gap: ms(self.gap) },
            WindowKind::Global => crate::window::WindowSpec::Global {
                count: self.count.unwrap_or(1),
            },
        }
    }

    /// How checkpoints name this window: state restores only into the same definition.
    pub fn description(&self) -> String {
        match self.time {
            WindowTime::Event => format!("{:?}", self.spec()),
            WindowTime::Processing => format!("{:?} in processing time", self.spec()),
        }
    }

    /// What is wrong with the sizes for this kind of window, naming the field.
    /// `count` only for global windows; processing time only for time windows, without
    /// lateness.
    fn check_count_and_clock(&self) -> Result<(), String> {
        let kind = format!("{:?}", self.kind).to_lowercase();
        if self.kind != WindowKind::Global && self.count.is_some() {
            return Err(format!(
                "field `window.count` does not apply to {kind} windows (only to global)"
            ));
        }
        if self.time == WindowTime::Processing {
            if self.kind == WindowKind::Global {
                return Err(
                    "field `window.time`: global windows fire by count, not by a clock".into(),
                );
            }
            if !self.allowed_lateness.is_zero() {
                return Err(
                    "field `window.allowed_lateness` does not apply to processing-time \
                            windows (no event is late on the host's clock)"
                        .into(),
                );
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        let positive = |name: &str, d: Option<Duration>| match d {
            None => Err(format!(
                "field `window.{name}` is required for {:?} windows",
                self.kind
            )
            .to_lowercase()),
            Some(d) if d.as_millis() == 0 => {
                Err(format!("field `window.{name}` must be at least 1ms"))
            }
            Some(_) => Ok(()),
        };
        let unused = |name: &str, d: Option<Duration>| match d {
            Some(_) => Err(format!(
                "field `window.{name}` does not apply to {:?} windows",
                self.kind
            )
            .to_lowercase()),
            None => Ok(()),
        };
        self.check_count_and_clock()?;
        match self.kind {
            WindowKind::Global => {
                match self.count {
                    None => {
                        return Err("field `window.count` is required for global windows".into());
                    }
                    Some(0) => return Err("field `window.count` must be at least 1".into()),
                    Some(_) => {}
                }
                if !self.allowed_lateness.is_zero() {
                    return Err("field `window.allowed_lateness` does not apply to global \
                                windows (they are never late)"
                        .into());
                }
                unused("size", self.size)?;
                unused("slide", self.slide)?;
                unused("gap", self.gap)
            }
            WindowKind::Tumbling => {
                positive("size", self.size)?;
                unused("slide", self.slide)?;
                unused("gap", self.gap)
            }
            WindowKind::Sliding => {
                positive("size", self.size)?;
                positive("slide", self.slide)?;
                unused("gap", self.gap)?;
                let (size, slide) = (
                    self.size.unwrap_or_default(),
                    self.slide.unwrap_or_default(),
                );
                if size.as_millis() % slide.as_millis() != 0 {
                    return Err("field `window.slide` must divide `window.size`".into());
                }
                Ok(())
            }
            WindowKind::Session => {
                positive("gap", self.gap)?;
                unused("size", self.size)?;
                unused("slide", self.slide)
            }
        }
    }
}

/// How to reach NATS. `--nats-url` / `WEIR_NATS_URL` override `url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    #[serde(default = "default_url")]
    pub url: String,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig { url: default_url() }
    }
}

fn default_url() -> String {
    "nats://127.0.0.1:4222".into()
}

/// Where the key of an incoming event comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyFrom {
    /// No key.
    None,
    /// The message subject.
    Subject,
    /// A message header (absent header: no key).
    Header(String),
}

/// Where the event time of an incoming event comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TimeFrom {
    /// The time JetStream stored the message (stable across redeliveries).
    Ingest,
    /// A header holding milliseconds since the Unix epoch; a missing or malformed value sends
    /// the event to the dead-letter subject.
    Header(String),
    /// A JSON field of the payload (dotted path) holding milliseconds since the Unix epoch;
    /// a payload that is not JSON, or a missing or non-integer field, is dead-lettered.
    Field(String),
}

/// The JetStream source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The stream to consume (must exist).
    pub stream: String,
    /// Subject filters within the stream (default: all of it).
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Durable consumer name (default `weir-<pipeline name>`).
    #[serde(default)]
    pub consumer: Option<String>,
    /// Messages per fetch (and per operator call, at most).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest wait for a fetch to fill.
    #[serde(default = "default_max_wait", with = "humantime_serde")]
    pub max_wait: Duration,
    /// How long the server waits for an ack before redelivering (after a crash).
    #[serde(default = "default_ack_wait", with = "humantime_serde")]
    pub ack_wait: Duration,
    #[serde(default = "default_key")]
    pub key: KeyFrom,
    #[serde(default = "default_time")]
    pub time: TimeFrom,
    #[serde(default)]
    pub watermarks: WatermarkConfig,
}

fn default_batch_size() -> usize {
    500
}
fn default_max_wait() -> Duration {
    Duration::from_millis(100)
}
fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_key() -> KeyFrom {
    KeyFrom::Header("Weir-Key".into())
}
fn default_time() -> TimeFrom {
    TimeFrom::Ingest
}

/// One operator of the chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Name in logs, metrics, dead-letter headers and message ids; `[A-Za-z0-9_-]+`.
    pub name: Spanned<String>,
    /// The component file, relative to the pipeline file.
    pub plugin: Spanned<PathBuf>,
    /// Passed to the plugin's `configure` as JSON.
    #[serde(default)]
    pub config: Option<toml::Value>,
    /// Memory cap per instance, MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_limit_mib: u64,
    /// Longest a single call may run.
    #[serde(default = "default_deadline", with = "humantime_serde")]
    pub deadline: Duration,
    #[serde(default)]
    pub grants: Grants,
    /// Failing events in a row (no success between) after which the operator is marked failed
    /// and the pipeline stops taking input, rather than dead-letter everything; 0: never.
    #[serde(default = "default_max_consecutive_failures")]
    pub max_consecutive_failures: u32,
}

fn default_max_consecutive_failures() -> u32 {
    100
}

fn default_memory_mib() -> u64 {
    256
}
fn default_deadline() -> Duration {
    Duration::from_secs(5)
}

/// The JetStream sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Subject results are published to (a stream must capture it).
    pub subject: String,
    /// Subject failed events are published to, with the error in headers.
    pub dead_letter: String,
    /// Subject for events that arrive after their windows closed (default: the dead-letter
    /// subject, with the reason in headers).
    #[serde(default)]
    pub late: Option<String>,
    /// Publishes awaiting their ack at once (kept below the client's limit).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
}

fn default_in_flight() -> usize {
    2048
}

/// A configuration error: where and what.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

/// A loaded pipeline: the parsed file plus where it came from.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub file: PathBuf,
    pub text: String,
    pub config: PipelineConfig,
}

impl Pipeline {
    /// A [`ConfigError`] at the byte offset `at` of the file (`None`: no line).
    pub fn error(&self, at: Option<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: at.map(|o| line_of(&self.text, o)),
            message: message.into(),
        }
    }

    /// The directory plugin paths are relative to.
    pub fn base_dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Absolute path of operator `i`'s plugin.
    pub fn plugin_path(&self, i: usize) -> PathBuf {
        self.base_dir()
            .join(self.config.operators[i].plugin.get_ref())
    }

    /// The durable consumer name.
    pub fn consumer_name(&self) -> String {
        self.config
            .source
            .consumer
            .clone()
            .unwrap_or_else(|| format!("weir-{}", self.config.name.get_ref()))
    }

    /// Operator `i`'s config as the JSON text given to `configure`.
    pub fn operator_config_json(&self, i: usize) -> String {
        config_json(&self.config.operators[i])
    }
}

/// An operator's `config` as the JSON text given to `configure` (`{}` when absent).
pub fn config_json(op: &OperatorConfig) -> String {
    match &op.config {
        None => "{}".into(),
        Some(v) => serde_json::to_string(v).unwrap_or_else(|_| "{}".into()),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads and checks the pipeline file at `file`.
pub fn load(file: &Path) -> Result<Pipeline, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_owned(),
        line: None,
        message: format!("cannot read the pipeline file: {e}"),
    })?;
    parse(file, text)
}

/// Parses and checks pipeline `text` (read from `file`).
pub fn parse(file: &Path, text: String) -> Result<Pipeline, ConfigError> {
    let syntax = |e: toml::de::Error| ConfigError {
        file: file.to_owned(),
        line: e.span().map(|s| line_of(&text, s.start)),
        message: e.message().trim().to_owned(),
    };
    let de = toml::Deserializer::parse(&text).map_err(syntax)?;
    let config: PipelineConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ConfigError {
            file: file.to_owned(),
            line: inner.span().map(|s| line_of(&text, s.start)),
            message: if path == "." {
                inner.message().trim().to_owned()
            } else {
                format!("field `{path}`: {}", inner.message().trim())
            },
        }
    })?;
    let p = Pipeline {
        file: file.to_owned(),
        text,
        config,
    };
    p.check()?;
    Ok(p)
}

#[cfg(test)]
mod tests;
