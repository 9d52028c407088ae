//! `weir top`: a live view of running pipelines in the terminal, like `vector top` or
//! `nats top`. Per pipeline: state (and why, when it is not running), host, events in and out
//! per second and in total, dead letters, consumer lag, watermark lag, last checkpoint; under
//! it, per operator: stage, name, plugin version, events per second, errors, the share of
//! time its plugin calls take, and a watching canary.
//!
//! It reads the status bucket over NATS — every pipeline of every `weir serve` host — or with
//! `--admin` one host's admin endpoint ([`source`]); rates come from two reads ([`view`]). On
//! a terminal it redraws in place every `--interval` until Ctrl-C (or SIGTERM), which puts the
//! terminal back as it was; when stdout is not a terminal, or with `--once`, it prints one
//! snapshot — read one interval after a first read, so that rates exist — and exits. It only
//! reads: no bucket is created, nothing is changed.

mod source;
mod view;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::nats_args::NatsArgs;
use source::{AdminSource, Fetched, NatsSource, Source};
use view::History;
use weir::serve::applied::now_ms;
use weir::serve::status::Status;

/// The shortest refresh interval.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The flags of `weir top`.
#[derive(clap::Args)]
pub struct TopArgs {
    /// Show only this pipeline.
    pipeline: Option<String>,
    /// How often to refresh (e.g. 1s, 500ms, 5s).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Print one snapshot, a refresh interval after a first read (for rates), and exit — what
    /// happens anyway when stdout is not a terminal.
    #[arg(long)]
    once: bool,
    /// Read one host's admin endpoint instead of the status bucket: a `weir serve` host's
    /// /pipelines, or a `weir run` host's /metrics and /plugins (an unspecified address such
    /// as 0.0.0.0 is asked on loopback).
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// A file holding the admin endpoint's bearer token (else $WEIR_ADMIN_TOKEN); with
    /// --admin.
    #[arg(long, env = "WEIR_ADMIN_TOKEN_FILE", value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// How to reach NATS (not with --admin).
    #[command(flatten)]
    nats: NatsArgs,
}

/// `weir top`.
pub fn run(args: TopArgs) -> anyhow::Result<()> {
    if args.interval < MIN_INTERVAL {
        anyhow::bail!(
            "--interval {}: at least {} please",
            humantime::format_duration(args.interval),
            humantime::format_duration(MIN_INTERVAL)
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let source = open(&args).await?;
        if !args.once && std::io::stdout().is_terminal() {
            live(source, &args).await
        } else {
            snapshot(source, &args).await
        }
    })
}

/// The source the flags name: an admin endpoint, or NATS (connected now: an unreachable
/// server is an error at once).
async fn open(args: &TopArgs) -> anyhow::Result<Source> {
    if let Some(addr) = args.admin {
        let token = weir::admin::auth::Token::load(args.admin_token_file.as_deref())?;
        return Ok(Source::Admin(AdminSource::new(addr, token)));
    }
    let options = args.nats.options(None)?;
    let client = weir::connect::connect("weir top", &options, None).await?;
    let js = async_nats::jetstream::new(client);
    Ok(Source::Nats(Box::new(NatsSource::new(
        js,
        options.shown_url(),
    ))))
}

/// The statuses `source` has now, of `only` pipeline if given; `Err(text)`: nothing to
/// show, and why.
async fn read(
    source: &mut Source,
    only: Option<&str>,
) -> anyhow::Result<Result<Vec<Status>, String>> {
    let mut statuses = match source.fetch().await? {
        Fetched::NoBucket => return Ok(Err("no pipelines applied".into())),
        Fetched::Statuses(s) => s,
    };
    if let Some(name) = only {
        statuses.retain(|s| s.pipeline == name);
        if statuses.is_empty() {
            return Ok(Err(format!(
                "pipeline {name:?} has no status: not applied, or no host runs it yet (`weir \
                 pipeline list`)"
            )));
        }
    }
    if statuses.is_empty() {
        let nothing = match source {
            Source::Nats(_) => "no pipelines applied",
            Source::Admin(_) => "no pipelines on this host",
        };
        return Ok(Err(nothing.into()));
    }
    Ok(Ok(statuses))
}

