//! What `weir top` shows: each pipeline's latest status beside the one before it, and rates
//! from their difference — per second of the host's own heartbeat clock, so a refresh that
//! sees no new heartbeat keeps the rates it had instead of showing zero — as aligned lines:
//! a row per pipeline, under it a row per operator.

use std::collections::BTreeMap;

use weir::admin::plugins::PluginStatus;
use weir::serve::status::{State, Status};

/// Each pipeline's two latest statuses with distinct heartbeats.
#[derive(Default)]
pub struct History {
    pipelines: BTreeMap<String, Pair>,
}

struct Pair {
    earlier: Option<Status>,
    latest: Status,
}

impl History {
    /// Takes the statuses of a refresh; pipelines missing from it are dropped.
    pub fn observe(&mut self, statuses: Vec<Status>) {
        let mut next = BTreeMap::new();
        for s in statuses {
            let pair = match self.pipelines.remove(&s.pipeline) {
                Some(p) if s.heartbeat_ms > p.latest.heartbeat_ms => Pair {
                    earlier: Some(p.latest),
                    latest: s,
                },
                Some(p) if s.heartbeat_ms == p.latest.heartbeat_ms => Pair {
                    earlier: p.earlier,
                    latest: s,
                },
                _ => Pair {
                    earlier: None,
                    latest: s,
                },
            };
            next.insert(pair.latest.pipeline.clone(), pair);
        }
        self.pipelines = next;
    }

    /// Whether every pipeline has rates (two heartbeats seen).
    pub fn has_rates(&self) -> bool {
        self.pipelines.values().all(|p| p.earlier.is_some())
    }

    /// How many pipelines it shows.
    pub fn len(&self) -> usize {
        self.pipelines.len()
    }

    /// The table: the headers, then each pipeline's row, its reason when it is not running,
    /// and its operators' rows.
    pub fn render(&self, now_ms: i64) -> String {
        let mut pipelines = vec![PIPELINE_HEADER.map(str::to_owned)];
        let mut operators = vec![OPERATOR_HEADER.map(str::to_owned)];
        for pair in self.pipelines.values() {
            pipelines.push(pipeline_row(pair, now_ms));
            operators.extend(pair.latest.plugins.iter().map(|p| operator_row(pair, p)));
        }
        let pipelines = crate::cli::aligned(&pipelines);
        let operators = crate::cli::aligned(&operators);
        let (mut pipelines, mut operators) = (pipelines.lines(), operators.lines());
        let mut out = String::new();
        let mut line = |text: &str, indent: &str| {
            out.push_str(indent);
            out.push_str(text);
            out.push('\n');
        };
        line(pipelines.next().unwrap_or_default(), "");
        line(operators.next().unwrap_or_default(), "  ");
        for pair in self.pipelines.values() {
            line(pipelines.next().unwrap_or_default(), "");
            let s = &pair.latest;
            if s.state != State::Running
                && let Some(reason) = &s.reason
            {
                line(&reason.replace('\n', " "), "  reason: ");
            }
            for _ in &s.plugins {
                line(operators.next().unwrap_or_default(), "  ");
            }
        }
        out
    }
}

const PIPELINE_HEADER: [&str; 12] = [
    "PIPELINE",
    "STATE",
    "HOST",
    "IN/S",
    "OUT/S",
    "IN",
    "OUT",
    "DEAD",
    "DEAD/S",
    "PENDING",
    "WATERMARK LAG",
    "CHECKPOINT",
];

const OPERATOR_HEADER: [&str; 7] = [
    "STAGE", "OPERATOR", "VERSION", "EVENTS/S", "ERRORS", "BUSY", "CANARY",
];

fn pipeline_row(pair: &Pair, now_ms: i64) -> [String; 12] {
    let s = &pair.latest;
    let dash = || "-".to_owned();
    [
        s.pipeline.clone(),
        crate::cli::pipeline::state_text(s, now_ms),
        s.host.clone(),
        rate(pair.per_second(|s| s.events_in)),
        rate(pair.per_second(|s| s.events_out)),
        s.events_in.to_string(),
        s.events_out.to_string(),
        s.dead_letters.to_string(),
        rate(pair.per_second(|s| s.dead_letters)),
        s.consumer_pending.map_or_else(dash, |p| p.to_string()),
        s.watermark_lag_ms.map_or_else(dash, age),
        s.checkpoint_age_ms(now_ms)
            .map_or_else(dash, |a| format!("{} ago", age(a))),
    ]
}

fn operator_row(pair: &Pair, p: &PluginStatus) -> [String; 7] {
    let before = pair.operator_before(p);
    let seconds = pair.seconds();
    let delta = |f: fn(&PluginStatus) -> Option<u64>| {
        let (now, then) = (f(p)?, f(before?)?);
        Some(now.checked_sub(then)? as f64 / seconds?)
    };
    let busy = delta(|p| p.busy_us).map(|us| us / 1e6);
    [
        p.stage.clone(),
        p.operator.clone(),
        short_version(&p.version),
        rate(delta(|p| p.events)),
        p.errors.map_or_else(|| "-".into(), |e| e.to_string()),
        busy.map_or_else(|| "-".into(), |b| format!("{:.1}%", b * 100.0)),
        p.canary_previous
            .as_ref()
            .map_or_else(String::new, |was| format!("watching (was {was})")),
    ]
}

impl Pair {
    /// Seconds between the two heartbeats, when there are two of one run.
    fn seconds(&self) -> Option<f64> {
        let e = self.earlier.as_ref()?;
        let ms = self.latest.heartbeat_ms - e.heartbeat_ms;
        (e.started_at_ms == self.latest.started_at_ms && ms > 0).then(|| ms as f64 / 1000.0)
    }

