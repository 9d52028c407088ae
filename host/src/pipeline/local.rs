//! `weir run --local`: the pipeline over a JSON-lines file, without NATS.
//!
//! Results go to stdout as JSON lines; dead letters and late events to stderr as JSON lines
//! with the reason and the input line. Events are processed in batches of the source's
//! `batch_size`. With a `[window]`: if the input holds `{"watermark": W}` lines, only those
//! advance event time (deterministic tests); otherwise, with bounded watermarks
//! (`[source.watermarks]`), it trails the newest event time by `out_of_orderness` and advances
//! after each batch (one partition: the input has no subjects). The end of the input closes every
//! window. A `[process]` function is driven the same way (its event-time timers fire as the
//! watermark passes them).

use std::io::Write;
use std::path::Path;

use weir_sdk::packed::BatchBuilder;

use crate::config::{Pipeline, WatermarkStrategy};
use crate::operator::DeadLetter;
use crate::operator::process::{KeyedProcess, push_timer_events};
use crate::operator::window::{WindowedAggregate, push_result};
use crate::operator::{Chain, EventBatch};
use crate::runtime::Runtime;
use crate::sink::stdout::{write_dead_letter, write_late, write_result};
use crate::source::local::{InputLine, JsonEvent, read_events};
use crate::window::{BoundedOutOfOrderness, Emission};

/// Counts of a local run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LocalSummary {
    pub inputs: usize,
    pub results: usize,
    pub dead_letters: usize,
    pub late: usize,
}

struct Runner<'a, O: Write, E: Write> {
    runtime: &'a Runtime,
    chain: Chain,
    window: Option<WindowedAggregate>,
    process: Option<KeyedProcess>,
    generator: Option<BoundedOutOfOrderness>,
    summary: LocalSummary,
    out: &'a mut O,
    err: &'a mut E,
}

impl<O: Write, E: Write> Runner<'_, O, E> {
    /// Runs one batch of events (`lines[i]`: input line of event `i`).
    fn batch(&mut self, events: &[&JsonEvent], lines: &[usize]) -> anyhow::Result<()> {
        let mut b = BatchBuilder::with_capacity(events.len(), 128);
        let mut scratch = Vec::new();
        for (i, ev) in events.iter().enumerate() {
            ev.push_to(&mut b, i as u32, &mut scratch);
        }
        let output = self.chain.run(EventBatch::from_source(b));
        for d in &output.dead {
            write_dead_letter(d, lines[d.source as usize], self.err)?;
        }
        self.summary.dead_letters += output.dead.len();
        if let Some(process) = &mut self.process {
            let mut dead = Vec::new();
            let events = process.process_batch(self.runtime, &output.events, &mut dead);
            for d in &dead {
                write_dead_letter(d, lines[d.source as usize], self.err)?;
            }
            self.summary.dead_letters += dead.len();
            for e in events.view().iter() {
                write_result(&e, self.out)?;
            }
            self.summary.results += events.len();
            if let Some(g) = &mut self.generator {
                let view = output.events.view();
                for i in 0..view.len() {
                    g.observe(view.time(i));
                }
                if let Some(wm) = g.watermark() {
                    self.watermark(wm)?;
                }
            }
            return Ok(());
        }
        let view = output.events.view();
        let Some(window) = &mut self.window else {
            for e in view.iter() {
                write_result(&e, self.out)?;
            }
            self.summary.results += view.len();
            return Ok(());
        };
        let mut emitted = Vec::new();
        window.process_batch(self.runtime, &view, &mut emitted);
        if let Some(g) = &mut self.generator {
            for i in 0..view.len() {
                g.observe(view.time(i));
            }
            if let Some(wm) = g.watermark() {
                window.advance_watermark(self.runtime, wm, &mut emitted);
            }
        }
        let name = window.name.clone();
        let plugin = window.instance.plugin().label();
        for e in emitted {
            match e {
                Emission::Late { index } => {
                    let line = lines[output.events.lineage[index] as usize];
                    write_late(&view.get(index), line, self.err)?;
                    self.summary.late += 1;
                }
                Emission::Failed { index, error } => {
                    let ev = view.get(index);
                    let d = DeadLetter {
                        source: output.events.lineage[index],
                        operator: name.clone(),
                        plugin: plugin.clone(),
                        error,
                        key: ev.key.to_vec(),
                        time: ev.time,
                        headers: ev.headers.to_vec(),
                        payload: ev.payload.to_vec(),
                    };
                    write_dead_letter(&d, lines[d.source as usize], self.err)?;
                    self.summary.dead_letters += 1;
                }
                other => self.window_output(other)?,
            }
        }
        Ok(())
    }

    /// Writes a result or a window failure that came from firing.
    fn window_output(&mut self, e: Emission) -> anyhow::Result<()> {
        match e {
            Emission::Fired {
                key,
                window,
                payload,
            } => {
                let mut b = BatchBuilder::new();
                push_result(&mut b, &key, window, &payload, 0);
                write_result(&b.view().get(0), self.out)?;
                self.summary.results += 1;
            }
            Emission::WindowFailed { key, window, error } => {
                tracing::error!(
                    key = %String::from_utf8_lossy(&key),
                    start = window.start,
                    end = window.end,
                    error = %error,
                    "window result failed; its state is kept"
                );
            }
            Emission::Late { .. } | Emission::Failed { .. } => {}
        }
        Ok(())
    }

    fn watermark(&mut self, wm: i64) -> anyhow::Result<()> {
        if let Some(process) = &mut self.process {
            let timers = process.advance_watermark(self.runtime, wm);
            let mut b = BatchBuilder::new();
            push_timer_events(&mut b, &timers);
            for e in b.view().iter() {
                write_result(&e, self.out)?;
            }
            self.summary.results += timers.len();
        }
        let mut emitted = Vec::new();
        if let Some(window) = &mut self.window {
            window.advance_watermark(self.runtime, wm, &mut emitted);
        }
        for e in emitted {
            self.window_output(e)?;
        }
        Ok(())
    }
}

