//! Event time and windows, owned by the host.
//!
//! - [`assigner`]: which windows an event belongs to (tumbling, sliding, session, global);
//! - [`watermark`]: watermark generation (bounded out-of-orderness) and the combination of
//!   per-input watermarks (minimum over non-idle inputs, never moving back);
//! - [`clock`]: processing time, for processing-time windows;
//! - [`panes`]: the panes sliding windows are held as (which pane an event is in, which
//!   windows a pane belongs to);
//! - [`operator`]: the keyed window operator — per (key, window) accumulators as bytes (per
//!   (key, pane) for sliding windows), event time timers, firing, allowed lateness, late side
//!   output, session merging.
//!
//! Semantics follow Flink's event-time `WindowOperator` with `EventTimeTrigger`; the choices
//! where Flink and Beam differ are written in `docs/semantics.md`.

pub mod assigner;
pub mod clock;
pub mod operator;
pub mod panes;
pub mod watermark;

pub use assigner::{Window, WindowSpec};
pub use clock::ProcessingClock;
pub use operator::{
    Aggregator, Emission, Firing, PanePolicy, WindowOperator, WindowState, merge_pairwise,
};
pub use panes::PaneLayout;
pub use watermark::{
    BoundedOutOfOrderness, InputPartitions, MarkerWatermarks, SourceWatermarks,
    WatermarkMultiplexer, WatermarksState,
};

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
mod pane_properties;
#[cfg(test)]
mod properties;
