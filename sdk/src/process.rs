//! The keyed `process` world in Rust: the [`Process`] trait authors implement, with per-key
//! state (typed, JSON-encoded, kept by the host) and event-time and processing-time timers
//! through [`Keyed`].

use serde::{Serialize, de::DeserializeOwned};

use crate::bindings_process::weir::operator::keyed;
use crate::bindings_process::weir::operator::types::{Batch, EventError};
use crate::event::{Event, Output, batch_from, columns_of, each_event};
use crate::packed::BatchBuilder;
use crate::testing::MemoryKey;

/// The current key's state and timers. Everything here is kept by the host: it survives plugin
/// restarts and upgrades, and a call that fails leaves it as it was.
pub struct Keyed<'k> {
    key: &'k [u8],
    store: Store<'k>,
}

/// Where a key's state and timers live.
enum Store<'k> {
    /// In the host, reached through the WIT `keyed` imports.
    Host,
    /// In memory, for native unit tests ([`crate::testing::ProcessHarness`]), with the
    /// harness's clock and the domain of the timer being fired.
    Memory {
        state: &'k mut MemoryKey,
        now: i64,
        domain: TimeDomain,
    },
}

impl<'k> Keyed<'k> {
    /// The host's state and timers of `key`.
    fn host(key: &'k [u8]) -> Self {
        Keyed {
            key,
            store: Store::Host,
        }
    }

    /// The in-memory state and timers of `key`, at processing time `now`, during a call about
    /// a timer of `domain` (event time outside `on_timer`, as in the host).
    pub(crate) fn memory(
        key: &'k [u8],
        state: &'k mut MemoryKey,
        now: i64,
        domain: TimeDomain,
    ) -> Self {
        Keyed {
            key,
            store: Store::Memory { state, now, domain },
        }
    }

    /// The key as UTF-8 text (`None` when empty or not UTF-8).
    pub fn key(&self) -> Option<&str> {
        (!self.key.is_empty())
            .then(|| std::str::from_utf8(self.key).ok())
            .flatten()
    }

    /// The key's bytes.
    pub fn key_bytes(&self) -> &[u8] {
        self.key
    }

    /// State `name` of this key, decoded from JSON.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, String> {
        let bytes = match &self.store {
            Store::Host => keyed::get(name),
            Store::Memory { state: m, .. } => m.values.get(name).cloned(),
        };
        match bytes {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("state {name:?} cannot be decoded: {e}")),
        }
    }

    /// Sets state `name` of this key (JSON-encoded).
    pub fn set<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), String> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| format!("state {name:?} cannot be encoded: {e}"))?;
        match &mut self.store {
            Store::Host => keyed::set(name, &bytes),
            Store::Memory { state: m, .. } => {
                m.values.insert(name.to_owned(), bytes);
            }
        }
        Ok(())
    }

    /// Deletes state `name` of this key.
    pub fn delete(&mut self, name: &str) {
        match &mut self.store {
            Store::Host => keyed::delete(name),
            Store::Memory { state: m, .. } => {
                m.values.remove(name);
            }
        }
    }

    /// Calls `on_timer` for this key when the watermark reaches `time`. Registering the same
    /// time twice registers one timer.
    pub fn register_event_timer(&mut self, time: i64) {
        match &mut self.store {
            Store::Host => keyed::register_event_timer(time),
            Store::Memory { state: m, .. } => {
                m.event_timers.insert(time);
            }
        }
    }

    /// Cancels this key's event-time timer at `time`.
    pub fn delete_event_timer(&mut self, time: i64) {
        match &mut self.store {
            Store::Host => keyed::delete_event_timer(time),
            Store::Memory { state: m, .. } => {
                m.event_timers.remove(&time);
            }
        }
    }

    /// Calls `on_timer` for this key when the host's wall clock reaches `time` (ms since the
    /// Unix epoch; see [`Keyed::processing_time`]).
    pub fn register_processing_timer(&mut self, time: i64) {
        match &mut self.store {
            Store::Host => keyed::register_processing_timer(time),
            Store::Memory { state: m, .. } => {
                m.processing_timers.insert(time);
            }
        }
    }

    /// Cancels this key's processing-time timer at `time`.
    pub fn delete_processing_timer(&mut self, time: i64) {
        match &mut self.store {
            Store::Host => keyed::delete_processing_timer(time),
            Store::Memory { state: m, .. } => {
                m.processing_timers.remove(&time);
            }
        }
    }

    /// The host's processing time now (ms since the Unix epoch; never moves back).
    pub fn processing_time(&self) -> i64 {
        match &self.store {
            Store::Host => keyed::current_processing_time(),
            Store::Memory { now, .. } => *now,
        }
    }

    /// In `on_timer`: which kind of timer fired.
    pub fn timer_domain(&self) -> TimeDomain {
        match &self.store {
            Store::Host => match keyed::timer_domain() {
                keyed::TimeDomain::EventTime => TimeDomain::Event,
                keyed::TimeDomain::ProcessingTime => TimeDomain::Processing,
            },
            Store::Memory { domain, .. } => *domain,
        }
    }
}

/// The clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDomain {
    /// Fired when the watermark reached the timer's time.
    Event,
    /// Fired when the host's wall clock reached it.
    Processing,
}

/// Where `on_timer` emits events: the key is the timer's, the time the timer's.
pub struct TimerOutput<'k> {
    key: &'k [u8],
    time: i64,
    batch: BatchBuilder,
}

