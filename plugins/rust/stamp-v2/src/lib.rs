//! `stamp-v2`: version 2 of the `stamp` test fixture (adds `"v": 2`); the body is `stamp`'s.

const VERSION: u32 = 2;
const BROKEN: bool = false;

include!("../../stamp/src/stamp.rs");
