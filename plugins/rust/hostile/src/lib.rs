//! `hostile`: a misbehaving operator for the sandbox and hardening tests. It forwards events,
//! except:
//!
//! - a payload containing `trigger` makes it do `mode`: `panic` (a trap), `error` (an error
//!   value, `message` if set), `loop` (spin forever), `alloc` (allocate without bound),
//!   `recurse` (overflow the stack), `log` (log `message` `count` times, then forward), `leak`
//!   (an error value carelessly quoting its own config's `api_key`), `header` (forward it with
//!   the header `header` = `value`, e.g. a reserved `Nats-*` header), `grow` (forward it with
//!   `value` appended to the payload), `sleep` (sleep `sleep_ms` in the host's WASI clock,
//!   then forward);
//! - mode `sleep-configure` sleeps `sleep_ms` in `configure` (then forwards every event);
//! - config `{"mode": ..., "trigger": "", ...}` with an empty trigger misbehaves on every event;
//! - an unknown `mode` is refused by `configure`, quoting the mode.

use serde::Deserialize;
use weir_sdk::{Event, Output, Transform};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hostile {
    mode: String,
    #[serde(default)]
    trigger: String,
    /// `header` mode: the header to set.
    #[serde(default)]
    header: String,
    /// `header` mode: its value; `grow` mode: the bytes to append.
    #[serde(default)]
    value: String,
    /// What `log` logs and `error` reports.
    #[serde(default)]
    message: String,
    /// How many times `log` logs `message` per event.
    #[serde(default = "one")]
    count: u32,
    /// A secret that `leak` quotes in its errors.
    #[serde(default)]
    api_key: String,
    /// How long `sleep` and `sleep-configure` sleep (milliseconds; an hour unless set).
    #[serde(default = "an_hour")]
    sleep_ms: u64,
}

fn an_hour() -> u64 {
    3_600_000
}

/// Blocks in WASI (`wasi:clocks` subscription + `wasi:io/poll`), not in wasm code.
fn sleep(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

fn one() -> u32 {
    1
}

/// Recursion without a shadow-stack frame: only the engine's native stack grows.
#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    recurse(std::hint::black_box(n + 1)).wrapping_add(n)
}

impl Transform for Hostile {
    fn configure(config: &str) -> Result<Self, String> {
        let h: Hostile =
            serde_json::from_str(config).map_err(|e| format!("hostile config: {e}"))?;
        match h.mode.as_str() {
            "panic" | "error" | "loop" | "alloc" | "recurse" | "log" | "leak" | "header"
            | "grow" | "sleep" => Ok(h),
            "sleep-configure" => {
                sleep(h.sleep_ms);
                Ok(h)
            }
            other => Err(format!("hostile config: unknown mode `{other}`")),
        }
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        let hit = self.trigger.is_empty()
            || event
                .payload()
                .windows(self.trigger.len())
                .any(|w| w == self.trigger.as_bytes());
        if !hit || self.mode == "sleep-configure" {
            out.forward();
            return Ok(());
        }
        match self.mode.as_str() {
            "panic" => panic!("hostile plugin: poison event at index {}", event.index()),
            "error" if self.message.is_empty() => {
                Err(format!("poison payload at index {}", event.index()))
            }
            "error" => Err(self.message.clone()),
            "leak" => Err(format!("upstream refused api key {}", self.api_key)),
            "log" => {
                for _ in 0..self.count {
                    weir_sdk::log::info(&self.message);
                }
                out.forward();
                Ok(())
            }
            "loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "header" => {
                out.event()
                    .header(&self.header, self.value.as_bytes())
                    .bytes(event.payload());
                Ok(())
            }
            "sleep" => {
                sleep(self.sleep_ms);
                out.forward();
                Ok(())
            }
            "grow" => {
                let mut payload = event.payload().to_vec();
                payload.extend_from_slice(self.value.as_bytes());
                out.bytes(&payload);
                Ok(())
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            _ => {
                let n = recurse(0);
                out.bytes(&n.to_le_bytes());
                Ok(())
            }
        }
    }
}

weir_sdk::export_transform!(Hostile);
