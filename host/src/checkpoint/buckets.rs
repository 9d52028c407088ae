//! Whether a pipeline's checkpoint buckets exist: the JetStream streams behind a key-value
//! bucket (`KV_<bucket>`) and an object store (`OBJ_<bucket>`), looked up without creating
//! anything. Used to open a store read-only, to tell a first run from a lost store, and to
//! tell a commit that failed because its bucket was deleted from one that met a passing NATS
//! fault.

use async_nats::jetstream::{self, context::GetStreamErrorKind};

use super::format::CheckpointError;

/// The JetStream stream behind key-value bucket `bucket`.
pub fn kv_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// The JetStream stream behind object store `bucket`.
pub fn object_stream(bucket: &str) -> String {
    format!("OBJ_{bucket}")
}

/// Whether JetStream stream `name` exists (a server that does not answer is an error, not a
/// "no").
pub async fn stream_exists(js: &jetstream::Context, name: &str) -> Result<bool, CheckpointError> {
    match js.get_stream(name).await {
        Ok(_) => Ok(true),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(false)
            }
            _ => Err(CheckpointError::nats(
                format!("looking up stream {name:?}"),
                e,
            )),
        },
    }
}

/// The bucket of pipeline `pipeline` that no longer exists — manifests (`bucket`) or blobs
/// (`state_bucket`) — as [`CheckpointError::StoreDeleted`]; `None` when both exist or NATS
/// does not answer.
pub async fn deleted(
    js: &jetstream::Context,
    pipeline: &str,
    bucket: &str,
    state_bucket: &str,
) -> Option<CheckpointError> {
    let buckets = [
        ("key-value bucket", bucket, kv_stream(bucket)),
        ("object store", state_bucket, object_stream(state_bucket)),
    ];
    for (kind, bucket, stream) in buckets {
        if let Ok(false) = stream_exists(js, &stream).await {
            return Some(CheckpointError::StoreDeleted {
                kind,
                bucket: bucket.to_owned(),
                pipeline: pipeline.to_owned(),
            });
        }
    }
    None
}
