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
