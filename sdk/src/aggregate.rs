//! The `aggregate` world in Rust: the [`Aggregate`] trait authors implement (typed accumulators
//! via serde), and the glue between the generated bindings and it.
//!
//! The host owns the accumulators (bytes) and stores them per (key, window); this SDK encodes
//! them with `postcard` — compact, fast, and with a stable, documented wire format, so
//! accumulators survive plugin upgrades that keep the type. A batch call decodes each touched
//! accumulator once, applies its events, and encodes it once; a `finish` call handles every
//! window that fires at once, serializing each result straight into the packed payloads.

use serde::{Serialize, de::DeserializeOwned};

use crate::bindings_aggregate::weir::operator::types::{
    Accumulators, Batch, EventError, Results, WindowError, Windows,
};
use crate::event::{Event, columns_of};
use crate::packed::{BatchView, PackedList, close_item};

/// A time window `[start, end)`, in milliseconds since the Unix epoch: the window an
/// [`Aggregate::finish`] call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// The window's first millisecond.
    pub start: i64,
    /// The first millisecond after the window.
    pub end: i64,
}

/// A window aggregate over typed accumulators.
pub trait Aggregate: Sized + 'static {
    /// The accumulator: what is kept per (key, window). `Default` is the empty one.
    type Acc: Serialize + DeserializeOwned + Default;
    /// The result of a window, emitted as the JSON payload of one event.
    type Out: Serialize;

    /// Builds the aggregate from its JSON configuration (`{}` when the pipeline gives none).
    fn configure(config: &str) -> Result<Self, String>;

    /// Adds one event to an accumulator. An error dead-letters the event.
    fn add(&mut self, acc: &mut Self::Acc, event: &Event<'_>) -> Result<(), String>;

    /// Merges two accumulators: the panes of a sliding window when it fires (earlier pane
    /// first), or two session windows an event bridges.
    fn merge(&mut self, a: Self::Acc, b: Self::Acc) -> Result<Self::Acc, String>;

    /// The result of a window of `key` (`None`: emit nothing).
    fn finish(
        &mut self,
        key: Option<&str>,
        window: Window,
        acc: Self::Acc,
    ) -> Result<Option<Self::Out>, String>;

    /// The version of the accumulator's encoding. Raise it when a change of `Acc` makes
    /// accumulators in existing checkpoints unreadable as they are, and implement
    /// [`Aggregate::migrate`] to convert them.
    const STATE_VERSION: u32 = 0;

    /// The state version of this instance (after `configure`); [`Aggregate::STATE_VERSION`]
    /// unless overridden (e.g. chosen by configuration).
    fn state_version(&self) -> u32 {
        Self::STATE_VERSION
    }

    /// Reads an accumulator written by state version `from` (lower than
    /// [`Aggregate::state_version`]) when an older checkpoint is restored. The default refuses,
    /// which makes the restore fail with a clear message instead of misreading state.
    fn migrate(&mut self, from: u32, old: &[u8]) -> Result<Self::Acc, String> {
        let _ = old;
        Err(format!(
            "cannot migrate accumulators from state version {from} to {}",
            Self::STATE_VERSION
        ))
    }
}

pub(crate) fn decode<A: DeserializeOwned + Default>(bytes: &[u8]) -> Result<A, String> {
    if bytes.is_empty() {
        return Ok(A::default());
    }
    postcard::from_bytes(bytes).map_err(|e| format!("cannot decode accumulator: {e}"))
}

fn encode<A: Serialize>(acc: &A) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(acc).map_err(|e| format!("cannot encode accumulator: {e}"))
}

fn state<T>(state: &mut Option<T>) -> Result<&mut T, String> {
    state
        .as_mut()
        .ok_or_else(|| "called before a successful `configure`".to_owned())
}

#[doc(hidden)]
pub fn configure<T: Aggregate>(state: &mut Option<T>, config: &str) -> Result<(), String> {
    *state = Some(T::configure(config)?);
    Ok(())
}

#[doc(hidden)]
pub fn create<T: Aggregate>() -> Result<Vec<u8>, String> {
    encode(&T::Acc::default())
}

