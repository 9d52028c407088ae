//! Checks of a parsed pipeline file that serde cannot express: ranges, names, subjects,
//! plugin files and combinations of sections. Every error names the field (and line).

use std::collections::HashSet;

use super::{ConfigError, OperatorConfig, Pipeline, valid_name};

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
        self.check_source_and_sink()?;
        self.check_stateful()?;
        let mut names = std::collections::HashSet::new();
        for (list, ops) in [("operators", &c.operators), ("after", &c.after)] {
            for (i, op) in ops.iter().enumerate() {
                self.check_operator(&format!("{list}[{i}]"), op, &mut names)?;
            }
        }
        Ok(())
    }

    /// `[source]`, `[sink]` and `[checkpoint]`.
    fn check_source_and_sink(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        let s = &c.source;
        if s.stream.is_empty() {
            return Err(self.error(None, "field `source.stream` must not be empty"));
        }
        if s.batch_size == 0 || s.batch_size > 10_000 {
            return Err(self.error(
                None,
                format!(
                    "field `source.batch_size`: {} is out of range 1..=10000",
                    s.batch_size
                ),
            ));
        }
        if c.sink.subject.is_empty() || c.sink.subject.contains(['*', '>', ' ']) {
            return Err(self.error(
                None,
                format!(
                    "field `sink.subject`: {:?} must be a concrete subject (no wildcards)",
                    c.sink.subject
                ),
            ));
        }
        if c.sink.dead_letter.is_empty() || c.sink.dead_letter.contains(['*', '>', ' ']) {
            return Err(self.error(
                None,
                format!(
                    "field `sink.dead_letter`: {:?} must be a concrete subject (no wildcards)",
                    c.sink.dead_letter
                ),
            ));
        }
        if c.sink.max_in_flight == 0 || c.sink.max_in_flight > 4096 {
            return Err(self.error(
                None,
                format!(
                    "field `sink.max_in_flight`: {} is out of range 1..=4096",
                    c.sink.max_in_flight
                ),
            ));
        }
        c.checkpoint
            .check(c.window.is_some() || c.process.is_some())
            .map_err(|message| self.error(None, message))?;
        if c.source.watermarks.interval.is_zero() {
            return Err(self.error(None, "field `source.watermarks.interval` must be positive"));
        }
        Ok(())
    }

    /// `[window]`, `[process]` and `[[after]]`, which needs one of them.
    fn check_stateful(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        if let Some(p) = &c.process {
            if c.window.is_some() {
                return Err(self.error(
                    None,
                    "`[window]` and `[process]` cannot both end one pipeline; use two pipelines",
                ));
            }
            let path = self.base_dir().join(p.function.plugin.get_ref());
            if !path.is_file() {
                return Err(self.error(
                    Some(p.function.plugin.span().start),
                    format!(
                        "field `process.function.plugin`: no such file {}",
                        path.display()
                    ),
                ));
            }
        }
        if let Some(w) = &c.window {
            w.check().map_err(|m| self.error(None, m))?;
            let path = self.base_dir().join(w.aggregate.plugin.get_ref());
            if !path.is_file() {
                return Err(self.error(
                    Some(w.aggregate.plugin.span().start),
                    format!(
                        "field `window.aggregate.plugin`: no such file {}",
                        path.display()
                    ),
                ));
            }
        }
        if !c.after.is_empty() && c.window.is_none() && c.process.is_none() {
            return Err(self.error(
                Some(c.after[0].name.span().start),
                "`[[after]]` operators transform the results of a `[window]` or `[process]`, \
                 and the pipeline has neither; put them in `[[operators]]`",
            ));
        }
        Ok(())
    }

    /// Checks transform operator `op` (`field`, e.g. `operators[0]`); `names` holds the names
    /// of the operators before it.
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
        let path = self.base_dir().join(op.plugin.get_ref());
        if !path.is_file() {
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
            return Err(self.error(
                None,
                format!(
                    "field `{field}.memory_limit_mib`: {} is out of range 1..={max}",
                    op.memory_limit_mib
                ),
            ));
        }
        if op.deadline.is_zero() {
            return Err(self.error(None, format!("field `{field}.deadline` must be positive")));
        }
        Ok(())
    }
}
