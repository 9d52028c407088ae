//! `stamp-broken`: a version of the `stamp` test fixture that traps on every event (version
//! 4), for the canary and automatic-rollback tests; the body is `stamp`'s.

const VERSION: u32 = 4;
const BROKEN: bool = true;

include!("../../stamp/src/stamp.rs");
