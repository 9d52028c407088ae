//! The `weir` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

mod cli;

use weir::config;
use weir::runtime::{Runtime, cache::CompileCache};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "A stream processor whose operators are sandboxed WebAssembly components"
)]
struct Cli {
    /// Log as JSON lines instead of text (filter with WEIR_LOG, e.g. `info,weir=debug`).
    #[arg(long, global = true)]
    log_json: bool,
    /// Log format: `text`, `json`, or `auto` (JSON when stderr is not a terminal, as in a
    /// container). --log-json means `json`.
    #[arg(long, global = true, env = "WEIR_LOG_FORMAT", default_value = "text", value_parser = ["text", "json", "auto"])]
    log_format: String,
    /// Directory of compiled components (default: $WEIR_CACHE_DIR or ~/.cache/weir).
    #[arg(long, global = true, env = "WEIR_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline against NATS JetStream (or over a JSON-lines file with --local).
    Run {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Run without NATS over the events in --input, printing results as JSON lines.
        #[arg(long, requires = "input")]
        local: bool,
        /// JSON-lines events for --local (read as the run goes).
        #[arg(long)]
        input: Option<PathBuf>,
        /// How to reach NATS (over the pipeline's `[nats]`; not with --local).
        #[command(flatten)]
        nats: cli::nats_args::NatsArgs,
        /// Serve /health, /ready and /metrics (Prometheus) on this address, e.g.
        /// 127.0.0.1:9464; an address that cannot be bound fails the start (not with --local).
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
        /// A file holding the admin endpoint's bearer token (else $WEIR_ADMIN_TOKEN); required
        /// when --admin is beyond loopback, for every route but /health and /ready.
        #[arg(long, env = "WEIR_ADMIN_TOKEN_FILE")]
        admin_token_file: Option<PathBuf>,
        /// Checkpoint to start from: `latest` (default), a checkpoint id, or `none` (empty
        /// state, the source from its beginning); not with --local.
        #[arg(long, default_value = "latest", value_parser = parse_start)]
        from_checkpoint: weir::checkpoint::StartFrom,
        /// Hot-load: watch the pipeline's plugin files and swap a rebuilt one into the running
        /// pipeline (at a checkpoint barrier; state kept; a version that fails to load or to
        /// configure is refused and the running one stays).
        #[arg(long)]
        watch: bool,
    },
    /// Run every pipeline applied to NATS (`weir pipeline apply`) until SIGTERM: a long-running
    /// host; every flag can come from the environment.
    Serve(cli::serve::ServeArgs),
    /// Apply, list, inspect and delete the pipelines `weir serve` hosts run.
    #[command(subcommand)]
    Pipeline(cli::pipeline::PipelineCommand),
    /// Ask a running host's admin endpoint whether it is live (or ready, with --ready): exit 0
    /// or 1 — a container health check.
    Health(cli::health::HealthArgs),
    /// Watch running pipelines live: rates, lag, dead letters, and each operator's busy share.
    ///
    /// Per pipeline: state, host, events in and out per second and in total, dead letters,
    /// consumer lag, watermark lag, last checkpoint; per operator: version, events per second,
    /// errors and share of time busy. From the status bucket (every `weir serve` host) or one
    /// host's admin endpoint (--admin).
    Top(cli::top::TopArgs),
    /// Inspect or delete a pipeline's checkpoints.
    #[command(subcommand)]
    Checkpoint(cli::checkpoint::CheckpointCommand),
    /// Create, build and test operator plugins (Rust, Python, JavaScript, C).
    #[command(subcommand)]
    Plugin(cli::plugin::PluginCommand),
    /// Generate Nexmark events (persons, auctions, bids): JSON lines for `weir run --local`,
    /// or published to JetStream.
    #[command(subcommand)]
    Nexmark(cli::nexmark::NexmarkCommand),
    /// Check a pipeline file and load its plugins; exit 1 with the reason when it is invalid.
    Validate {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// How to reach NATS, when the pipeline's plugins come from the registry.
        #[command(flatten)]
        nats: cli::nats_args::NatsArgs,
    },
}

fn parse_start(s: &str) -> Result<weir::checkpoint::StartFrom, String> {
    use weir::checkpoint::StartFrom;
    match s {
        "latest" => Ok(StartFrom::Latest),
        "none" => Ok(StartFrom::Fresh),
        id => id
            .parse()
            .map(StartFrom::Id)
            .map_err(|_| format!("{id:?} is not `latest`, `none` or a checkpoint id")),
    }
}

