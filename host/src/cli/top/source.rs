//! Where `weir top` reads pipeline statuses: the status bucket over NATS (every pipeline of
//! every `weir serve` host, their registry plugins named `nats:NAME@VERSION`), or one host's
//! admin endpoint — `/pipelines` of a `weir serve` host, or `/metrics`, `/plugins` and
//! `/ready` of a `weir run` host, put together into the same [`Status`].
//!
//! Reading only: nothing is created (a missing bucket is "no pipelines applied").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;

use crate::cli::admin_client;
use weir::admin::auth::Token;
use weir::admin::plugins::PluginStatus;
use weir::registry::{Registry, RegistryError};
use weir::serve::applied::now_ms;
use weir::serve::status::{State, Status, StatusStore};

/// How long one request to an admin endpoint may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// The most of an admin endpoint's answer read (`/pipelines` of a host running many
/// pipelines).
const HTTP_LIMIT: u64 = 16 * 1024 * 1024;

/// What one read found.
pub enum Fetched {
    /// The status bucket does not exist: no pipeline was ever applied.
    NoBucket,
    /// The statuses, sorted by pipeline.
    Statuses(Vec<Status>),
}

/// A source of statuses.
pub enum Source {
    Nats(Box<NatsSource>),
    Admin(AdminSource),
}

impl Source {
    /// Reads the statuses once.
    pub async fn fetch(&mut self) -> anyhow::Result<Fetched> {
        match self {
            Source::Nats(s) => s.fetch().await,
            Source::Admin(s) => s.fetch().await,
        }
    }

    /// Where the statuses come from, for the header.
    pub fn describe(&self) -> String {
        match self {
            Source::Nats(s) => format!("status bucket at {}", s.shown_url),
            Source::Admin(s) => format!("admin endpoint http://{}", s.addr),
        }
    }
}

/// The status bucket over NATS.
pub struct NatsSource {
    js: jetstream::Context,
    shown_url: String,
    store: Option<StatusStore>,
    /// Component digests and the registry plugin each is (`nats:NAME@VERSION`); `None`: not in
    /// the registry.
    names: HashMap<String, Option<String>>,
}

impl NatsSource {
    pub fn new(js: jetstream::Context, shown_url: String) -> Self {
        NatsSource {
            js,
            shown_url,
            store: None,
            names: HashMap::new(),
        }
    }

    async fn fetch(&mut self) -> anyhow::Result<Fetched> {
        if self.store.is_none() {
            self.store = StatusStore::open(&self.js, false).await?;
        }
        let Some(store) = &self.store else {
            return Ok(Fetched::NoBucket);
        };
        let mut statuses = store.list().await?;
        self.name_plugins(&mut statuses).await;
        Ok(Fetched::Statuses(statuses))
    }

    /// Shows registry plugins (whose files are named by their digest) as `nats:NAME@VERSION`;
    /// the registry is read again only for a digest not seen before.
    async fn name_plugins(&mut self, statuses: &mut [Status]) {
        let plugins = || statuses.iter().flat_map(|s| &s.plugins);
        if plugins().any(|p| !self.names.contains_key(&p.digest)) {
            let found = match registry_names(&self.js).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(error = %format!("{e:#}"), "reading the plugin registry");
                    HashMap::new()
                }
            };
            let unseen: Vec<String> = plugins()
                .map(|p| p.digest.clone())
                .filter(|d| !self.names.contains_key(d))
                .collect();
            for digest in unseen {
                let name = found.get(&digest).cloned();
                self.names.insert(digest, name);
            }
        }
        for p in statuses.iter_mut().flat_map(|s| s.plugins.iter_mut()) {
            if let Some(Some(name)) = self.names.get(&p.digest) {
                p.version = name.clone();
            }
        }
    }
}

