//! Choosing where `weir run` starts: opening the checkpoint store without mistaking a lost
//! one for a first run, and picking the checkpoint to restore.
//!
//! - [`open_for_run`] opens (creating on a first run) the buckets. When the manifest bucket
//!   does not exist but the pipeline has clearly run before — state blobs under its prefix in
//!   the object store, or (for a pipeline with state) a durable consumer that acknowledged
//!   messages — it refuses ([`CheckpointError::ManifestsMissing`]): starting with empty state
//!   would silently give wrong window results. `--from-checkpoint none` is the way to start
//!   empty on purpose.
//! - [`restore_point`] picks the checkpoint: the head, falling back to older ones whose blob
//!   loads; with the head missing or corrupt, the newest archived checkpoint whose blob loads
//!   (with a warning), or — a corrupt head and nothing archived — a refusal saying how to go
//!   on.
//!
//! It does not restore state into the stages (the run loop does) nor position the source.

use async_nats::jetstream::{self, context::ConsumerInfoErrorKind};
use futures::StreamExt;

use super::buckets::{kv_stream, object_stream, stream_exists};
use super::format::{CheckpointError, Manifest, StateBlob};
use super::store::{CheckpointStore, Head};
use crate::config::Pipeline;

/// Which checkpoint `weir run` starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// The latest complete one (falling back to older ones when its blob is unusable).
    Latest,
    /// Exactly this one.
    Id(u64),
    /// None: empty state, the source from its beginning (or the consumer's ack floor).
    Fresh,
}

/// The checkpoint to restore, if any.
pub struct Restored {
    pub manifest: Manifest,
    pub blob: StateBlob,
}

/// Opens the checkpoint store of `pipeline` for a run starting `from`, creating the buckets on
/// a first run — and refusing when the manifest bucket is gone although the pipeline ran.
pub async fn open_for_run(
    js: &jetstream::Context,
    pipeline: &Pipeline,
    from: StartFrom,
) -> Result<CheckpointStore, CheckpointError> {
    let cfg = &pipeline.config;
    let name = cfg.name.get_ref();
    let bucket = &cfg.checkpoint.bucket;
    if from != StartFrom::Fresh && !stream_exists(js, &kv_stream(bucket)).await? {
        let evidence = prior_run(js, pipeline).await?;
        if !evidence.is_empty() {
            return Err(CheckpointError::ManifestsMissing {
                bucket: bucket.clone(),
                pipeline: name.clone(),
                evidence: evidence.join("; "),
            });
        }
    }
    CheckpointStore::open(js, name, &cfg.checkpoint).await
}

/// What shows that `pipeline` ran before: state blobs under its prefix in the object store;
/// for a pipeline with state, its durable consumer's acknowledgements (a stateless pipeline
/// resuming from its ack floor loses nothing).
async fn prior_run(
    js: &jetstream::Context,
    pipeline: &Pipeline,
) -> Result<Vec<String>, CheckpointError> {
    let cfg = &pipeline.config;
    let name = cfg.name.get_ref();
    let state_bucket = &cfg.checkpoint.state_bucket;
    let mut evidence = Vec::new();
    if stream_exists(js, &object_stream(state_bucket)).await? {
        let listing = |e: &dyn std::fmt::Display| {
            CheckpointError::nats(
                format!("listing object store {state_bucket:?}"),
                std::io::Error::other(e.to_string()),
            )
        };
        let objects = js
            .get_object_store(state_bucket)
            .await
            .map_err(|e| listing(&e))?;
        let mut list = objects.list().await.map_err(|e| listing(&e))?;
        let prefix = format!("{name}/");
        let mut blobs = 0;
        while let Some(info) = list.next().await {
            if info.map_err(|e| listing(&e))?.name.starts_with(&prefix) {
                blobs += 1;
            }
        }
        if blobs > 0 {
            evidence.push(format!(
                "{blobs} state blob(s) under {prefix:?} remain in object store {state_bucket:?}"
            ));
        }
    }
    if !cfg.stateful() {
        return Ok(evidence);
    }
    for (i, input) in cfg.inputs().iter().enumerate() {
        let stream = &input.stream;
        let Ok(s) = js.get_stream(stream).await else {
            continue;
        };
        let consumer = pipeline.consumer_name_of(i);
        match s.consumer_info(&consumer).await {
            Ok(info) if info.ack_floor.stream_sequence > 0 => evidence.push(format!(
                "durable consumer {consumer:?} on stream {stream:?} has acknowledged up to \
                 sequence {}",
                info.ack_floor.stream_sequence
            )),
            Ok(_) => {}
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {}
            Err(e) => {
                return Err(CheckpointError::nats(
                    format!("reading consumer {consumer:?} on stream {stream:?}"),
                    e,
                ));
            }
        }
    }
    Ok(evidence)
}