impl TimerOutput<'_> {
    /// Emits `payload`.
    pub fn bytes(&mut self, payload: &[u8]) {
        self.batch.push(self.key, self.time, &[], payload, 0);
    }

    /// Emits `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), String> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| format!("cannot serialize output as JSON: {e}"))?;
        self.bytes(&bytes);
        Ok(())
    }
}

/// A keyed process function.
pub trait Process: Sized + 'static {
    /// Builds the operator from its JSON configuration (`{}` when the pipeline gives none).
    fn configure(config: &str) -> Result<Self, String>;

    /// Handles one event of the key; emits 0..n events. An error dead-letters the event (and
    /// undoes the state changes of the call).
    fn on_event(
        &mut self,
        keyed: &mut Keyed<'_>,
        event: &Event<'_>,
        out: &mut Output<'_>,
    ) -> Result<(), String>;

    /// A timer of the key registered for `time` fired ([`Keyed::timer_domain`] tells whether
    /// an event-time or a processing-time one).
    fn on_timer(
        &mut self,
        keyed: &mut Keyed<'_>,
        time: i64,
        out: &mut TimerOutput<'_>,
    ) -> Result<(), String> {
        let _ = (keyed, time, out);
        Ok(())
    }
}

fn state<T>(state: &mut Option<T>) -> Result<&mut T, String> {
    state
        .as_mut()
        .ok_or_else(|| "called before a successful `configure`".to_owned())
}

#[doc(hidden)]
pub fn configure<T: Process>(state: &mut Option<T>, config: &str) -> Result<(), String> {
    *state = Some(T::configure(config)?);
    Ok(())
}

#[doc(hidden)]
pub fn on_events<T: Process>(
    s: &mut Option<T>,
    key: Vec<u8>,
    input: Batch,
) -> Result<Batch, EventError> {
    on_events_with(s, Keyed::host(&key), input)
}

/// `on-events` over the state and timers `keyed` (the host's, or a test's).
pub(crate) fn on_events_with<T: Process>(
    s: &mut Option<T>,
    mut keyed: Keyed<'_>,
    input: Batch,
) -> Result<Batch, EventError> {
    let op = state(s).map_err(|message| EventError { index: 0, message })?;
    let out = each_event(columns_of!(input), |event, out| {
        op.on_event(&mut keyed, event, out)
    })
    .map_err(|(index, message)| EventError { index, message })?;
    Ok(batch_from!(Batch, out))
}

#[doc(hidden)]
pub fn on_timer<T: Process>(s: &mut Option<T>, key: Vec<u8>, time: i64) -> Result<Batch, String> {
    on_timer_with(s, Keyed::host(&key), time)
}

/// `on-timer` over the state and timers `keyed` (the host's, or a test's).
pub(crate) fn on_timer_with<T: Process>(
    s: &mut Option<T>,
    mut keyed: Keyed<'_>,
    time: i64,
) -> Result<Batch, String> {
    let op = state(s)?;
    let mut out = TimerOutput {
        key: keyed.key,
        time,
        batch: BatchBuilder::new(),
    };
    op.on_timer(&mut keyed, time, &mut out)?;
    Ok(batch_from!(Batch, out.batch))
}

/// Exports a [`Process`] implementation as the plugin's `process` world (a plugin exports one
/// world, once).
///
/// ```
/// use weir_sdk::{Event, Keyed, Output, Process};
///
/// struct Dedup;
/// impl Process for Dedup {
///     fn configure(_config: &str) -> Result<Self, String> {
///         Ok(Dedup)
///     }
///     fn on_event(
///         &mut self,
///         keyed: &mut Keyed<'_>,
///         _event: &Event<'_>,
///         out: &mut Output<'_>,
///     ) -> Result<(), String> {
///         if keyed.get::<bool>("seen")?.is_none() {
///             keyed.set("seen", &true)?;
///             out.forward();
///         }
///         Ok(())
///     }
/// }
/// weir_sdk::export_process!(Dedup);
/// ```
///
/// A type that does not implement [`Process`] is refused when the plugin compiles:
///
/// ```compile_fail,E0277
/// struct NotAProcess;
/// weir_sdk::export_process!(NotAProcess);
/// ```
#[macro_export]
macro_rules! export_process {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings_process::weir::operator::types as __t;
            struct __WeirGlue;
            ::std::thread_local! {
                static __WEIR_STATE: ::core::cell::RefCell<::core::option::Option<$t>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            impl $crate::bindings_process::Guest for __WeirGlue {
                fn configure(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                    __WEIR_STATE.with(|s| $crate::__private::process::configure::<$t>(&mut s.borrow_mut(), &config))
                }
                fn on_events(
                    key: ::std::vec::Vec<u8>,
                    input: __t::Batch,
                ) -> ::core::result::Result<__t::Batch, __t::EventError> {
                    __WEIR_STATE.with(|s| $crate::__private::process::on_events::<$t>(&mut s.borrow_mut(), key, input))
                }
                fn on_timer(key: ::std::vec::Vec<u8>, time: i64) -> ::core::result::Result<__t::Batch, ::std::string::String> {
                    __WEIR_STATE.with(|s| $crate::__private::process::on_timer::<$t>(&mut s.borrow_mut(), key, time))
                }
            }
            $crate::bindings_process::__export_process_world!(__WeirGlue with_types_in $crate::bindings_process);
        };
    };
}