#[doc(hidden)]
pub fn add<T: Aggregate>(
    s: &mut Option<T>,
    accumulators: Accumulators,
    targets: Vec<u8>,
    input: Batch,
) -> Result<Accumulators, EventError> {
    let whole = |message: String| EventError { index: 0, message };
    let op = state(s).map_err(whole)?;
    let view = BatchView::new_prechecked(columns_of!(input));
    let given = PackedList::new("accumulators", &accumulators.data, &accumulators.ends)
        .map_err(|e| whole(e.0))?;
    // Each touched accumulator is decoded once, on its first event, and encoded once at the end.
    let mut accs: Vec<Option<T::Acc>> = Vec::with_capacity(given.len());
    accs.resize_with(given.len(), || None);
    for (i, t) in targets.chunks_exact(4).enumerate().take(view.len()) {
        let t = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize;
        let err = |message: String| EventError {
            index: i as u32,
            message,
        };
        let slot = accs
            .get_mut(t)
            .ok_or_else(|| err(format!("target {t} is not an accumulator index")))?;
        let acc = match slot {
            Some(acc) => acc,
            None => slot.insert(decode(given.get(t)).map_err(err)?),
        };
        op.add(
            acc,
            &Event {
                view,
                index: i as u32,
            },
        )
        .map_err(err)?;
    }
    let mut out = Accumulators {
        data: Vec::with_capacity(accumulators.data.len() + 16 * given.len()),
        ends: Vec::with_capacity(accumulators.ends.len()),
    };
    for (acc, old) in accs.iter().zip(given.iter()) {
        match acc {
            Some(a) => {
                out.data = postcard::to_extend(a, out.data)
                    .map_err(|e| whole(format!("cannot encode accumulator: {e}")))?;
            }
            None => out.data.extend_from_slice(old),
        }
        close_item(&out.data, &mut out.ends);
    }
    Ok(out)
}

/// Every merge due together (`merge` in the WIT): group `g` of `accumulators` — those up to the
/// index `groups[g]` — folded left to right with the author's pairwise [`Aggregate::merge`],
/// each accumulator decoded once and each group's result encoded once (a group of one is
/// passed on as stored, as the other languages' SDKs do). A failing group, or a
/// malformed `groups`, is named by a `window-error`.
#[doc(hidden)]
pub fn merge<T: Aggregate>(
    s: &mut Option<T>,
    accumulators: Accumulators,
    groups: Vec<u8>,
) -> Result<Accumulators, WindowError> {
    let whole = |message: String| WindowError { index: 0, message };
    let op = state(s).map_err(whole)?;
    let accs = PackedList::new("accumulators", &accumulators.data, &accumulators.ends)
        .map_err(|e| whole(e.0))?;
    if !groups.len().is_multiple_of(4) {
        return Err(whole(format!(
            "groups hold {} bytes, not a whole number of u32 ends",
            groups.len()
        )));
    }
    let n = groups.len() / 4;
    let mut out = Accumulators {
        data: Vec::with_capacity(accumulators.data.len() / 2 + 16 * n),
        ends: Vec::with_capacity(4 * n),
    };
    let mut start = 0usize;
    for (g, end) in groups.chunks_exact(4).enumerate() {
        let end = u32::from_le_bytes([end[0], end[1], end[2], end[3]]) as usize;
        let err = |message: String| WindowError {
            index: g as u32,
            message,
        };
        if end <= start || end > accs.len() {
            return Err(err(format!(
                "group {g} ends at accumulator {end}, after {start}, of {}: a group holds at \
                 least one accumulator",
                accs.len()
            )));
        }
        if end - start == 1 {
            // A group of one is its accumulator, as stored.
            out.data.extend_from_slice(accs.get(start));
        } else {
            let mut merged = decode::<T::Acc>(accs.get(start)).map_err(err)?;
            for i in start + 1..end {
                let next = decode(accs.get(i)).map_err(err)?;
                merged = op.merge(merged, next).map_err(err)?;
            }
            out.data = postcard::to_extend(&merged, out.data)
                .map_err(|e| err(format!("cannot encode accumulator: {e}")))?;
        }
        close_item(&out.data, &mut out.ends);
        start = end;
    }
    Ok(out)
}

#[doc(hidden)]
pub fn finish<T: Aggregate>(
    s: &mut Option<T>,
    windows: Windows,
    accumulators: Accumulators,
) -> Result<Results, WindowError> {
    let whole = |message: String| WindowError { index: 0, message };
    let op = state(s).map_err(whole)?;
    let keys = PackedList::new("keys", &windows.keys, &windows.key_ends).map_err(|e| whole(e.0))?;
    let accs = PackedList::new("accumulators", &accumulators.data, &accumulators.ends)
        .map_err(|e| whole(e.0))?;
    let n = keys.len();
    if accs.len() != n || windows.bounds.len() != n * 16 {
        return Err(whole(format!(
            "{n} windows came with {} accumulators and {} bytes of bounds",
            accs.len(),
            windows.bounds.len()
        )));
    }
    let mut out = Results {
        payloads: Vec::with_capacity(n * 64),
        payload_ends: Vec::with_capacity(n * 4),
        origins: Vec::with_capacity(n * 4),
    };
    for (i, (key, bounds)) in keys.iter().zip(windows.bounds.chunks_exact(16)).enumerate() {
        let err = |message: String| WindowError {
            index: i as u32,
            message,
        };
        let at = |k: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bounds[k..k + 8]);
            i64::from_le_bytes(b)
        };
        let window = Window {
            start: at(0),
            end: at(8),
        };
        let key = (!key.is_empty()).then(|| String::from_utf8_lossy(key));
        let acc = decode(accs.get(i)).map_err(err)?;
        if let Some(result) = op.finish(key.as_deref(), window, acc).map_err(err)? {
            serde_json::to_writer(&mut out.payloads, &result)
                .map_err(|e| err(format!("cannot encode result: {e}")))?;
            close_item(&out.payloads, &mut out.payload_ends);
            out.origins.extend_from_slice(&(i as u32).to_le_bytes());
        }
    }
    Ok(out)
}

