//! The process-wide wasmtime engine and the epoch ticker that enforces call deadlines.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::CompileCache;

/// How often the epoch advances; deadlines are rounded up to a multiple of this.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Largest memory a plugin may be granted (pooling allocator slot size).
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;

/// The engine, its compile cache and the ticker thread. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    cache: CompileCache,
    stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Creates the engine. `cache_dir` holds compiled components (`None`: the default,
    /// `$WEIR_CACHE_DIR` or `~/.cache/weir`).
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Bounded native stack for guests: a runaway recursion traps instead of crashing.
        config.max_wasm_stack(1 << 20);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(512)
            .total_memories(512)
            .total_tables(512)
            .max_memory_size(MAX_MEMORY_BYTES as usize)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .max_tables_per_component(64)
            .max_memories_per_component(16);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("configuring the wasmtime engine")?;

        let stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, ticker_stop) = (engine.weak(), stop.clone());
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .context("starting the epoch ticker thread")?;

        let cache = CompileCache::new(cache_dir.unwrap_or_else(CompileCache::default_dir), &engine);
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                cache,
                stop,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn cache(&self) -> &CompileCache {
        &self.inner.cache
    }

    /// Number of epoch ticks covering `deadline` (at least one).
    pub fn deadline_ticks(deadline: Duration) -> u64 {
        (deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1)
    }
}
