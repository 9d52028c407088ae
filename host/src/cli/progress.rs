//! Progress of slow command-line work — compiling a component to check it (seconds for
//! Python), uploading it (18 MB), loading a pipeline's plugins — shown on stderr as one line
//! per step: a spinner and the time so far while it runs, `✓ … done 3.2 s` when it ends.
//!
//! Only on a terminal: when stderr is a file or a pipe (tests, logs, CI) nothing is written,
//! so output stays as it was. Results still go to stdout, as before; this is not a logger —
//! log lines go through [`LogWriter`], which lifts a step's line off the screen while a log
//! line is written, so neither garbles the other.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How often a running step's line is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// The step on screen, if any (log lines step around it).
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn shown() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    SHOWN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the steps of one command are shown (or not).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Whether stderr is a terminal.
    live: bool,
}

impl Progress {
    /// Progress on stderr, shown only when stderr is a terminal.
    pub fn on_stderr() -> Self {
        Progress {
            live: std::io::stderr().is_terminal(),
        }
    }

    /// Starts a step named `message` (e.g. `checking x.wasm (compiling)`); it shows until
    /// [`Step::done`], or is cleared when dropped (an error then says what went wrong).
    pub fn step(&self, message: impl Into<String>) -> Step {
        if !self.live {
            return Step { bar: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(style())
            .with_message(message.into());
        bar.enable_steady_tick(TICK);
        *shown() = Some(bar.clone());
        Step { bar: Some(bar) }
    }
}

/// `⠋ checking plugins/x.wasm (compiling)… 3.2 s`, with a check mark once finished.
fn style() -> ProgressStyle {
    let seconds = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.1} s", state.elapsed().as_secs_f64());
    };
    ProgressStyle::with_template("{spinner} {msg}… {seconds}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("seconds", seconds)
        .tick_strings(&["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", "✓"])
}

/// One step in progress (nothing at all when stderr is not a terminal).
#[must_use = "a step shows until it is done or dropped"]
pub struct Step {
    bar: Option<ProgressBar>,
}

impl Step {
    /// Ends the step: its line stays, as `✓ MESSAGE… done 3.2 s`.
    pub fn done(mut self) {
        if let Some(bar) = self.bar.take() {
            shown().take();
            let message = format!("{}… done", bar.message());
            bar.set_style(
                style()
                    .template("{spinner} {msg} {seconds}")
                    .unwrap_or_else(|_| style()),
            );
            bar.finish_with_message(message);
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            shown().take();
            bar.finish_and_clear();
        }
    }
}

/// Stderr for log lines: a line is written with the step on screen lifted off and redrawn
/// after it (`tracing` writes each event in one call).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = shown().clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_write_nothing_when_stderr_is_not_a_terminal() {
        let progress = Progress { live: false };
        let step = progress.step("uploading 1.0 MiB");
        assert!(step.bar.is_none());
        step.done();
    }
}
