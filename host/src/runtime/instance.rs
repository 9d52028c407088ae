//! Live plugin instances: a store (sandbox state), the generated bindings of the plugin's
//! world, and the config the plugin was initialised with, so that a trapped instance can be
//! replaced by a fresh one transparently.
//!
//! Text a plugin returns (error messages of `configure` and of calls) is made fit to print
//! before it goes anywhere — logs, errors on the terminal, dead-letter headers: the config's
//! secrets scrubbed ([`Secrets`]), control characters escaped, cut at
//! [`MAX_LINE_BYTES`](super::plugin_log::MAX_LINE_BYTES). The config itself is never part of
//! an error (it may hold keys); the caller names the operator and its `config` field.

use std::sync::Arc;

use wasmtime::{Store, Trap};

use super::Runtime;
use super::bindings::Transform;
use super::bindings::weir::operator::types::{Accumulators, Batch, Results, Windows};
use super::bindings_aggregate::Aggregate;
use super::bindings_process::Process;
use super::plugin::{Plugin, Pre};
use super::plugin_log::{MAX_LINE_BYTES, PluginLog, cut};
use super::sandbox::{Limits, StoreState};
use crate::operator::isolate::CallFailure;
use crate::telemetry::escape::escape_control;
use crate::telemetry::redact::Secrets;

/// Why a call into a plugin did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The plugin reported that item `index` of the input failed (an error value): an event
    /// of a batch, a window of `finish`.
    #[error("event {index} failed: {message}")]
    Event { index: u32, message: String },
    /// The plugin returned an error value not tied to one event.
    #[error("{0}")]
    Failed(String),
    /// The plugin trapped (panic, deadline, memory cap, stack overflow, ...). The instance has
    /// been replaced; which event caused it is unknown.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin trapped and a fresh instance could not be started: it cannot be called.
    #[error("plugin trapped and cannot be restarted: {0}")]
    Broken(String),
}

impl CallError {
    /// This error as a failure of a call over `items` items: an event index out of range is
    /// a failure of the whole call.
    pub fn into_failure(self, items: usize) -> CallFailure {
        match self {
            CallError::Event { index, message } if (index as usize) < items => CallFailure::Item {
                index: index as usize,
                message,
            },
            CallError::Event { index, message } => CallFailure::Whole(format!(
                "plugin reported an error for event {index} of a batch of {items}: {message}"
            )),
            CallError::Failed(message) => CallFailure::Whole(message),
            CallError::Trap(message) => CallFailure::Whole(format!("plugin trapped: {message}")),
            e @ CallError::Broken(_) => CallFailure::Fatal(e.to_string()),
        }
    }
}

/// The generated bindings of one world.
pub trait WorldBindings: Sized {
    fn instantiate(plugin: &Plugin, store: &mut Store<StoreState>) -> wasmtime::Result<Self>;
    fn call_configure(
        &self,
        store: &mut Store<StoreState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>>;
}

impl WorldBindings for Transform {
    fn instantiate(plugin: &Plugin, store: &mut Store<StoreState>) -> wasmtime::Result<Self> {
        match &plugin.pre {
            Pre::Transform(pre) => pre.instantiate(store),
            _ => Err(wasmtime::Error::msg(
                "plugin does not implement `transform`",
            )),
        }
    }
    fn call_configure(
        &self,
        store: &mut Store<StoreState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        Transform::call_configure(self, store, config)
    }
}

impl WorldBindings for Aggregate {
    fn instantiate(plugin: &Plugin, store: &mut Store<StoreState>) -> wasmtime::Result<Self> {
        match &plugin.pre {
            Pre::Aggregate(pre) => pre.instantiate(store),
            _ => Err(wasmtime::Error::msg(
                "plugin does not implement `aggregate`",
            )),
        }
    }
    fn call_configure(
        &self,
        store: &mut Store<StoreState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        Aggregate::call_configure(self, store, config)
    }
}

impl WorldBindings for Process {
    fn instantiate(plugin: &Plugin, store: &mut Store<StoreState>) -> wasmtime::Result<Self> {
        match &plugin.pre {
            Pre::Process(pre) => pre.instantiate(store),
            _ => Err(wasmtime::Error::msg("plugin does not implement `process`")),
        }
    }
    fn call_configure(
        &self,
        store: &mut Store<StoreState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        Process::call_configure(self, store, config)
    }
}

/// An initialised plugin instance of world `B`.
pub struct Instance<B> {
    plugin: Arc<Plugin>,
    config: String,
    /// The secrets of `config`, scrubbed from the plugin's log lines and error messages.
    secrets: Arc<Secrets>,
    store: Store<StoreState>,
    bindings: B,
    /// Instances replaced after a trap (or upgrade), for metrics and tests.
    pub restarts: u64,
}

/// An instance of a `transform` plugin.
pub type TransformInstance = Instance<Transform>;
/// An instance of an `aggregate` plugin.
pub type AggregateInstance = Instance<Aggregate>;
/// An instance of a keyed `process` plugin; it holds the keys' state (kept across restarts).
pub type ProcessInstance = Instance<Process>;

impl<B: WorldBindings> Instance<B> {
    /// Instantiates `plugin` and calls its `configure` with `config` (JSON).
    pub fn new(runtime: &Runtime, plugin: Arc<Plugin>, config: &str) -> anyhow::Result<Self> {
        let secrets = Arc::new(Secrets::of_config(config));
        let (store, bindings) = Self::start(runtime, &plugin, config, &secrets)?;
        Ok(Instance {
            plugin,
            config: config.to_owned(),
            secrets,
            store,
            bindings,
            restarts: 0,
        })
    }

