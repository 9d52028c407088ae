//! Logging: `tracing` to stderr, filtered by `WEIR_LOG` (or `RUST_LOG`), as text (coloured on a
//! terminal) or JSON — and what keeps logs and errors safe to print:
//!
//! - [`escape`]: text log lines escape control characters in every field, so a message (from
//!   a plugin, an event, a server) cannot forge log lines or send sequences to the terminal;
//!   JSON lines are escaped by the JSON encoder;
//! - [`redact`]: credentials in URLs and the secrets of plugin configs never printed.
//!
//! A plugin's own log lines are capped in rate and length by
//! [`crate::runtime::plugin_log`].

pub mod escape;
pub mod redact;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `json` selects JSON lines. Safe to call more than once.
pub fn init(json: bool) {
    init_with(json, std::io::stderr);
}

/// [`init`] writing through `stderr` — a writer to stderr that can step around what else is
/// drawn there (the command line's progress lines).
pub fn init_with<W>(json: bool, stderr: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_env("WEIR_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(stderr)
        // Colours only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.fmt_fields(escape::EscapedFields).try_init()
    };
}
