//! Checkpoints: consistent snapshots of a pipeline's progress and state, in JetStream.
//!
//! A checkpoint is taken between two batches, so it is consistent by construction: the source
//! position (last stream sequence processed), the watermarks, every window accumulator and
//! keyed value and timer, the plugin versions, and — with `effectively-once` — the window and
//! process outputs produced since the previous checkpoint, which are published only after
//! the checkpoint holding them is committed.
//!
//! - [`format`]: the manifest and the state blob (versioned, see `docs/checkpoints.md`);
//! - [`buckets`]: whether the buckets exist (looked up without creating them);
//! - [`store`]: manifests in a key-value bucket (commit = compare-and-set of the head), blobs
//!   in an object store, retention;
//! - [`coordinator`]: taking checkpoints while the pipeline runs (snapshot on the operator
//!   thread, then write, commit, publish held outputs and acknowledge the source in a task);
//! - [`recover`]: opening the store for a run (a lost store is not a first run) and choosing
//!   the checkpoint to restore at start.

pub mod buckets;
pub mod coordinator;
pub mod format;
pub mod recover;
pub mod store;

pub use coordinator::Checkpointer;
pub use format::{
    BlobRef, CheckpointError, EncodedState, FORMAT_VERSION, Manifest, PendingMessage,
    PluginVersion, SourcePosition, StateBlob,
};
pub use recover::{Restored, StartFrom, open_for_run, restore_point};
pub use store::{CheckpointStore, Head};
