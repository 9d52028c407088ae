//! `stamp`: a test fixture for hot-loading. Adds `"v": 1` (this version) to every JSON object
//! payload; `stamp-v2` is the same operator at version 2, so tests can see which version
//! produced each output.

const VERSION: u32 = 1;
const BROKEN: bool = false;

include!("stamp.rs");