/// Every version in the plugin registry by digest, as `nats:NAME@VERSION` (empty without a
/// registry).
async fn registry_names(js: &jetstream::Context) -> anyhow::Result<HashMap<String, String>> {
    let registry = match Registry::open(js, false).await {
        Ok(r) => r,
        Err(RegistryError::BucketMissing { .. }) => return Ok(HashMap::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = HashMap::new();
    for tag in registry.list().await? {
        for v in registry.versions(&tag.name).await? {
            out.insert(v.digest, format!("nats:{}@{}", v.name, v.version));
        }
    }
    Ok(out)
}

/// What kind of host answers at an admin endpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HostKind {
    /// Not asked yet.
    Unknown,
    /// `weir serve`: `/pipelines`.
    Serve,
    /// `weir run`: `/metrics`, `/plugins`, `/ready`.
    Run,
}

/// One host's admin endpoint.
pub struct AdminSource {
    addr: SocketAddr,
    /// `Bearer …`, when a token is set.
    authorization: Option<String>,
    kind: HostKind,
}

impl AdminSource {
    pub fn new(addr: SocketAddr, token: Option<Token>) -> Self {
        AdminSource {
            addr: admin_client::reachable(addr),
            authorization: token.map(|t| t.authorization()),
            kind: HostKind::Unknown,
        }
    }

    async fn fetch(&mut self) -> anyhow::Result<Fetched> {
        if self.kind != HostKind::Run {
            let (code, body) = self.get("/pipelines").await?;
            match code {
                200 => {
                    self.kind = HostKind::Serve;
                    let statuses = serde_json::from_str(&body).with_context(|| {
                        format!("http://{}/pipelines is not a list of statuses", self.addr)
                    })?;
                    return Ok(Fetched::Statuses(statuses));
                }
                404 if self.kind == HostKind::Unknown => self.kind = HostKind::Run,
                _ => return Err(self.refused("/pipelines", code, &body)),
            }
        }
        Ok(Fetched::Statuses(vec![self.run_status().await?]))
    }

    /// The status of a `weir run` host's pipeline, from its metrics, plugins and readiness.
    async fn run_status(&self) -> anyhow::Result<Status> {
        let (code, metrics) = self.get("/metrics").await?;
        if code != 200 {
            return Err(self.refused("/metrics", code, &metrics));
        }
        let (code, plugins) = self.get("/plugins").await?;
        if code != 200 {
            return Err(self.refused("/plugins", code, &plugins));
        }
        let plugins: Vec<PluginStatus> = serde_json::from_str(&plugins)
            .with_context(|| format!("http://{}/plugins is not a list of plugins", self.addr))?;
        let (ready, why) = self.get("/ready").await?;
        Ok(status_of_run(
            &metrics,
            plugins,
            (ready != 200).then(|| why.trim().to_owned()),
            self.addr.to_string(),
            now_ms(),
        ))
    }

    /// `GET path`, on a blocking thread.
    async fn get(&self, path: &'static str) -> anyhow::Result<(u16, String)> {
        let (addr, auth) = (self.addr, self.authorization.clone());
        tokio::task::spawn_blocking(move || {
            admin_client::get(addr, path, auth.as_deref(), HTTP_TIMEOUT, HTTP_LIMIT)
        })
        .await
        .context("the request panicked")?
        .with_context(|| format!("asking http://{addr}{path}"))
    }

    /// The error for an answer other than 200.
    fn refused(&self, path: &str, code: u16, body: &str) -> anyhow::Error {
        let hint = match code {
            401 | 403 => " (give the admin token: --admin-token-file FILE or WEIR_ADMIN_TOKEN)",
            404 => " (not the admin endpoint of a `weir serve` or `weir run` host?)",
            _ => "",
        };
        anyhow::anyhow!(
            "http://{}{path} answered {code}: {}{hint}",
            self.addr,
            body.trim()
        )
    }
}

/// A `weir run` host's pipeline as a [`Status`]: the counters from its Prometheus `metrics`,
/// `running` unless `not_ready` says why not, written `now`.
fn status_of_run(
    metrics: &str,
    plugins: Vec<PluginStatus>,
    not_ready: Option<String>,
    host: String,
    now: i64,
) -> Status {
    let samples = prometheus_samples(metrics);
    let value = |name: &str| samples.get(name).map(|(_, v)| *v);
    let count = |name: &str| value(name).map_or(0, |v| v.max(0.0) as u64);
    let pipeline = samples
        .get("weir_input_events_total")
        .map_or_else(String::new, |(p, _)| p.clone());
    Status {
        pipeline,
        state: if not_ready.is_some() {
            State::Starting
        } else {
            State::Running
        },
        reason: not_ready,
        host,
        applied_revision: 0,
        plugins,
        events_in: count("weir_input_events_total"),
        events_out: count("weir_results_total"),
        dead_letters: count("weir_dead_letters_total"),
        late: count("weir_late_events_total"),
        consumer_pending: value("weir_consumer_pending").map(|v| v.max(0.0) as u64),
        watermark_lag_ms: value("weir_watermark_lag_ms").map(|v| v as i64),
        last_checkpoint_ms: value("weir_checkpoint_age_ms").map(|age| now - age as i64),
        checkpoints: count("weir_checkpoints_total"),
        restarts: 0,
        started_at_ms: 0,
        heartbeat_ms: now,
    }
}

/// The samples of the Prometheus text `text` labelled with a pipeline only:
/// name → (pipeline, value).
fn prometheus_samples(text: &str) -> HashMap<String, (String, f64)> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once("{pipeline=\"") else {
            continue;
        };
        let Some(pipeline) = labels.strip_suffix("\"}") else {
            continue; // more labels than the pipeline
        };
        if let Ok(v) = value.parse::<f64>() {
            let pipeline = pipeline.replace("\\\"", "\"").replace("\\\\", "\\");
            out.insert(name.to_owned(), (pipeline, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weir_run_host_becomes_a_status_from_its_metrics() {
        let metrics = "# HELP weir_input_events_total Source messages processed.\n\
            # TYPE weir_input_events_total counter\n\
            weir_input_events_total{pipeline=\"orders \\\"eu\\\"\"} 1200\n\
            weir_results_total{pipeline=\"orders \\\"eu\\\"\"} 1100\n\
            weir_dead_letters_total{pipeline=\"orders \\\"eu\\\"\"} 3\n\
            weir_checkpoint_age_ms{pipeline=\"orders \\\"eu\\\"\"} 1500\n\
            weir_operator_busy_seconds_total{pipeline=\"orders \\\"eu\\\"\",operator=\"map\"} 0.5\n";
        let s = status_of_run(metrics, Vec::new(), None, "127.0.0.1:9464".into(), 10_000);
        assert_eq!(s.pipeline, "orders \"eu\"");
        assert_eq!(s.state, State::Running);
        assert_eq!((s.events_in, s.events_out, s.dead_letters), (1200, 1100, 3));
        assert_eq!(s.last_checkpoint_ms, Some(8_500));
        assert_eq!((s.consumer_pending, s.watermark_lag_ms), (None, None));
        let starting = status_of_run(metrics, Vec::new(), Some("not ready".into()), "h".into(), 0);
        assert_eq!(starting.state, State::Starting);
    }
}
