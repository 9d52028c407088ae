//! The `transform` world in Rust: the [`Transform`] trait authors implement, and the glue that
//! turns one packed batch call into per-event calls.

use crate::bindings::weir::operator::types::{Batch, EventError};
use crate::event::{Event, ForwardRun, Output};
use crate::packed::{BatchBuilder, BatchView, Columns};

/// A stateless (per-event) operator: filter, map, flat-map, re-key, re-time.
pub trait Transform: Sized + 'static {
    /// Builds the operator from its JSON configuration (`{}` when the pipeline gives none).
    /// An error refuses the pipeline at start.
    fn init(config: &str) -> Result<Self, String>;

    /// Handles one event, emitting 0..n events into `out`. An error sends this event to the
    /// pipeline's dead-letter subject with the message; the rest of the batch goes on.
    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String>;
}

/// Implements `init` of the world for `T`.
#[doc(hidden)]
pub fn init<T: Transform>(state: &mut Option<T>, config: &str) -> Result<(), String> {
    *state = Some(T::init(config)?);
    Ok(())
}

/// Implements `process` of the world for `T`.
#[doc(hidden)]
pub fn process<T: Transform>(state: &mut Option<T>, input: Batch) -> Result<Batch, EventError> {
    let Some(op) = state.as_mut() else {
        return Err(EventError {
            index: 0,
            message: "`process` called before a successful `init`".into(),
        });
    };
    let cols = Columns {
        payloads: &input.payloads,
        payload_ends: &input.payload_ends,
        keys: &input.keys,
        key_ends: &input.key_ends,
        times: &input.times,
        headers: &input.headers,
        header_ends: &input.header_ends,
        origins: &input.origins,
    };
    // The host guarantees the layout of the batches it sends (wit/types.wit); checking again
    // would cost per event. A malformed batch would make an access panic (a trap the host
    // isolates), never read out of bounds.
    let view = BatchView::new_prechecked(cols);
    let mut out = BatchBuilder::with_capacity(
        view.len(),
        view.columns().payloads.len() / view.len().max(1),
    );
    let mut run = ForwardRun::default();
    for i in 0..view.len() as u32 {
        let event = Event { view, index: i };
        let mut output = Output {
            batch: &mut out,
            run: &mut run,
            view,
            origin: i,
        };
        op.process(&event, &mut output)
            .map_err(|message| EventError { index: i, message })?;
    }
    run.flush(&mut out, &view);
    Ok(Batch {
        payloads: out.payloads,
        payload_ends: out.payload_ends,
        keys: out.keys,
        key_ends: out.key_ends,
        times: out.times,
        headers: out.headers,
        header_ends: out.header_ends,
        origins: out.origins,
    })
}

/// Exports a [`Transform`] implementation as the plugin's `transform` world.
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
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    __WEIR_STATE
                        .with(|s| $crate::transform::init::<$t>(&mut s.borrow_mut(), &config))
                }
                fn process(
                    input: $crate::bindings::weir::operator::types::Batch,
                ) -> ::core::result::Result<
                    $crate::bindings::weir::operator::types::Batch,
                    $crate::bindings::weir::operator::types::EventError,
                > {
                    __WEIR_STATE
                        .with(|s| $crate::transform::process::<$t>(&mut s.borrow_mut(), input))
                }
            }
    $crate::bindings::__export_transform_world!(__WeirGlue with_types_in $crate::bindings);
        };
    };
}
