//! Turning what a batch produced into JetStream messages (no I/O): every output gets its
//! subject, its headers ([`super::headers`]) and its id ([`super::ids`]). Payloads of the
//! chain's results are slices of one shared buffer (the batch's payload column), not copies.

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use weir_packed::BatchView;

use super::headers::OutputHeaders;
use super::ids::{MessageId, Refusal};
use crate::config::SinkConfig;
use crate::operator::batch::columns;
use crate::operator::output::{Derived, DerivedDeadLetter, ResultOrigin, TimerEvent, WindowResult};
use crate::operator::{BatchOutput, DeadLetter, EventBatch};
use crate::sink::{Published, Scope};
use crate::source::Origin;

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Message {
    pub subject: Subject,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// How outputs name one of the pipeline's inputs: the stream its messages came from
/// (`Weir-Source-Stream`), and the name its positions go by in message ids (the stream with
/// one input; the input's name with several, which may read one stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputIds {
    pub stream: String,
    pub ids: String,
}

impl InputIds {
    /// The one input of a pipeline reading `stream`.
    pub fn single(stream: &str) -> Vec<InputIds> {
        vec![InputIds {
            stream: stream.to_owned(),
            ids: stream.to_owned(),
        }]
    }
}

/// Makes the messages of one pipeline's outputs.
pub struct MessageBuilder {
    /// Per input (indexed by [`Origin::input`]).
    inputs: Vec<InputIds>,
    subject: Subject,
    dead_letter: Subject,
    late: Subject,
    ids: Ids,
}

/// Writes message ids, when the delivery guarantee uses them.
struct Ids {
    pipeline: String,
    /// Whether messages carry `Nats-Msg-Id` (effectively-once).
    enabled: bool,
    /// The id being written (reused).
    buf: String,
}

impl Ids {
    /// The id of `m`, when messages carry ids.
    fn of(&mut self, m: MessageId<'_>) -> Option<&str> {
        if !self.enabled {
            return None;
        }
        m.write(&self.pipeline, &mut self.buf);
        Some(&self.buf)
    }
}

impl MessageBuilder {
    /// Messages of `pipeline` reading `inputs`, to the subjects of `config`.
    pub fn new(pipeline: &str, inputs: Vec<InputIds>, config: &SinkConfig, ids: bool) -> Self {
        MessageBuilder {
            inputs,
            subject: Subject::from(config.subject.as_str()),
            dead_letter: Subject::from(config.dead_letter.as_str()),
            late: Subject::from(config.late.as_deref().unwrap_or(&config.dead_letter)),
            ids: Ids {
                pipeline: pipeline.to_owned(),
                enabled: ids,
                buf: String::new(),
            },
        }
    }

    /// All messages of `out`, results first, then dead letters and late events.
    pub fn messages(
        &mut self,
        out: BatchOutput,
        origins: &[Origin],
        scope: Scope,
    ) -> (Vec<Message>, Published) {
        let BatchOutput {
            events,
            mut dead,
            late,
            windows,
            timers,
            derived,
            derived_dead,
            stopped: _,
        } = out;
        let mut msgs = Vec::with_capacity(events.len() + windows.len() + dead.len());
        self.results(events, origins, scope, &mut msgs, &mut dead);
        msgs.extend(windows.iter().map(|r| self.window_result(r)));
        msgs.extend(timers.iter().map(|e| self.timer_event(e)));
        msgs.extend(derived.iter().map(|d| self.derived(d)));
        let results = msgs.len();
        msgs.extend(derived_dead.iter().map(|d| self.derived_dead_letter(d)));
        self.refused(&dead, Refusal::Dead, origins, scope, &mut msgs);
        self.refused(&late, Refusal::Late, origins, scope, &mut msgs);
        let counts = Published {
            results,
            dead_letters: dead.len() + derived_dead.len(),
            late: late.len(),
        };
        (msgs, counts)
    }