/// Refuses flags that would do nothing in the mode asked for (exits 2, like other usage
/// errors): `--input` without `--local`; the `--nats-*` flags, `--admin` and
/// `--from-checkpoint` with it (`WEIR_NATS_*` in the environment are ignored by `--local`).
fn refuse_unused_flags(matches: &ArgMatches) {
    let Some(("run", run)) = matches.subcommand() else {
        return;
    };
    let given = |id: &str| run.value_source(id) == Some(ValueSource::CommandLine);
    let message = if run.get_flag("local") {
        cli::nats_args::NatsArgs::IDS
            .into_iter()
            .chain(["admin", "admin_token_file", "from_checkpoint"])
            .find(|id| given(id))
            .map(|id| {
                format!(
                    "--{} does nothing with --local, which runs without NATS, checkpoints or \
                     an admin endpoint",
                    id.replace('_', "-")
                )
            })
    } else if given("input") {
        Some(
            "--input is read only with --local; without it `weir run` consumes the \
             pipeline's JetStream source"
                .to_owned(),
        )
    } else {
        None
    };
    if let Some(message) = message {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    refuse_unused_flags(&matches);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let json = cli.log_json
        || cli.log_format == "json"
        || (cli.log_format == "auto" && !std::io::IsTerminal::is_terminal(&std::io::stderr()));
    weir::telemetry::init_with(json, cli::progress::LogWriter);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cache = cli.cache_dir.unwrap_or_else(CompileCache::default_dir);
    match cli.command {
        Command::Plugin(cmd) => cli::plugin::run(cmd, || Runtime::new(Some(cache))),
        Command::Checkpoint(cmd) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(cli::checkpoint::run(cmd)),
        Command::Validate { pipeline, nats } => validate(&pipeline, &nats, cache),
        Command::Health(args) => cli::health::run(args),
        Command::Nexmark(cmd) => cli::nexmark::run(cmd),
        Command::Top(args) => cli::top::run(args),
        Command::Serve(args) => {
            cli::serve::run(args, Runtime::new(Some(cache))?, shutdown_signal())
        }
        Command::Pipeline(cmd) => cli::pipeline::run(cmd, || Runtime::new(Some(cache))),
        Command::Run {
            pipeline,
            local: true,
            input: Some(input),
            watch,
            ..
        } => run_local(&pipeline, &input, cache, watch),
        Command::Run {
            pipeline,
            nats,
            admin,
            admin_token_file,
            from_checkpoint,
            watch,
            ..
        } => {
            let admin = match admin {
                Some(addr) => Some((
                    addr,
                    weir::admin::auth::Token::load(admin_token_file.as_deref())?,
                )),
                None => None,
            };
            run_nats(&pipeline, &nats, admin, from_checkpoint, cache, watch)
        }
    }
}

/// `weir validate`: the file parses and checks, and every plugin loads and accepts its
/// config.
fn validate(
    pipeline: &std::path::Path,
    nats: &cli::nats_args::NatsArgs,
    cache: PathBuf,
) -> anyhow::Result<()> {
    let mut p = config::load(pipeline)?;
    let runtime = Runtime::new(Some(cache))?;
    if weir::pipeline::follow::uses_registry(&p) {
        // Registry plugins are checked as they are deployed now.
        let nats = nats.options(Some(&p))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let client = weir::connect::connect("weir validate", &nats, None).await?;
            let js = async_nats::jetstream::new(client);
            let registry = weir::registry::Registry::open(&js, false).await?;
            let file = pipeline.display();
            weir::pipeline::follow::resolve(&registry, &mut p, runtime.cache().dir())
                .await
                .map_err(|e| anyhow::anyhow!("{file}: {e:#}"))?;
            anyhow::Ok(())
        })?;
    }
    weir::pipeline::stages::Stages::build(
        &runtime,
        &p,
        weir::admin::Metrics::new(p.config.name.get_ref()),
        &weir::source::SourcePartitions::of(&p.config),
    )?;
    println!(
        "{}: ok ({} operators)",
        pipeline.display(),
        p.config.operators.len()
    );
    Ok(())
}

/// `weir run --local`: the pipeline over a JSON-lines file, results on stdout.
fn run_local(
    pipeline: &std::path::Path,
    input: &std::path::Path,
    cache: PathBuf,
    watch: bool,
) -> anyhow::Result<()> {
    let p = config::load(pipeline)?;
    let runtime = Runtime::new(Some(cache))?;
    let sink = weir::sink::stdout::StdoutSink::stdio();
    let s = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(weir::pipeline::local::run(&runtime, &p, input, sink, watch))?;
    tracing::info!(
        inputs = s.inputs,
        results = s.results,
        dead_letters = s.dead_letters,
        "done"
    );
    Ok(())
}

/// `weir run`: the pipeline against NATS until SIGINT/SIGTERM, with the admin endpoint if
/// asked for.
fn run_nats(
    pipeline: &std::path::Path,
    nats: &cli::nats_args::NatsArgs,
    admin: Option<(std::net::SocketAddr, Option<weir::admin::auth::Token>)>,
    from: weir::checkpoint::StartFrom,
    cache: PathBuf,
    watch: bool,
) -> anyhow::Result<()> {
    let p = config::load(pipeline)?;
    let nats = nats.options(Some(&p))?;
    weir::connect::check_files(&nats)?;
    let runtime = Runtime::new(Some(cache))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let metrics = weir::admin::Metrics::new(p.config.name.get_ref());
        if let Some((addr, token)) = admin {
            weir::admin::start(addr, &p, metrics.clone(), token).await?;
        }
        let stop = shutdown_signal();
        weir::pipeline::nats::run(&runtime, &p, &nats, stop, metrics, from, watch).await?;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM: a graceful stop (finish the batch in hand, a last
/// checkpoint). A second signal during that stop — which waits for NATS when NATS is down —
/// ends the process at once with exit code 130: nothing since the last committed checkpoint
/// was acknowledged, so a restart replays it.
async fn shutdown_signal() {
    next_signal().await;
    tracing::info!("shutdown requested: finishing the batch in hand (a second signal forces exit)");
    tokio::spawn(async {
        next_signal().await;
        tracing::warn!(
            "second shutdown signal: exiting now; the last committed checkpoint stands and \
             what came after it will be processed again at the next start"
        );
        eprintln!("error: stopped by a second signal before the last checkpoint");
        std::process::exit(130);
    });
}

/// The next SIGINT or SIGTERM.
async fn next_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