/// Which checkpoints to try, in order, to start `from` (the head as read and the listed
/// manifests), and the id the next checkpoint gets. `Latest`: the head, then older ones
/// newest first (a damaged blob falls back) — without a readable head, every listed one
/// newest first; `Id`: exactly that one; `Fresh`: none.
fn candidates(
    head: &Head,
    listed: Vec<Manifest>,
    from: StartFrom,
) -> anyhow::Result<(Vec<Manifest>, u64)> {
    let head = match head {
        Head::Committed(h) => Some(&**h),
        Head::Missing | Head::Corrupt(_) => None,
    };
    let next_id = listed
        .iter()
        .map(|m| m.id)
        .chain(head.map(|h| h.id))
        .max()
        .unwrap_or(0)
        + 1;
    let candidates = match from {
        StartFrom::Fresh => Vec::new(),
        StartFrom::Id(id) => vec![
            listed
                .into_iter()
                .chain(head.cloned())
                .find(|m| m.id == id)
                .ok_or_else(|| anyhow::anyhow!("checkpoint {id} does not exist"))?,
        ],
        StartFrom::Latest => match head {
            // Archived manifests are written after their commit: none is newer than the
            // lost head, but one newer than a readable head was never committed.
            None => listed.into_iter().rev().collect(),
            Some(head) => {
                let older = listed.into_iter().rev().filter(|m| m.id < head.id);
                std::iter::once(head.clone()).chain(older).collect()
            }
        },
    };
    Ok((candidates, next_id))
}