    /// Events with lineage: the n-th result of a source message gets id n. An event whose
    /// headers cannot be sent becomes a dead letter of the sink.
    fn results(
        &mut self,
        events: EventBatch,
        origins: &[Origin],
        scope: Scope,
        msgs: &mut Vec<Message>,
        dead: &mut Vec<DeadLetter>,
    ) {
        let EventBatch {
            mut packed,
            lineage,
        } = events;
        // The payload column becomes one shared buffer; each message is a slice of it.
        let payloads = Bytes::from(std::mem::take(&mut packed.payloads));
        let mut cols = columns(&packed);
        cols.payloads = &payloads;
        let view = BatchView::new_prechecked(cols);
        let mut emitted = vec![0u32; origins.len()];
        for (i, e) in view.iter().enumerate() {
            let source = lineage[i] as usize;
            let headers = match OutputHeaders::from_event(e.headers) {
                Ok(h) => h,
                Err(error) => {
                    let e = weir_packed::EventRef { headers: &[], ..e };
                    dead.push(DeadLetter::of_event(source as u32, &e, "sink", "", error));
                    continue;
                }
            };
            let n = emitted[source];
            emitted[source] += 1;
            let origin = &origins[source];
            let id = self.ids.of(MessageId::Result {
                scope,
                stream: &input_of(&self.inputs, origin).ids,
                sequence: origin.sequence,
                n,
            });
            let (s, end) = view.payload_range(i);
            msgs.push(Message {
                subject: self.subject.clone(),
                headers: headers.id(id).event(e.key, e.time).build(),
                payload: payloads.slice(s..end),
            });
        }
    }

    /// A fired window's result (the event headers are the window's).
    fn window_result(&mut self, r: &WindowResult) -> Message {
        let id = self.ids.of(MessageId::Origin(ResultOrigin::of_window(r)));
        let headers = OutputHeaders::new()
            .id(id)
            .event(&r.key, r.window.max_timestamp())
            .window(r.window);
        Message {
            subject: self.subject.clone(),
            headers: headers.build(),
            payload: Bytes::copy_from_slice(&r.payload),
        }
    }

    /// An event a timer emitted.
    fn timer_event(&mut self, e: &TimerEvent) -> Message {
        let id = self.ids.of(MessageId::Origin(ResultOrigin::of_timer(e)));
        free_result(&self.subject, id, &e.key, e.time, &e.headers, &e.payload)
    }

    /// An `[[after]]` output made from a window result or timer event.
    fn derived(&mut self, d: &Derived) -> Message {
        let id = self.ids.of(MessageId::Derived {
            origin: d.origin,
            index: d.index,
        });
        free_result(&self.subject, id, &d.key, d.time, &d.headers, &d.payload)
    }

    /// A window result or timer event an `[[after]]` operator refused.
    fn derived_dead_letter(&mut self, d: &DerivedDeadLetter) -> Message {
        let l = &d.letter;
        let id = self.ids.of(MessageId::DerivedDead(d.origin));
        let headers = OutputHeaders::from_event_lossy(&l.headers)
            .id(id)
            .failure(&l.error, &l.operator, &l.plugin)
            .origin(&d.origin.to_string())
            .event(&l.key, l.time);
        Message {
            subject: self.dead_letter.clone(),
            headers: headers.build(),
            payload: Bytes::copy_from_slice(&l.payload),
        }
    }

    /// Dead letters or late events of source messages: the n-th of a source message gets id
    /// n of its kind.
    fn refused(
        &mut self,
        letters: &[DeadLetter],
        refusal: Refusal,
        origins: &[Origin],
        scope: Scope,
        msgs: &mut Vec<Message>,
    ) {
        let subject = match refusal {
            Refusal::Dead => self.dead_letter.clone(),
            Refusal::Late => self.late.clone(),
        };
        let mut emitted = vec![0u32; origins.len()];
        for d in letters {
            let source = d.source as usize;
            let origin = &origins[source];
            let input = input_of(&self.inputs, origin);
            let n = emitted[source];
            emitted[source] += 1;
            let id = self.ids.of(MessageId::Refused {
                scope,
                refusal,
                stream: &input.ids,
                sequence: origin.sequence,
                n,
            });
            let headers = OutputHeaders::from_event_lossy(&d.headers)
                .id(id)
                .failure(&d.error, &d.operator, &d.plugin)
                .source(&input.stream, &origin.subject, origin.sequence)
                .event(&d.key, d.time);
            msgs.push(Message {
                subject: subject.clone(),
                headers: headers.build(),
                payload: Bytes::copy_from_slice(&d.payload),
            });
        }
    }
}

/// A result no source message produced alone; unusable plugin headers are dropped rather than
/// losing it.
fn free_result(
    subject: &Subject,
    id: Option<&str>,
    key: &[u8],
    time: i64,
    headers: &[u8],
    payload: &[u8],
) -> Message {
    Message {
        subject: subject.clone(),
        headers: OutputHeaders::from_event_lossy(headers)
            .id(id)
            .event(key, time)
            .build(),
        payload: Bytes::copy_from_slice(payload),
    }
}

/// The names of the input `origin` came from (the first for an unknown index, which no
/// source makes).
fn input_of<'a>(inputs: &'a [InputIds], origin: &Origin) -> &'a InputIds {
    inputs
        .get(usize::from(origin.input))
        .or(inputs.first())
        .expect("a pipeline has an input")
}

#[cfg(test)]
mod tests {
    use weir_packed::{BatchBuilder, push_header};