/// `--once`, or stdout not a terminal: one snapshot with rates, printed.
async fn snapshot(mut source: Source, args: &TopArgs) -> anyhow::Result<()> {
    let only = args.pipeline.as_deref();
    let mut history = History::default();
    let first = match read(&mut source, only).await? {
        Ok(statuses) => statuses,
        Err(nothing) if only.is_some() => anyhow::bail!("{nothing}"),
        Err(nothing) => {
            println!("{nothing}");
            return Ok(());
        }
    };
    history.observe(first);
    // Rates need a second heartbeat: one interval, and at most one more for a late one.
    tokio::time::sleep(args.interval).await;
    let patience = tokio::time::Instant::now() + args.interval;
    loop {
        match read(&mut source, only).await? {
            Ok(statuses) => history.observe(statuses),
            Err(nothing) => {
                println!("{nothing}");
                return Ok(());
            }
        }
        if history.has_rates() || tokio::time::Instant::now() >= patience {
            break;
        }
        tokio::time::sleep(args.interval / 4).await;
    }
    print!("{}", frame(&source, &history, None));
    Ok(())
}

/// On a terminal: redraws every interval until Ctrl-C or SIGTERM. A read that fails shows
/// its error, and the next refresh tries again.
async fn live(mut source: Source, args: &TopArgs) -> anyhow::Result<()> {
    let only = args.pipeline.as_deref();
    let stop = crate::next_signal();
    tokio::pin!(stop);
    let mut screen = Screen::enter()?;
    let mut history = History::default();
    loop {
        let result = tokio::select! {
            _ = &mut stop => break,
            result = read(&mut source, only) => result,
        };
        let shown = match result {
            Ok(Ok(statuses)) => {
                history.observe(statuses);
                frame(&source, &history, Some(args.interval))
            }
            Ok(Err(nothing)) => {
                history = History::default();
                format!("{}\n{nothing}\n", header(&source, 0, Some(args.interval)))
            }
            Err(e) => format!(
                "{}\nerror: {e:#}\n(trying again every {})\n",
                header(&source, 0, Some(args.interval)),
                humantime::format_duration(args.interval)
            ),
        };
        screen.draw(&shown)?;
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(args.interval) => {}
        }
    }
    screen.leave()
}

/// The header and the table.
fn frame(source: &Source, history: &History, every: Option<Duration>) -> String {
    format!(
        "{}\n{}",
        header(source, history.len(), every),
        history.render(now_ms())
    )
}

/// `weir top · 2 pipelines · status bucket at nats://… · 2026-…Z · every 1s, Ctrl-C quits`.
fn header(source: &Source, pipelines: usize, every: Option<Duration>) -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let every = every.map_or(String::new(), |i| {
        format!(" · every {}, Ctrl-C quits", humantime::format_duration(i))
    });
    let count = match pipelines {
        0 => String::new(),
        1 => " · 1 pipeline".to_owned(),
        n => format!(" · {n} pipelines"),
    };
    format!("weir top{count} · {} · {now}{every}\n", source.describe())
}

/// The terminal while `weir top` draws on it: the alternate screen, the cursor hidden, lines
/// cut at the right edge instead of wrapped; put back when left or dropped (an error, a
/// panic).
struct Screen {
    active: bool,
}

/// Enter the alternate screen, hide the cursor, stop wrapping lines.
const ENTER: &str = "\x1b[?1049h\x1b[?25l\x1b[?7l";
/// Wrap lines, show the cursor, leave the alternate screen.
const LEAVE: &str = "\x1b[?7h\x1b[?25h\x1b[?1049l";

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        let mut out = std::io::stdout().lock();
        out.write_all(ENTER.as_bytes())?;
        out.flush()?;
        Ok(Screen { active: true })
    }

    /// Draws `text` from the top left over what was there, cut to the terminal's height.
    fn draw(&mut self, text: &str) -> std::io::Result<()> {
        let rows = console::Term::stdout()
            .size_checked()
            .map_or(usize::MAX, |(rows, _)| usize::from(rows.max(2)));
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() > rows {
            let more = lines.len() - (rows - 1);
            lines.truncate(rows - 1);
            lines.push(format!(
                "… {more} more lines (a taller terminal, or name one PIPELINE)"
            ));
        }
        // No line break after the last line: on the bottom row it would scroll.
        let out = format!("\x1b[H{}\x1b[K\x1b[J", lines.join("\x1b[K\r\n"));
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()
    }

    fn leave(mut self) -> anyhow::Result<()> {
        self.active = false;
        let mut out = std::io::stdout().lock();
        out.write_all(LEAVE.as_bytes())?;
        out.flush()?;
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        if self.active {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(LEAVE.as_bytes());
            let _ = out.flush();
        }
    }
}
