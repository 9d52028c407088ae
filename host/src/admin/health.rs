//! Liveness and readiness of a running pipeline, served as `GET /health` and `GET /ready`.
//!
//! - **Live** (`/health`): the run loop is not stuck. Waiting for input is healthy however
//!   long it lasts (a quiet stream); the work between two waits (running a batch through the
//!   operators, handing outputs to the sink) must end within the liveness timeout
//!   ([`Health::set_liveness_timeout`]). While NATS is disconnected a stall is put down to
//!   NATS, which `/ready` reports, and the host still counts as live: restarting it would not
//!   bring NATS back. Before the run loop starts (plugins loading, the checkpoint restoring)
//!   the host is live.
//! - **Ready** (`/ready`): connected to NATS, the checkpoint restored and the source being
//!   consumed, no operator marked failed, and live.
//!
//! Who tells what:
//! - the run loop awaits its input through [`Health::awaiting_input`] and says when it
//!   consumes with [`Health::set_consuming`];
//! - the NATS connection reports through [`Health::nats_events`] (its event callback);
//! - an operator that stops processing (e.g. its circuit breaker opens) is marked with
//!   [`Health::set_failed`] and unmarked with [`Health::clear_failed`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::telemetry::escape::escape_control;

/// `work_started` before the run loop first waits for input.
const STARTING: u64 = 0;
/// `work_started` while the run loop waits for input.
const WAITING: u64 = u64::MAX;

/// The liveness timeout until [`Health::set_liveness_timeout`] sets one.
pub const DEFAULT_LIVENESS_TIMEOUT: Duration = Duration::from_secs(60);

/// The health of one running pipeline; every method takes `&self` and is cheap.
#[derive(Debug)]
pub struct Health {
    epoch: Instant,
    /// When the run loop's current work began, ms since `epoch` plus one, or [`STARTING`] or
    /// [`WAITING`].
    work_started: AtomicU64,
    liveness_timeout_ms: AtomicU64,
    nats_connected: AtomicBool,
    consuming: AtomicBool,
    /// Operators marked failed, by name, with the reason.
    failed: Mutex<BTreeMap<String, String>>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// A pipeline starting: live, not ready.
    pub fn new() -> Self {
        Health {
            epoch: Instant::now(),
            work_started: AtomicU64::new(STARTING),
            liveness_timeout_ms: AtomicU64::new(DEFAULT_LIVENESS_TIMEOUT.as_millis() as u64),
            nats_connected: AtomicBool::new(false),
            consuming: AtomicBool::new(false),
            failed: Mutex::new(BTreeMap::new()),
        }
    }

