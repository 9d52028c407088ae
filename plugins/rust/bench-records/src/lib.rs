//! `bench-records`: a passthrough over `list<record>` batches — the baseline the packed batch
//! contract is measured against in `host/benches/boundary.rs`.

wit_bindgen::generate!({ world: "records", path: "wit" });

struct Passthrough;

impl Guest for Passthrough {
    fn process(input: Vec<Event>) -> Vec<Event> {
        input
    }
}

export!(Passthrough);