    use super::*;
    use crate::operator::output::ResultOrigin;
    use crate::window::Window;

    fn builder(ids: bool) -> MessageBuilder {
        let config = SinkConfig {
            subject: "out".into(),
            dead_letter: "dlq".into(),
            late: Some("late".into()),
            max_in_flight: 16,
        };
        MessageBuilder::new("p", InputIds::single("IN"), &config, ids)
    }

    fn origins() -> Vec<Origin> {
        (0..3)
            .map(|i| Origin {
                subject: format!("in.{i}").into(),
                sequence: 100 + i,
                input: 0,
            })
            .collect()
    }

    fn header(m: &Message, name: &str) -> Option<String> {
        m.headers.get(name).map(|v| v.as_str().to_owned())
    }

    #[test]
    fn results_are_numbered_per_source_message_and_bad_headers_become_dead_letters() {
        let mut b = BatchBuilder::new();
        let mut bad = Vec::new();
        push_header(&mut bad, b"no spaces", b"x");
        b.push(b"k", 1, &[], b"a", 0);
        b.push(b"k", 2, &[], b"b", 1);
        b.push(b"", 3, &bad, b"c", 2);
        b.push(b"k", 4, &[], b"d", 1);
        let mut events = EventBatch::from_source(b);
        events.lineage = vec![0, 2, 2, 2];
        let out = BatchOutput {
            events,
            ..Default::default()
        };
        let (msgs, counts) = builder(true).messages(out, &origins(), Scope::Stateful);
        let ids: Vec<Option<String>> = msgs.iter().map(|m| header(m, "Nats-Msg-Id")).collect();
        assert_eq!(
            ids,
            [
                Some("p/s/IN/100/0".into()),
                Some("p/s/IN/102/0".into()),
                Some("p/s/IN/102/1".into()),
                Some("p/s/dlq/IN/102/0".into()),
            ]
        );
        assert_eq!(&msgs[2].payload[..], b"d");
        let dead = &msgs[3];
        assert_eq!(dead.subject.as_str(), "dlq");
        assert_eq!(header(dead, "Weir-Operator").as_deref(), Some("sink"));
        assert_eq!(header(dead, "Weir-Source-Subject").as_deref(), Some("in.2"));
        assert!(header(dead, "Weir-Error").unwrap().contains("no spaces"));
        assert_eq!(
            counts,
            Published {
                results: 3,
                dead_letters: 1,
                late: 0
            }
        );
    }

    #[test]
    fn window_results_late_events_and_derived_outputs_get_their_ids_and_subjects() {
        let window = WindowResult {
            key: b"k".to_vec(),
            window: Window { start: 0, end: 10 },
            payload: b"{}".to_vec(),
            serial: None,
        };
        let origin = ResultOrigin::of_window(&window);
        let late = DeadLetter {
            source: 1,
            operator: "w".into(),
            plugin: "x@1".into(),
            error: "late".into(),
            key: b"k".to_vec(),
            time: 5,
            headers: Vec::new(),
            payload: b"e".to_vec(),
        };
        let derived = Derived {
            origin,
            index: 0,
            key: b"k".to_vec(),
            time: 9,
            headers: Vec::new(),
            payload: b"d".to_vec(),
        };
        let out = BatchOutput {
            windows: vec![window],
            late: vec![late],
            derived: vec![derived],
            ..Default::default()
        };
        let (msgs, counts) = builder(true).messages(out, &origins(), Scope::Stateful);
        assert_eq!(counts.results, 2);
        assert_eq!(counts.late, 1);
        let w = &msgs[0];
        assert_eq!(header(w, "Nats-Msg-Id"), Some(format!("p/{origin}")));
        assert_eq!(header(w, "Weir-Time").as_deref(), Some("9"));
        assert_eq!(header(w, "Weir-Window-End").as_deref(), Some("10"));
        assert_eq!(
            header(&msgs[1], "Nats-Msg-Id"),
            Some(format!("p/{origin}/0"))
        );
        assert_eq!(msgs[2].subject.as_str(), "late");
        assert_eq!(
            header(&msgs[2], "Nats-Msg-Id").as_deref(),
            Some("p/s/late/IN/101/0")
        );
        let (msgs, _) = builder(false).messages(
            BatchOutput {
                windows: vec![WindowResult {
                    key: Vec::new(),
                    window: Window { start: 0, end: 10 },
                    payload: Vec::new(),
                    serial: None,
                }],
                ..Default::default()
            },
            &[],
            Scope::Stateful,
        );
        assert_eq!(header(&msgs[0], "Nats-Msg-Id"), None);
        assert_eq!(header(&msgs[0], "Weir-Key"), None);
    }
}