    /// The per-second change of a pipeline counter (`None`: no rate yet, or it restarted).
    fn per_second(&self, f: fn(&Status) -> u64) -> Option<f64> {
        let e = self.earlier.as_ref()?;
        Some(f(&self.latest).checked_sub(f(e))? as f64 / self.seconds()?)
    }

    /// The earlier status of operator `p` — of the same version, since the same time (its
    /// counts restart with a new version).
    fn operator_before(&self, p: &PluginStatus) -> Option<&PluginStatus> {
        self.earlier.as_ref()?.plugins.iter().find(|q| {
            q.stage == p.stage
                && q.operator == p.operator
                && q.digest == p.digest
                && q.since_ms == p.since_ms
        })
    }
}

/// `3.5`, `1234`, `12.3k`, `1.2M`; `-` when unknown.
fn rate(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(r) if r < 10.0 => format!("{r:.1}"),
        Some(r) if r < 10_000.0 => format!("{r:.0}"),
        Some(r) if r < 1e6 => format!("{:.1}k", r / 1e3),
        Some(r) => format!("{:.1}M", r / 1e6),
    }
}

/// `850 ms`, `3.2 s`, `4 min 5 s`.
fn age(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, ms / 1000 % 60)
    }
}

/// A plugin version label, with a component file named by its digest (a registry plugin
/// that is not in the registry any more) shortened to `sha256:1a2b3c4d5e6f`.
fn short_version(label: &str) -> String {
    match label.split_once('@') {
        Some((stem, hash)) if stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!("sha256:{hash}")
        }
        _ => label.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(heartbeat_ms: i64, events_in: u64, busy_us: u64) -> Status {
        Status {
            pipeline: "alpha".into(),
            state: State::Running,
            reason: None,
            host: "host-a".into(),
            applied_revision: 1,
            plugins: vec![PluginStatus {
                stage: "operator".into(),
                operator: "map".into(),
                version: "nats:alpha-map@1".into(),
                digest: "1a2b".into(),
                since_ms: Some(0),
                events: Some(events_in),
                errors: Some(2),
                canary_previous: None,
                busy_us: Some(busy_us),
            }],
            events_in,
            events_out: events_in,
            dead_letters: 0,
            late: 0,
            consumer_pending: Some(7),
            watermark_lag_ms: None,
            last_checkpoint_ms: Some(heartbeat_ms - 1500),
            checkpoints: 3,
            restarts: 0,
            started_at_ms: 0,
            heartbeat_ms,
        }
    }

    #[test]
    fn rates_come_from_two_heartbeats_and_hold_between_them() {
        let mut h = History::default();
        h.observe(vec![status(10_000, 100, 1_000)]);
        assert!(!h.has_rates());
        let first = h.render(10_000);
        assert!(first.contains("alpha"), "{first}");
        // Two seconds later: 500 more events, 0.5 s busy.
        h.observe(vec![status(12_000, 1100, 501_000)]);
        assert!(h.has_rates());
        let text = h.render(12_000);
        let rows: Vec<&str> = text.lines().collect();
        assert!(
            rows[0].starts_with("PIPELINE") && rows[1].starts_with("  STAGE"),
            "{text}"
        );
        let pipeline: Vec<&str> = rows[2].split_whitespace().collect();
        assert_eq!(
            pipeline[..7],
            ["alpha", "running", "host-a", "500", "500", "1100", "1100"]
        );
        assert!(rows[2].contains("1.5 s ago"), "{text}");
        let operator: Vec<&str> = rows[3].split_whitespace().collect();
        assert_eq!(
            operator,
            ["operator", "map", "nats:alpha-map@1", "500", "2", "25.0%"]
        );
        // A refresh without a new heartbeat keeps the rates.
        h.observe(vec![status(12_000, 1100, 501_000)]);
        assert_eq!(h.render(12_000), text);
    }

    #[test]
    fn a_restarted_pipeline_or_a_new_version_has_no_rate_until_its_next_heartbeat() {
        let mut h = History::default();
        h.observe(vec![status(10_000, 1000, 9_000)]);
        let mut restarted = status(11_000, 10, 100);
        restarted.started_at_ms = 10_500;
        restarted.plugins[0].since_ms = Some(10_500);
        h.observe(vec![restarted]);
        let text = h.render(11_000);
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[2].split_whitespace().nth(3), Some("-"), "{text}");
        assert_eq!(rows[3].split_whitespace().nth(3), Some("-"), "{text}");
    }

    #[test]
    fn a_failed_pipeline_shows_why() {
        let mut h = History::default();
        let mut s = status(10_000, 0, 0);
        s.state = State::Failed;
        s.reason = Some("stream \"NOPE\" not found".into());
        h.observe(vec![s]);
        let text = h.render(10_000);
        assert!(text.contains("failed"), "{text}");
        assert!(
            text.contains("  reason: stream \"NOPE\" not found\n"),
            "{text}"
        );
    }

    #[test]
    fn numbers_read_at_a_glance() {
        assert_eq!(rate(Some(3.24)), "3.2");
        assert_eq!(rate(Some(1234.4)), "1234");
        assert_eq!(rate(Some(12_345.0)), "12.3k");
        assert_eq!(rate(Some(2_500_000.0)), "2.5M");
        assert_eq!(age(850), "850 ms");
        assert_eq!(age(3_240), "3.2 s");
        assert_eq!(age(245_000), "4 min 5 s");
        let digest = "3d3ffccc3a9e175ec4379dd76c1005cad023240a04dabeb06228b61099b02f0b";
        assert_eq!(
            short_version(&format!("{digest}@3d3ffccc3a9e")),
            "sha256:3d3ffccc3a9e"
        );
        assert_eq!(short_version("stamp@1a2b3c4d5e6f"), "stamp@1a2b3c4d5e6f");
    }
}
