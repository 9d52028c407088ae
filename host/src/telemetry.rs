//! Logging: `tracing` to stderr, filtered by `WEIR_LOG` (or `RUST_LOG`), as text (coloured on a
//! terminal) or JSON.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `json` selects JSON lines. Safe to call more than once.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_env("WEIR_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
