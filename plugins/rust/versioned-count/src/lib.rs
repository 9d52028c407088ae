//! `versioned-count`: a test fixture for plugin upgrades across a checkpoint restore.
//!
//! Counts events per window. Config: `{"state_version": N, "migrate": true}` — the accumulator
//! version this instance claims (default 0; 1 for `versioned-count-v2`, the same operator
//! built as the next version, for hot-swap tests), and whether it can migrate accumulators of
//! older versions (migration marks them, so tests can see it happened). Result:
//! `{"count", "migrated"}`.

const DEFAULT_STATE_VERSION: u32 = 0;

include!("count.rs");
