//! Plugin logging: messages go to the host's structured logs, tagged with the plugin's name.

#[cfg(feature = "transform")]
use crate::bindings::weir::operator::log::{Level, log as host_log};
#[cfg(all(feature = "aggregate", not(feature = "transform")))]
use crate::bindings_aggregate::weir::operator::log::{Level, log as host_log};
#[cfg(all(
    feature = "process",
    not(any(feature = "transform", feature = "aggregate"))
))]
use crate::bindings_process::weir::operator::log::{Level, log as host_log};

pub fn trace(message: &str) {
    host_log(Level::Trace, message)
}
pub fn debug(message: &str) {
    host_log(Level::Debug, message)
}
pub fn info(message: &str) {
    host_log(Level::Info, message)
}
pub fn warn(message: &str) {
    host_log(Level::Warn, message)
}
pub fn error(message: &str) {
    host_log(Level::Error, message)
}
