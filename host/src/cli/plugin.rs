//! `weir plugin new|build|test`: the plugin author's loop — a project from a template, a
//! component from the project, and the component run offline over JSON-lines events.
//!
//! `weir plugin deploy|list|history|rollback`: the plugin registry, in [`super::registry`],
//! connected to with the `--nats-*` flags of [`NatsArgs`].

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use super::nats_args::NatsArgs;
use weir::runtime::{Runtime, World};
use weir::toolchain::{self, Lang};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Create a plugin project from a template (with sample events to test it on).
    New {
        /// The plugin's name (also the folder created, unless --dir).
        name: String,
        #[arg(long, value_enum)]
        lang: Lang,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the plugin project in DIR (default: the current folder); prints the component's path.
    Build { dir: Option<PathBuf> },
    /// Run a component offline over JSON-lines events (the `weir run --local` format) and
    /// print its outputs as JSON lines; failures go to stderr with the input line number.
    Test {
        /// The component (.wasm).
        component: PathBuf,
        /// JSON-lines events.
        #[arg(long)]
        input: PathBuf,
        /// The plugin's config: inline JSON, or @FILE.
        #[arg(long, default_value = "{}")]
        config: String,
        /// For an aggregate (only): the window, `tumbling:SIZE`, `sliding:SIZE:SLIDE` or
        /// `session:GAP` (durations like 10s, 5m); default `tumbling:10s`.
        #[arg(long)]
        window: Option<String>,
        /// Exit 1 when any event failed (for plugin authors' CI).
        #[arg(long)]
        strict: bool,
    },
    /// Store a component in the registry in NATS and point the tag of NAME at it (after
    /// checking that it loads and implements a weir world).
    Deploy {
        /// The component (.wasm).
        component: PathBuf,
        /// The plugin's name in the registry.
        #[arg(long)]
        name: String,
        /// The version (default: the bytes' existing version, else the next integer).
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// List the plugins of the registry and the version each tag points at.
    List {
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Show every deploy and rollback of plugin NAME, oldest first (`*`: the current tag).
    History {
        name: String,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Point the tag of NAME back at an earlier version (default: the one deployed before the
    /// current one).
    Rollback {
        name: String,
        /// The version to move the tag to.
        #[arg(long)]
        to: Option<String>,
        /// Why (recorded in the history).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        nats: NatsArgs,
    },
}

pub fn run(
    cmd: PluginCommand,
    runtime: impl FnOnce() -> anyhow::Result<Runtime>,
) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::New { name, lang, dir } => {
            let dest = dir.unwrap_or_else(|| PathBuf::from(&name));
            toolchain::new_project(lang, &name, &dest)?;
            println!(
                "created {} plugin {name} in {}",
                lang.name(),
                dest.display()
            );
            println!("next: weir plugin build {}", dest.display());
            Ok(())
        }
        PluginCommand::Build { dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            let path = toolchain::build(&dir)?;
            println!("{}", path.display());
            Ok(())
        }
        PluginCommand::Test {
            component,
            input,
            config,
            window,
            strict,
        } => {
            let runtime = runtime()?;
            let config = if let Some(file) = config.strip_prefix('@') {
                std::fs::read_to_string(file).with_context(|| format!("reading config {file}"))?
            } else {
                config
            };
            let config: serde_json::Value = serde_json::from_str(&config)
                .map_err(|e| anyhow::anyhow!("--config is not JSON: {e}"))?;
            let world = detect_world(&runtime, &component)?;
            if window.is_some() && world != World::Aggregate {
                bail!(
                    "--window applies to aggregate plugins; {} implements the `{}` world",
                    component.display(),
                    world.name()
                );
            }
            let window = window.as_deref().unwrap_or("tumbling:10s");
            let text = pipeline_text(&component, world, &config, window)?;
            let dir = tempfile::tempdir()?;
            let file = dir.path().join("plugin-test.toml");
            std::fs::write(&file, &text)?;
            let pipeline = weir::config::parse(&file, text)?;
            let sink = weir::sink::stdout::StdoutSink::stdio();
            let summary = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(weir::pipeline::local::run(
                    &runtime, &pipeline, &input, sink, false,
                ))?;
            if strict && summary.dead_letters > 0 {
                bail!("{} events failed", summary.dead_letters);
            }
            Ok(())
        }
        PluginCommand::Deploy {
            component,
            name,
            version,
            nats,
        } => super::registry::deploy(&runtime()?, &component, &name, version, &nats),
        PluginCommand::List { nats } => super::registry::list(&nats),
        PluginCommand::History { name, nats } => super::registry::history(name, &nats),
        PluginCommand::Rollback {
            name,
            to,
            reason,
            nats,
        } => super::registry::rollback(&name, to, &reason, &nats),
    }
}

/// The world `path` implements: tried in turn, naming what is wrong when none fits.
fn detect_world(runtime: &Runtime, path: &Path) -> anyhow::Result<World> {
    Ok(weir::registry::validate::detect_world(runtime, path)?.world)
}

/// A pipeline running only `component` (for `--local`).
fn pipeline_text(
    component: &Path,
    world: World,
    config: &serde_json::Value,
    window: &str,
) -> anyhow::Result<String> {
    let path = std::fs::canonicalize(component)
        .with_context(|| format!("reading {}", component.display()))?;
    let plugin = toml::Value::String(path.display().to_string());
    let config = toml::Value::try_from(config)
        .map_err(|e| anyhow::anyhow!("--config cannot be passed on: {e}"))?;
    let block = format!("name = \"plugin\"\nplugin = {plugin}\nconfig = {config}\n");
    let head = "name = \"plugin-test\"\n[source]\nstream = \"LOCAL\"\n";
    let sink = "[sink]\nsubject = \"out\"\ndead_letter = \"dead\"\n";
    Ok(match world {
        World::Transform => format!("{head}[[operators]]\n{block}{sink}"),
        World::Process => format!("{head}[process.function]\n{block}{sink}"),
        World::Aggregate => {
            let parts: Vec<&str> = window.split(':').collect();
            let spec = match parts.as_slice() {
                ["tumbling", size] => format!("type = \"tumbling\"\nsize = \"{size}\"\n"),
                ["sliding", size, slide] => {
                    format!("type = \"sliding\"\nsize = \"{size}\"\nslide = \"{slide}\"\n")
                }
                ["session", gap] => format!("type = \"session\"\ngap = \"{gap}\"\n"),
                _ => bail!(
                    "--window {window:?}: expected tumbling:SIZE, sliding:SIZE:SLIDE or session:GAP"
                ),
            };
            format!("{head}[window]\n{spec}[window.aggregate]\n{block}{sink}")
        }
    })
}
