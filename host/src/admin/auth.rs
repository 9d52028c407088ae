//! The admin endpoint's bearer token: when set, every route but `/health` and `/ready` (which
//! probes call without credentials) needs `Authorization: Bearer <token>`. An endpoint bound to
//! an address other than loopback must have one ([`check_exposure`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

/// The environment variable holding the token itself.
pub const TOKEN_ENV: &str = "WEIR_ADMIN_TOKEN";

/// Routes reachable without the token.
const OPEN_ROUTES: [&str; 2] = ["/health", "/ready"];

/// A bearer token (its text is never logged or shown).
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// The token in `file` (trimmed), or else in [`TOKEN_ENV`]; `None` when neither is set.
    /// An unreadable or empty file is an error naming it.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Option<Token>> {
        let text = match file {
            Some(f) => std::fs::read_to_string(f)
                .with_context(|| format!("--admin-token-file {}: cannot read it", f.display()))?,
            None => match std::env::var(TOKEN_ENV) {
                Ok(t) => t,
                Err(_) => return Ok(None),
            },
        };
        let token = text.trim();
        if token.is_empty() {
            let from = file.map_or_else(|| TOKEN_ENV.to_owned(), |f| f.display().to_string());
            anyhow::bail!("the admin token in {from} is empty");
        }
        Ok(Some(Token(token.into())))
    }

    /// Whether `given` is this token (compared in constant time).
    fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// An endpoint bound to `addr` beyond loopback without a token is refused: `/metrics` and
/// `/pipelines` would be open to the network.
pub fn check_exposure(addr: SocketAddr, token: Option<&Token>) -> anyhow::Result<()> {
    if addr.ip().is_loopback() || token.is_some() {
        return Ok(());
    }
    anyhow::bail!(
        "--admin {addr} listens beyond loopback: set a bearer token (--admin-token-file FILE, or \
         {TOKEN_ENV}) — every route but /health and /ready will need it"
    )
}

/// `router` with the token required on every route but [`OPEN_ROUTES`] (none without a token).
pub fn protect(router: Router, token: Option<Token>) -> Router {
    match token {
        Some(token) => router.layer(middleware::from_fn_with_state(token, require)),
        None => router,
    }
}

async fn require(State(token): State<Token>, request: Request, next: Next) -> Response {
    if OPEN_ROUTES.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if token.matches(g.trim()) => next.run(request).await,
        Some(_) => (StatusCode::UNAUTHORIZED, "the bearer token is wrong\n").into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this route needs `Authorization: Bearer <token>`\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_only_itself_and_is_not_shown() {
        let t = Token("s3cret".into());
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cres"));
        assert!(!t.matches("s3cret2"));
        assert_eq!(format!("{t:?}"), "Token(***)");
    }

    #[test]
    fn beyond_loopback_a_token_is_required() {
        let open: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        assert!(check_exposure(local, None).is_ok());
        let err = check_exposure(open, None).unwrap_err().to_string();
        assert!(err.contains("--admin-token-file"), "{err}");
        assert!(check_exposure(open, Some(&Token("x".into()))).is_ok());
    }
}
