//! `fraud-detect`: a keyed process function over card transactions (key = card).
//!
//! Rule: more than `max_count` transactions above `amount_above` within `within_ms` of event
//! time, from at least `min_countries` different countries → one alert
//! `{"card", "count", "countries", "total", "first", "last"}`, after which the card's window
//! starts empty again. Per card the host keeps the recent large transactions (state
//! `recent`); an event-time timer `within_ms` after each one drops it when it expires, so idle
//! cards hold no state.
//!
//! Config (defaults): `{"amount_above": 500, "max_count": 3, "within_ms": 60000,
//! "min_countries": 2, "amount_field": "amount", "country_field": "country"}`.
//! A transaction without a numeric amount or a string country is an error (dead-lettered).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use weir_sdk::{Event, Keyed, Output, Process, TimerOutput};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Fraud {
    amount_above: f64,
    max_count: usize,
    within_ms: i64,
    min_countries: usize,
    amount_field: String,
    country_field: String,
}

impl Default for Fraud {
    fn default() -> Self {
        Fraud {
            amount_above: 500.0,
            max_count: 3,
            within_ms: 60_000,
            min_countries: 2,
            amount_field: "amount".into(),
            country_field: "country".into(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone)]
struct Tx {
    ts: i64,
    amount: f64,
    country: String,
}

const RECENT: &str = "recent";

impl Fraud {
    fn store(&self, keyed: &mut Keyed<'_>, recent: &[Tx]) -> Result<(), String> {
        if recent.is_empty() {
            keyed.delete(RECENT);
            Ok(())
        } else {
            keyed.set(RECENT, recent)
        }
    }
}

impl Process for Fraud {
    fn configure(config: &str) -> Result<Self, String> {
        let f: Fraud =
            serde_json::from_str(config).map_err(|e| format!("fraud-detect config: {e}"))?;
        if f.max_count == 0 || f.within_ms <= 0 {
            return Err("fraud-detect config: `max_count` and `within_ms` must be positive".into());
        }
        Ok(f)
    }

    fn on_event(
        &mut self,
        keyed: &mut Keyed<'_>,
        event: &Event<'_>,
        out: &mut Output<'_>,
    ) -> Result<(), String> {
        let tx: Value = event.json()?;
        let amount = tx
            .get(&self.amount_field)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("field `{}` is missing or not a number", self.amount_field))?;
        let country = tx
            .get(&self.country_field)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("field `{}` is missing or not a string", self.country_field))?;
        if amount <= self.amount_above {
            return Ok(());
        }
        let now = event.time();
        let mut recent: Vec<Tx> = keyed.get(RECENT)?.unwrap_or_default();
        recent.push(Tx {
            ts: now,
            amount,
            country: country.to_owned(),
        });
        let newest = recent.iter().map(|t| t.ts).max().unwrap_or(now);
        recent.retain(|t| t.ts > newest - self.within_ms);
        let mut countries: Vec<&str> = recent.iter().map(|t| t.country.as_str()).collect();
        countries.sort_unstable();
        countries.dedup();
        if recent.len() > self.max_count && countries.len() >= self.min_countries {
            out.event().clear_headers().json(&json!({
                "card": keyed.key(),
                "count": recent.len(),
                "countries": countries,
                "total": recent.iter().map(|t| t.amount).sum::<f64>(),
                "first": recent.iter().map(|t| t.ts).min(),
                "last": newest,
            }))?;
            recent.clear();
        } else {
            keyed.register_event_timer(now + self.within_ms);
        }
        self.store(keyed, &recent)
    }

    fn on_timer(
        &mut self,
        keyed: &mut Keyed<'_>,
        time: i64,
        _out: &mut TimerOutput<'_>,
    ) -> Result<(), String> {
        let mut recent: Vec<Tx> = keyed.get(RECENT)?.unwrap_or_default();
        recent.retain(|t| t.ts > time - self.within_ms);
        self.store(keyed, &recent)
    }
}

weir_sdk::export_process!(Fraud);

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use weir_sdk::testing::{ProcessHarness, TestEvent};

    use super::Fraud;

    fn tx(card: &str, time: i64, amount: f64, country: &str) -> TestEvent {
        TestEvent::json(&json!({"amount": amount, "country": country}))
            .key(card)
            .time(time)
    }

    fn fraud() -> ProcessHarness<Fraud> {
        ProcessHarness::configure("{}").unwrap()
    }

    #[test]
    fn four_large_transactions_from_two_countries_within_a_minute_raise_one_alert() {
        let mut h = fraud();
        let run = h.process(&[
            tx("c1", 0, 600.0, "FR"),
            tx("c2", 500, 900.0, "US"),
            tx("c1", 1_000, 700.0, "DE"),
            tx("c1", 2_000, 800.0, "FR"),
            tx("c1", 3_000, 900.0, "FR"),
        ]);
        assert!(run.failures.is_empty(), "{:?}", run.failures);
        let alerts: Vec<Value> = run.json().unwrap();
        assert_eq!(
            alerts,
            [json!({"card": "c1", "count": 4, "countries": ["DE", "FR"],
                    "total": 3000.0, "first": 0, "last": 3_000})]
        );
        assert_eq!(run.outputs[0].origin(), Some(4), "raised by the fourth");
        assert_eq!(run.outputs[0].key(), Some("c1"));
        // The card starts again from nothing; the other card keeps its transaction.
        assert_eq!(h.state::<Value>("c1", "recent").unwrap(), None);
        assert_eq!(
            h.state::<Vec<Value>>("c2", "recent")
                .unwrap()
                .map(|r| r.len()),
            Some(1)
        );
    }

    #[test]
    fn small_or_single_country_transactions_raise_nothing() {
        let mut h = fraud();
        let run = h.process(&[
            tx("c", 0, 10.0, "FR"),
            tx("c", 1, 20.0, "DE"),
            tx("c", 2, 600.0, "FR"),
            tx("c", 3, 600.0, "FR"),
            tx("c", 4, 600.0, "FR"),
            tx("c", 5, 600.0, "FR"),
        ]);
        assert!(run.outputs.is_empty() && run.failures.is_empty());
    }

    #[test]
    fn transactions_expire_a_minute_later_through_their_timers() {
        let mut h = fraud();
        h.process(&[tx("c", 0, 600.0, "FR"), tx("c", 1_000, 700.0, "DE")]);
        assert_eq!(h.event_timers("c"), [60_000, 61_000]);
        let fired = h.advance_watermark(60_000);
        assert!(fired.outputs.is_empty() && fired.failures.is_empty());
        let recent: Vec<Value> = h.state("c", "recent").unwrap().unwrap();
        assert_eq!(recent.len(), 1);
        h.advance_watermark(61_000);
        assert_eq!(h.state::<Value>("c", "recent").unwrap(), None);
    }

    #[test]
    fn a_transaction_without_an_amount_is_dead_lettered() {
        let mut h = fraud();
        let run = h.process(&[
            TestEvent::json(&json!({"country": "FR"})).key("c"),
            tx("c", 0, 600.0, "FR"),
        ]);
        assert_eq!(run.failures.len(), 1);
        assert_eq!(run.failures[0].index, 0);
        assert_eq!(
            run.failures[0].message,
            "field `amount` is missing or not a number"
        );
        assert_eq!(h.event_timers("c"), [60_000]);
    }

    #[test]
    fn a_zero_window_is_refused_at_start() {
        let err = ProcessHarness::<Fraud>::configure(r#"{"within_ms": 0}"#)
            .err()
            .unwrap();
        assert!(err.contains("must be positive"), "{err}");
    }
}