    /// How long the run loop may work between two waits for input before the host is not
    /// live.
    pub fn set_liveness_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.liveness_timeout_ms.store(ms, Relaxed);
    }

    /// Awaits `input` (the run loop's next batch) as a wait, however long; the loop's work
    /// starts when it completes.
    pub async fn awaiting_input<F: Future>(&self, input: F) -> F::Output {
        self.work_started.store(WAITING, Relaxed);
        let out = input.await;
        let now = self.epoch.elapsed().as_millis() as u64;
        self.work_started
            .store(now.saturating_add(1).min(WAITING - 1), Relaxed);
        out
    }

    /// Whether the source is being consumed: `true` once the checkpoint is restored and the
    /// run loop runs, `false` when it shuts down.
    pub fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Relaxed);
    }

    /// Whether the NATS connection is up (see [`Health::nats_events`]).
    pub fn set_nats_connected(&self, connected: bool) {
        self.nats_connected.store(connected, Relaxed);
    }

    /// Marks operator `operator` failed for `reason` (e.g. "circuit breaker open after 5
    /// failures in 10 s"): the host is not ready until [`Health::clear_failed`]. Marking it
    /// again replaces the reason. The reason is shown on `/ready`; it must hold no secret.
    pub fn set_failed(&self, operator: &str, reason: &str) {
        let reason = escape_control(reason).into_owned();
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.insert(operator.to_owned(), reason.clone()).is_none() {
            tracing::warn!(operator, reason, "operator marked failed: not ready");
        }
    }

    /// Clears the failure mark of operator `operator` (e.g. its circuit breaker closed again).
    pub fn clear_failed(&self, operator: &str) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.remove(operator).is_some() {
            tracing::info!(operator, "operator no longer marked failed");
        }
    }

    /// A callback for `async_nats::ConnectOptions::event_callback` keeping the NATS state up
    /// to date (and logging losing and regaining the connection).
    pub fn nats_events(
        self: &Arc<Self>,
    ) -> impl Fn(async_nats::Event) -> std::future::Ready<()> + Send + Sync + 'static {
        let health = self.clone();
        move |event| {
            health.on_nats_event(&event);
            std::future::ready(())
        }
    }

    fn on_nats_event(&self, event: &async_nats::Event) {
        use async_nats::Event;
        let connected = match event {
            Event::Connected => true,
            Event::Disconnected | Event::Closed => false,
            _ => return,
        };
        match (self.nats_connected.swap(connected, Relaxed), connected) {
            (false, true) => tracing::info!("connected to NATS"),
            (true, false) => tracing::warn!("disconnected from NATS: not ready until reconnected"),
            _ => {}
        }
    }

    /// `Ok` when live, or why not.
    pub fn liveness(&self) -> Result<(), String> {
        self.liveness_at(Instant::now())
    }

    fn liveness_at(&self, now: Instant) -> Result<(), String> {
        let started = self.work_started.load(Relaxed);
        if started == STARTING || started == WAITING || !self.nats_connected.load(Relaxed) {
            return Ok(());
        }
        let busy = now
            .saturating_duration_since(self.epoch + Duration::from_millis(started - 1))
            .as_millis() as u64;
        let limit = self.liveness_timeout_ms.load(Relaxed);
        if busy <= limit {
            return Ok(());
        }
        Err(format!(
            "stuck: the run loop has worked on one batch for {} (liveness timeout {})",
            humantime::format_duration(Duration::from_secs(busy / 1000)),
            humantime::format_duration(Duration::from_millis(limit))
        ))
    }

    /// `Ok` when ready, or every reason why not.
    pub fn readiness(&self) -> Result<(), String> {
        let mut why = Vec::new();
        if !self.nats_connected.load(Relaxed) {
            why.push("not connected to NATS".to_owned());
        }
        if !self.consuming.load(Relaxed) {
            why.push("not consuming (starting, restoring or shutting down)".to_owned());
        }
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        for (operator, reason) in failed.iter() {
            why.push(format!("operator `{operator}` failed: {reason}"));
        }
        drop(failed);
        if let Err(e) = self.liveness() {
            why.push(e);
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consuming_and_connected() -> Health {
        let h = Health::new();
        h.set_nats_connected(true);
        h.set_consuming(true);
        h
    }

    #[test]
    fn a_starting_pipeline_is_live_but_not_ready() {
        let h = Health::new();
        assert_eq!(h.liveness(), Ok(()));
        let why = h.readiness().unwrap_err();
        assert!(why.contains("not connected to NATS"), "{why}");
        assert!(why.contains("not consuming"), "{why}");
        h.set_nats_connected(true);
        h.set_consuming(true);
        assert_eq!(h.readiness(), Ok(()));
    }

    #[tokio::test]
    async fn work_past_the_liveness_timeout_is_stuck_and_waiting_is_not() {
        let h = consuming_and_connected();
        h.set_liveness_timeout(Duration::from_secs(10));
        h.awaiting_input(async {}).await;
        let now = Instant::now();
        assert_eq!(h.liveness_at(now), Ok(()));
        let later = now + Duration::from_secs(11);
        let why = h.liveness_at(later).unwrap_err();
        assert!(why.contains("stuck") && why.contains("10s"), "{why}");
        assert!(h.readiness().is_ok(), "now is still within the timeout");
        // Disconnected from NATS, the stall is NATS's.
        h.set_nats_connected(false);
        assert_eq!(h.liveness_at(later), Ok(()));
        h.set_nats_connected(true);
        // Waiting for input, however long, is live.
        let wait = h.awaiting_input(std::future::pending::<()>());
        tokio::pin!(wait);
        assert!(futures::poll!(wait.as_mut()).is_pending());
        assert_eq!(h.liveness_at(later + Duration::from_secs(3600)), Ok(()));
    }

    #[test]
    fn a_failed_operator_makes_the_pipeline_not_ready_until_cleared() {
        let h = consuming_and_connected();
        h.set_failed("enrich", "circuit breaker open\n(5 failures)");
        h.set_failed("score", "circuit breaker open");
        let why = h.readiness().unwrap_err();
        assert_eq!(
            why,
            "operator `enrich` failed: circuit breaker open\\n(5 failures); \
             operator `score` failed: circuit breaker open"
        );
        h.clear_failed("enrich");
        h.clear_failed("score");
        assert_eq!(h.readiness(), Ok(()));
    }

    #[tokio::test]
    async fn nats_events_track_the_connection() {
        let h = Arc::new(consuming_and_connected());
        let callback = h.nats_events();
        callback(async_nats::Event::Disconnected).await;
        assert!(h.readiness().unwrap_err().contains("not connected to NATS"));
        callback(async_nats::Event::Connected).await;
        assert_eq!(h.readiness(), Ok(()));
    }
}
