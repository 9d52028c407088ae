//! `older-contract`: an `aggregate` plugin built against the contract as it was before `merge`
//! took groups of accumulators (`wit/aggregate-before-batched-merge.wit`). weir must refuse it
//! at load, saying that it was built against another version of the contract and how to
//! rebuild it. Its functions are never called.

// The generated export glue of the old `add` takes the batch's columns one by one.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "wit",
    world: "aggregate",
});

struct Older;

const NEVER: &str = "a fixture: never called";

impl Guest for Older {
    fn configure(_config: String) -> Result<(), String> {
        Ok(())
    }
    fn create() -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
    fn add(_: Accumulators, _: Vec<u8>, _: Batch) -> Result<Accumulators, EventError> {
        Err(EventError {
            index: 0,
            message: NEVER.into(),
        })
    }
    fn merge(_: Vec<u8>, _: Vec<u8>) -> Result<Vec<u8>, String> {
        Err(NEVER.into())
    }
    fn finish(_: Windows, _: Accumulators) -> Result<Results, WindowError> {
        Err(WindowError {
            index: 0,
            message: NEVER.into(),
        })
    }
    fn state_version() -> u32 {
        0
    }
    fn migrate(_: u32, _: Vec<u8>) -> Result<Vec<u8>, String> {
        Err(NEVER.into())
    }
}

export!(Older);
