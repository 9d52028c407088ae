//! What the benches through nats-server measure: wall time and the CPU time of this process
//! and of nats-server (from `/proc`) over a round, per event, and medians over rounds.

use std::time::Instant;

/// utime + stime of process `pid` ("self" for this one), in clock ticks.
pub fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/stat: {e}"));
    // The command name (field 2) may hold spaces: count the fields after its closing ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    // Fields 14 (utime) and 15 (stime); `fields[0]` is field 3.
    field(11) + field(12)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux if that fails).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One round's numbers.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    pub events_per_s: f64,
    /// This process's CPU per event (µs).
    pub client_us: f64,
    /// nats-server's CPU per event (µs).
    pub server_us: f64,
}

/// Wall clock and CPU of both processes since the start of a round.
pub struct Meter {
    started: Instant,
    client: u64,
    server_pid: String,
    server: u64,
}

impl Meter {
    /// Starts measuring this process and nats-server `server_pid`.
    pub fn start(server_pid: &str) -> Self {
        Meter {
            started: Instant::now(),
            client: cpu_ticks("self"),
            server_pid: server_pid.to_owned(),
            server: cpu_ticks(server_pid),
        }
    }

    /// The round's numbers for `n` events, CPU ticks counted at `ticks_per_s`.
    pub fn stop(self, n: u64, ticks_per_s: f64) -> Round {
        let secs = self.started.elapsed().as_secs_f64();
        let per_event = |ticks: u64| ticks as f64 / ticks_per_s * 1e6 / n as f64;
        Round {
            events_per_s: n as f64 / secs,
            client_us: per_event(cpu_ticks("self") - self.client),
            server_us: per_event(cpu_ticks(&self.server_pid) - self.server),
        }
    }
}

/// The median of `v` (0 when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}
