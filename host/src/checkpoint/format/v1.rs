//! Reading state blobs of format version 1, written before window accumulators carried their
//! event count and keyed state its processing-time timers (version 2). Their windows are
//! restored with a count of 0, which only count windows — new in version 2 — read.

use serde::Deserialize;

use super::{PendingMessage, StateBlob};
use crate::operator::process::ProcessState;
use crate::state::keyed::KeyedStateSnapshot;
use crate::window::operator::{KeyWindows, WindowAcc};
use crate::window::{WatermarksState, WindowState};

#[derive(Deserialize)]
struct StateBlobV1 {
    watermarks: Option<WatermarksState>,
    window: Option<WindowStateV1>,
    process: Option<ProcessStateV1>,
    pending: Vec<PendingMessage>,
}

#[derive(Deserialize)]
struct ProcessStateV1 {
    watermark: i64,
    values: Vec<(serde_bytes::ByteBuf, Vec<(String, serde_bytes::ByteBuf)>)>,
    timers: Vec<(i64, serde_bytes::ByteBuf)>,
}

#[derive(Deserialize)]
struct WindowStateV1 {
    watermark: i64,
    next_id: u64,
    late_events: u64,
    keys: Vec<KeyWindowsV1>,
}

#[derive(Deserialize)]
struct KeyWindowsV1 {
    #[serde(with = "serde_bytes")]
    key: Vec<u8>,
    windows: Vec<WindowAccV1>,
}

#[derive(Deserialize)]
struct WindowAccV1 {
    id: u64,
    start: i64,
    end: i64,
    #[serde(with = "serde_bytes")]
    acc: Vec<u8>,
}

/// Decodes the postcard body of a version 1 blob.
pub fn decode(body: &[u8]) -> postcard::Result<StateBlob> {
    let v1: StateBlobV1 = postcard::from_bytes(body)?;
    Ok(StateBlob {
        watermarks: v1.watermarks,
        window: v1.window.map(|w| WindowState {
            watermark: w.watermark,
            next_id: w.next_id,
            late_events: w.late_events,
            keys: w
                .keys
                .into_iter()
                .map(|k| KeyWindows {
                    key: k.key,
                    windows: k
                        .windows
                        .into_iter()
                        .map(|a| WindowAcc {
                            id: a.id,
                            start: a.start,
                            end: a.end,
                            acc: a.acc,
                            count: 0,
                        })
                        .collect(),
                    panes: Vec::new(),
                })
                .collect(),
        }),
        process: v1.process.map(|p| ProcessState {
            watermark: p.watermark,
            keyed: KeyedStateSnapshot {
                values: p.values,
                timers: p.timers,
                processing_timers: Vec::new(),
            },
        }),
        join: None,
        pending: v1.pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_blob_is_read_with_zero_counts_and_no_processing_timers() {
        // Serialized as version 1 wrote it: a window without counts.
        #[derive(serde::Serialize)]
        struct AccV1<'a>(u64, i64, i64, &'a serde_bytes::Bytes);
        let keys = vec![(
            serde_bytes::Bytes::new(b"k"),
            vec![AccV1(7, 0, 10, serde_bytes::Bytes::new(&[1, 2]))],
        )];
        let none: Option<WatermarksState> = None;
        let process = Some((
            9i64,
            vec![(
                serde_bytes::Bytes::new(b"p"),
                vec![("n", serde_bytes::Bytes::new(b"1"))],
            )],
            vec![(42i64, serde_bytes::Bytes::new(b"p"))],
        ));
        let pending: Vec<PendingMessage> = Vec::new();
        let body =
            postcard::to_stdvec(&(none, Some((5i64, 8u64, 1u64, keys)), process, pending)).unwrap();
        let blob = decode(&body).unwrap();
        let w = blob.window.unwrap();
        assert_eq!((w.watermark, w.next_id, w.late_events), (5, 8, 1));
        assert_eq!(
            w.keys[0].windows,
            [WindowAcc {
                id: 7,
                start: 0,
                end: 10,
                acc: vec![1, 2],
                count: 0
            }]
        );
        let p = blob.process.unwrap();
        assert_eq!(p.watermark, 9);
        assert_eq!(
            p.keyed.timers,
            [(42, serde_bytes::ByteBuf::from(b"p".to_vec()))]
        );
        assert_eq!(p.keyed.values[0].1[0].0, "n");
        assert!(p.keyed.processing_timers.is_empty());
    }
}
