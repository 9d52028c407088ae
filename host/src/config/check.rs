//! Checks of a parsed pipeline file that serde cannot express: ranges, names, subjects,
//! plugin files and combinations of sections. Every error names the field and its line.
//!
//! What needs the server — whether a stream captures the sink subjects, whether the source
//! stream would capture them too (a feedback loop), whether the source's subject filters lie
//! within its stream — is checked when `weir run` connects ([`crate::pipeline::nats`]).

use std::collections::HashSet;
use std::time::Duration;

use super::names::{header_problem, json_path_problem, stream_name_problem, subject_problem};
use super::{
    ConfigError, Guarantee, KeyFrom, OperatorConfig, Pipeline, SourceConfig, TimeFrom, valid_name,
};

/// `source.max_wait`: from 1 ms (a fetch per message) to 1 min (a batch may wait that long).
const MAX_WAIT: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(60));
/// `source.ack_wait`: from 1 s to 1 day (the server redelivers after it).
const ACK_WAIT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));

/// What is wrong with one field: its path (for the line) and the whole message.
pub(super) type FieldProblem = (String, String);

/// A [`FieldProblem`] as an `Err`.
pub(super) fn problem(field: &str, message: impl Into<String>) -> Result<(), FieldProblem> {
    Err((field.to_owned(), message.into()))
}

