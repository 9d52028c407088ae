//! A minimal HTTP/1.0 client for a host's admin endpoint (`weir health`, `weir top`): one
//! `GET` within a timeout, the answer's status code and body. Not a general HTTP client — no
//! TLS, no redirects, no keep-alive: the admin endpoint is plain HTTP on a known address.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;

/// `addr`, with an unspecified IP (`0.0.0.0`, `::`: what a host binds) replaced by loopback.
pub fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// `GET path` on `addr` within `timeout`, with `Authorization: AUTHORIZATION` if given: the
/// status code and the body (at most `limit` bytes of the answer are read).
pub fn get(
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
    timeout: Duration,
    limit: u64,
) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n")?;
    let mut response = Vec::new();
    s.take(limit).read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("not an HTTP answer")?;
    Ok((status, body.to_owned()))
}
