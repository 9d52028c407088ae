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
    /// When the last checkpoint committed, ms since the Unix epoch (0: none yet).
    pub last_checkpoint_ms: AtomicI64,
    /// Source messages the consumer has not delivered yet (-1: not known), kept up to date by
    /// `weir serve`.
    pub consumer_pending: AtomicI64,
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
            last_checkpoint_ms: AtomicI64::new(0),
            consumer_pending: AtomicI64::new(-1),
            health: Arc::new(Health::new()),
        })
    }

    /// Every metric of this pipeline: the counters, the last-value gauges and — once there is
    /// one — the watermark and its lag behind the wall clock.
    fn samples(&self) -> Vec<Sample> {
        let mut out: Vec<Sample> = COUNTS
            .iter()
            .map(|(kind, name, help, field)| {
                let value = field(self).load(Ordering::Relaxed) as i64;
                Sample(*kind, name, help, value)
            })
            .collect();
        let now = now_ms();
        let last = self.last_checkpoint_ms.load(Ordering::Relaxed);
        let pending = self.consumer_pending.load(Ordering::Relaxed);
        let wm = self.watermark.load(Ordering::Relaxed);
        let optional = [
            (
                last > 0,
                "weir_checkpoint_age_ms",
                "Time since the last checkpoint committed, milliseconds.",
                now.saturating_sub(last),
            ),
            (
                pending >= 0,
                "weir_consumer_pending",
                "Source messages not yet delivered to the pipeline (consumer lag).",
                pending,
            ),
            (
                wm != i64::MIN,
                "weir_watermark_ms",
                "Event-time watermark (ms since the epoch).",
                wm,
            ),
            (
                wm != i64::MIN,
                "weir_watermark_lag_ms",
                "How far the watermark trails the wall clock.",
                now.saturating_sub(wm),
            ),
        ];
        for (known, name, help, value) in optional {
            if known {
                out.push(Sample(Kind::Gauge, name, help, value));
            }
        }
        out
    }

    /// The metrics in Prometheus text exposition format.
    pub fn render(&self) -> String {
        render_all(std::slice::from_ref(&self))
    }

    /// The watermark's lag behind the wall clock, ms (`None`: no watermark yet).
    pub fn watermark_lag_ms(&self) -> Option<i64> {
        let wm = self.watermark.load(Ordering::Relaxed);
        (wm != i64::MIN).then(|| now_ms().saturating_sub(wm))
    }

    /// The pipeline these metrics belong to.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// Records a committed checkpoint.
    pub fn checkpoint_committed(&self) {
        self.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.last_checkpoint_ms.store(now_ms(), Ordering::Relaxed);
    }
}

/// The counters and last-value gauges every pipeline has: type, name, help, field.
type Count = (Kind, &'static str, &'static str, fn(&Metrics) -> &AtomicU64);

#[rustfmt::skip]
const COUNTS: [Count; 13] = [
    (Kind::Counter, "weir_input_events_total", "Source messages processed.", |m| &m.inputs),
    (Kind::Counter, "weir_results_total", "Results published to the sink.", |m| &m.results),
    (Kind::Counter, "weir_dead_letters_total", "Events sent to the dead-letter subject.", |m| &m.dead_letters),
    (Kind::Counter, "weir_late_events_total", "Events past their windows' allowed lateness.", |m| &m.late),
    (Kind::Counter, "weir_batches_total", "Source batches completed.", |m| &m.batches),
    (Kind::Counter, "weir_checkpoints_total", "Checkpoints committed.", |m| &m.checkpoints),
    (Kind::Counter, "weir_plugin_swaps_total", "New plugin versions swapped into the running pipeline.", |m| &m.swaps),
    (Kind::Counter, "weir_plugin_rollbacks_total", "New plugin versions rolled back by their canary.", |m| &m.rollbacks),
    (Kind::Gauge, "weir_plugin_swap_stall_microseconds", "How long the last plugin swap held the pipeline between two batches.", |m| &m.swap_stall_us),
    (Kind::Gauge, "weir_checkpoint_sequence", "Source stream sequence covered by the last checkpoint.", |m| &m.checkpoint_sequence),
    (Kind::Gauge, "weir_checkpoint_pause_us", "Processing pause of the last checkpoint (state snapshot), microseconds.", |m| &m.checkpoint_pause_us),
    (Kind::Gauge, "weir_checkpoint_write_ms", "Time from snapshot to commit of the last checkpoint, milliseconds.", |m| &m.checkpoint_write_ms),
    (Kind::Gauge, "weir_checkpoint_bytes", "State blob size of the last checkpoint.", |m| &m.checkpoint_bytes),
];

