//! The checkpoint format, version 4 (documented for operators in `docs/checkpoints.md`;
//! blobs of versions 1 to 3 are still read, see [`v1`], [`v2`] and [`v3`]).
//!
//! A checkpoint is a **manifest** (JSON, in the key-value bucket) and, when the pipeline has
//! state or outputs waiting to be published, a **state blob** (in the object store) that the
//! manifest names together with its size and SHA-256.
//!
//! The blob is `MAGIC` (16 bytes), the format version (u32 little-endian), then a
//! [`postcard`]-encoded [`StateBlob`]. Readers refuse other magics and newer versions.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::join::JoinState;
use crate::operator::process::ProcessState;
use crate::operator::stage::StageState;
use crate::window::{WatermarksState, WindowState};

/// The first bytes of every state blob.
pub const MAGIC: &[u8; 16] = b"weir-checkpoint\0";
/// The format this host writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 4;

mod v1;
mod v2;
mod v3;

/// What went wrong reading or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("state blob {object} is missing from bucket {bucket}")]
    MissingBlob { bucket: String, object: String },
    #[error("state blob {object} is corrupt: {reason}")]
    CorruptBlob { object: String, reason: String },
    #[error(
        "checkpoint {id} of pipeline {pipeline} was written by format version {version}; \
         this host reads up to {FORMAT_VERSION}"
    )]
    NewerFormat {
        pipeline: String,
        id: u64,
        version: u32,
    },
    #[error(
        "another host committed checkpoint {their_id} of pipeline {pipeline} while this host \
         was running it; this host stops so that only one writes (was about to commit {our_id})"
    )]
    Conflict {
        pipeline: String,
        our_id: u64,
        their_id: u64,
    },
    #[error("manifest {key} in key-value bucket {bucket:?} is corrupt: {reason}")]
    CorruptManifest {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error(
        "key-value bucket {bucket:?} of the checkpoint manifests does not exist, but pipeline \
         {pipeline} has run before ({evidence}): starting with empty state would silently lose \
         its window and keyed state. Restore the bucket, or start with empty state on purpose \
         with `weir run --from-checkpoint none` (the source is read again from the start of \
         its stream)"
    )]
    ManifestsMissing {
        bucket: String,
        pipeline: String,
        /// What shows that the pipeline ran: state blobs left, a consumer's acknowledgements.
        evidence: String,
    },
    #[error(
        "{kind} {bucket:?} of the checkpoints of pipeline {pipeline} was deleted while the \
         pipeline ran, so no checkpoint can be committed; stopping (nothing after the last \
         committed checkpoint was acknowledged). Restore the bucket, or start with empty \
         state with `weir run --from-checkpoint none`"
    )]
    StoreDeleted {
        /// `key-value bucket` or `object store`.
        kind: &'static str,
        bucket: String,
        pipeline: String,
    },
    #[error("{what}: {source}")]
    Nats {
        what: String,
        #[source]
        source: async_nats::Error,
    },
}

impl CheckpointError {
    pub fn nats(what: impl Into<String>, source: impl Into<async_nats::Error>) -> Self {
        CheckpointError::Nats {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// A checkpoint's manifest: what it covers and where its state is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    pub pipeline: String,
    /// 1, 2, 3, … per pipeline.
    pub id: u64,
    /// When it was taken, ms since the Unix epoch (wall clock of the host).
    pub created_ms: i64,
    /// The delivery guarantee the pipeline ran with.
    pub guarantee: String,
    /// The source position: every message up to `sequence` is reflected in the state and
    /// outputs, none after it (with several inputs: the first input's).
    pub source: SourcePosition,
    /// With several inputs (`[[sources]]`), every input's position, in the pipeline's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourcePosition>,
    /// The pipeline's combined watermark, if any.
    pub watermark: Option<i64>,
    /// The plugins that produced the state (content hashes).
    pub plugins: Vec<PluginVersion>,
    /// The window definition the state belongs to (`None`: no window).
    pub window: Option<String>,
    /// The state blob (`None`: no state and nothing pending).
    pub blob: Option<BlobRef>,
    /// Outputs held in the blob, published once this checkpoint is committed.
    pub pending_outputs: u64,
    /// Whether the held outputs were all stored by the sink (set on the head after the
    /// commit): a restore then does not publish them again — after a quiet period longer than
    /// the sink's duplicate window, that would duplicate them.
    #[serde(default)]
    pub pending_delivered: bool,
    /// Live (key, window) accumulators, or keys with process state.
    pub state_entries: u64,
}

/// A source stream position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePosition {
    pub stream: String,
    pub sequence: u64,
}

impl Manifest {
    /// Every input's position, in the pipeline's order (one with a single input).
    pub fn positions(&self) -> Vec<&SourcePosition> {
        if self.sources.is_empty() {
            vec![&self.source]
        } else {
            self.sources.iter().collect()
        }
    }
}

/// One plugin of the pipeline at checkpoint time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginVersion {
    /// `operator`, `window`, `process` or `after`.
    pub stage: String,
    pub name: String,
    /// SHA-256 of the component file, hex.
    pub sha256: String,
    /// The aggregate plugin's accumulator version (window stage only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_version: Option<u32>,
}

/// Where a state blob is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    pub bucket: String,
    pub object: String,
    pub size: u64,
    /// SHA-256 of the blob, hex.
    pub sha256: String,
}

