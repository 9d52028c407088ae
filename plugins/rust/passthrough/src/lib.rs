//! `passthrough`: re-emits every event unchanged. The boundary benchmark's plugin.

use weir_sdk::{Event, Output, Transform};

struct Passthrough;

impl Transform for Passthrough {
    fn configure(_config: &str) -> Result<Self, String> {
        Ok(Passthrough)
    }

    fn process(&mut self, _event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        out.forward();
        Ok(())
    }
}

weir_sdk::export_transform!(Passthrough);
