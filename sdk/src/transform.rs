//! The `transform` world in Rust: the [`Transform`] trait authors implement, and the glue that
//! turns one packed batch call into per-event calls.

use crate::bindings::weir::operator::types::{Batch, EventError};
use crate::event::{Event, Output, batch_from, columns_of, each_event};

/// A stateless (per-event) operator: filter, map, flat-map, re-key, re-time.
pub trait Transform: Sized + 'static {
    /// Builds the operator from its JSON configuration (`{}` when the pipeline gives none).
    /// An error refuses the pipeline at start.
    fn configure(config: &str) -> Result<Self, String>;

    /// Handles one event, emitting 0..n events into `out`. An error sends this event to the
    /// pipeline's dead-letter subject with the message; the rest of the batch goes on.
    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String>;
}

/// Implements `configure` of the world for `T`.
#[doc(hidden)]
pub fn configure<T: Transform>(state: &mut Option<T>, config: &str) -> Result<(), String> {
    *state = Some(T::configure(config)?);
    Ok(())
}

/// Implements `process` of the world for `T`.
#[doc(hidden)]
pub fn process<T: Transform>(state: &mut Option<T>, input: Batch) -> Result<Batch, EventError> {
    let Some(op) = state.as_mut() else {
        return Err(EventError {
            index: 0,
            message: "`process` called before a successful `configure`".into(),
        });
    };
    let out = each_event(columns_of!(input), |event, out| op.process(event, out))
        .map_err(|(index, message)| EventError { index, message })?;
    Ok(batch_from!(Batch, out))
}

/// Exports a [`Transform`] implementation as the plugin's `transform` world (a plugin exports
/// one world, once).
///
/// ```
/// use weir_sdk::{Event, Output, Transform};
///
/// struct Forward;
/// impl Transform for Forward {
///     fn configure(_config: &str) -> Result<Self, String> {
///         Ok(Forward)
///     }
///     fn process(&mut self, _event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
///         out.forward();
///         Ok(())
///     }
/// }
/// weir_sdk::export_transform!(Forward);
/// ```
///
/// A type that does not implement [`Transform`] is refused when the plugin compiles:
///
/// ```compile_fail,E0277
/// struct NotAnOperator;
/// weir_sdk::export_transform!(NotAnOperator);
/// ```
#[macro_export]
macro_rules! export_transform {
    ($t:ty) => {
        const _: () = {
            struct __WeirGlue;
            ::std::thread_local! {
                static __WEIR_STATE: ::core::cell::RefCell<::core::option::Option<$t>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            impl $crate::bindings::Guest for __WeirGlue {
                fn configure(
                    config: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    __WEIR_STATE.with(|s| {
                        $crate::__private::transform::configure::<$t>(&mut s.borrow_mut(), &config)
                    })
                }
                fn process(
                    input: $crate::bindings::weir::operator::types::Batch,
                ) -> ::core::result::Result<
                    $crate::bindings::weir::operator::types::Batch,
                    $crate::bindings::weir::operator::types::EventError,
                > {
                    __WEIR_STATE.with(|s| {
                        $crate::__private::transform::process::<$t>(&mut s.borrow_mut(), input)
                    })
                }
            }
    $crate::bindings::__export_transform_world!(__WeirGlue with_types_in $crate::bindings);
        };
    };
}