    fn start(
        runtime: &Runtime,
        plugin: &Arc<Plugin>,
        config: &str,
        secrets: &Arc<Secrets>,
    ) -> anyhow::Result<(Store<StoreState>, B)> {
        let mut state = StoreState::new(&plugin.label(), &plugin.limits, &plugin.grants);
        state.log = PluginLog::new(&plugin.label(), secrets.clone());
        let mut store = Store::new(runtime.engine(), state);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(Runtime::deadline_ticks(plugin.limits.deadline));
        store.epoch_deadline_trap();
        let bindings = B::instantiate(plugin, &mut store).map_err(|e| {
            anyhow::anyhow!(
                "instantiating plugin {}: {}",
                plugin.path.display(),
                describe_trap(&e, &store, &plugin.limits)
            )
        })?;
        store.set_epoch_deadline(Runtime::deadline_ticks(plugin.limits.deadline));
        match bindings.call_configure(&mut store, config) {
            Ok(Ok(())) => Ok((store, bindings)),
            Ok(Err(msg)) => anyhow::bail!(
                "plugin {} refused its config: {}",
                plugin.path.display(),
                printable(secrets, &msg)
            ),
            Err(e) => anyhow::bail!(
                "plugin {} trapped in configure: {}",
                plugin.path.display(),
                describe_trap(&e, &store, &plugin.limits)
            ),
        }
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The plugin's report that item `index` failed.
    fn item_error(&self, index: u32, message: &str) -> CallError {
        CallError::Event {
            index,
            message: printable(&self.secrets, message),
        }
    }

    /// The plugin's report that a call failed.
    fn failed(&self, message: &str) -> CallError {
        CallError::Failed(printable(&self.secrets, message))
    }

    /// Calls into the plugin with a fresh deadline. On a trap the instance is replaced before
    /// returning [`CallError::Trap`].
    fn call<R>(
        &mut self,
        runtime: &Runtime,
        f: impl FnOnce(&B, &mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.store
            .set_epoch_deadline(Runtime::deadline_ticks(self.plugin.limits.deadline));
        self.store.data_mut().memory.hit = false;
        match f(&self.bindings, &mut self.store) {
            Ok(r) => Ok(r),
            Err(e) => {
                let message = describe_trap(&e, &self.store, &self.plugin.limits);
                tracing::warn!(plugin = %self.plugin.label(), error = %message, "plugin trapped; replacing its instance");
                self.replace(runtime, None).map_err(|e| {
                    CallError::Broken(format!("{message}; restarting it failed: {e:#}"))
                })?;
                Err(CallError::Trap(message))
            }
        }
    }

    /// Replaces the instance by a fresh one, of `plugin` when given (a new version) or of the
    /// current one. The old instance is kept if the new one fails to start.
    pub fn replace(
        &mut self,
        runtime: &Runtime,
        plugin: Option<Arc<Plugin>>,
    ) -> anyhow::Result<()> {
        let restart = plugin.is_none();
        let plugin = plugin.unwrap_or_else(|| self.plugin.clone());
        let (mut store, bindings) = Self::start(runtime, &plugin, &self.config, &self.secrets)?;
        // Keyed state belongs to the host, not to the instance: carry it over.
        let (new, old) = (store.data_mut(), self.store.data_mut());
        new.keyed = std::mem::take(&mut old.keyed);
        if restart {
            // A plugin cannot refill its log's rate by trapping.
            std::mem::swap(&mut new.log, &mut old.log);
        }
        self.store = store;
        self.bindings = bindings;
        self.plugin = plugin;
        self.restarts += 1;
        Ok(())
    }
}

impl Instance<Transform> {
    /// Transforms `input`. On a trap the instance is replaced before returning.
    pub fn process(&mut self, runtime: &Runtime, input: &Batch) -> Result<Batch, CallError> {
        match self.call(runtime, |b, s| b.call_process(s, input))? {
            Ok(batch) => Ok(batch),
            Err(e) => Err(self.item_error(e.index, &e.message)),
        }
    }
}

impl Instance<Aggregate> {
    /// A new, empty accumulator.
    pub fn create(&mut self, runtime: &Runtime) -> Result<Vec<u8>, CallError> {
        self.call(runtime, |b, s| b.call_create(s))?
            .map_err(|m| self.failed(&m))
    }

    /// Adds the events of `input` to `accumulators` (see `add` in the WIT).
    pub fn add(
        &mut self,
        runtime: &Runtime,
        accumulators: &Accumulators,
        targets: &[u8],
        input: &Batch,
    ) -> Result<Accumulators, CallError> {
        match self.call(runtime, |b, s| b.call_add(s, accumulators, targets, input))? {
            Ok(accs) => Ok(accs),
            Err(e) => Err(self.item_error(e.index, &e.message)),
        }
    }

    /// Merges two accumulators.
    pub fn merge(&mut self, runtime: &Runtime, a: &[u8], b: &[u8]) -> Result<Vec<u8>, CallError> {
        self.call(runtime, |bind, s| bind.call_merge(s, a, b))?
            .map_err(|m| self.failed(&m))
    }

    /// The results of windows that fire together (see `finish` in the WIT). A window the
    /// plugin could not finish comes back as [`CallError::Event`] with its index.
    pub fn finish(
        &mut self,
        runtime: &Runtime,
        windows: &Windows,
        accumulators: &Accumulators,
    ) -> Result<Results, CallError> {
        match self.call(runtime, |b, s| b.call_finish(s, windows, accumulators))? {
            Ok(results) => Ok(results),
            Err(e) => Err(self.item_error(e.index, &e.message)),
        }
    }

    /// The version of the plugin's accumulator encoding.
    pub fn state_version(&mut self, runtime: &Runtime) -> Result<u32, CallError> {
        self.call(runtime, |b, s| b.call_state_version(s))
    }

    /// Converts an accumulator of state version `from` into the plugin's current encoding.
    pub fn migrate(
        &mut self,
        runtime: &Runtime,
        from: u32,
        acc: &[u8],
    ) -> Result<Vec<u8>, CallError> {
        self.call(runtime, |b, s| b.call_migrate(s, from, acc))?
            .map_err(|m| self.failed(&m))
    }
}

/// `text` from a plugin, fit to print anywhere: `secrets` scrubbed, control characters
/// escaped, cut at [`MAX_LINE_BYTES`].
fn printable(secrets: &Secrets, text: &str) -> String {
    let text = secrets.scrub(text);
    cut(&escape_control(&text), MAX_LINE_BYTES).into_owned()
}

/// Turns a wasmtime error into a sentence naming the limit that was hit, if any.
fn describe_trap(e: &wasmtime::Error, store: &Store<StoreState>, limits: &Limits) -> String {
    let memory = &store.data().memory;
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!(
            "deadline exceeded: the call ran longer than {} and was stopped",
            humantime::format_duration(limits.deadline)
        ),
        Some(Trap::StackOverflow) => {
            "stack overflow: the call exhausted its stack and was stopped".into()
        }
        _ if memory.hit => format!(
            "memory cap exceeded: the plugin tried to grow its memory beyond {} MiB and was stopped ({})",
            memory.cap >> 20,
            first_line(e)
        ),
        _ => first_line(e),
    }
}

/// The error and its causes on one line, escaped (wasm backtraces are logged at debug level).
fn first_line(e: &wasmtime::Error) -> String {
    tracing::debug!(error = ?e, "plugin trap details");
    e.chain()
        .map(|c| {
            let text = c.to_string();
            escape_control(text.lines().next().unwrap_or_default()).into_owned()
        })
        .collect::<Vec<_>>()
        .join(": ")
}

impl Instance<Process> {
    /// The keys' state and timers.
    pub fn keyed(&mut self) -> &mut crate::state::KeyedState {
        &mut self.store.data_mut().keyed
    }

    /// Handles events of `key`.
    pub fn on_events(
        &mut self,
        runtime: &Runtime,
        key: &[u8],
        input: &Batch,
    ) -> Result<Batch, CallError> {
        self.store.data_mut().keyed.current = key.to_vec();
        match self.call(runtime, |b, s| b.call_on_events(s, key, input))? {
            Ok(batch) => Ok(batch),
            Err(e) => Err(self.item_error(e.index, &e.message)),
        }
    }

    /// Fires the event-time timer of `key` at `time`.
    pub fn on_timer(
        &mut self,
        runtime: &Runtime,
        key: &[u8],
        time: i64,
    ) -> Result<Batch, CallError> {
        self.store.data_mut().keyed.current = key.to_vec();
        self.call(runtime, |b, s| b.call_on_timer(s, key, time))?
            .map_err(|m| self.failed(&m))
    }
}
