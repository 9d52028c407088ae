//! `inactivity`: a keyed process function that reports keys gone quiet — e.g. IoT devices that
//! stopped sending — using **processing-time** timers (the host's wall clock, so it fires even
//! when no event at all arrives to move event time).
//!
//! Per key the host keeps the last event's time and the pending deadline (state `last`); every
//! event moves the key's processing-time timer to `timeout_ms` after now. When a timer fires,
//! one alert `{"key", "last_event_time", "silent_ms"}` (processing time since the key's last
//! event reached the host) is emitted and the key's state dropped (the next event starts
//! watching it again). Event-time timers are not used.
//!
//! Config (defaults): `{"timeout_ms": 60000}`.

use serde::{Deserialize, Serialize};
use serde_json::json;
use weir_sdk::{Event, Keyed, Output, Process, TimeDomain, TimerOutput};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Inactivity {
    timeout_ms: i64,
}

impl Default for Inactivity {
    fn default() -> Self {
        Inactivity { timeout_ms: 60_000 }
    }
}

#[derive(Serialize, Deserialize)]
struct Last {
    /// Event time of the key's last event.
    event_time: i64,
    /// The processing-time timer watching the key.
    deadline: i64,
}

const LAST: &str = "last";

impl Process for Inactivity {
    fn configure(config: &str) -> Result<Self, String> {
        let c: Inactivity =
            serde_json::from_str(config).map_err(|e| format!("inactivity config: {e}"))?;
        if c.timeout_ms <= 0 {
            return Err("inactivity config: `timeout_ms` must be positive".into());
        }
        Ok(c)
    }

    fn on_event(
        &mut self,
        keyed: &mut Keyed<'_>,
        event: &Event<'_>,
        _out: &mut Output<'_>,
    ) -> Result<(), String> {
        if let Some(previous) = keyed.get::<Last>(LAST)? {
            keyed.delete_processing_timer(previous.deadline);
        }
        let deadline = keyed.processing_time() + self.timeout_ms;
        keyed.register_processing_timer(deadline);
        keyed.set(
            LAST,
            &Last {
                event_time: event.time(),
                deadline,
            },
        )
    }

    fn on_timer(
        &mut self,
        keyed: &mut Keyed<'_>,
        _time: i64,
        out: &mut TimerOutput<'_>,
    ) -> Result<(), String> {
        if keyed.timer_domain() != TimeDomain::Processing {
            return Ok(());
        }
        let Some(last) = keyed.get::<Last>(LAST)? else {
            return Ok(());
        };
        keyed.delete(LAST);
        out.json(&json!({
            "key": keyed.key(),
            "last_event_time": last.event_time,
            "silent_ms": keyed.processing_time() - (last.deadline - self.timeout_ms),
        }))
    }
}

weir_sdk::export_process!(Inactivity);
