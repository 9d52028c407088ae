//! Lists of byte strings packed as one data buffer plus one u32 end offset per item: the layout
//! of batch payloads and keys, of accumulators, and of `finish`'s windows and results. Shared
//! by the host (which checks what plugins return) and the Rust SDK.

use super::LayoutError;

/// A checked view of a packed list: item `i` is `data[end(i-1) .. end(i)]`, `end(-1) = 0`.
#[derive(Debug, Clone, Copy)]
pub struct PackedList<'a> {
    data: &'a [u8],
    ends: &'a [u8],
}

impl<'a> PackedList<'a> {
    /// Checks the layout — `ends` holds u32s, non-decreasing, the last one the data's length
    /// (0 items: empty data). `name` names the list in errors.
    pub fn new(name: &str, data: &'a [u8], ends: &'a [u8]) -> Result<Self, LayoutError> {
        if !ends.len().is_multiple_of(4) {
            return Err(LayoutError(format!(
                "`{name}`: end offsets take {} bytes, not a multiple of 4",
                ends.len()
            )));
        }
        check_offsets(name, ends, data.len())?;
        Ok(PackedList { data, ends })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.ends.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Where item `i` ends in the data.
    #[inline]
    fn end(&self, i: usize) -> usize {
        let b = &self.ends[i * 4..i * 4 + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    /// Item `i` (panics when `i >= len()`).
    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        &self.data[start..self.end(i)]
    }

    /// The items in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + '_ {
        let mut start = 0;
        (0..self.len()).map(move |i| {
            let end = self.end(i);
            let item = &self.data[start..end];
            start = end;
            item
        })
    }
}

/// Checks that the u32 end offsets in `ends` never decrease and that the last one is
/// `data_len` (the layout of every packed list and batch column).
pub(super) fn check_offsets(name: &str, ends: &[u8], data_len: usize) -> Result<(), LayoutError> {
    let mut prev = 0u32;
    for (i, b) in ends.chunks_exact(4).enumerate() {
        let end = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if end < prev {
            return Err(LayoutError(format!(
                "`{name}`: end offset of item {i} ({end}) is before the previous one ({prev})"
            )));
        }
        prev = end;
    }
    if prev as usize != data_len {
        return Err(LayoutError(format!(
            "`{name}`: last end offset is {prev} but the data holds {data_len} bytes"
        )));
    }
    Ok(())
}

/// Appends items to a packed list's two buffers (kept by the caller, so that they can be
/// reused from call to call).
#[inline]
pub fn push_item(data: &mut Vec<u8>, ends: &mut Vec<u8>, item: &[u8]) {
    data.extend_from_slice(item);
    close_item(data, ends);
}

/// Ends the item written into `data` since the previous end (for items serialized in place).
#[inline]
pub fn close_item(data: &[u8], ends: &mut Vec<u8>) {
    ends.extend_from_slice(&(data.len() as u32).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_bad_layouts_are_named() {
        let (mut data, mut ends) = (Vec::new(), Vec::new());
        for item in [&b"ab"[..], b"", b"cde"] {
            push_item(&mut data, &mut ends, item);
        }
        let list = PackedList::new("accumulators", &data, &ends).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list.get(2), b"cde");
        assert_eq!(list.iter().collect::<Vec<_>>(), [&b"ab"[..], b"", b"cde"]);
        let err = PackedList::new("accumulators", &data[..4], &ends).unwrap_err();
        assert!(
            err.0.contains("`accumulators`: last end offset is 5"),
            "{err}"
        );
        let err = PackedList::new("results", &data, &ends[..5]).unwrap_err();
        assert!(err.0.contains("not a multiple of 4"), "{err}");
        let mut back = ends.clone();
        back[4..8].copy_from_slice(&1u32.to_le_bytes());
        let err = PackedList::new("results", &data, &back).unwrap_err();
        assert!(err.0.contains("item 1 (1) is before"), "{err}");
        assert!(PackedList::new("empty", &[], &[]).unwrap().is_empty());
    }
}
