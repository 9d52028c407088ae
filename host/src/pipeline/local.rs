//! `weir run --local`: the pipeline over a JSON-lines file, without NATS.
//!
//! Results go to stdout as JSON lines; dead letters and late events to stderr as JSON lines
//! with the reason and the input line. Events are processed in batches of the source's
//! `batch_size`. With a `[window]`: if the input holds `{"watermark": W}` lines, only those
//! advance event time (deterministic tests); otherwise, with bounded watermarks
//! (`[source.watermarks]`), it trails the newest event time by `out_of_orderness` and advances
//! after each batch (one partition: the input has no subjects). The end of the input closes every
//! window. A `[process]` function is driven the same way (its event-time timers fire as the
//! watermark passes them, its processing-time timers as the wall clock does — checked after
//! each batch; timers still pending at the end of the input do not fire). The results of
//! either go through the `[[after]]` operators.

use std::io::Write;
use std::path::Path;

use weir_sdk::packed::BatchBuilder;

use crate::config::{Pipeline, WatermarkStrategy, WindowTime};
use crate::operator::DeadLetter;
use crate::operator::process::{KeyedProcess, push_timer_events};
use crate::operator::window::{WindowedAggregate, push_result};
use crate::operator::{Chain, ChainOutput, EventBatch};
use crate::runtime::Runtime;
use crate::sink::stdout::{write_dead_letter, write_late, write_result};
use crate::source::local::{InputLine, JsonEvent, read_events};
use crate::window::{BoundedOutOfOrderness, Emission, ProcessingClock};

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
    after: Chain,
    generator: Option<BoundedOutOfOrderness>,
    /// The wall clock of a processing-time window.
    processing: Option<ProcessingClock>,
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
        let mut output = self.chain.run(EventBatch::from_source(b));
        self.dead_letters(&output.dead, lines)?;
        if let Some(process) = &mut self.process {
            let mut dead = Vec::new();
            let events = process.process_batch(self.runtime, &output.events, &mut dead);
            let now = process.instance.keyed().clock.now();
            let timers = process.advance_processing_time(self.runtime, now);
            self.dead_letters(&dead, lines)?;
            self.results(events, lines)?;
            let mut fired = BatchBuilder::new();
            push_timer_events(&mut fired, &timers);
            self.results(free_events(fired), &[])?;
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
        let now = self.processing.as_mut().map(|clock| {
            let now = clock.stamp(&mut output.events);
            let view = output.events.view();
            window.process_batch(self.runtime, &view, &mut emitted);
            now
        });
        let view = output.events.view();
        if let Some(now) = now {
            window.advance_watermark(self.runtime, now - 1, &mut emitted);
        } else {
            window.process_batch(self.runtime, &view, &mut emitted);
        }
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
        let mut fired = BatchBuilder::new();
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
                    self.dead_letters(std::slice::from_ref(&d), lines)?;
                }
                other => window_output(other, &mut fired),
            }
        }
        self.results(free_events(fired), lines)
    }

    /// Writes dead letters (`source`: index into `lines`).
    fn dead_letters(&mut self, dead: &[DeadLetter], lines: &[usize]) -> anyhow::Result<()> {
        for d in dead {
            write_dead_letter(d, lines.get(d.source as usize).copied(), self.err)?;
        }
        self.summary.dead_letters += dead.len();
        Ok(())
    }

    /// Writes the stateful stage's results after the `[[after]]` operators (lineage: index
    /// into `lines`, or [`NO_LINE`]).
    fn results(&mut self, results: EventBatch, lines: &[usize]) -> anyhow::Result<()> {
        let output = if self.after.operators.is_empty() || results.is_empty() {
            ChainOutput {
                events: results,
                dead: Vec::new(),
            }
        } else {
            self.after.run(results)
        };
        self.dead_letters(&output.dead, lines)?;
        for e in output.events.view().iter() {
            write_result(&e, self.out)?;
        }
        self.summary.results += output.events.len();
        Ok(())
    }

    fn watermark(&mut self, wm: i64) -> anyhow::Result<()> {
        let mut fired = BatchBuilder::new();
        if let Some(process) = &mut self.process {
            let timers = process.advance_watermark(self.runtime, wm);
            push_timer_events(&mut fired, &timers);
        }
        let mut emitted = Vec::new();
        if let Some(window) = &mut self.window {
            window.advance_watermark(self.runtime, wm, &mut emitted);
        }
        for e in emitted {
            window_output(e, &mut fired);
        }
        self.results(free_events(fired), &[])
    }
}

/// Lineage of results that no input line produced alone (window results, timer events).
const NO_LINE: u32 = u32::MAX;

/// Results without an input line as a batch.
fn free_events(b: BatchBuilder) -> EventBatch {
    EventBatch {
        lineage: vec![NO_LINE; b.len()],
        packed: crate::operator::batch::into_packed(b),
    }
}

/// Adds a fired window's result to `fired`, or logs a window failure.
fn window_output(e: Emission, fired: &mut BatchBuilder) {
    match e {
        Emission::Fired {
            key,
            window,
            payload,
            ..
        } => push_result(fired, &key, window, &payload, NO_LINE),
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
    let processing = pipeline
        .config
        .window
        .as_ref()
        .is_some_and(|w| w.time == WindowTime::Processing);
    let generator = (stateful
        && !processing
        && !punctuated
        && w.strategy == WatermarkStrategy::Bounded)
        .then(|| {
            BoundedOutOfOrderness::new(w.out_of_orderness.as_millis().min(i64::MAX as u128) as i64)
        });
    let process = super::build_process(runtime, pipeline)?;
    let after = super::build_after(runtime, pipeline)?;
    let mut runner = Runner {
        runtime,
        chain,
        window,
        process,
        after,
        generator,
        processing: processing.then(ProcessingClock::default),
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
                // Markers are event time; a processing-time window follows the clock.
                if !processing {
                    runner.watermark(w.watermark)?;
                }
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
