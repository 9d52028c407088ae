//! `window-stats`: count, sum, average, minimum and maximum of a numeric JSON field per window.
//!
//! Config: `{"field": "amount"}` (a dotted path; omit it to only count events). Events whose
//! field is missing are counted but do not contribute to sum/min/max; a field that is present
//! but not a number is an error (dead-lettered). Result payload:
//! `{"key", "start", "end", "count", "sum", "avg", "min", "max"}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_sdk::{Aggregate, Event, Window};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    field: Option<String>,
}

struct Stats {
    path: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Default)]
struct Acc {
    count: u64,
    n: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Serialize)]
struct Out {
    key: Option<String>,
    start: i64,
    end: i64,
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<f64>,
}

impl Aggregate for Stats {
    type Acc = Acc;
    type Out = Out;

    fn configure(config: &str) -> Result<Self, String> {
        let c: Config =
            serde_json::from_str(config).map_err(|e| format!("window-stats config: {e}"))?;
        Ok(Stats {
            path: c.field.map(|f| f.split('.').map(str::to_owned).collect()),
        })
    }

    fn add(&mut self, acc: &mut Acc, event: &Event<'_>) -> Result<(), String> {
        acc.count += 1;
        let Some(path) = &self.path else {
            return Ok(());
        };
        let doc: Value = event.json()?;
        let mut v = Some(&doc);
        for p in path {
            v = v.and_then(|v| v.get(p.as_str()));
        }
        match v {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Number(n)) => {
                let x = n.as_f64().unwrap_or(0.0);
                acc.n += 1;
                acc.sum += x;
                acc.min = Some(acc.min.map_or(x, |m| m.min(x)));
                acc.max = Some(acc.max.map_or(x, |m| m.max(x)));
                Ok(())
            }
            Some(other) => Err(format!(
                "field `{}` is {other}, not a number",
                path.join(".")
            )),
        }
    }

    fn merge(&mut self, a: Acc, b: Acc) -> Result<Acc, String> {
        let pick = |x: Option<f64>, y: Option<f64>, f: fn(f64, f64) -> f64| match (x, y) {
            (Some(x), Some(y)) => Some(f(x, y)),
            (x, y) => x.or(y),
        };
        Ok(Acc {
            count: a.count + b.count,
            n: a.n + b.n,
            sum: a.sum + b.sum,
            min: pick(a.min, b.min, f64::min),
            max: pick(a.max, b.max, f64::max),
        })
    }

    fn finish(
        &mut self,
        key: Option<&str>,
        window: Window,
        acc: Acc,
    ) -> Result<Option<Out>, String> {
        let numeric = self.path.is_some() && acc.n > 0;
        Ok(Some(Out {
            key: key.map(str::to_owned),
            start: window.start,
            end: window.end,
            count: acc.count,
            sum: numeric.then_some(acc.sum),
            avg: numeric.then(|| acc.sum / acc.n as f64),
            min: if numeric { acc.min } else { None },
            max: if numeric { acc.max } else { None },
        }))
    }
}

weir_sdk::export_aggregate!(Stats);

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use weir_sdk::Window;
    use weir_sdk::testing::{AggregateHarness, TestEvent};

    use super::Stats;

    const MINUTE: Window = Window {
        start: 0,
        end: 60_000,
    };

    fn amount(key: &str, doc: Value) -> TestEvent {
        TestEvent::json(&doc).key(key)
    }

    #[test]
    fn a_window_reports_count_sum_avg_min_max_of_the_field() {
        let mut stats =
            AggregateHarness::<Stats>::configure(r#"{"field": "order.amount"}"#).unwrap();
        let failures = stats.add(
            MINUTE,
            &[
                amount("a", json!({"order": {"amount": 10}})),
                amount("a", json!({"order": {"amount": 30.5}})),
                amount("a", json!({"order": {}})),
                amount("b", json!({"order": {"amount": 1}})),
            ],
        );
        assert!(failures.is_empty(), "{failures:?}");
        let results: Vec<Value> = stats.fire(MINUTE.end - 1).json().unwrap();
        assert_eq!(
            results,
            [
                json!({"key": "a", "start": 0, "end": 60_000, "count": 3,
                       "sum": 40.5, "avg": 20.25, "min": 10.0, "max": 30.5}),
                json!({"key": "b", "start": 0, "end": 60_000, "count": 1,
                       "sum": 1.0, "avg": 1.0, "min": 1.0, "max": 1.0}),
            ]
        );
    }

    #[test]
    fn a_field_that_is_not_a_number_is_dead_lettered_and_not_counted() {
        let mut stats = AggregateHarness::<Stats>::configure(r#"{"field": "amount"}"#).unwrap();
        let failures = stats.add(
            MINUTE,
            &[
                amount("a", json!({"amount": 2})),
                amount("a", json!({"amount": "two"})),
            ],
        );
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].index, 1);
        assert_eq!(
            failures[0].message,
            r#"field `amount` is "two", not a number"#
        );
        let results: Vec<Value> = stats.fire(i64::MAX).json().unwrap();
        assert_eq!(results[0]["count"], 1);
    }

    #[test]
    fn merged_sessions_keep_the_extremes_of_both() {
        let mut stats = AggregateHarness::<Stats>::configure(r#"{"field": "x"}"#).unwrap();
        let (s1, s2) = (
            Window { start: 0, end: 100 },
            Window {
                start: 50,
                end: 200,
            },
        );
        stats.add(s1, &[amount("k", json!({"x": 5}))]);
        stats.add(
            s2,
            &[amount("k", json!({"x": -1})), amount("k", json!({"x": 9}))],
        );
        let session = stats.merge("k", s1, s2).unwrap();
        let results: Vec<Value> = stats.fire(session.end).json().unwrap();
        assert_eq!(
            results,
            [json!({"key": "k", "start": 0, "end": 200, "count": 3,
                    "sum": 13.0, "avg": 13.0 / 3.0, "min": -1.0, "max": 9.0})]
        );
    }

    #[test]
    fn without_a_field_events_are_only_counted() {
        let mut stats = AggregateHarness::<Stats>::configure("{}").unwrap();
        stats.add(
            MINUTE,
            &[TestEvent::new("not even json"), TestEvent::new("")],
        );
        let results: Vec<Value> = stats.fire(i64::MAX).json().unwrap();
        assert_eq!(
            results,
            [json!({"key": null, "start": 0, "end": 60_000, "count": 2})]
        );
    }
}
