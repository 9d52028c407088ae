//! Plugin logging: messages go to the host's structured logs, tagged with the plugin's name.
//! Outside a component (native unit tests, see [`crate::testing`]) they go to stderr.
//!
//! The host keeps a plugin's logs in bounds: 100 lines/s per instance on average, in bursts of
//! up to 500 (lines over that are dropped and counted), 4 KiB per line; control characters
//! are escaped in text logs, and secrets of the plugin's config are redacted.

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
    emit(Level::Trace, "TRACE", message)
}
pub fn debug(message: &str) {
    emit(Level::Debug, "DEBUG", message)
}
pub fn info(message: &str) {
    emit(Level::Info, "INFO", message)
}
pub fn warn(message: &str) {
    emit(Level::Warn, "WARN", message)
}
pub fn error(message: &str) {
    emit(Level::Error, "ERROR", message)
}

fn emit(level: Level, name: &str, message: &str) {
    if cfg!(target_arch = "wasm32") {
        host_log(level, message)
    } else {
        eprintln!("[{name}] {message}");
    }
}
