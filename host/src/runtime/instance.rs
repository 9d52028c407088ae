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
use super::deadline::{self, Elapsed};
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

/// The generated bindings of one world. Calls are made on a fiber (`call_async`), driven by
/// [`deadline::run`], so that a plugin blocked in a host call still ends at its deadline.
pub trait WorldBindings: Sized + Send + Sync {
    fn instantiate<'a>(
        plugin: &'a Plugin,
        store: &'a mut Store<StoreState>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + 'a;
    fn call_configure<'a>(
        &'a self,
        store: &'a mut Store<StoreState>,
        config: &'a str,
    ) -> impl Future<Output = wasmtime::Result<Result<(), String>>> + 'a;
}

/// Implements [`WorldBindings`] for the bindings `$world` of `Pre::$variant`.
macro_rules! world_bindings {
    ($world:ident, $variant:ident, $name:literal) => {
        impl WorldBindings for $world {
            async fn instantiate(
                plugin: &Plugin,
                store: &mut Store<StoreState>,
            ) -> wasmtime::Result<Self> {
                match &plugin.pre {
                    Pre::$variant(pre) => pre.instantiate_async(store).await,
                    _ => Err(wasmtime::Error::msg(concat!(
                        "plugin does not implement `",
                        $name,
                        "`"
                    ))),
                }
            }
            async fn call_configure(
                &self,
                store: &mut Store<StoreState>,
                config: &str,
            ) -> wasmtime::Result<Result<(), String>> {
                $world::call_configure(self, store, config).await
            }
        }
    };
}

world_bindings!(Transform, Transform, "transform");
world_bindings!(Aggregate, Aggregate, "aggregate");
world_bindings!(Process, Process, "process");

