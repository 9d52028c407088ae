//! `weir health`: asks a running host's admin endpoint whether it is live (`/health`) or ready
//! (`/ready`) and exits 0 or 1 — a container health check that needs no shell and no curl.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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
    let mut addr = args.admin;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let path = if args.ready { "/ready" } else { "/health" };
    let (status, body) =
        get(addr, path, args.timeout).with_context(|| format!("asking http://{addr}{path}"))?;
    if status == 200 {
        print!("{body}");
        Ok(())
    } else {
        anyhow::bail!("http://{addr}{path} answered {status}: {}", body.trim())
    }
}

/// `GET path` over HTTP/1.0 within `timeout`: the status code and the body.
fn get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = Vec::new();
    s.take(64 * 1024).read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("not an HTTP answer")?;
    Ok((status, body.to_owned()))
}
