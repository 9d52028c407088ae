//! A plugin's log lines (the `weir:operator/log` import) into the host's logs, tagged with the
//! plugin, and kept from flooding them:
//!
//! - **rate**: a token bucket per plugin instance — [`LINES_PER_SECOND`] lines a second on
//!   average, bursts of up to [`BURST`] lines. Lines over the limit are dropped and counted;
//!   the count is logged (`dropped K log lines from plugin X`) before the plugin's next line,
//!   at most once a second while it keeps flooding, and when the instance ends. A trapped
//!   instance's replacement inherits its bucket, so trapping does not refill it.
//! - **length**: a line is cut at [`MAX_LINE_BYTES`] bytes, with a note of how much was cut.
//! - **secrets**: values of the plugin's config that are secrets are replaced (see
//!   [`Secrets`]).
//!
//! Lines at a level the log filter does not show cost nothing and use no part of the rate.
//! Newlines and terminal escapes in the text are escaped by the log formatter
//! ([`crate::telemetry::escape`]); JSON logs carry the text as it is, JSON-encoded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bindings::weir::operator::log::Level;
use crate::telemetry::redact::Secrets;

/// Average log lines a second one plugin instance may write.
pub const LINES_PER_SECOND: f64 = 100.0;
/// Log lines a plugin instance may write at once before the rate applies.
pub const BURST: f64 = 500.0;
/// Longest log line (bytes of the message) a plugin may write; longer ones are cut.
pub const MAX_LINE_BYTES: usize = 4096;
/// How often a plugin that keeps flooding is told about (logged as dropping) its lines.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// The log of one plugin instance.
#[derive(Debug)]
pub struct PluginLog {
    label: String,
    secrets: Arc<Secrets>,
    tokens: f64,
    refilled: Instant,
    dropped: u64,
    reported: Instant,
}

impl PluginLog {
    /// The log of plugin `label`, scrubbing `secrets` from its lines.
    pub fn new(label: &str, secrets: Arc<Secrets>) -> Self {
        let now = Instant::now();
        PluginLog {
            label: label.to_owned(),
            secrets,
            tokens: BURST,
            refilled: now,
            dropped: 0,
            reported: now,
        }
    }

    /// Writes `message` at `level`, unless the plugin is over its rate.
    pub fn log(&mut self, level: Level, message: &str) {
        if !enabled(level) {
            return;
        }
        let now = Instant::now();
        if !self.admit(now) {
            if now.duration_since(self.reported) >= REPORT_EVERY {
                self.report_dropped(now);
            }
            return;
        }
        if self.dropped > 0 {
            self.report_dropped(now);
        }
        let message = self.secrets.scrub(message);
        emit(level, &self.label, &cut(&message, MAX_LINE_BYTES));
    }

    /// Takes a token for a line at `now`, or counts the line as dropped.
    fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * LINES_PER_SECOND).min(BURST);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    fn report_dropped(&mut self, now: Instant) {
        let (dropped, plugin) = (self.dropped, &self.label);
        tracing::warn!(
            plugin = %plugin,
            dropped,
            "dropped {dropped} log lines from plugin {plugin}: over its limit of \
             {LINES_PER_SECOND} lines/s (bursts of {BURST})"
        );
        self.dropped = 0;
        self.reported = now;
    }
}

impl Drop for PluginLog {
    fn drop(&mut self) {
        if self.dropped > 0 {
            self.report_dropped(Instant::now());
        }
    }
}

/// `message` cut to at most `max` bytes (at a character boundary), saying how much was cut.
pub(crate) fn cut(message: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if message.len() <= max {
        return message.into();
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [log line cut: {} more bytes]",
        &message[..end],
        message.len() - end
    )
    .into()
}

fn enabled(level: Level) -> bool {
    match level {
        Level::Trace => tracing::enabled!(tracing::Level::TRACE),
        Level::Debug => tracing::enabled!(tracing::Level::DEBUG),
        Level::Info => tracing::enabled!(tracing::Level::INFO),
        Level::Warn => tracing::enabled!(tracing::Level::WARN),
        Level::Error => tracing::enabled!(tracing::Level::ERROR),
    }
}

fn emit(level: Level, plugin: &str, message: &str) {
    match level {
        Level::Trace => tracing::trace!(plugin, "{message}"),
        Level::Debug => tracing::debug!(plugin, "{message}"),
        Level::Info => tracing::info!(plugin, "{message}"),
        Level::Warn => tracing::warn!(plugin, "{message}"),
        Level::Error => tracing::error!(plugin, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(log: &mut PluginLog, at: Instant, lines: usize) -> usize {
        (0..lines).filter(|_| log.admit(at)).count()
    }

    #[test]
    fn a_burst_passes_then_the_rate_applies_and_drops_are_counted() {
        let mut log = PluginLog::new("p", Arc::default());
        let t0 = log.refilled;
        assert_eq!(admitted(&mut log, t0, 2000), BURST as usize);
        assert_eq!(log.dropped, 2000 - BURST as usize as u64);
        // Half a second later: half a second's worth of lines.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(
            admitted(&mut log, t1, 1000),
            (LINES_PER_SECOND / 2.0) as usize
        );
        // A long quiet spell refills the burst, no more.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!(admitted(&mut log, t2, 2000), BURST as usize);
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary_saying_how_much() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(10); // 20 bytes
        assert_eq!(cut(&long, 5), "éé… [log line cut: 16 more bytes]");
    }
}
