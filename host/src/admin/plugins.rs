//! `GET /plugins`: the plugin version each operator runs, since when, how many events it took
//! and how many failed, how long its calls took, and whether a canary is watching it
//! (hot-loading) — JSON, refreshed by the run loop four times a second and after every swap or
//! rollback.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One operator's plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginStatus {
    /// `operator`, `window`, `process` or `after`.
    pub stage: String,
    pub operator: String,
    /// File stem and hash prefix (`stamp@1a2b3c4d5e6f`).
    pub version: String,
    /// SHA-256 of the component.
    pub digest: String,
    /// When this version took over (ms since the Unix epoch; transform operators).
    pub since_ms: Option<i64>,
    /// Events it processed, and those it failed on (transform operators; `None` for the
    /// stateful stage, whose counts are the pipeline's).
    pub events: Option<u64>,
    pub errors: Option<u64>,
    /// The version a canary would roll back to, while one watches this version.
    pub canary_previous: Option<String>,
    /// Wall time its plugin calls took, µs: since the running version took over (transform
    /// operators), since the pipeline started (the stateful stage). `None` from hosts that
    /// did not measure it.
    #[serde(default)]
    pub busy_us: Option<u64>,
}

/// The statuses, as last published by the run loop.
#[derive(Debug, Default)]
pub struct Plugins(Mutex<Vec<PluginStatus>>);

impl Plugins {
    pub fn set(&self, statuses: Vec<PluginStatus>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = statuses;
    }

    /// The statuses as last published.
    pub fn get(&self) -> Vec<PluginStatus> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The statuses as JSON.
    pub fn json(&self) -> String {
        let statuses = self.0.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::to_string_pretty(&*statuses).unwrap_or_else(|_| "[]".into())
    }
}
