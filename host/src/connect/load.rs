//! Loading what the NATS settings point at — a `.creds` file, an NKey seed file, CA and
//! client certificates — into async-nats `ConnectOptions`, before any connection is tried: a
//! file that is missing, unreadable or not what it should be is named with the setting it
//! came from. Nothing read from a file is ever put in a message.

use std::path::Path;

use async_nats::ConnectOptions;
use async_nats::rustls::pki_types::pem::PemObject;
use async_nats::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use async_nats::rustls::{ClientConfig, RootCertStore};
use base64::Engine;

use super::settings::{NKey, NatsAuth, NatsOptions, NatsTls, Origin, SettingsError, Sourced};

/// `options` with the credentials and TLS settings of `nats`, and how weir authenticates
/// (for a refusal's message; `None`: without credentials).
pub(super) fn load(
    nats: &NatsOptions,
    options: ConnectOptions,
) -> Result<(ConnectOptions, Option<String>), SettingsError> {
    let (options, auth) = credentials(&nats.auth, options)?;
    Ok((tls(&nats.tls, options)?, auth))
}

fn credentials(
    auth: &NatsAuth,
    options: ConnectOptions,
) -> Result<(ConnectOptions, Option<String>), SettingsError> {
    Ok(match auth {
        NatsAuth::None => (options, None),
        NatsAuth::UserPassword { user, password } => (
            options.user_and_password(user.value.clone(), password.value.expose().to_owned()),
            Some(format!(
                "user {:?} with the password of {}",
                user.value, password.origin
            )),
        ),
        NatsAuth::Token(token) => (
            options.token(token.value.expose().to_owned()),
            Some(format!("the token of {}", token.origin)),
        ),
        NatsAuth::NKey(nkey) => {
            let (seed, source) = match &nkey.value {
                NKey::Seed(seed) => (seed.expose().to_owned(), format!("of {}", nkey.origin)),
                NKey::File(path) => {
                    let text = read(path, "the NKey seed file", &nkey.origin)?;
                    let seed = text.lines().map(str::trim).find(|l| l.starts_with('S'));
                    let seed = seed.unwrap_or_default().to_owned();
                    (seed, format!("in {}, from {}", path.display(), nkey.origin))
                }
            };
            let pair = nkeys::KeyPair::from_seed(&seed).map_err(|_| match &nkey.value {
                NKey::File(path) => invalid(
                    "the NKey seed file",
                    path,
                    &nkey.origin,
                    "it holds no user NKey seed (a line `SU…`)",
                ),
                // Not reached: a value that is no seed is taken for a file.
                NKey::Seed(_) => SettingsError::Incomplete {
                    given: format!("an NKey ({})", nkey.origin),
                    missing: "a valid seed".into(),
                },
            })?;
            let public = pair.public_key();
            (
                options.nkey(seed),
                Some(format!("NKey {public} (the seed {source})")),
            )
        }
        NatsAuth::Creds(creds) => {
            let what = "the credentials file";
            let text = read(&creds.value, what, &creds.origin)?;
            let options = options
                .credentials(&text)
                .map_err(|e| invalid(what, &creds.value, &creds.origin, &e.to_string()))?;
            let user = jwt_subject(&text).map_or(String::new(), |s| format!("user {s} of "));
            let shown = creds.value.display();
            (
                options,
                Some(format!(
                    "{user}the credentials file {shown} ({})",
                    creds.origin
                )),
            )
        }
    })
}

/// The subject (the user's public key) of the JWT in a `.creds` file.
fn jwt_subject(creds: &str) -> Option<String> {
    let jwt = creds.lines().find(|l| l.trim_start().starts_with("eyJ"))?;
    let claims = jwt.trim().split('.').nth(1)?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&claims).ok()?;
    Some(claims.get("sub")?.as_str()?.to_owned())
}

fn tls(tls: &NatsTls, mut options: ConnectOptions) -> Result<ConnectOptions, SettingsError> {
    let client = match &tls.client {
        Some(c) => Some((
            certificates(&c.cert, "the client certificate file")?,
            private_key(&c.key)?,
        )),
        None => None,
    };
    if let Some(ca) = &tls.ca {
        // Several CA files: async-nats keeps one, so weir builds the TLS configuration.
        let mut roots = RootCertStore::empty();
        for path in &ca.value {
            let what = "the CA certificate file";
            let one = Sourced::new(path.clone(), ca.origin.clone());
            for cert in certificates(&one, what)? {
                roots
                    .add(cert)
                    .map_err(|e| invalid(what, path, &ca.origin, &e.to_string()))?;
            }
        }
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let config = match (client, &tls.client) {
            (Some((certs, key)), Some(c)) => {
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    let reason =
                        format!("it does not go with the key {}: {e}", c.key.value.display());
                    invalid(
                        "the client certificate",
                        &c.cert.value,
                        &c.cert.origin,
                        &reason,
                    )
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        options = options.tls_client_config(config);
    } else if let Some(c) = &tls.client {
        // The system's trust store, which async-nats loads.
        options = options.add_client_certificate(c.cert.value.clone(), c.key.value.clone());
    }
    if tls.required.is_some() {
        options = options.require_tls(true);
    }
    Ok(options)
}

/// The PEM certificates of the file `path`: at least one.
fn certificates(
    path: &Sourced<std::path::PathBuf>,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, SettingsError> {
    let bytes = read_bytes(&path.value, what, &path.origin)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid(what, &path.value, &path.origin, "it is not PEM"))?;
    if certs.is_empty() {
        return Err(invalid(
            what,
            &path.value,
            &path.origin,
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// The PEM private key of the file `path` (PKCS#8, PKCS#1 or SEC1).
fn private_key(
    path: &Sourced<std::path::PathBuf>,
) -> Result<PrivateKeyDer<'static>, SettingsError> {
    let what = "the client key file";
    let bytes = read_bytes(&path.value, what, &path.origin)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        invalid(
            what,
            &path.value,
            &path.origin,
            "it holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        )
    })
}

fn read_bytes(path: &Path, what: &'static str, origin: &Origin) -> Result<Vec<u8>, SettingsError> {
    std::fs::read(path).map_err(|e| invalid(what, path, origin, &e.to_string()))
}

fn read(path: &Path, what: &'static str, origin: &Origin) -> Result<String, SettingsError> {
    String::from_utf8(read_bytes(path, what, origin)?)
        .map_err(|_| invalid(what, path, origin, "it is not text"))
}

fn invalid(what: &'static str, path: &Path, origin: &Origin, reason: &str) -> SettingsError {
    SettingsError::File {
        what,
        path: path.to_owned(),
        origin: origin.clone(),
        reason: reason.to_owned(),
    }
}