/// Loads the checkpoint to start from and returns it with the id the next checkpoint gets.
pub async fn restore_point(
    store: &mut CheckpointStore,
    from: StartFrom,
) -> anyhow::Result<(Option<Restored>, u64)> {
    let head = store.read_head().await?;
    let listed = store.list().await?;
    let (candidates, next_id) = candidates(&head, listed, from)?;
    let key = store.head_key();
    let bucket = store.bucket().to_owned();
    if from == StartFrom::Latest {
        match &head {
            Head::Corrupt(e) if candidates.is_empty() => anyhow::bail!(
                "{e}, and pipeline {} has no archived checkpoint to fall back to; to start \
                 with empty state (the source read again from the start of its stream) run \
                 `weir run --from-checkpoint none`, whose first checkpoint replaces it, or \
                 remove it with `weir checkpoint delete --all`",
                store.pipeline()
            ),
            Head::Corrupt(e) => tracing::warn!(
                error = %e,
                "the head manifest is corrupt; restoring the newest archived checkpoint whose \
                 state loads"
            ),
            Head::Missing if !candidates.is_empty() => tracing::warn!(
                key = %key,
                bucket = %bucket,
                "the head manifest is missing but archived checkpoints exist; restoring the \
                 newest archived checkpoint whose state loads"
            ),
            Head::Missing | Head::Committed(_) => {}
        }
    }
    if candidates.is_empty() {
        return Ok((None, next_id));
    }
    if let StartFrom::Id(id) = from {
        let m = candidates.into_iter().next().expect("one candidate");
        let blob = store
            .load_blob(&m)
            .await
            .map_err(|e| anyhow::anyhow!("checkpoint {id}: {e}"))?;
        return Ok((Some(Restored { manifest: m, blob }), next_id));
    }
    let headless = !matches!(head, Head::Committed(_));
    let mut errors = Vec::new();
    for m in candidates {
        match store.load_blob(&m).await {
            Ok(blob) => {
                if headless {
                    tracing::warn!(
                        checkpoint = m.id,
                        key = %key,
                        "restored archived checkpoint {} in place of the unusable head",
                        m.id
                    );
                } else if !errors.is_empty() {
                    tracing::warn!(
                        checkpoint = m.id,
                        "restoring an older checkpoint because newer ones are unusable"
                    );
                }
                return Ok((Some(Restored { manifest: m, blob }), next_id));
            }
            Err(e) => {
                tracing::error!(checkpoint = m.id, error = %e, "checkpoint unusable");
                errors.push(format!("checkpoint {}: {e}", m.id));
            }
        }
    }
    anyhow::bail!(
        "no usable checkpoint ({}); to start with empty state run `weir checkpoint delete \
         --all` or `weir run --from-checkpoint none`",
        errors.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{FORMAT_VERSION, SourcePosition};

    fn manifest(id: u64) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            pipeline: "p".into(),
            id,
            created_ms: 0,
            guarantee: "effectively-once".into(),
            source: SourcePosition {
                stream: "IN".into(),
                sequence: id * 10,
            },
            sources: Vec::new(),
            watermark: None,
            plugins: Vec::new(),
            window: None,
            blob: None,
            pending_outputs: 0,
            pending_delivered: false,
            state_entries: 0,
        }
    }

    fn ids(c: &[Manifest]) -> Vec<u64> {
        c.iter().map(|m| m.id).collect()
    }

    fn corrupt() -> Head {
        Head::Corrupt(CheckpointError::CorruptManifest {
            bucket: "b".into(),
            key: "p.head".into(),
            reason: "expected value".into(),
        })
    }

    #[test]
    fn latest_tries_the_head_then_older_checkpoints_newest_first() {
        let listed = vec![manifest(1), manifest(2), manifest(3), manifest(5)];
        // A listed checkpoint newer than the head (an uncommitted write) is never restored.
        let head = Head::Committed(Box::new(manifest(3)));
        let (c, next) = candidates(&head, listed, StartFrom::Latest).unwrap();
        assert_eq!(ids(&c), [3, 2, 1]);
        assert_eq!(next, 6);
    }

    #[test]
    fn without_a_readable_head_latest_tries_the_archived_checkpoints_newest_first() {
        let listed = vec![manifest(1), manifest(2), manifest(3)];
        for head in [Head::Missing, corrupt()] {
            let (c, next) = candidates(&head, listed.clone(), StartFrom::Latest).unwrap();
            assert_eq!(ids(&c), [3, 2, 1], "{head:?}");
            assert_eq!(next, 4);
        }
        let (c, next) = candidates(&corrupt(), Vec::new(), StartFrom::Latest).unwrap();
        assert!(c.is_empty());
        assert_eq!(next, 1);
    }

    #[test]
    fn an_exact_id_must_exist_and_fresh_restores_nothing_but_keeps_ids_growing() {
        let listed = vec![manifest(1), manifest(2)];
        let head = Head::Committed(Box::new(manifest(2)));
        let (c, _) = candidates(&head, listed.clone(), StartFrom::Id(1)).unwrap();
        assert_eq!(ids(&c), [1]);
        let err = candidates(&head, listed.clone(), StartFrom::Id(9)).unwrap_err();
        assert!(
            err.to_string().contains("checkpoint 9 does not exist"),
            "{err}"
        );
        let (c, next) = candidates(&head, listed, StartFrom::Fresh).unwrap();
        assert!(c.is_empty());
        assert_eq!(next, 3);
        let (c, next) = candidates(&Head::Missing, Vec::new(), StartFrom::Latest).unwrap();
        assert!(c.is_empty());
        assert_eq!(next, 1);
    }
}