/// Runs `pipeline` over the events in `input`, writing results to `out` and dead letters and
/// late events to `err`.
pub fn run(
    runtime: &Runtime,
    pipeline: &Pipeline,
    input: &Path,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<LocalSummary> {
    let chain = super::build_chain(runtime, pipeline)?;
    let window = super::build_window(runtime, pipeline)?;
    let lines = read_events(input)?;
    let punctuated = lines
        .iter()
        .any(|(_, l)| matches!(l, InputLine::Watermark(_)));
    let w = &pipeline.config.source.watermarks;
    let stateful = pipeline.config.window.is_some() || pipeline.config.process.is_some();
    let generator =
        (stateful && !punctuated && w.strategy == WatermarkStrategy::Bounded).then(|| {
            BoundedOutOfOrderness::new(w.out_of_orderness.as_millis().min(i64::MAX as u128) as i64)
        });
    let process = super::build_process(runtime, pipeline)?;
    let mut runner = Runner {
        runtime,
        chain,
        window,
        process,
        generator,
        summary: LocalSummary::default(),
        out,
        err,
    };
    let batch_size = pipeline.config.source.batch_size;
    let (mut events, mut numbers): (Vec<&JsonEvent>, Vec<usize>) = (Vec::new(), Vec::new());
    for (line, l) in &lines {
        match l {
            InputLine::Event(ev) => {
                events.push(ev);
                numbers.push(*line);
                runner.summary.inputs += 1;
                if events.len() == batch_size {
                    runner.batch(&events, &numbers)?;
                    (events, numbers) = (Vec::new(), Vec::new());
                }
            }
            InputLine::Watermark(w) => {
                if !events.is_empty() {
                    runner.batch(&events, &numbers)?;
                    (events, numbers) = (Vec::new(), Vec::new());
                }
                runner.watermark(w.watermark)?;
            }
        }
    }
    if !events.is_empty() {
        runner.batch(&events, &numbers)?;
    }
    runner.watermark(i64::MAX)?;
    runner.out.flush()?;
    Ok(runner.summary)
}
