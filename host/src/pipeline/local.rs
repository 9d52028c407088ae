//! `weir run --local`: the pipeline's operator chain over a JSON-lines file, without NATS.
//! Results go to stdout as JSON lines; dead letters to stderr as JSON lines with the error.

use std::io::Write;
use std::path::Path;

use weir_sdk::packed::BatchBuilder;

use crate::config::Pipeline;
use crate::operator::EventBatch;
use crate::runtime::Runtime;
use crate::sink::stdout::write_output;
use crate::source::local::read_events;

/// Counts of a local run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LocalSummary {
    pub inputs: usize,
    pub results: usize,
    pub dead_letters: usize,
}

/// Runs `pipeline` over the events in `input`, writing results to `out` and dead letters to
/// `err`.
pub fn run(
    runtime: &Runtime,
    pipeline: &Pipeline,
    input: &Path,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<LocalSummary> {
    let mut chain = super::build_chain(runtime, pipeline)?;
    let events = read_events(input)?;
    let mut summary = LocalSummary {
        inputs: events.len(),
        ..Default::default()
    };
    let mut scratch = Vec::new();
    for chunk in events.chunks(pipeline.config.source.batch_size) {
        let mut b = BatchBuilder::with_capacity(chunk.len(), 128);
        for (i, (_, ev)) in chunk.iter().enumerate() {
            ev.push_to(&mut b, i as u32, &mut scratch);
        }
        let lines: Vec<usize> = chunk.iter().map(|(l, _)| *l).collect();
        let output = chain.run(EventBatch::from_source(b));
        summary.results += output.events.len();
        summary.dead_letters += write_output(&output, &lines, out, err)?;
    }
    out.flush()?;
    Ok(summary)
}
