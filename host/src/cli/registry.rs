//! `weir plugin deploy|list|history|rollback`: the plugin registry in NATS from the command
//! line ([`weir::registry`]). A deploy checks the component before anything is stored; the
//! read-only commands create no bucket. NATS is reached with the `--nats-*` flags
//! ([`NatsArgs`]); no secret is printed.

use std::path::Path;

use anyhow::Context;

use super::nats_args::NatsArgs;
use super::progress::Progress;
use weir::registry::names::human_size;
use weir::registry::{Registry, RegistryError, Tag};
use weir::runtime::Runtime;

/// `weir plugin deploy COMPONENT --name NAME [--version V]`.
pub fn deploy(
    runtime: &Runtime,
    component: &Path,
    name: &str,
    version: Option<String>,
    nats: &NatsArgs,
) -> anyhow::Result<()> {
    weir::registry::names::check_name(name)?;
    let progress = Progress::on_stderr();
    let step = progress.step(format!("checking {} (compiling)", component.display()));
    let checked = weir::registry::validate::validate(runtime, component)
        .with_context(|| format!("{name} was not deployed"))?;
    step.done();
    block_on(async {
        let size = human_size(checked.bytes.len() as u64);
        let step = progress.step(format!("uploading {size} to the plugin registry"));
        let registry = connect(nats, true).await?;
        let before = registry.tag(name).await?;
        let tag = registry
            .publish(name, version.as_deref(), checked.world, &checked.bytes)
            .await
            .with_context(|| format!("{name} was not deployed"))?;
        step.done();
        if before.as_ref() == Some(&tag) {
            println!(
                "{name} is already at version {}; nothing changed",
                describe(&tag)
            );
        } else {
            let was = before.map_or(String::new(), |b| format!(", was version {}", b.version));
            println!("deployed {name} version {}{was}", describe(&tag));
        }
        Ok(())
    })
}

/// `weir plugin list`.
pub fn list(nats: &NatsArgs) -> anyhow::Result<()> {
    block_on(async {
        let Some(registry) = connect_existing(nats).await? else {
            return Ok(());
        };
        let tags = registry.list().await?;
        if tags.is_empty() {
            println!("no plugins deployed");
        } else {
            print!("{}", table(&tags));
        }
        Ok(())
    })
}

/// `weir plugin history NAME`.
pub fn history(name: String, nats: &NatsArgs) -> anyhow::Result<()> {
    block_on(async {
        weir::registry::names::check_name(&name)?;
        let Some(registry) = connect_existing(nats).await? else {
            return Ok(());
        };
        let moves = registry.history(&name).await?;
        if moves.is_empty() {
            return Err(RegistryError::UnknownPlugin {
                name,
                bucket: weir::registry::TAGS.to_owned(),
            }
            .into());
        }
        let current = registry.tag(&name).await?;
        for (i, t) in moves.iter().enumerate() {
            let now = i + 1 == moves.len() && current.as_ref() == Some(t);
            println!(
                "{} {}  version {}  sha256 {}…  {}  {}  {}",
                if now { '*' } else { ' ' },
                when(t.deployed_at_ms),
                t.version,
                t.short_digest(),
                t.world,
                human_size(t.size),
                t.note.as_deref().unwrap_or("deploy"),
            );
        }
        Ok(())
    })
}

/// `weir plugin rollback NAME [--to V] [--reason TEXT]`.
pub fn rollback(
    name: &str,
    to: Option<String>,
    reason: &str,
    nats: &NatsArgs,
) -> anyhow::Result<()> {
    block_on(async {
        let registry = connect(nats, false).await?;
        let before = registry.tag(name).await?;
        let tag = registry.rollback(name, to.as_deref(), reason).await?;
        let from = before.map_or(String::new(), |b| format!(" from {}", b.version));
        println!("rolled back {name} to version {}{from}", describe(&tag));
        Ok(())
    })
}

pub(super) fn block_on(
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

/// The registry of the NATS server of `nats`; with `create`, its buckets are created if
/// missing.
async fn connect(nats: &NatsArgs, create: bool) -> anyhow::Result<Registry> {
    let nats = nats.options(None)?;
    let client = weir::connect::connect("weir plugin", &nats, None).await?;
    let js = async_nats::jetstream::new(client);
    Registry::open(&js, create)
        .await
        .with_context(|| format!("the plugin registry at {}", nats.shown_url()))
}

/// The registry, or `None` (and a line saying so) when its buckets do not exist.
async fn connect_existing(nats: &NatsArgs) -> anyhow::Result<Option<Registry>> {
    match connect(nats, false).await {
        Ok(r) => Ok(Some(r)),
        Err(e) => match e.downcast_ref::<RegistryError>() {
            Some(missing @ RegistryError::BucketMissing { .. }) => {
                println!("no plugins deployed ({missing})");
                Ok(None)
            }
            _ => Err(e),
        },
    }
}

/// `3 (sha256 1a2b3c4d5e6f…, transform, 1.2 MiB)`.
fn describe(t: &Tag) -> String {
    format!(
        "{} (sha256 {}…, {}, {})",
        t.version,
        t.short_digest(),
        t.world,
        human_size(t.size)
    )
}

/// A time in milliseconds since the epoch, to the second (UTC).
pub(super) fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The tags as a table with a header, columns aligned.
fn table(tags: &[Tag]) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "VERSION".to_owned(),
        "WORLD".to_owned(),
        "DIGEST".to_owned(),
        "SIZE".to_owned(),
        "DEPLOYED".to_owned(),
        "NOTE".to_owned(),
    ]];
    for t in tags {
        rows.push([
            t.name.clone(),
            t.version.clone(),
            t.world.clone(),
            t.short_digest().to_owned(),
            human_size(t.size),
            when(t.deployed_at_ms),
            t.note.clone().unwrap_or_default(),
        ]);
    }
    super::aligned(&rows)
}