/// Calls into the plugin instance `$inst` with a fresh deadline: `$call` is an expression
/// over the bindings `$b` and the store `$s` that makes the (async) call. On a trap, or a
/// deadline passed in a host call, the instance is replaced before returning
/// [`CallError::Trap`].
macro_rules! call {
    ($inst:expr, $runtime:expr, |$b:ident, $s:ident| $call:expr) => {{
        let inst = &mut *$inst;
        inst.arm();
        let deadline = inst.plugin.limits.deadline;
        let ($b, $s) = (&inst.bindings, &mut inst.store);
        let out = deadline::run(deadline, $call);
        inst.settle($runtime, out)
    }};
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
        let limits = &plugin.limits;
        let out = deadline::run(limits.deadline, B::instantiate(plugin, &mut store));
        let bindings = outcome(out, &store, limits)
            .map_err(|e| anyhow::anyhow!("instantiating plugin {}: {e}", plugin.path.display()))?;
        store.set_epoch_deadline(Runtime::deadline_ticks(limits.deadline));
        let out = deadline::run(limits.deadline, bindings.call_configure(&mut store, config));
        match outcome(out, &store, limits) {
            Ok(Ok(())) => Ok((store, bindings)),
            Ok(Err(msg)) => anyhow::bail!(
                "plugin {} refused its config: {}",
                plugin.path.display(),
                printable(secrets, &msg)
            ),
            Err(e) => anyhow::bail!("plugin {} trapped in configure: {e}", plugin.path.display()),
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

    /// Gives the next call a fresh deadline.
    fn arm(&mut self) {
        self.store
            .set_epoch_deadline(Runtime::deadline_ticks(self.plugin.limits.deadline));
        self.store.data_mut().memory.hit = false;
    }

    /// The outcome of a call made by [`call!`]: on a trap or a deadline, the instance is
    /// replaced before returning [`CallError::Trap`].
    fn settle<R>(
        &mut self,
        runtime: &Runtime,
        out: Result<wasmtime::Result<R>, Elapsed>,
    ) -> Result<R, CallError> {
        match outcome(out, &self.store, &self.plugin.limits) {
            Ok(r) => Ok(r),
            Err(message) => {
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
        match call!(self, runtime, |b, s| b.call_process(s, input))? {
            Ok(batch) => Ok(batch),
            Err(e) => Err(self.item_error(e.index, &e.message)),
        }
    }
}

impl Instance<Aggregate> {
    /// A new, empty accumulator.
    pub fn create(&mut self, runtime: &Runtime) -> Result<Vec<u8>, CallError> {
        call!(self, runtime, |b, s| b.call_create(s))?.map_err(|m| self.failed(&m))
    }

    /// Adds the events of `input` to `accumulators` (see `add` in the WIT).
    pub fn add(
        &mut self,
        runtime: &Runtime,
        accumulators: &Accumulators,
        targets: &[u8],
        input: &Batch,
    ) -> Result<Accumulators, CallError> {
        match call!(self, runtime, |b, s| b.call_add(
            s,
            accumulators,
            targets,
            input
        ))? {
            Ok(accs) => Ok(accs),
            Err(e) => Err(self.item_error(e.index, &e.message)),
        }
    }

    /// Merges groups of accumulators, one result per group (see `merge` in the WIT). A group
    /// the plugin could not merge comes back as [`CallError::Event`] with its index.
    pub fn merge(
        &mut self,
        runtime: &Runtime,
        accumulators: &Accumulators,
        groups: &[u8],
    ) -> Result<Accumulators, CallError> {
        match call!(self, runtime, |b, s| b.call_merge(s, accumulators, groups))? {
            Ok(merged) => Ok(merged),
            Err(e) => Err(self.item_error(e.index, &e.message)),
        }
    }

    /// The results of windows that fire together (see `finish` in the WIT). A window the
    /// plugin could not finish comes back as [`CallError::Event`] with its index.
    pub fn finish(
        &mut self,
        runtime: &Runtime,
        windows: &Windows,
        accumulators: &Accumulators,
    ) -> Result<Results, CallError> {
        match call!(self, runtime, |b, s| b.call_finish(
            s,
            windows,
            accumulators
        ))? {
            Ok(results) => Ok(results),
            Err(e) => Err(self.item_error(e.index, &e.message)),
        }
    }

    /// The version of the plugin's accumulator encoding.
    pub fn state_version(&mut self, runtime: &Runtime) -> Result<u32, CallError> {
        call!(self, runtime, |b, s| b.call_state_version(s))
    }

    /// Converts an accumulator of state version `from` into the plugin's current encoding.
    pub fn migrate(
        &mut self,
        runtime: &Runtime,
        from: u32,
        acc: &[u8],
    ) -> Result<Vec<u8>, CallError> {
        call!(self, runtime, |b, s| b.call_migrate(s, from, acc))?.map_err(|m| self.failed(&m))
    }
}

/// A started, configured instance of one of the three worlds (a version being hot-loaded).
pub enum AnyInstance {
    Transform(TransformInstance),
    Aggregate(AggregateInstance),
    Process(ProcessInstance),
}

impl AnyInstance {
    pub fn plugin(&self) -> &Arc<Plugin> {
        match self {
            AnyInstance::Transform(i) => i.plugin(),
            AnyInstance::Aggregate(i) => i.plugin(),
            AnyInstance::Process(i) => i.plugin(),
        }
    }

    /// The world the instance implements.
    pub fn world(&self) -> super::World {
        match self {
            AnyInstance::Transform(_) => super::World::Transform,
            AnyInstance::Aggregate(_) => super::World::Aggregate,
            AnyInstance::Process(_) => super::World::Process,
        }
    }
}

/// `text` from a plugin, fit to print anywhere: `secrets` scrubbed, control characters
/// escaped, cut at [`MAX_LINE_BYTES`].
fn printable(secrets: &Secrets, text: &str) -> String {
    let text = secrets.scrub(text);
    cut(&escape_control(&text), MAX_LINE_BYTES).into_owned()
}

/// The result of a call driven by [`deadline::run`], or a sentence saying why there is none.
fn outcome<R>(
    out: Result<wasmtime::Result<R>, Elapsed>,
    store: &Store<StoreState>,
    limits: &Limits,
) -> Result<R, String> {
    match out {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(describe_trap(&e, store, limits)),
        Err(Elapsed) => Err(format!(
            "deadline exceeded: the call waited in a host call (a sleep or poll) longer than {} \
             and was stopped",
            humantime::format_duration(limits.deadline)
        )),
    }
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
        match call!(self, runtime, |b, s| b.call_on_events(s, key, input))? {
            Ok(batch) => Ok(batch),
            Err(e) => Err(self.item_error(e.index, &e.message)),
        }
    }

    /// Takes over from `old`, the version this one replaces: the keys' state and timers
    /// belong to the host and stay.
    pub fn take_over(&mut self, old: &mut Self) {
        self.store.data_mut().keyed = std::mem::take(&mut old.store.data_mut().keyed);
    }

    /// Fires the event-time timer of `key` at `time`.
    pub fn on_timer(
        &mut self,
        runtime: &Runtime,
        key: &[u8],
        time: i64,
    ) -> Result<Batch, CallError> {
        self.store.data_mut().keyed.current = key.to_vec();
        call!(self, runtime, |b, s| b.call_on_timer(s, key, time))?.map_err(|m| self.failed(&m))
    }
}
