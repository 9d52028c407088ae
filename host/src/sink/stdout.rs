//! The stdout sink of `weir run --local` and `weir plugin test`: one JSON line per result on
//! stdout (the JSON-lines event form of [`JsonEvent`]); dead letters and late events on stderr
//! as JSON lines with the reason and the input line number, so stdout holds only results.

use std::future::Future;
use std::io::Write;
use std::sync::{Mutex, PoisonError};

use weir_packed::{BatchBuilder, EventRef};

use crate::checkpoint::PendingMessage;
use crate::operator::{BatchOutput, DeadLetter};
use crate::sink::{Published, Scope, Sink};
use crate::source::Origin;
use crate::source::json_lines::JsonEvent;

/// A dead letter in the report.
#[derive(serde::Serialize)]
struct DeadLetterLine<'a> {
    dead_letter: JsonEvent,
    operator: &'a str,
    plugin: &'a str,
    error: &'a str,
    /// Line of the input file the event came from (none for window results and timer
    /// events that an `[[after]]` operator failed on).
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
}

/// A late event in the report.
#[derive(serde::Serialize)]
struct LateLine {
    late: JsonEvent,
    line: u64,
}

/// Where a line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub to: Stream,
    pub text: String,
}

/// Writes results to one writer and the rest to another (stdout and stderr in `weir run
/// --local`).
pub struct StdoutSink {
    out: Mutex<Box<dyn Write + Send>>,
    err: Mutex<Box<dyn Write + Send>>,
}

impl StdoutSink {
    pub fn new(out: Box<dyn Write + Send>, err: Box<dyn Write + Send>) -> Self {
        StdoutSink {
            out: Mutex::new(out),
            err: Mutex::new(err),
        }
    }

    /// The process's stdout and stderr, buffered.
    pub fn stdio() -> Self {
        Self::new(
            Box::new(std::io::BufWriter::new(std::io::stdout())),
            Box::new(std::io::BufWriter::new(std::io::stderr())),
        )
    }

    /// Writes `lines` in order and flushes.
    fn write(&self, lines: &[Line]) -> std::io::Result<()> {
        // A panic while writing leaves a writer that is still usable.
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let mut err = self.err.lock().unwrap_or_else(PoisonError::into_inner);
        for l in lines {
            let w = match l.to {
                Stream::Stdout => &mut *out,
                Stream::Stderr => &mut *err,
            };
            w.write_all(l.text.as_bytes())?;
            w.write_all(b"\n")?;
        }
        out.flush()?;
        err.flush()
    }
}

fn event_line(e: &EventRef<'_>) -> Line {
    Line {
        to: Stream::Stdout,
        text: json(&JsonEvent::from_event(e)),
    }
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"unprintable: {e}\"}}"))
}

fn dead_letter_line(d: &DeadLetter, line: Option<u64>) -> Line {
    Line {
        to: Stream::Stderr,
        text: json(&DeadLetterLine {
            dead_letter: JsonEvent::from_event(&d.event()),
            operator: &d.operator,
            plugin: &d.plugin,
            error: &d.error,
            line,
        }),
    }
}

fn late_line(d: &DeadLetter, line: u64) -> Line {
    Line {
        to: Stream::Stderr,
        text: json(&LateLine {
            late: JsonEvent::from_event(&d.event()),
            line,
        }),
    }
}

impl Sink for StdoutSink {
    type Message = Line;

    /// Results in order (events, window results, timer events, `[[after]]` outputs), then
    /// dead letters and late events with the line of their input.
    fn prepare(
        &self,
        out: BatchOutput,
        origins: &[Origin],
        _scope: Scope,
    ) -> (Vec<Line>, Published) {
        let line = |source: u32| origins.get(source as usize).map(|o| o.sequence);
        let mut lines: Vec<Line> = out.events.view().iter().map(|e| event_line(&e)).collect();
        let mut fired = BatchBuilder::new();
        for r in &out.windows {
            r.push_as_event(&mut fired, 0);
        }
        for t in &out.timers {
            t.push_as_event(&mut fired, 0);
        }
        for d in &out.derived {
            fired.push(&d.key, d.time, &d.headers, &d.payload, 0);
        }
        lines.extend(fired.view().iter().map(|e| event_line(&e)));
        let counts = Published {
            results: lines.len(),
            dead_letters: out.dead.len() + out.derived_dead.len(),
            late: out.late.len(),
        };
        lines.extend(out.dead.iter().map(|d| dead_letter_line(d, line(d.source))));
        lines.extend(
            out.derived_dead
                .iter()
                .map(|d| dead_letter_line(&d.letter, None)),
        );
        lines.extend(
            out.late
                .iter()
                .map(|d| late_line(d, line(d.source).unwrap_or_default())),
        );
        (lines, counts)
    }

    /// Writes at once (so lines keep their order); the future only reports the outcome.
    fn deliver(
        &self,
        msgs: Vec<Line>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        let written = self
            .write(&msgs)
            .map_err(|e| anyhow::anyhow!("writing results: {e}"));
        std::future::ready(written)
    }

    fn hold(&self, msgs: Vec<Line>) -> Vec<PendingMessage> {
        msgs.into_iter()
            .map(|l| PendingMessage {
                subject: match l.to {
                    Stream::Stdout => "stdout".into(),
                    Stream::Stderr => "stderr".into(),
                },
                headers: Vec::new(),
                payload: l.text.into_bytes(),
            })
            .collect()
    }

    fn release(&self, held: Vec<PendingMessage>) -> Vec<Line> {
        held.into_iter()
            .map(|p| Line {
                to: if p.subject == "stderr" {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                },
                text: String::from_utf8_lossy(&p.payload).into_owned(),
            })
            .collect()
    }
}
