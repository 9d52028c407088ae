//! The join stage: a `[join]` of two inputs, run by the host's interval or window join
//! ([`crate::join`]) with its state kept by the host (checkpointed, unaffected by plugin
//! upgrades). Each event's side is the input its source message came from.
//!
//! A joined pair becomes one event: keyed by the join key, timed as the join says (the later
//! event's time, or the window's last millisecond), its payload the built-in JSON merge
//! `{"left": …, "right": …}` (each side's payload as JSON when it is JSON, else as a string;
//! `null` for an outer join's missing side), window joins adding `Weir-Window-Start` and
//! `Weir-Window-End` headers. `[[after]]` operators then make of a pair what the author wants.
//! A pair is named by the ids of its two events (their source positions), so a replay gives it
//! the same message id. Late events go to the late subject, events of neither side are
//! dead-lettered.

use weir_packed::push_header;

use super::batch::EventBatch;
use super::output::{BatchOutput, DeadLetter, TimerEvent};
use super::stage::{StageState, StatefulStage};
use crate::checkpoint::{Manifest, PluginVersion, StateBlob};
use crate::config::{JoinConfig, JoinType};
use crate::join::interval::IntervalJoin;
use crate::join::window::WindowJoin;
use crate::join::{Element, Emit, JoinState, Side};
use crate::runtime::Runtime;
use crate::runtime::instance::AnyInstance;
use crate::source::Origin;

/// The two kinds of join.
enum Join {
    Interval(IntervalJoin),
    Window(WindowJoin),
}

/// A join of two inputs and its state.
pub struct JoinStage {
    name: String,
    /// The input indices of the left and right sides.
    left: u16,
    right: u16,
    /// The input names, for dead letters.
    inputs: (String, String),
    join: Join,
}

impl JoinStage {
    /// The join `config` describes, over inputs `left` and `right` (indices in the pipeline's
    /// `[[sources]]`).
    pub fn new(config: &JoinConfig, left: u16, right: u16) -> anyhow::Result<Self> {
        let join = match config.kind {
            JoinType::Interval => Join::Interval(IntervalJoin::new(config.bounds())?),
            JoinType::Window => Join::Window(WindowJoin::new(
                config.spec(),
                config.join_kind,
                config.allowed_lateness.as_millis().min(i64::MAX as u128) as i64,
            )),
        };
        Ok(JoinStage {
            name: config.name.clone(),
            left,
            right,
            inputs: (config.left.clone(), config.right.clone()),
            join,
        })
    }
}

/// A payload as a JSON value: itself when it is JSON, else a JSON string of its text.
fn json_of(payload: &[u8], out: &mut Vec<u8>) {
    if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
        out.extend_from_slice(payload);
    } else {
        let text = String::from_utf8_lossy(payload);
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &text);
    }
}

/// A joined pair as an event.
fn pair_event(emit: &Emit<'_>) -> Option<TimerEvent> {
    let Emit::Pair {
        key,
        time,
        window,
        left,
        right,
    } = emit
    else {
        return None;
    };
    let mut payload = Vec::with_capacity(
        16 + left.map_or(4, |e| e.payload.len()) + right.map_or(4, |e| e.payload.len()),
    );
    payload.extend_from_slice(b"{\"left\":");
    match left {
        Some(e) => json_of(&e.payload, &mut payload),
        None => payload.extend_from_slice(b"null"),
    }
    payload.extend_from_slice(b",\"right\":");
    match right {
        Some(e) => json_of(&e.payload, &mut payload),
        None => payload.extend_from_slice(b"null"),
    }
    payload.push(b'}');
    let mut headers = Vec::new();
    if let Some(w) = window {
        push_header(
            &mut headers,
            b"Weir-Window-Start",
            w.start.to_string().as_bytes(),
        );
        push_header(
            &mut headers,
            b"Weir-Window-End",
            w.end.to_string().as_bytes(),
        );
    }
    Some(TimerEvent {
        key: key.to_vec(),
        time: *time,
        headers,
        payload,
        pair: Some((left.map(|e| e.id), right.map(|e| e.id))),
    })
}

