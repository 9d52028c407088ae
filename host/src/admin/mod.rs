//! The admin HTTP endpoint (`weir run --admin ADDR`):
//!
//! - `GET /health`: liveness — `200 ok` while the run loop is not stuck, `503` with the
//!   reason otherwise ([`health`]);
//! - `GET /ready`: readiness — `200 ready` when connected to NATS, restored and consuming,
//!   with no operator marked failed; `503` with every reason otherwise;
//! - `GET /metrics`: Prometheus text format — counts of events in and out, dead letters, late
//!   events, checkpoints, the event-time watermark with its lag behind the wall clock, and
//!   each operator's busy time ([`metrics`]);
//! - `GET /plugins`: JSON, the plugin version of each operator, since when, its events,
//!   errors and busy time, and a watching canary ([`plugins`]).
//!
//! [`start`] binds the address before the pipeline starts: an address that cannot be bound
//! (a port in use) fails the start. Beyond loopback a bearer token is required for every
//! route but `/health` and `/ready` — with none set, only those two answer ([`auth`]); `weir serve` serves its own routes
//! (`crate::serve`) the same way.

pub mod auth;
pub mod health;
pub mod metrics;
pub mod plugins;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

pub use health::Health;
pub use metrics::Metrics;

use crate::config::{OperatorConfig, Pipeline, PipelineConfig};

/// The environment variable overriding [`liveness_timeout`] (a duration, e.g. `2m`).
pub const LIVENESS_TIMEOUT_ENV: &str = "WEIR_LIVENESS_TIMEOUT";

/// The shortest liveness timeout [`liveness_timeout`] picks.
const MIN_LIVENESS_TIMEOUT: Duration = Duration::from_secs(30);

async fn metrics(State(m): State<Arc<Metrics>>) -> String {
    m.render()
}

async fn health(State(m): State<Arc<Metrics>>) -> (StatusCode, String) {
    match m.health.liveness() {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not live: {why}\n"),
        ),
    }
}

async fn ready(State(m): State<Arc<Metrics>>) -> (StatusCode, String) {
    match m.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn plugins(
    State(m): State<Arc<Metrics>>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        m.plugins.json(),
    )
}

/// The endpoint's routes over `metrics`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(self::metrics))
        .route("/plugins", get(self::plugins))
        .with_state(metrics)
}

/// How long the run loop of `cfg` may work on one batch before the host is not live: ten
/// times the longest step a healthy loop takes (a fetch's `source.max_wait`, a plugin call's
/// `deadline`), at least 30 s. `WEIR_LIVENESS_TIMEOUT` overrides it.
pub fn liveness_timeout(cfg: &PipelineConfig) -> anyhow::Result<Duration> {
    if let Ok(text) = std::env::var(LIVENESS_TIMEOUT_ENV) {
        return humantime::parse_duration(text.trim()).with_context(|| {
            format!("{LIVENESS_TIMEOUT_ENV}={text:?} is not a duration (e.g. 2m)")
        });
    }
    let operators: Vec<&OperatorConfig> = cfg
        .operators
        .iter()
        .chain(&cfg.after)
        .chain(cfg.window.as_ref().map(|w| &w.aggregate))
        .chain(cfg.process.as_ref().map(|p| &p.function))
        .collect();
    let longest_step = operators
        .iter()
        .map(|o| o.deadline)
        .chain(cfg.inputs().iter().map(|s| s.max_wait))
        .max()
        .unwrap_or_default();
    Ok((longest_step * 10).max(MIN_LIVENESS_TIMEOUT))
}

/// Binds the admin endpoint of `pipeline` on `addr` and serves it in the background; returns
/// the bound address. Fails, naming `addr`, when it cannot bind (a port in use). Beyond
/// loopback, routes but `/health` and `/ready` need `token` ([`auth::Guard`]).
pub async fn start(
    addr: SocketAddr,
    pipeline: &Pipeline,
    metrics: Arc<Metrics>,
    token: Option<auth::Token>,
) -> anyhow::Result<SocketAddr> {
    metrics
        .health
        .set_liveness_timeout(liveness_timeout(&pipeline.config)?);
    serve(
        addr,
        router(metrics),
        token,
        "/health, /ready, /metrics, /plugins",
    )
    .await
}

/// Binds `addr` and serves `router` (behind `token`, see [`auth`]) in the background; the
/// bound address. `routes` names the routes in the log.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    token: Option<auth::Token>,
    routes: &str,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--admin {addr}: cannot listen on this address"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    let guard = auth::Guard::for_endpoint(bound, token);
    tracing::info!(addr = %bound, routes, guard = ?guard, "admin endpoint");
    let router = auth::protect(router, guard);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "admin endpoint stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(extra: &str) -> Pipeline {
        let text = format!(
            "name = \"p\"\n[source]\nstream = \"IN\"\n{extra}\n\
             [sink]\nsubject = \"out\"\ndead_letter = \"dlq\"\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, text).unwrap();
        crate::config::load(&file).unwrap()
    }

    #[test]
    fn the_liveness_timeout_follows_the_longest_step_with_a_floor() {
        assert_eq!(
            liveness_timeout(&pipeline("").config).unwrap(),
            MIN_LIVENESS_TIMEOUT
        );
        assert_eq!(
            liveness_timeout(&pipeline("max_wait = \"5s\"").config).unwrap(),
            Duration::from_secs(50)
        );
    }

    #[tokio::test]
    async fn an_address_in_use_fails_the_start_naming_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let p = pipeline("");
        let err = start(addr, &p, Metrics::new("p"), None).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains(&addr.to_string()), "{text}");
        assert!(text.to_lowercase().contains("in use"), "{text}");
    }
}
