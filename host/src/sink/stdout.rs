//! The stdout sink of `weir run --local`: one JSON line per result on stdout; dead letters and
//! late events are reported on stderr (JSON lines with the reason and the input line number),
//! so stdout holds only results.

use std::io::Write;

use weir_sdk::packed::EventRef;

use crate::operator::DeadLetter;
use crate::source::local::JsonEvent;

/// A dead letter in the local runner's report.
#[derive(serde::Serialize)]
struct DeadLetterLine<'a> {
    dead_letter: JsonEvent,
    operator: &'a str,
    plugin: &'a str,
    error: &'a str,
    /// Line of the input file the event came from (none for window results and timer
    /// events that an `[[after]]` operator failed on).
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
}

/// A late event in the local runner's report.
#[derive(serde::Serialize)]
struct LateLine {
    late: JsonEvent,
    line: usize,
}

/// Writes one result event as a JSON line.
pub fn write_result(e: &EventRef<'_>, out: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &JsonEvent::from_event(e))?;
    out.write_all(b"\n")
}

/// Writes a dead letter as a JSON line; `line` is its input line.
pub fn write_dead_letter(
    d: &DeadLetter,
    line: Option<usize>,
    err: &mut impl Write,
) -> std::io::Result<()> {
    let ev = EventRef {
        key: &d.key,
        time: d.time,
        payload: &d.payload,
        headers: &d.headers,
        origin: 0,
    };
    let record = DeadLetterLine {
        dead_letter: JsonEvent::from_event(&ev),
        operator: &d.operator,
        plugin: &d.plugin,
        error: &d.error,
        line,
    };
    serde_json::to_writer(&mut *err, &record)?;
    err.write_all(b"\n")
}

/// Writes a late event (past its windows' allowed lateness) as a JSON line.
pub fn write_late(e: &EventRef<'_>, line: usize, err: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer(
        &mut *err,
        &LateLine {
            late: JsonEvent::from_event(e),
            line,
        },
    )?;
    err.write_all(b"\n")
}
