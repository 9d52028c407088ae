//! State owned by the host on behalf of operators.
//!
//! - [`keyed`]: named per-key values and event-time timers of keyed `process` operators.
//!
//! (Window state lives with the window operator, `crate::window::operator`.)

pub mod keyed;

pub use keyed::{KeySnapshot, KeyedState};
