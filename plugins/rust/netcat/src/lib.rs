//! `netcat`: an operator that tries to open a TCP connection for every event. Without the
//! pipeline's `network` grant the sandbox denies the connection and the event is
//! dead-lettered with the plugin's error.

use std::io::Write;
use weir_sdk::{Event, Output, Transform};

struct Netcat;

impl Transform for Netcat {
    fn configure(_config: &str) -> Result<Self, String> {
        Ok(Netcat)
    }

    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), String> {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9").map_err(|e| e.to_string())?;
        s.write_all(event.payload()).map_err(|e| e.to_string())?;
        out.forward();
        Ok(())
    }
}

weir_sdk::export_transform!(Netcat);