impl StatefulStage for JoinStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "join"
    }

    fn plugin(&self) -> Option<&std::sync::Arc<crate::runtime::Plugin>> {
        None
    }

    fn process_batch(
        &mut self,
        _runtime: &Runtime,
        events: &EventBatch,
        origins: &[Origin],
        out: &mut BatchOutput,
    ) {
        let view = events.view();
        // Events made from one source message, numbered: their ids stay distinct.
        let mut made = vec![0u64; origins.len()];
        for (i, e) in view.iter().enumerate() {
            let source = events.lineage[i];
            let Some(origin) = origins.get(source as usize) else {
                continue;
            };
            let side = if origin.input == self.left {
                Side::Left
            } else if origin.input == self.right {
                Side::Right
            } else {
                out.dead.push(DeadLetter::of_event(
                    source,
                    &e,
                    &self.name,
                    "",
                    format!(
                        "the event came from input {} of the pipeline, which is neither side \
                         of the join ({:?}, {:?})",
                        origin.input, self.inputs.0, self.inputs.1
                    ),
                ));
                continue;
            };
            let n = &mut made[source as usize];
            let id = (origin.sequence << 16) | (*n).min(0xffff);
            *n += 1;
            let element = Element {
                time: e.time,
                id,
                payload: e.payload.to_vec(),
            };
            let mut late = false;
            let mut emit = |emit: Emit<'_>| match &emit {
                Emit::Pair { .. } => out.timers.extend(pair_event(&emit)),
                Emit::Late { .. } => late = true,
            };
            match &mut self.join {
                Join::Interval(j) => j.on_element(side, e.key, element, &mut emit),
                Join::Window(j) => j.on_element(side, e.key, element, &mut emit),
            }
            if late {
                let watermark = match &self.join {
                    Join::Interval(j) => j.watermark(),
                    Join::Window(j) => j.watermark(),
                };
                out.late.push(DeadLetter::of_event(
                    source,
                    &e,
                    &self.name,
                    "",
                    format!(
                        "late: the {} event is older than the join can still pair (watermark \
                         {})",
                        side.as_str(),
                        watermark.unwrap_or(i64::MIN)
                    ),
                ));
            }
        }
    }

    fn advance_watermark(&mut self, _runtime: &Runtime, watermark: i64, out: &mut BatchOutput) {
        match &mut self.join {
            Join::Interval(j) => j.advance_watermark(watermark),
            Join::Window(j) => {
                j.advance_watermark(watermark, &mut |emit| out.timers.extend(pair_event(&emit)))
            }
        }
    }

    fn on_processing_time(&mut self, _runtime: &Runtime, _out: &mut BatchOutput) {}

    fn needs_processing_time(&self) -> bool {
        false
    }

    fn state(&mut self) -> StageState<'_> {
        StageState::Join(match &self.join {
            Join::Interval(j) => JoinState::Interval(j.state()),
            Join::Window(j) => JoinState::Window(j.state()),
        })
    }

    fn restore(
        &mut self,
        _runtime: &Runtime,
        manifest: &Manifest,
        blob: &mut StateBlob,
    ) -> anyhow::Result<()> {
        let id = manifest.id;
        if blob.window.is_some() || blob.process.is_some() {
            anyhow::bail!(
                "checkpoint {id} holds window or keyed process state, but the pipeline ends in \
                 a join now; a fresh start needs `weir checkpoint delete --all`"
            );
        }
        match (blob.join.take(), &mut self.join) {
            (None, _) => {}
            (Some(JoinState::Interval(s)), Join::Interval(j)) => j.restore(s),
            (Some(JoinState::Window(s)), Join::Window(j)) => j.restore(s),
            (Some(_), _) => anyhow::bail!(
                "checkpoint {id} holds the state of another kind of join; a fresh start needs \
                 `weir checkpoint delete --all`"
            ),
        }
        Ok(())
    }

    fn swap(&mut self, _runtime: &Runtime, _next: AnyInstance) -> anyhow::Result<()> {
        anyhow::bail!(
            "the join `{}` is built into the host: it has no plugin to swap",
            self.name
        )
    }

    fn plugin_version(&mut self, _runtime: &Runtime) -> anyhow::Result<Option<PluginVersion>> {
        Ok(None)
    }

    fn state_entries(&mut self) -> u64 {
        match &self.join {
            Join::Interval(j) => j.buffered(),
            Join::Window(j) => j.buffered(),
        }
    }
}