impl Pipeline {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        if !valid_name(c.name.get_ref()) {
            return Err(self.error(
                Some(c.name.span().start),
                format!(
                    "field `name`: {:?} must be 1-64 characters of A-Z a-z 0-9 - _",
                    c.name.get_ref()
                ),
            ));
        }
        let located = |r: Result<(), FieldProblem>| {
            r.map_err(|(field, message)| self.field_error(&field, message))
        };
        located(self.check_inputs())?;
        located(self.check_sink())?;
        let stateful = c.stateful();
        located(c.checkpoint.check(stateful))?;
        self.check_stateful()?;
        let mut names = HashSet::new();
        for (list, ops) in [("operators", &c.operators), ("after", &c.after)] {
            for (i, op) in ops.iter().enumerate() {
                self.check_operator(&format!("{list}[{i}]"), op, &mut names)?;
            }
        }
        if let Some(w) = &c.window {
            self.check_operator("window.aggregate", &w.aggregate, &mut names)?;
        }
        if let Some(p) = &c.process {
            self.check_operator("process.function", &p.function, &mut names)?;
        }
        Ok(())
    }

    /// `[source]`, or every `[[sources]]` input: names, subject filters, ranges, where key
    /// and time come from; inputs have distinct names and consumers.
    fn check_inputs(&self) -> Result<(), FieldProblem> {
        let c = &self.config;
        if c.sources.is_empty() {
            if c.source.stream.is_empty() {
                return problem(
                    "name",
                    "the pipeline has no input: add a `[source]` section (one input) or \
                     `[[sources]]` sections (several, each with a `name`)",
                );
            }
            if c.source.name.is_some() {
                return problem(
                    "source.name",
                    "field `source.name`: only `[[sources]]` inputs are named (the one \
                     `[source]` input is not)",
                );
            }
            return self.check_source("source", &c.source);
        }
        let mut names = HashSet::new();
        let mut consumers = HashSet::new();
        for (i, s) in c.sources.iter().enumerate() {
            let prefix = format!("sources[{i}]");
            let Some(name) = &s.name else {
                return problem(
                    &prefix,
                    format!(
                        "field `{prefix}.name` is missing: each of several inputs is named \
                         (events carry it, joins pick their sides by it)"
                    ),
                );
            };
            let name = name.get_ref();
            if !valid_name(name) {
                return problem(
                    &format!("{prefix}.name"),
                    format!(
                        "field `{prefix}.name`: {name:?} must be 1-64 characters of A-Z a-z \
                         0-9 - _"
                    ),
                );
            }
            if !names.insert(name.clone()) {
                return problem(
                    &format!("{prefix}.name"),
                    format!("field `{prefix}.name`: another input is named {name:?} too"),
                );
            }
            let consumer = self.consumer_name_of(i);
            if !consumers.insert(consumer.clone()) {
                return problem(
                    &format!("{prefix}.consumer"),
                    format!(
                        "field `{prefix}.consumer`: another input uses consumer {consumer:?} \
                         too; each input needs its own durable consumer"
                    ),
                );
            }
            if s.watermarks.strategy != c.sources[0].watermarks.strategy {
                let f = format!("{prefix}.watermarks.strategy");
                return problem(
                    &f,
                    format!(
                        "field `{f}`: every input uses one watermark strategy (with \
                         `punctuated`, event time is the minimum of every input's markers; an \
                         input without markers would hold it back for ever)"
                    ),
                );
            }
            self.check_source(&prefix, s)?;
        }
        Ok(())
    }

    /// One input (`field`: `source` or `sources[i]`).
    fn check_source(&self, field: &str, s: &SourceConfig) -> Result<(), FieldProblem> {
        if let Some(why) = stream_name_problem(&s.stream) {
            return problem(
                &format!("{field}.stream"),
                format!("field `{field}.stream`: {why}"),
            );
        }
        for (i, subject) in s.subjects.iter().enumerate() {
            if let Some(why) = subject_problem(subject, true) {
                return problem(
                    &format!("{field}.subjects[{i}]"),
                    format!("field `{field}.subjects[{i}]`: {why}"),
                );
            }
        }
        if let Some(why) = s.consumer.as_deref().and_then(stream_name_problem) {
            return problem(
                &format!("{field}.consumer"),
                format!("field `{field}.consumer`: {why}"),
            );
        }
        if s.batch_size == 0 || s.batch_size > 10_000 {
            return problem(
                &format!("{field}.batch_size"),
                format!(
                    "field `{field}.batch_size`: {} is out of range 1..=10000",
                    s.batch_size
                ),
            );
        }
        within(&format!("{field}.max_wait"), s.max_wait, MAX_WAIT)?;
        within(&format!("{field}.ack_wait"), s.ack_wait, ACK_WAIT)?;
        let checkpoint = &self.config.checkpoint;
        if checkpoint.guarantee != Guarantee::AtMostOnce && s.ack_wait <= checkpoint.interval {
            return problem(
                &format!("{field}.ack_wait"),
                format!(
                    "field `{field}.ack_wait`: {:?} must exceed `checkpoint.interval` ({:?}): \
                     messages whose outputs a checkpoint holds back are acknowledged by that \
                     checkpoint, and the server would redeliver them before that",
                    s.ack_wait, checkpoint.interval
                ),
            );
        }
        check_key_and_time(field, s)?;
        let w = &s.watermarks;
        if w.interval.is_zero() {
            let f = format!("{field}.watermarks.interval");
            return problem(&f, format!("field `{f}` must be positive"));
        }
        if w.idle_timeout.is_some_and(|t| t.is_zero()) {
            let f = format!("{field}.watermarks.idle_timeout");
            return problem(&f, format!("field `{f}` must be positive"));
        }
        Ok(())
    }

    /// `[sink]`: concrete subjects, and the in-flight range.
    fn check_sink(&self) -> Result<(), FieldProblem> {
        let sink = &self.config.sink;
        let subjects = [
            ("sink.subject", Some(&sink.subject)),
            ("sink.dead_letter", Some(&sink.dead_letter)),
            ("sink.late", sink.late.as_ref()),
        ];
        for (field, subject) in subjects {
            if let Some(why) = subject.and_then(|s| subject_problem(s, false)) {
                return problem(field, format!("field `{field}`: {why}"));
            }
        }
        if sink.max_in_flight == 0 || sink.max_in_flight > 4096 {
            return problem(
                "sink.max_in_flight",
                format!(
                    "field `sink.max_in_flight`: {} is out of range 1..=4096",
                    sink.max_in_flight
                ),
            );
        }
        Ok(())
    }

    /// `[window]`, `[process]`, `[join]` and `[[after]]`, which needs one of them.
    fn check_stateful(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        let stages = [
            ("window", c.window.is_some()),
            ("process", c.process.is_some()),
            ("join", c.join.is_some()),
        ];
        let given: Vec<&str> = stages.iter().filter(|s| s.1).map(|s| s.0).collect();
        if given.len() > 1 {
            return Err(self.field_error(
                given[1],
                format!(
                    "`[{}]` and `[{}]` cannot both end one pipeline; use two pipelines",
                    given[0], given[1]
                ),
            ));
        }
        if let Some(w) = &c.window {
            w.check()
                .map_err(|(field, message)| self.field_error(&field, message))?;
        }
        if let Some(j) = &c.join {
            let inputs: Vec<&str> = c
                .sources
                .iter()
                .filter_map(|s| s.name.as_ref().map(|n| n.get_ref().as_str()))
                .collect();
            j.check(&inputs)
                .map_err(|(field, message)| self.field_error(&field, message))?;
        }
        if !c.after.is_empty() && !c.stateful() {
            return Err(self.error(
                Some(c.after[0].name.span().start),
                "`[[after]]` operators transform the results of a `[window]`, `[process]` or \
                 `[join]`, and the pipeline has none; put them in `[[operators]]`",
            ));
        }
        Ok(())
    }

    /// Checks operator `op` (`field`, e.g. `operators[0]` or `window.aggregate`); `names`
    /// holds the names of the operators checked before it.
    fn check_operator(
        &self,
        field: &str,
        op: &OperatorConfig,
        names: &mut HashSet<String>,
    ) -> Result<(), ConfigError> {
        let name = op.name.get_ref();
        if !valid_name(name) {
            return Err(self.error(
                Some(op.name.span().start),
                format!(
                    "field `{field}.name`: {name:?} must be 1-64 characters of A-Z a-z 0-9 - _"
                ),
            ));
        }
        if !names.insert(name.clone()) {
            return Err(self.error(
                Some(op.name.span().start),
                format!("field `{field}.name`: {name:?} is used by an earlier operator"),
            ));
        }
        if let Some((name, version)) = crate::pipeline::follow::registry_ref(op) {
            let checked = crate::registry::names::check_name(&name).and_then(|()| match &version {
                Some(v) => crate::registry::names::check_version(&name, v),
                None => Ok(()),
            });
            if let Err(e) = checked {
                return Err(self.error(
                    Some(op.plugin.span().start),
                    format!("field `{field}.plugin`: {e}"),
                ));
            }
        } else if !self.base_dir().join(op.plugin.get_ref()).is_file() {
            let path = self.base_dir().join(op.plugin.get_ref());
            return Err(self.error(
                Some(op.plugin.span().start),
                format!(
                    "field `{field}.plugin`: no such file {} (build plugins with `bash plugins/build.sh`)",
                    path.display()
                ),
            ));
        }
        let max = crate::runtime::engine::MAX_MEMORY_BYTES >> 20;
        if op.memory_limit_mib == 0 || op.memory_limit_mib > max {
            return Err(self.field_error(
                &format!("{field}.memory_limit_mib"),
                format!(
                    "field `{field}.memory_limit_mib`: {} is out of range 1..={max}",
                    op.memory_limit_mib
                ),
            ));
        }
        if op.deadline.is_zero() {
            return Err(self.field_error(
                &format!("{field}.deadline"),
                format!("field `{field}.deadline` must be positive"),
            ));
        }
        let stateful = field.starts_with("window") || field.starts_with("process");
        if stateful && op.rollout.is_some() {
            // The previous version cannot take over a stateful operator's failed events: its
            // state may already be migrated to the new version's format.
            return Err(self.field_error(
                &format!("{field}.rollout"),
                format!(
                    "field `{field}.rollout`: canaries watch transform operators \
                     (`[[operators]]`, `[[after]]`) only; a new version of a window aggregate \
                     or process function takes over at once (a failed swap is refused and the \
                     running version stays)"
                ),
            ));
        }
        Ok(())
    }
}

