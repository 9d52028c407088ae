//! `versioned-count-v2`: the `versioned-count` test fixture built as its next version (state
//! version 1 unless configured), for hot-swap tests; the body is `versioned-count`'s.

const DEFAULT_STATE_VERSION: u32 = 1;

include!("../../versioned-count/src/count.rs");
