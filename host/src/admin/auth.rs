//! The admin endpoint's bearer token: when set, every route but `/health` and `/ready` (which
//! probes call without credentials) needs `Authorization: Bearer <token>`. An endpoint bound
//! beyond loopback without one answers only `/health` and `/ready` ([`Guard`]).

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

    /// The `Authorization` header a client sends with this token (`Bearer …`): the secret
    /// itself, for a request only.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `given` is this token (compared in constant time).
    fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Who may reach the routes beyond `/health` and `/ready`.
#[derive(Clone, Debug)]
pub enum Guard {
    /// Anyone: the endpoint listens on loopback only and no token is set.
    Open,
    /// Requests bearing this token.
    Token(Token),
    /// Nobody: the endpoint listens beyond loopback and no token is set.
    Closed,
}

impl Guard {
    /// The guard of an endpoint bound to `addr` with `token`: beyond loopback a token is
    /// required, and without one only `/health` and `/ready` answer.
    pub fn for_endpoint(addr: SocketAddr, token: Option<Token>) -> Guard {
        match token {
            Some(t) => Guard::Token(t),
            None if addr.ip().is_loopback() => Guard::Open,
            None => {
                tracing::warn!(
                    %addr,
                    "the admin endpoint listens beyond loopback without a bearer token: only \
                     /health and /ready answer; set --admin-token-file FILE or {TOKEN_ENV} to \
                     reach the others"
                );
                Guard::Closed
            }
        }
    }
}

/// `router` behind `guard`.
pub fn protect(router: Router, guard: Guard) -> Router {
    match guard {
        Guard::Open => router,
        guard => router.layer(middleware::from_fn_with_state(guard, require)),
    }
}

async fn require(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if OPEN_ROUTES.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Guard::Token(token) = guard else {
        return (
            StatusCode::FORBIDDEN,
            format!(
                "no admin token is set, and this endpoint listens beyond loopback: only /health \
                 and /ready answer (set --admin-token-file FILE or {TOKEN_ENV})\n"
            ),
        )
            .into_response();
    };
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
    fn beyond_loopback_the_routes_are_closed_without_a_token() {
        let open: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        assert!(matches!(Guard::for_endpoint(local, None), Guard::Open));
        assert!(matches!(Guard::for_endpoint(open, None), Guard::Closed));
        let t = Some(Token("x".into()));
        assert!(matches!(Guard::for_endpoint(open, t), Guard::Token(_)));
    }
}