/// A metric's type in the exposition format.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric of one pipeline: type, name, help text, value.
struct Sample(Kind, &'static str, &'static str, i64);

/// A metric family: type, name, help text, and its samples as written after the name
/// (`{labels} value`).
type Family = (Kind, &'static str, &'static str, Vec<String>);

/// The per-operator family: each operator's busy time.
const OPERATOR_BUSY: (&str, &str) = (
    "weir_operator_busy_seconds_total",
    "Wall time the operator's plugin calls took (since its running version took over).",
);

/// The metrics of several pipelines in Prometheus text exposition format: each family once
/// (`# HELP`, `# TYPE`), with one sample per pipeline, labelled `pipeline="…"` — per operator
/// too for [`OPERATOR_BUSY`], labelled `operator="…"` as well.
pub fn render_all<M: std::ops::Deref<Target = Metrics>>(pipelines: &[M]) -> String {
    let mut families: Vec<Family> = Vec::new();
    let mut add = |kind, name, help, sample: String| match families.iter_mut().find(|f| f.1 == name)
    {
        Some(f) => f.3.push(sample),
        None => families.push((kind, name, help, vec![sample])),
    };
    for m in pipelines {
        let pipeline = escape_label(&m.pipeline);
        for Sample(kind, name, help, value) in m.samples() {
            add(
                kind,
                name,
                help,
                format!("{{pipeline=\"{pipeline}\"}} {value}"),
            );
        }
        for p in m.plugins.get() {
            let Some(us) = p.busy_us else { continue };
            let operator = escape_label(&p.operator);
            let seconds = us as f64 / 1e6;
            let sample =
                format!("{{pipeline=\"{pipeline}\",operator=\"{operator}\"}} {seconds:.6}");
            add(Kind::Counter, OPERATOR_BUSY.0, OPERATOR_BUSY.1, sample);
        }
    }
    let mut out = String::new();
    for (kind, name, help, samples) in families {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for sample in samples {
            out.push_str(&format!("{name}{sample}\n"));
        }
    }
    out
}

/// A label value as the exposition format writes it (`\`, `"` and newlines escaped).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::plugins::PluginStatus;

    fn operator(name: &str, busy_us: Option<u64>) -> PluginStatus {
        PluginStatus {
            stage: "operator".into(),
            operator: name.into(),
            version: format!("{name}@1a2b3c4d5e6f"),
            digest: "1a2b3c4d5e6f".into(),
            since_ms: Some(0),
            events: Some(0),
            errors: Some(0),
            canary_previous: None,
            busy_us,
        }
    }

    #[test]
    fn operator_busy_time_is_one_counter_family_across_pipelines() {
        let a = Metrics::new("a");
        a.plugins.set(vec![
            operator("map", Some(1_500_000)),
            operator("old", None),
        ]);
        let b = Metrics::new("b");
        b.plugins.set(vec![operator("filter", Some(250))]);
        let text = render_all(&[a, b]);
        let family = "weir_operator_busy_seconds_total";
        assert_eq!(text.matches(&format!("# TYPE {family} counter")).count(), 1);
        assert_eq!(text.matches("# TYPE weir_input_events_total").count(), 1);
        assert!(
            text.contains(&format!(
                "{family}{{pipeline=\"a\",operator=\"map\"}} 1.500000\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{family}{{pipeline=\"b\",operator=\"filter\"}} 0.000250\n"
            )),
            "{text}"
        );
        assert!(!text.contains("operator=\"old\""), "{text}");
    }
}
