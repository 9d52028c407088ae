//! `weir health`: asks a running host's admin endpoint whether it is live (`/health`) or ready
//! (`/ready`) and exits 0 or 1 — a container health check that needs no shell and no curl.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

/// The flags of `weir health`.
#[derive(clap::Args)]
pub struct HealthArgs {
    /// The admin endpoint (an unspecified address such as 0.0.0.0 is asked on loopback).
    #[arg(long, env = "WEIR_ADMIN", default_value = "127.0.0.1:9464")]
    admin: SocketAddr,
    /// Ask `/ready` instead of `/health`.
    #[arg(long)]
    ready: bool,
    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Exits 0 when the endpoint answers 200; else an error with its answer.
pub fn run(args: HealthArgs) -> anyhow::Result<()> {
    let addr = super::admin_client::reachable(args.admin);
    let path = if args.ready { "/ready" } else { "/health" };
    let (status, body) = super::admin_client::get(addr, path, None, args.timeout, 64 * 1024)
        .with_context(|| format!("asking http://{addr}{path}"))?;
    if status == 200 {
        print!("{body}");
        Ok(())
    } else {
        anyhow::bail!("http://{addr}{path} answered {status}: {}", body.trim())
    }
}