/// `value` of duration field `field` lies in `range` (inclusive).
/// `key` and `time` of input `field`: a header or JSON field they name must be one.
fn check_key_and_time(field: &str, s: &SourceConfig) -> Result<(), FieldProblem> {
    let key = match &s.key {
        KeyFrom::Header(h) => header_problem(h).map(|why| ("key.header", why)),
        KeyFrom::Field(f) => json_path_problem(f).map(|why| ("key.field", why)),
        KeyFrom::None | KeyFrom::Subject => None,
    };
    let time = match &s.time {
        TimeFrom::Header(h) => header_problem(h).map(|why| ("time.header", why)),
        TimeFrom::Field(f) => json_path_problem(f).map(|why| ("time.field", why)),
        TimeFrom::Ingest => None,
    };
    match key.or(time) {
        Some((sub, why)) => {
            let f = format!("{field}.{sub}");
            problem(&f, format!("field `{f}`: {why}"))
        }
        None => Ok(()),
    }
}

fn within(field: &str, value: Duration, range: (Duration, Duration)) -> Result<(), FieldProblem> {
    let (lo, hi) = range;
    if value < lo || value > hi {
        return problem(
            field,
            format!(
                "field `{field}`: {} is out of range {}..={}",
                humantime::format_duration(value),
                humantime::format_duration(lo),
                humantime::format_duration(hi)
            ),
        );
    }
    Ok(())
}
