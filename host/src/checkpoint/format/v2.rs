//! Reading state blobs of format version 2, written before sliding windows were held as panes
//! (version 3): every window of a key was held whole. Their windows are read with no panes;
//! the window operator restores them as windows held whole beside its panes (see
//! `window/operator/snapshot.rs`), so a checkpoint of the previous version restores with the
//! same results.

use serde::Deserialize;

use super::{PendingMessage, StateBlob};
use crate::operator::process::ProcessState;
use crate::window::operator::{KeyWindows, WindowAcc};
use crate::window::{WatermarksState, WindowState};

#[derive(Deserialize)]
struct StateBlobV2 {
    watermarks: Option<WatermarksState>,
    window: Option<WindowStateV2>,
    process: Option<ProcessState>,
    pending: Vec<PendingMessage>,
}

#[derive(Deserialize)]
struct WindowStateV2 {
    watermark: i64,
    next_id: u64,
    late_events: u64,
    keys: Vec<KeyWindowsV2>,
}

#[derive(Deserialize)]
struct KeyWindowsV2 {
    #[serde(with = "serde_bytes")]
    key: Vec<u8>,
    windows: Vec<WindowAcc>,
}

/// Decodes the postcard body of a version 2 blob.
pub fn decode(body: &[u8]) -> postcard::Result<StateBlob> {
    let v2: StateBlobV2 = postcard::from_bytes(body)?;
    Ok(StateBlob {
        watermarks: v2.watermarks,
        window: v2.window.map(|w| WindowState {
            watermark: w.watermark,
            next_id: w.next_id,
            late_events: w.late_events,
            keys: w
                .keys
                .into_iter()
                .map(|k| KeyWindows {
                    key: k.key,
                    windows: k.windows,
                    panes: Vec::new(),
                })
                .collect(),
        }),
        process: v2.process,
        join: None,
        pending: v2.pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_2_blob_is_read_with_its_windows_whole_and_no_panes() {
        // Serialized as version 2 wrote it: windows without panes.
        #[derive(serde::Serialize)]
        struct AccV2<'a>(u64, i64, i64, &'a serde_bytes::Bytes, u64);
        let keys = vec![(
            serde_bytes::Bytes::new(b"k"),
            vec![AccV2(7, 0, 10, serde_bytes::Bytes::new(&[1, 2]), 3)],
        )];
        let none: Option<WatermarksState> = None;
        let process: Option<ProcessState> = None;
        let pending = vec![PendingMessage {
            subject: "out".into(),
            headers: Vec::new(),
            payload: b"{}".to_vec(),
        }];
        let body = postcard::to_stdvec(&(none, Some((5i64, 8u64, 1u64, keys)), process, &pending))
            .unwrap();
        let blob = decode(&body).unwrap();
        let w = blob.window.unwrap();
        assert_eq!((w.watermark, w.next_id, w.late_events), (5, 8, 1));
        assert_eq!(
            w.keys,
            [KeyWindows {
                key: b"k".to_vec(),
                windows: vec![WindowAcc {
                    id: 7,
                    start: 0,
                    end: 10,
                    acc: vec![1, 2],
                    count: 3
                }],
                panes: Vec::new(),
            }]
        );
        assert_eq!(blob.pending, pending);
    }
}
