// weir-sdk: write weir operators in Rust. The crate documentation is README.md.
//
// Module map: `packed` is the batch codec shared with the host (crate `weir-packed`, all the
// host uses); `event` the author-facing event view and output builder; `json` borrowed JSON
// (read a payload's object without building a document, write by copying raw values);
// `transform`, `aggregate` and `process` a world each: its trait, and the glue between the
// generated bindings and the trait that the export macros expand to; `testing` drives that
// glue natively for unit tests; `log` is plugin logging. Authors import from the crate root.
#![cfg_attr(not(doctest), doc = include_str!("../README.md"))]

/// The examples of README.md (this crate's documentation), compiled and run as doctests when
/// every world is enabled: `cargo test -p weir-sdk --all-features`. (A plugin enables one
/// world; the examples span all three.)
#[cfg(all(
    doctest,
    feature = "transform",
    feature = "aggregate",
    feature = "process"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;

/// The Rust example of the repository's README.md, a `transform`.
#[cfg(all(doctest, feature = "transform"))]
#[doc = include_str!("../../README.md")]
pub struct RepositoryReadmeExample;

pub use weir_packed as packed;

#[cfg(feature = "aggregate")]
mod aggregate;
#[cfg(feature = "guest")]
mod event;
#[cfg(feature = "guest")]
pub mod json;
#[cfg(feature = "guest")]
pub mod log;
#[cfg(feature = "process")]
mod process;
#[cfg(feature = "guest")]
pub mod testing;
#[cfg(feature = "transform")]
mod transform;

#[cfg(feature = "aggregate")]
pub use aggregate::{Aggregate, Window};
#[cfg(feature = "guest")]
pub use event::{Event, EventBuilder, Output};
#[cfg(feature = "guest")]
pub use packed::Headers;
#[cfg(feature = "process")]
pub use process::{Keyed, Process, TimeDomain, TimerOutput};
#[cfg(feature = "transform")]
pub use transform::Transform;

/// What the export macros expand to call: the glue between the generated bindings and the
/// traits. Not part of the API.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "aggregate")]
    pub mod aggregate {
        pub use crate::aggregate::{add, configure, create, finish, merge, migrate};
    }
    #[cfg(feature = "process")]
    pub mod process {
        pub use crate::process::{configure, on_events, on_timer};
    }
    #[cfg(feature = "transform")]
    pub mod transform {
        pub use crate::transform::{configure, process};
    }
}

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
