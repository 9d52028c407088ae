// The body of `versioned-count` and `versioned-count-v2`, which differ in
// `DEFAULT_STATE_VERSION` only (included by each).

use serde::{Deserialize, Serialize};
use weir_sdk::{Aggregate, Event, Window};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_state_version")]
    state_version: u32,
    #[serde(default)]
    migrate: bool,
}

fn default_state_version() -> u32 {
    DEFAULT_STATE_VERSION
}

struct VersionedCount(Config);

#[derive(Serialize, Deserialize, Default)]
struct Acc {
    count: u64,
    migrated: bool,
}

#[derive(Serialize)]
struct Out {
    count: u64,
    migrated: bool,
}

impl Aggregate for VersionedCount {
    type Acc = Acc;
    type Out = Out;

    fn configure(config: &str) -> Result<Self, String> {
        serde_json::from_str(config)
            .map(VersionedCount)
            .map_err(|e| format!("versioned-count config: {e}"))
    }

    fn state_version(&self) -> u32 {
        self.0.state_version
    }

    fn migrate(&mut self, from: u32, old: &[u8]) -> Result<Acc, String> {
        if !self.0.migrate {
            return Err(format!(
                "no migration from state version {from} to {}",
                self.0.state_version
            ));
        }
        let old: Acc = postcard::from_bytes(old).map_err(|e| e.to_string())?;
        Ok(Acc {
            count: old.count,
            migrated: true,
        })
    }

    fn add(&mut self, acc: &mut Acc, _event: &Event<'_>) -> Result<(), String> {
        acc.count += 1;
        Ok(())
    }

    fn merge(&mut self, a: Acc, b: Acc) -> Result<Acc, String> {
        Ok(Acc {
            count: a.count + b.count,
            migrated: a.migrated || b.migrated,
        })
    }

    fn finish(&mut self, _key: Option<&str>, _w: Window, acc: Acc) -> Result<Option<Out>, String> {
        Ok(Some(Out {
            count: acc.count,
            migrated: acc.migrated,
        }))
    }
}

weir_sdk::export_aggregate!(VersionedCount);