#[doc(hidden)]
pub fn migrate<T: Aggregate>(
    s: &mut Option<T>,
    from: u32,
    acc: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let op = state(s)?;
    if from == op.state_version() {
        return Ok(acc);
    }
    encode(&op.migrate(from, &acc)?)
}

/// Exports an [`Aggregate`] implementation as the plugin's `aggregate` world (a plugin
/// exports one world, once).
///
/// ```
/// use weir_sdk::{Aggregate, Event, Window};
///
/// struct Count;
/// impl Aggregate for Count {
///     type Acc = u64;
///     type Out = u64;
///     fn configure(_config: &str) -> Result<Self, String> {
///         Ok(Count)
///     }
///     fn add(&mut self, acc: &mut u64, _event: &Event<'_>) -> Result<(), String> {
///         *acc += 1;
///         Ok(())
///     }
///     fn merge(&mut self, a: u64, b: u64) -> Result<u64, String> {
///         Ok(a + b)
///     }
///     fn finish(&mut self, _: Option<&str>, _: Window, acc: u64) -> Result<Option<u64>, String> {
///         Ok(Some(acc))
///     }
/// }
/// weir_sdk::export_aggregate!(Count);
/// ```
///
/// A type that does not implement [`Aggregate`] is refused when the plugin compiles:
///
/// ```compile_fail,E0277
/// struct NotAnAggregate;
/// weir_sdk::export_aggregate!(NotAnAggregate);
/// ```
#[macro_export]
macro_rules! export_aggregate {
    ($t:ty) => {
        const _: () = {
            use $crate::bindings_aggregate::weir::operator::types as __t;
            struct __WeirGlue;
            ::std::thread_local! {
                static __WEIR_STATE: ::core::cell::RefCell<::core::option::Option<$t>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            impl $crate::bindings_aggregate::Guest for __WeirGlue {
                fn configure(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                    __WEIR_STATE.with(|s| $crate::__private::aggregate::configure::<$t>(&mut s.borrow_mut(), &config))
                }
                fn create() -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    $crate::__private::aggregate::create::<$t>()
                }
                fn add(
                    accumulators: __t::Accumulators,
                    targets: ::std::vec::Vec<u8>,
                    input: __t::Batch,
                ) -> ::core::result::Result<__t::Accumulators, __t::EventError> {
                    __WEIR_STATE.with(|s| $crate::__private::aggregate::add::<$t>(&mut s.borrow_mut(), accumulators, targets, input))
                }
                fn merge(
                    accumulators: __t::Accumulators,
                    groups: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<__t::Accumulators, __t::WindowError> {
                    __WEIR_STATE.with(|s| $crate::__private::aggregate::merge::<$t>(&mut s.borrow_mut(), accumulators, groups))
                }
                fn finish(
                    windows: __t::Windows,
                    accumulators: __t::Accumulators,
                ) -> ::core::result::Result<__t::Results, __t::WindowError> {
                    __WEIR_STATE.with(|s| $crate::__private::aggregate::finish::<$t>(&mut s.borrow_mut(), windows, accumulators))
                }
                fn state_version() -> u32 {
                    __WEIR_STATE.with(|s| {
                        s.borrow()
                            .as_ref()
                            .map_or(<$t as $crate::Aggregate>::STATE_VERSION, |op| {
                                $crate::Aggregate::state_version(op)
                            })
                    })
                }
                fn migrate(
                    version: u32,
                    accumulator: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    __WEIR_STATE.with(|s| $crate::__private::aggregate::migrate::<$t>(&mut s.borrow_mut(), version, accumulator))
                }
            }
            $crate::bindings_aggregate::__export_aggregate_world!(__WeirGlue with_types_in $crate::bindings_aggregate);
        };
    };
}
