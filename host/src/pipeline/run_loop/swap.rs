//! Hot-loading in the run loop: installing new plugin versions between two batches, settling
//! canaries, and the barrier that keeps a new version's outputs back until a committed
//! checkpoint records it — so that a replay after a crash runs every input on the version that
//! ran it. The new version takes the next batch at once (the stall is the install); what it
//! makes is published when the checkpoint recording it commits.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::{RunLoop, STATUS_EVERY};
use crate::checkpoint::{PendingMessage, PluginVersion};
use crate::operator::chain::CanaryOutcome;
use crate::pipeline::hotload::{Slot, SwapEvent};
use crate::sink::Sink;

impl<K: Sink> RunLoop<K> {
    /// Installs the plugin versions that are ready (between two batches) and opens the
    /// barrier: their outputs are held until a committed checkpoint records them, so a replay
    /// after a crash runs each input on the version the checkpoint says.
    pub(super) async fn swap(&mut self) -> anyhow::Result<()> {
        if self.replay_left() > 0 {
            return Ok(()); // still replaying what ran on the versions in place
        }
        let Some(swaps) = &mut self.swaps else {
            return Ok(());
        };
        let mut ready = Vec::new();
        while let Ok(p) = swaps.try_recv() {
            ready.push(p);
        }
        if ready.is_empty() {
            return Ok(());
        }
        let stall = Instant::now();
        let (outcomes, plugins) = self
            .stages
            .run(move |s| {
                let outcomes: Vec<_> = ready
                    .into_iter()
                    .map(|p| {
                        let plugin = p.instance.plugin();
                        let what = Swapped {
                            slot: p.slot,
                            operator: p.operator.clone(),
                            origin: p.origin.clone(),
                            version: plugin.label(),
                            digest: plugin.hash.clone(),
                        };
                        (what, s.swap(p))
                    })
                    .collect();
                (outcomes, s.plugin_versions())
            })
            .await?;
        let mut swapped = 0;
        for (what, outcome) in outcomes {
            let Swapped {
                slot,
                operator,
                origin,
                version,
                digest,
            } = what;
            let event = match outcome {
                Ok(()) => {
                    swapped += 1;
                    tracing::info!(%operator, %version, %origin, from = self.sequence + 1, "plugin swapped");
                    SwapEvent::Installed { slot, digest }
                }
                Err(e) => {
                    let reason = format!("{e:#}");
                    tracing::error!(
                        %operator, %version, %origin, error = %reason,
                        "swap refused; the running version stays"
                    );
                    SwapEvent::Refused {
                        slot,
                        digest,
                        reason,
                    }
                }
            };
            self.tell(event);
        }
        if swapped == 0 {
            return Ok(());
        }
        self.metrics.swaps.fetch_add(swapped, Relaxed);
        self.statuses_at = None;
        self.plugins = plugins?;
        self.open_barrier();
        let stall = stall.elapsed().as_micros() as u64;
        self.metrics.swap_stall_us.store(stall, Relaxed);
        tracing::info!(stall_us = stall, "swap done");
        Ok(())
    }

    /// Tells whoever follows the swaps (the registry follower) what became of one.
    fn tell(&self, event: SwapEvent) {
        if let Some(tx) = &self.swap_events {
            let _ = tx.send(event); // a follower gone is no reason to stop
        }
    }

    /// Refreshes `/plugins` when due (four times a second, and after a swap or a rollback).
    pub(super) async fn publish_statuses(&mut self) -> anyhow::Result<()> {
        if self.statuses_at.is_some_and(|t| t.elapsed() < STATUS_EVERY) {
            return Ok(());
        }
        let statuses = self.stages.run(|s| s.plugin_statuses()).await?;
        self.metrics.plugins.set(statuses);
        self.statuses_at = Some(Instant::now());
        Ok(())
    }

    /// Canaries decided by the last batch: a rollback is a barrier, like a swap.
    pub(super) fn on_canaries(
        &mut self,
        settled: Vec<(Slot, String, CanaryOutcome)>,
        plugins: Vec<PluginVersion>,
    ) {
        let mut rolled_back = false;
        for (slot, operator, outcome) in settled {
            match outcome {
                CanaryOutcome::Passed { version } => {
                    tracing::info!(%operator, %version, "canary passed; the new version stays");
                }
                CanaryOutcome::RolledBack { from, to, reason } => {
                    rolled_back = true;
                    self.metrics.rollbacks.fetch_add(1, Relaxed);
                    tracing::error!(
                        %operator, %from, %to, %reason, from_position = self.sequence + 1,
                        "canary failed: rolled back to the previous version"
                    );
                    self.tell(SwapEvent::RolledBack { slot, reason });
                }
            }
        }
        self.statuses_at = None;
        if rolled_back {
            self.plugins = plugins;
            self.open_barrier();
        }
    }

    /// Opens (or renews) the barrier after a swap or rollback: outputs are held until a
    /// checkpoint started from now on — which records the new versions — is committed.
    fn open_barrier(&mut self) {
        if self.checkpointer.is_none() {
            return; // nothing to replay from: outputs go out at once
        }
        let barrier = self.barrier.get_or_insert_with(Barrier::default);
        // A checkpoint started before this swap records the versions before it.
        barrier.expected = None;
    }

    /// Moves the barrier on: starts its checkpoint when none is being written, and once that
    /// checkpoint is committed delivers what the new versions made since it started. A
    /// checkpoint that failed is started again.
    pub(super) async fn advance_barrier(&mut self) -> anyhow::Result<()> {
        let Some(checkpointer) = &self.checkpointer else {
            return Ok(());
        };
        let writing = checkpointer.in_progress();
        let Some(barrier) = &mut self.barrier else {
            return Ok(());
        };
        match barrier.expected {
            Some(n) if self.summary.checkpoints >= n => {
                let held = std::mem::take(&mut barrier.held);
                self.barrier = None;
                tracing::info!(
                    released = held.len(),
                    "the new plugin versions are recorded by a committed checkpoint"
                );
                if !held.is_empty() {
                    self.in_flight
                        .push_back(tokio::spawn(self.sink.deliver(self.sink.release(held))));
                }
                return Ok(());
            }
            Some(_) if !writing => barrier.expected = None, // it failed: take another
            _ => {}
        }
        if barrier.expected.is_none() && !writing {
            self.checkpoint().await?;
        }
        Ok(())
    }
}

/// A version handed to the engine, named for the log and the swap events.
struct Swapped {
    slot: Slot,
    operator: String,
    origin: String,
    version: String,
    digest: String,
}

/// A swap (or rollback) not yet recorded by a committed checkpoint.
#[derive(Default)]
pub(super) struct Barrier {
    /// Outputs of the batches run since, held until a checkpoint records the new versions.
    pub held: Vec<PendingMessage>,
    /// The count of committed checkpoints at which the checkpoint recording the new versions
    /// will have committed (`None`: not started yet).
    pub expected: Option<u64>,
}
