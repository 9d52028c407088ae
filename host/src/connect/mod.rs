//! Connecting to NATS — the one way every part of weir does it (`weir run`, `validate`,
//! `plugin`, `checkpoint`, and whatever comes next), secured as production NATS is: a user and
//! password, a token, an NKey, a `.creds` file (JWT), TLS with a private CA, mutual TLS.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use weir::connect::{NatsOptions, connect};
//! let nats = NatsOptions::from_url("nats://127.0.0.1:4222")?;
//! let client = connect("weir example", &nats, None).await?;
//! # Ok(()) }
//! ```
//!
//! - [`settings`]: where settings come from — flags > environment variables > the pipeline
//!   file's `[nats]` section — and what they resolve to ([`NatsOptions`]);
//! - `load`: the files they name, read and checked before any connection is tried;
//! - [`connect`]: the first connection, tried once within [`CONNECT_TIMEOUT`], and its failure
//!   explained — unreachable, credentials refused (saying which method, never its value), a
//!   server certificate not trusted, a client certificate required or refused.
//!
//! Secrets — passwords, tokens, seeds, URL credentials — are never printed: not in errors,
//! logs, `Debug` output or `--help`.

use std::sync::Arc;
use std::time::Duration;

use crate::admin::Health;

mod load;
pub mod settings;

pub use settings::{
    ClientCertificate, NKey, NatsAuth, NatsOptions, NatsSettings, NatsTls, Origin, SettingNames,
    SettingsError, Sourced,
};

/// How long the first connection to NATS may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to NATS as `client_name` with `nats`. The files the settings name are read first
/// (an error names the file and the setting). The first connection is tried once, within
/// [`CONNECT_TIMEOUT`], and its failure says what happened — the server cannot be reached,
/// refused the credentials, has a certificate that is not trusted, wants a client
/// certificate — with no secret shown; after that the client reconnects for ever (a server
/// restart is survived), reporting to `health` if given.
pub async fn connect(
    client_name: &str,
    nats: &NatsOptions,
    health: Option<&Arc<Health>>,
) -> anyhow::Result<async_nats::Client> {
    let shown = nats.shown_url();
    let options = async_nats::ConnectOptions::new()
        .name(client_name)
        .connection_timeout(CONNECT_TIMEOUT)
        .max_reconnects(None);
    let (mut options, auth) = load::load(nats, options)?;
    if let Some(health) = health {
        options = options.event_callback(health.nats_events());
    }
    let connecting = options.connect(nats.servers().to_vec());
    match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(anyhow::anyhow!(connect_error(
            &shown,
            nats,
            auth.as_deref(),
            &e
        ))),
        Err(_) => {
            anyhow::bail!("cannot connect to NATS at {shown}: no answer within {CONNECT_TIMEOUT:?}")
        }
    }
}

/// Reads and checks the files `nats` names (credentials, seeds, certificates) without
/// connecting: for a command to fail on a bad file at once, before slower work; [`connect`]
/// does it again (files may change in between).
pub fn check_files(nats: &NatsOptions) -> Result<(), SettingsError> {
    load::load(nats, async_nats::ConnectOptions::new()).map(|_| ())
}

/// What a failed first connection to `shown` (a redacted URL) means, first thing first;
/// `auth`: how weir authenticated.
fn connect_error(
    shown: &str,
    nats: &NatsOptions,
    auth: Option<&str>,
    e: &async_nats::ConnectError,
) -> String {
    use async_nats::ConnectErrorKind as Kind;
    let detail = std::error::Error::source(e).map_or_else(|| e.to_string(), |s| s.to_string());
    // A TLS handshake failure or alert surfaces as an I/O error: tell it by its text.
    let certificate = detail.contains("certificate") || detail.contains("Certificate");
    let tls = &nats.tls;
    match e.kind() {
        Kind::AuthorizationViolation | Kind::Authentication => match auth {
            Some(method) => format!(
                "NATS at {shown} refused the credentials (authorization violation): {method}"
            ),
            None => format!(
                "NATS at {shown} refused the connection (authorization violation): it asks for \
                 credentials and none were given; give a user and password ({}, {}), a token \
                 ({}), an NKey ({}) or a credentials file ({})",
                settings::USER.flag,
                settings::PASSWORD.flag,
                settings::TOKEN.flag,
                settings::NKEY.flag,
                settings::CREDS.flag,
            ),
        },
        _ if detail.contains("UnknownIssuer") => match &tls.ca {
            Some(ca) => format!(
                "the TLS certificate of NATS at {shown} is not trusted: it is not issued by the \
                 CA of {} ({}) ({detail})",
                ca.origin,
                paths(&ca.value)
            ),
            None => format!(
                "the TLS certificate of NATS at {shown} is not trusted (its issuer is unknown): \
                 give the issuing CA's certificate with {} (or {}, `{}`) ({detail})",
                settings::TLS_CA.flag,
                settings::TLS_CA.env,
                settings::TLS_CA.key
            ),
        },
        // The TLS handshake met a server speaking plain NATS.
        _ if detail.contains("InvalidContentType") => {
            let by = match &tls.required {
                Some(origin) => origin.to_string(),
                None => "the tls:// URL".to_owned(),
            };
            format!(
                "NATS at {shown} does not offer TLS, which {by} requires: check the URL, or the \
                 server's TLS settings ({detail})"
            )
        }
        _ if detail.contains("CertificateRequired") => format!(
            "NATS at {shown} requires a client certificate (mutual TLS) and none was given: \
             give one with {} and {} (or {}, {}) ({detail})",
            settings::TLS_CERT.flag,
            settings::TLS_KEY.flag,
            settings::TLS_CERT.env,
            settings::TLS_KEY.env
        ),
        _ if certificate && tls.client.is_some() && detail.contains("alert") => {
            let cert = tls.client.as_ref().map(|c| &c.cert);
            format!(
                "NATS at {shown} refused the client certificate {} ({}): {detail}",
                cert.map_or(String::new(), |c| c.value.display().to_string()),
                cert.map_or(String::new(), |c| c.origin.to_string()),
            )
        }
        _ if certificate || e.kind() == Kind::Tls => {
            format!("the TLS certificate of NATS at {shown} is not trusted: {detail}")
        }
        Kind::ServerParse => format!("{shown} is not a NATS server URL: {detail}"),
        _ => format!("cannot connect to NATS at {shown}: {detail}"),
    }
}

fn paths(paths: &[std::path::PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}
