//! Reading state blobs of format version 3, written before joins (version 4 adds the join
//! stage's state after the process stage's): the same fields, with no join state.

use serde::Deserialize;

use super::{PendingMessage, StateBlob};
use crate::operator::process::ProcessState;
use crate::window::{WatermarksState, WindowState};

#[derive(Deserialize)]
struct StateBlobV3 {
    watermarks: Option<WatermarksState>,
    window: Option<WindowState>,
    process: Option<ProcessState>,
    pending: Vec<PendingMessage>,
}

/// Decodes the postcard body of a version 3 blob.
pub fn decode(body: &[u8]) -> postcard::Result<StateBlob> {
    let v3: StateBlobV3 = postcard::from_bytes(body)?;
    Ok(StateBlob {
        watermarks: v3.watermarks,
        window: v3.window,
        process: v3.process,
        join: None,
        pending: v3.pending,
    })
}
