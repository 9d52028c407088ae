//! The counters and gauges of a running pipeline ([`Metrics`]), updated by the run loop and
//! rendered in the Prometheus text format for `GET /metrics`; they carry the pipeline's
//! [`Health`] too.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::health::Health;

/// Counters and gauges of a running pipeline, updated by the run loop.
#[derive(Debug)]
pub struct Metrics {
    pipeline: String,
    pub inputs: AtomicU64,
    pub results: AtomicU64,
    pub dead_letters: AtomicU64,
    pub late: AtomicU64,
    pub batches: AtomicU64,
    /// Event-time watermark, ms since the epoch (`i64::MIN`: none yet).
    pub watermark: AtomicI64,
    /// Checkpoints committed.
    pub checkpoints: AtomicU64,
    /// Plugin versions swapped into the running pipeline (hot-loading).
    pub swaps: AtomicU64,
    /// Each operator's plugin version (`GET /plugins`).
    pub plugins: super::plugins::Plugins,
    /// Canaries that rolled a new version back.
    pub rollbacks: AtomicU64,
    /// How long the last swap held the pipeline between two batches (installing the new
    /// version and committing the checkpoint that records it), µs.
    pub swap_stall_us: AtomicU64,
    /// Source sequence of the last committed checkpoint.
    pub checkpoint_sequence: AtomicU64,
    /// The last checkpoint's pause of processing (state snapshot), µs.
    pub checkpoint_pause_us: AtomicU64,
    /// The last checkpoint's time from snapshot to commit, ms.
    pub checkpoint_write_ms: AtomicU64,
    /// The last checkpoint's state blob size.
    pub checkpoint_bytes: AtomicU64,
    /// Liveness and readiness, served as `/health` and `/ready`.
    pub health: Arc<Health>,
}

impl Metrics {
    /// Zeroed metrics of pipeline `pipeline`, its health "starting".
    pub fn new(pipeline: &str) -> Arc<Self> {
        Arc::new(Metrics {
            pipeline: pipeline.to_owned(),
            inputs: AtomicU64::new(0),
            results: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            late: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            checkpoints: AtomicU64::new(0),
            swaps: AtomicU64::new(0),
            swap_stall_us: AtomicU64::new(0),
            rollbacks: AtomicU64::new(0),
            plugins: Default::default(),
            checkpoint_sequence: AtomicU64::new(0),
            checkpoint_pause_us: AtomicU64::new(0),
            checkpoint_write_ms: AtomicU64::new(0),
            checkpoint_bytes: AtomicU64::new(0),
            health: Arc::new(Health::new()),
        })
    }

    /// The counters and last-value gauges, for [`Metrics::render`].
    fn render_counts(&self, out: &mut String) {
        let p = &self.pipeline;
        let counters: [(&str, &str, &AtomicU64); 8] = [
            (
                "weir_input_events_total",
                "Source messages processed.",
                &self.inputs,
            ),
            (
                "weir_results_total",
                "Results published to the sink.",
                &self.results,
            ),
            (
                "weir_dead_letters_total",
                "Events sent to the dead-letter subject.",
                &self.dead_letters,
            ),
            (
                "weir_late_events_total",
                "Events past their windows' allowed lateness.",
                &self.late,
            ),
            (
                "weir_batches_total",
                "Source batches completed.",
                &self.batches,
            ),
            (
                "weir_checkpoints_total",
                "Checkpoints committed.",
                &self.checkpoints,
            ),
            (
                "weir_plugin_swaps_total",
                "New plugin versions swapped into the running pipeline.",
                &self.swaps,
            ),
            (
                "weir_plugin_rollbacks_total",
                "New plugin versions rolled back by their canary.",
                &self.rollbacks,
            ),
        ];
        for (name, help, v) in counters {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{pipeline=\"{p}\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        for (name, help, v) in [
            (
                "weir_plugin_swap_stall_microseconds",
                "How long the last plugin swap held the pipeline between two batches.",
                &self.swap_stall_us,
            ),
            (
                "weir_checkpoint_sequence",
                "Source stream sequence covered by the last checkpoint.",
                &self.checkpoint_sequence,
            ),
            (
                "weir_checkpoint_pause_us",
                "Processing pause of the last checkpoint (state snapshot), microseconds.",
                &self.checkpoint_pause_us,
            ),
            (
                "weir_checkpoint_write_ms",
                "Time from snapshot to commit of the last checkpoint, milliseconds.",
                &self.checkpoint_write_ms,
            ),
            (
                "weir_checkpoint_bytes",
                "State blob size of the last checkpoint.",
                &self.checkpoint_bytes,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{pipeline=\"{p}\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
    }

    /// The metrics in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let p = &self.pipeline;
        let mut out = String::new();
        self.render_counts(&mut out);
        let wm = self.watermark.load(Ordering::Relaxed);
        if wm != i64::MIN {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            out.push_str(&format!(
                "# HELP weir_watermark_ms Event-time watermark (ms since the epoch).\n# TYPE weir_watermark_ms gauge\nweir_watermark_ms{{pipeline=\"{p}\"}} {wm}\n"
            ));
            out.push_str(&format!(
                "# HELP weir_watermark_lag_ms How far the watermark trails the wall clock.\n# TYPE weir_watermark_lag_ms gauge\nweir_watermark_lag_ms{{pipeline=\"{p}\"}} {}\n",
                now.saturating_sub(wm)
            ));
        }
        out
    }
}
