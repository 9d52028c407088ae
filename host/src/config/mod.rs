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
use crate::telemetry::redact::{Secret, redact_url};

mod check;
mod checkpoint;
mod join;
mod lines;
pub mod names;
mod window;
pub use checkpoint::{CheckpointConfig, Guarantee};
pub use join::{JoinConfig, JoinType, JoinWindow};
pub use names::valid_name;
pub use window::{MAX_WINDOWS_PER_EVENT, WindowConfig, WindowKind, WindowTime};

/// A whole pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The pipeline's name: part of consumer names and message ids; `[A-Za-z0-9_-]+`.
    pub name: Spanned<String>,
    #[serde(default)]
    pub nats: NatsConfig,
    /// The pipeline's one input (`[source]`); with `[[sources]]`, a copy of the first of them.
    #[serde(default)]
    pub source: SourceConfig,
    /// Several inputs (`[[sources]]`, each named), in place of `[source]`.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// Transform operators, run in order before the window (if any).
    #[serde(default)]
    pub operators: Vec<OperatorConfig>,
    /// A keyed event-time window with an aggregate plugin, after the operators.
    #[serde(default)]
    pub window: Option<WindowConfig>,
    /// A keyed process function with per-key state and timers, after the operators.
    #[serde(default)]
    pub process: Option<ProcessConfig>,
    /// A join of two inputs (`[[sources]]`), after the operators.
    #[serde(default)]
    pub join: Option<JoinConfig>,
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

/// `[nats]`: how to reach NATS and prove who weir is. Each key is overridden by its flag
/// (`--nats-url`, `--nats-creds`, …) and its environment variable (`WEIR_NATS_URL`,
/// `WEIR_NATS_CREDS`, …); paths are relative to the pipeline file's folder. What the keys
/// resolve to, and which combinations are refused, is [`crate::connect`]'s business.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The server URL(s), comma-separated (default `nats://127.0.0.1:4222`); may hold
    /// `user:password@` or `token@`.
    #[serde(default)]
    pub url: Option<String>,
    /// A `.creds` file: a user JWT and its NKey seed (decentralised auth).
    #[serde(default)]
    pub creds: Option<PathBuf>,
    /// An NKey seed file, or the seed itself (`SU…`).
    #[serde(default)]
    pub nkey: Option<Secret>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub tls: NatsTlsConfig,
}

/// The URL without its credentials; the secrets redacted.
impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("creds", &self.creds)
            .field("nkey", &self.nkey)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("token", &self.token)
            .field("tls", &self.tls)
            .finish()
    }
}

/// `[nats.tls]` (or `tls = { … }` in `[nats]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTlsConfig {
    /// CA certificate file(s) (PEM) the server's certificate must chain to, in place of the
    /// system's trust store: one path or a list.
    #[serde(default, deserialize_with = "one_or_many_paths")]
    pub ca: Vec<PathBuf>,
    /// Client certificate (PEM) for servers that verify clients (mutual TLS); with `key`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Refuse to connect without TLS (implied by `ca`, `cert` and a `tls://` URL).
    #[serde(default)]
    pub required: bool,
}

/// A path or a list of paths.
fn one_or_many_paths<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a path or a list of paths")]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(ps) => ps,
    })
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
    /// A JSON field of the payload (dotted path): a string is the key as it is, a number or
    /// boolean its JSON text; a missing or `null` field means no key; a payload that is not
    /// JSON, or an object or array there, is dead-lettered.
    Field(String),
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

impl PipelineConfig {
    /// Whether the pipeline keeps state: a `[window]`, `[process]` or `[join]` stage.
    pub fn stateful(&self) -> bool {
        self.window.is_some() || self.process.is_some() || self.join.is_some()
    }

    /// What the stateful stage's state belongs to, as checkpoints record it (a restore
    /// refuses another's): the window, or the join.
    pub fn state_description(&self) -> Option<String> {
        match (&self.window, &self.join) {
            (Some(w), _) => Some(w.description()),
            (None, Some(j)) => Some(j.description()),
            (None, None) => None,
        }
    }

    /// The pipeline's inputs: the `[source]`, or every `[[sources]]` entry, in file order.
    pub fn inputs(&self) -> &[SourceConfig] {
        if self.sources.is_empty() {
            std::slice::from_ref(&self.source)
        } else {
            &self.sources
        }
    }
}

/// The JetStream source: `[source]`, or one of several `[[sources]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The input's name (`[[sources]]` only): events carry it in the `Weir-Input` header,
    /// joins pick their sides by it; `[A-Za-z0-9_-]+`.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
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

/// An absent `[source]` (the pipeline has `[[sources]]`, or no input, which the checks
/// refuse): the defaults of every field, and no stream.
impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            name: None,
            stream: String::new(),
            subjects: Vec::new(),
            consumer: None,
            batch_size: default_batch_size(),
            max_wait: default_max_wait(),
            ack_wait: default_ack_wait(),
            key: default_key(),
            time: default_time(),
            watermarks: WatermarkConfig::default(),
        }
    }
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
    /// How a hot-loaded new version is watched (transform operators): without it a new
    /// version takes over at once; with it, events it fails on are processed by the previous
    /// version and too many failures roll it back.
    #[serde(default)]
    pub rollout: Option<crate::operator::canary::Rollout>,
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

/// A loaded pipeline: the parsed file plus where it came from. Its `Debug` leaves out the
/// file's text, which may hold secrets (`[nats]`).
#[derive(Clone)]
pub struct Pipeline {
    pub file: PathBuf,
    pub text: String,
    pub config: PipelineConfig,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("file", &self.file)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
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

    /// The durable consumer name of the (first) input.
    pub fn consumer_name(&self) -> String {
        self.consumer_name_of(0)
    }

    /// The durable consumer name of input `i`: its `consumer`, or `weir-<pipeline>` for a
    /// `[source]` and `weir-<pipeline>-<input>` for each of `[[sources]]`.
    pub fn consumer_name_of(&self, i: usize) -> String {
        let c = &self.config;
        let Some(input) = c.inputs().get(i) else {
            return format!("weir-{}", c.name.get_ref());
        };
        match (&input.consumer, &input.name) {
            (Some(consumer), _) => consumer.clone(),
            (None, Some(name)) if !c.sources.is_empty() => {
                format!("weir-{}-{}", c.name.get_ref(), name.get_ref())
            }
            (None, _) => format!("weir-{}", c.name.get_ref()),
        }
    }

    /// The name of input `i` as events carry it (`Weir-Input`): `None` for a pipeline with one
    /// input.
    pub fn input_name(&self, i: usize) -> Option<&str> {
        if self.config.sources.len() < 2 {
            return None;
        }
        self.config
            .sources
            .get(i)?
            .name
            .as_ref()
            .map(|n| n.get_ref().as_str())
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
    let mut p = Pipeline {
        file: file.to_owned(),
        text,
        config,
    };
    if let Some(first) = p.config.sources.first() {
        if !p.config.source.stream.is_empty() {
            return Err(p.field_error(
                "source",
                "`[source]` and `[[sources]]` cannot both be given: list every input as \
                 `[[sources]]`",
            ));
        }
        p.config.source = first.clone();
    }
    p.check()?;
    Ok(p)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_inputs;
