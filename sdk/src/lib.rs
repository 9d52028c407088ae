//! weir-sdk: write weir operators in Rust.
//!
//! A weir operator is a WebAssembly component implementing a world of the `weir:operator`
//! package (`wit/`). The wire form is one call per packed batch; this SDK hides it. An author
//! implements [`Transform`] with a per-event function over a zero-copy [`Event`] view and emits
//! 0..n events through an [`Output`], then exports the type with one line:
//!
//! ```ignore
//! use weir_sdk::{Event, Output, Transform};
//!
//! struct Upper;
//! impl Transform for Upper {
//!     fn init(_config: &str) -> Result<Self, String> { Ok(Upper) }
//!     fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
//!         out.bytes(&event.payload().to_ascii_uppercase());
//!         Ok(())
//!     }
//! }
//! weir_sdk::export_transform!(Upper);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`.
//!
//! Module map: [`packed`] is the batch codec shared with the host (crate `weir-packed`); [`event`] the author-facing
//! views and output builder; [`transform`] the glue between the generated bindings and
//! [`Transform`]; [`log`] plugin logging into the host's logs.

pub use weir_packed as packed;

#[cfg(feature = "aggregate")]
pub mod aggregate;
#[cfg(feature = "guest")]
pub mod event;
#[cfg(feature = "guest")]
pub mod log;
#[cfg(feature = "process")]
pub mod process;
#[cfg(feature = "transform")]
pub mod transform;

#[cfg(feature = "aggregate")]
pub use aggregate::Aggregate;
#[cfg(feature = "guest")]
pub use event::{Event, Output};
#[cfg(feature = "process")]
pub use process::{Keyed, Process, TimeDomain};
#[cfg(feature = "transform")]
pub use transform::Transform;

/// Generated bindings of the `transform` world. Plugin authors do not use these directly.
#[cfg(feature = "transform")]
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "transform",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_transform_world",
        default_bindings_module: "weir_sdk::bindings",
    });
}

/// Generated bindings of the `aggregate` world. Plugin authors do not use these directly.
#[cfg(feature = "aggregate")]
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings_aggregate {
    wit_bindgen::generate!({
        world: "aggregate",
        path: "../wit",
        // `window` (the SDK's window bounds) is in no function signature since `finish` became
        // batched.
        generate_unused_types: true,
        pub_export_macro: true,
        export_macro_name: "__export_aggregate_world",
        default_bindings_module: "weir_sdk::bindings_aggregate",
    });
}

/// Generated bindings of the `process` world. Plugin authors do not use these directly.
#[cfg(feature = "process")]
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings_process {
    wit_bindgen::generate!({
        world: "process",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_process_world",
        default_bindings_module: "weir_sdk::bindings_process",
    });
}
