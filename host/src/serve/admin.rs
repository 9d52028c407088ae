//! The admin endpoint of `weir serve`, for every pipeline of the host:
//!
//! - `GET /health`: `200 ok` while the host's control loop runs and no pipeline's run loop is
//!   stuck;
//! - `GET /ready`: `200 ready` when connected to NATS and every pipeline of the host is running,
//!   ready, and — when input is waiting — checkpointing; `503` with every reason otherwise;
//! - `GET /metrics`: Prometheus text, one sample per pipeline (`pipeline="…"` labels), and
//!   `weir_serve_pipelines{state="…"}`;
//! - `GET /pipelines`: JSON, the status of each pipeline of the host (as `weir pipeline status`).
//!
//! Behind the bearer token of [`crate::admin::auth`] when one is set (required beyond
//! loopback).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State as Extract;
use axum::http::{StatusCode, header};
use axum::routing::get;

use super::Host;
use super::applied::now_ms;
use super::status::State;
use crate::admin::auth::Token;

/// A last checkpoint older than this many checkpoint intervals (and at least
/// [`MIN_CHECKPOINT_AGE`]) makes the host not ready.
const CHECKPOINT_INTERVALS: u32 = 5;
const MIN_CHECKPOINT_AGE: Duration = Duration::from_secs(60);

/// Binds `addr` and serves the routes of `host` in the background.
pub async fn start(
    addr: SocketAddr,
    host: Arc<Host>,
    token: Option<Token>,
) -> anyhow::Result<SocketAddr> {
    let router = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/pipelines", get(pipelines))
        .with_state(host);
    crate::admin::serve(addr, router, token, "/health, /ready, /metrics, /pipelines").await
}

async fn health(Extract(host): Extract<Arc<Host>>) -> (StatusCode, String) {
    let stuck: Vec<String> = host
        .lock()
        .iter()
        .filter_map(|(name, s)| {
            s.metrics
                .health
                .liveness()
                .err()
                .map(|e| format!("{name}: {e}"))
        })
        .collect();
    if stuck.is_empty() {
        (StatusCode::OK, "ok\n".into())
    } else {
        let why = stuck.join("; ");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not live: {why}\n"),
        )
    }
}

/// Every reason the host is not ready (none: ready).
fn not_ready(host: &Host) -> Vec<String> {
    let mut why = Vec::new();
    if let Err(e) = host.health.readiness() {
        why.push(e);
    }
    let now = now_ms();
    for (name, s) in host.lock().iter() {
        let Some(status) = &s.status else {
            why.push(format!("{name}: starting"));
            continue;
        };
        match status.state {
            State::Running => {}
            State::Failed => {
                let reason = status.reason.as_deref().unwrap_or("no reason given");
                why.push(format!("{name}: failed: {reason}"));
                continue;
            }
            state => {
                why.push(format!("{name}: {}", state.name()));
                continue;
            }
        }
        let limit = s.interval.map_or(MIN_CHECKPOINT_AGE, |i| {
            (i * CHECKPOINT_INTERVALS).max(MIN_CHECKPOINT_AGE)
        });
        if let Err(e) = s.metrics.health.readiness() {
            why.push(format!("{name}: {e}"));
            continue;
        }
        // A quiet pipeline takes no checkpoints; one with input waiting must.
        let waiting = status.consumer_pending.is_some_and(|p| p > 0);
        let age = status
            .checkpoint_age_ms(now)
            .unwrap_or(now.saturating_sub(status.started_at_ms));
        if waiting && age > limit.as_millis() as i64 {
            why.push(format!(
                "{name}: no checkpoint for {} s (more than {} s)",
                age / 1000,
                limit.as_secs()
            ));
        }
    }
    why
}

async fn ready(Extract(host): Extract<Arc<Host>>) -> (StatusCode, String) {
    let why = not_ready(&host);
    if why.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        let why = why.join("; ");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
    }
}

async fn metrics(Extract(host): Extract<Arc<Host>>) -> String {
    let served = host.lock();
    let all: Vec<_> = served.values().map(|s| s.metrics.clone()).collect();
    let mut out = crate::admin::metrics::render_all(&all);
    out.push_str(
        "# HELP weir_serve_pipelines Pipelines of this host, by state.\n\
         # TYPE weir_serve_pipelines gauge\n",
    );
    for state in [
        State::Starting,
        State::Running,
        State::Failed,
        State::Stopped,
    ] {
        let n = served
            .values()
            .filter(|s| s.status.as_ref().map_or(State::Starting, |st| st.state) == state)
            .count();
        out.push_str(&format!(
            "weir_serve_pipelines{{state=\"{}\"}} {n}\n",
            state.name()
        ));
    }
    out
}

async fn pipelines(
    Extract(host): Extract<Arc<Host>>,
) -> ([(header::HeaderName, &'static str); 1], String) {
    let statuses: Vec<_> = host
        .lock()
        .values()
        .filter_map(|s| s.status.clone())
        .collect();
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(&statuses).unwrap_or_else(|_| "[]".into()),
    )
}
