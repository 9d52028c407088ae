//! The stdout sink of `weir run --local`: one JSON line per result; dead letters are reported
//! on stderr (as a JSON line with the error) so stdout holds only results.

use std::io::Write;

use crate::operator::chain::ChainOutput;
use crate::source::local::JsonEvent;

/// A dead letter in the local runner's report.
#[derive(serde::Serialize)]
struct DeadLetterLine<'a> {
    dead_letter: JsonEvent,
    operator: &'a str,
    plugin: &'a str,
    error: &'a str,
    /// Line of the input file the event came from.
    line: usize,
}

/// Writes results to `out` and dead letters to `err`; `lines[i]` is the input line of source
/// event `i`. Returns the number of dead letters.
pub fn write_output(
    output: &ChainOutput,
    lines: &[usize],
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<usize> {
    for e in output.events.view().iter() {
        serde_json::to_writer(&mut *out, &JsonEvent::from_event(&e))?;
        out.write_all(b"\n")?;
    }
    for d in &output.dead {
        let ev = weir_sdk::packed::EventRef {
            key: &d.key,
            time: d.time,
            payload: &d.payload,
            headers: &d.headers,
            origin: 0,
        };
        let line = DeadLetterLine {
            dead_letter: JsonEvent::from_event(&ev),
            operator: &d.operator,
            plugin: &d.plugin,
            error: &d.error,
            line: lines.get(d.source as usize).copied().unwrap_or(0),
        };
        serde_json::to_writer(&mut *err, &line)?;
        err.write_all(b"\n")?;
    }
    Ok(output.dead.len())
}