/// An output produced before the checkpoint and published after it is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingMessage {
    pub subject: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// Everything in a state blob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateBlob {
    pub watermarks: Option<WatermarksState>,
    pub window: Option<WindowState>,
    pub process: Option<ProcessState>,
    pub join: Option<JoinState>,
    pub pending: Vec<PendingMessage>,
}

impl StateBlob {
    pub fn is_empty(&self) -> bool {
        self.watermarks.is_none()
            && self.window.is_none()
            && self.process.is_none()
            && self.join.is_none()
            && self.pending.is_empty()
    }

    /// The blob's bytes: magic, version, postcard body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 << 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        postcard::to_extend(self, out).expect("encoding into a Vec cannot fail")
    }

    /// Reads blob `bytes` (from `object`, for errors).
    pub fn decode(object: &str, bytes: &[u8]) -> Result<Self, CheckpointError> {
        let corrupt = |reason: String| CheckpointError::CorruptBlob {
            object: object.to_owned(),
            reason,
        };
        if bytes.len() < 20 || &bytes[..16] != MAGIC {
            return Err(corrupt(
                "it does not start with the weir checkpoint magic".into(),
            ));
        }
        let version = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let body = &bytes[20..];
        match version {
            FORMAT_VERSION => postcard::from_bytes(body),
            1 => v1::decode(body),
            2 => v2::decode(body),
            3 => v3::decode(body),
            _ => {
                return Err(corrupt(format!(
                    "format version {version}, this host reads 1 to {FORMAT_VERSION}"
                )));
            }
        }
        .map_err(|e| corrupt(format!("cannot decode: {e}")))
    }
}

/// The state parts of a blob (watermarks, window, process, join — the fields of [`StateBlob`]
/// before `pending`), encoded during the checkpoint pause. Postcard writes a struct as its fields one
/// after another, so these bytes followed by the encoded `pending` are a [`StateBlob`].
#[derive(Debug, Clone, Default)]
pub struct EncodedState {
    body: Vec<u8>,
    empty: bool,
}

impl EncodedState {
    /// Encodes the state parts: the watermarks and the stateful stage's state, each into
    /// its [`StateBlob`] field; `capacity` is a hint (the previous checkpoint's size).
    pub fn encode(
        watermarks: Option<impl Serialize>,
        stage: Option<StageState<'_>>,
        capacity: usize,
    ) -> Self {
        let none = None::<()>;
        match stage {
            Some(StageState::Window(w)) => {
                Self::encode_fields(watermarks, Some(w), none, none, capacity)
            }
            Some(StageState::Process(p)) => {
                Self::encode_fields(watermarks, none, Some(p), none, capacity)
            }
            Some(StageState::Join(j)) => {
                Self::encode_fields(watermarks, none, none, Some(j), capacity)
            }
            None => Self::encode_fields(watermarks, none, none, none, capacity),
        }
    }

    /// Encodes the four state fields of a [`StateBlob`].
    fn encode_fields(
        watermarks: Option<impl Serialize>,
        window: Option<impl Serialize>,
        process: Option<impl Serialize>,
        join: Option<impl Serialize>,
        capacity: usize,
    ) -> Self {
        let empty = watermarks.is_none() && window.is_none() && process.is_none() && join.is_none();
        let mut body = Vec::with_capacity(capacity.max(64));
        body = postcard::to_extend(&watermarks, body).expect("encoding into a Vec cannot fail");
        body = postcard::to_extend(&window, body).expect("encoding into a Vec cannot fail");
        body = postcard::to_extend(&process, body).expect("encoding into a Vec cannot fail");
        body = postcard::to_extend(&join, body).expect("encoding into a Vec cannot fail");
        EncodedState { body, empty }
    }

    /// Encoded size in bytes.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// The blob of this state and the held outputs `pending`: magic, version, postcard body.
    pub fn blob(&self, pending: &[PendingMessage]) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.body.len() + 64 * pending.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.body);
        postcard::to_extend(pending, out).expect("encoding into a Vec cannot fail")
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_damage_is_detected() {
        let blob = StateBlob {
            watermarks: Some(WatermarksState {
                max_ts: vec![Some(5), None],
                combined: Some(4),
            }),
            window: Some(WindowState {
                watermark: 3,
                next_id: 2,
                late_events: 1,
                keys: vec![crate::window::operator::KeyWindows {
                    key: b"k".to_vec(),
                    windows: vec![crate::window::operator::WindowAcc {
                        id: 1,
                        start: 0,
                        end: 10,
                        acc: vec![1, 2],
                        count: 3,
                    }],
                    panes: vec![crate::window::operator::WindowAcc {
                        id: 2,
                        start: 4,
                        end: 6,
                        acc: vec![3],
                        count: 1,
                    }],
                }],
            }),
            pending: vec![PendingMessage {
                subject: "out".into(),
                headers: vec![("Weir-Key".into(), "k".into())],
                payload: b"{}".to_vec(),
            }],
            ..Default::default()
        };
        let bytes = blob.encode();
        assert_eq!(StateBlob::decode("x", &bytes).unwrap(), blob);
        // State encoded in parts during the pause makes the same blob.
        let parts = EncodedState::encode_fields(
            blob.watermarks.as_ref(),
            blob.window.as_ref(),
            blob.process.as_ref(),
            blob.join.as_ref(),
            0,
        );
        assert_eq!(parts.blob(&blob.pending), bytes);
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(matches!(
            StateBlob::decode("x", &bad),
            Err(CheckpointError::CorruptBlob { .. })
        ));
        let truncated = &bytes[..bytes.len() - 3];
        assert!(StateBlob::decode("x", truncated).is_err());
    }
}
