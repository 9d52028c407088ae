//! Where the NATS settings come from and what they resolve to.
//!
//! A [`NatsSettings`] is one layer of settings — the command line with the environment (see
//! `cli/nats_args.rs` in the binary), or a pipeline file's `[nats]` section — each value kept
//! with its [`Origin`]. Layers are stacked with [`NatsSettings::or`] (flags > environment >
//! file, key by key) and [`NatsSettings::resolve`]d into [`NatsOptions`]: the servers without
//! credentials, one [`NatsAuth`] and the [`NatsTls`] settings. Resolving reads no file and
//! opens no connection; it refuses what cannot be meant — two ways to authenticate, a password
//! without a user, a client certificate without its key — naming where each value came from.
//!
//! Credentials in a URL (`nats://user:password@host`, `nats://token@host`) are taken out of
//! it and sent as a user and password or a token: async-nats 0.51 ignores them
//! (nats-io/nats.rs#1623).

use std::fmt;
use std::path::{Path, PathBuf};

use async_nats::ServerAddr;

use crate::config::NatsConfig;
use crate::telemetry::redact::{Secret, redact_url};

/// The server weir connects to when no URL is given.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// The names of one NATS setting: its flag, environment variable and pipeline-file key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingNames {
    pub flag: &'static str,
    pub env: &'static str,
    pub key: &'static str,
}

impl SettingNames {
    const fn new(flag: &'static str, env: &'static str, key: &'static str) -> Self {
        SettingNames { flag, env, key }
    }

    /// `--nats-user, WEIR_NATS_USER or `nats.user``: every way to give it.
    pub fn any(&self) -> String {
        format!("{}, {} or `{}`", self.flag, self.env, self.key)
    }
}

pub const URL: SettingNames = SettingNames::new("--nats-url", "WEIR_NATS_URL", "nats.url");
pub const CREDS: SettingNames = SettingNames::new("--nats-creds", "WEIR_NATS_CREDS", "nats.creds");
pub const NKEY: SettingNames = SettingNames::new("--nats-nkey", "WEIR_NATS_NKEY", "nats.nkey");
pub const USER: SettingNames = SettingNames::new("--nats-user", "WEIR_NATS_USER", "nats.user");
pub const PASSWORD: SettingNames =
    SettingNames::new("--nats-password", "WEIR_NATS_PASSWORD", "nats.password");
pub const TOKEN: SettingNames = SettingNames::new("--nats-token", "WEIR_NATS_TOKEN", "nats.token");
pub const TLS_CA: SettingNames =
    SettingNames::new("--nats-tls-ca", "WEIR_NATS_TLS_CA", "nats.tls.ca");
pub const TLS_CERT: SettingNames =
    SettingNames::new("--nats-tls-cert", "WEIR_NATS_TLS_CERT", "nats.tls.cert");
pub const TLS_KEY: SettingNames =
    SettingNames::new("--nats-tls-key", "WEIR_NATS_TLS_KEY", "nats.tls.key");
pub const TLS_REQUIRED: SettingNames = SettingNames::new(
    "--nats-tls-required",
    "WEIR_NATS_TLS_REQUIRED",
    "nats.tls.required",
);

/// Where a setting came from: named in errors, so that the user knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, e.g. `--nats-creds`.
    Flag(&'static str),
    /// An environment variable, e.g. `WEIR_NATS_CREDS`.
    Env(&'static str),
    /// A key of a pipeline file's `[nats]` section.
    File { key: &'static str, file: PathBuf },
    /// The credentials of a URL, which came from the inner origin.
    Url(Box<Origin>),
    /// Set by the program embedding weir (benchmarks, tests).
    Caller,
    /// weir's default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(name) | Origin::Env(name) => f.write_str(name),
            Origin::File { key, file } => write!(f, "`{key}` in {}", file.display()),
            Origin::Url(of) => write!(f, "the URL of {of}"),
            Origin::Caller => f.write_str("the embedding program"),
            Origin::Default => f.write_str("the default"),
        }
    }
}

/// A setting's value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Sourced<T> {
    pub fn new(value: T, origin: Origin) -> Self {
        Sourced { value, origin }
    }
}

/// An NKey seed, given as it is or in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NKey {
    Seed(Secret),
    File(PathBuf),
}

impl NKey {
    /// `value` as a seed when it is one (`S…`, decodable), else as the path of a file holding
    /// one (relative to `base`, when given).
    pub fn parse(value: &str, base: Option<&Path>) -> NKey {
        let value = value.trim();
        if value.starts_with('S') && nkeys::KeyPair::from_seed(value).is_ok() {
            return NKey::Seed(Secret::new(value));
        }
        NKey::File(match base {
            Some(base) => base.join(value),
            None => PathBuf::from(value),
        })
    }
}

/// One layer of NATS settings (see the module docs); `None`: not set in this layer.
#[derive(Debug, Clone, Default)]
pub struct NatsSettings {
    pub url: Option<Sourced<String>>,
    pub creds: Option<Sourced<PathBuf>>,
    pub nkey: Option<Sourced<NKey>>,
    pub user: Option<Sourced<String>>,
    pub password: Option<Sourced<Secret>>,
    pub token: Option<Sourced<Secret>>,
    pub tls_ca: Option<Sourced<Vec<PathBuf>>>,
    pub tls_cert: Option<Sourced<PathBuf>>,
    pub tls_key: Option<Sourced<PathBuf>>,
    pub tls_required: Option<Sourced<bool>>,
}

impl NatsSettings {
    /// `self`, with what it leaves unset taken from `lower` (a layer of lower precedence).
    pub fn or(self, lower: NatsSettings) -> NatsSettings {
        NatsSettings {
            url: self.url.or(lower.url),
            creds: self.creds.or(lower.creds),
            nkey: self.nkey.or(lower.nkey),
            user: self.user.or(lower.user),
            password: self.password.or(lower.password),
            token: self.token.or(lower.token),
            tls_ca: self.tls_ca.or(lower.tls_ca),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            tls_required: self.tls_required.or(lower.tls_required),
        }
    }

    /// The `[nats]` section of the pipeline file `file`, paths relative to its folder.
    pub fn from_config(config: &NatsConfig, file: &Path) -> NatsSettings {
        let base = file.parent().unwrap_or(Path::new("."));
        let at = |names: SettingNames| Origin::File {
            key: names.key,
            file: file.to_owned(),
        };
        let path = |p: &PathBuf| base.join(p);
        let tls = &config.tls;
        NatsSettings {
            url: config.url.clone().map(|u| Sourced::new(u, at(URL))),
            creds: config
                .creds
                .as_ref()
                .map(|p| Sourced::new(path(p), at(CREDS))),
            nkey: config
                .nkey
                .as_ref()
                .map(|n| Sourced::new(NKey::parse(n.expose(), Some(base)), at(NKEY))),
            user: config.user.clone().map(|u| Sourced::new(u, at(USER))),
            password: config
                .password
                .clone()
                .map(|p| Sourced::new(p, at(PASSWORD))),
            token: config.token.clone().map(|t| Sourced::new(t, at(TOKEN))),
            tls_ca: (!tls.ca.is_empty())
                .then(|| Sourced::new(tls.ca.iter().map(path).collect(), at(TLS_CA))),
            tls_cert: tls
                .cert
                .as_ref()
                .map(|p| Sourced::new(path(p), at(TLS_CERT))),
            tls_key: tls.key.as_ref().map(|p| Sourced::new(path(p), at(TLS_KEY))),
            tls_required: tls.required.then(|| Sourced::new(true, at(TLS_REQUIRED))),
        }
    }

    /// What the settings mean (see the module docs).
    pub fn resolve(self) -> Result<NatsOptions, SettingsError> {
        let NatsSettings {
            url,
            creds,
            nkey,
            user,
            password,
            token,
            tls_ca,
            tls_cert,
            tls_key,
            tls_required,
        } = self;
        let url = url.unwrap_or_else(|| Sourced::new(DEFAULT_URL.to_owned(), Origin::Default));
        let (servers, in_url) = servers(&url)?;
        let in_url = in_url.map(|auth| (auth, format!("credentials in the URL of {}", url.origin)));
        let auth = one_auth(in_url, user, password, token, nkey, creds)?;
        let tls = tls_settings(tls_ca, tls_cert, tls_key, tls_required)?;
        Ok(NatsOptions {
            url,
            servers,
            auth,
            tls,
        })
    }
}

/// The one way to authenticate the settings give (`in_url`: credentials in the URL, and where
/// they came from); two ways, or half of one, is an error naming them.
fn one_auth(
    in_url: Option<(NatsAuth, String)>,
    user: Option<Sourced<String>>,
    password: Option<Sourced<Secret>>,
    token: Option<Sourced<Secret>>,
    nkey: Option<Sourced<NKey>>,
    creds: Option<Sourced<PathBuf>>,
) -> Result<NatsAuth, SettingsError> {
    let mut given: Vec<(NatsAuth, String)> = in_url.into_iter().collect();
    match (user, password) {
        (Some(user), Some(password)) => {
            let what = format!(
                "a user ({}) and password ({})",
                user.origin, password.origin
            );
            given.push((NatsAuth::UserPassword { user, password }, what));
        }
        (Some(user), None) => {
            return Err(SettingsError::Incomplete {
                given: format!("a user ({})", user.origin),
                missing: format!("a password ({})", PASSWORD.any()),
            });
        }
        (None, Some(password)) => {
            return Err(SettingsError::Incomplete {
                given: format!("a password ({})", password.origin),
                missing: format!("a user ({})", USER.any()),
            });
        }
        (None, None) => {}
    }
    if let Some(token) = token {
        let what = format!("a token ({})", token.origin);
        given.push((NatsAuth::Token(token), what));
    }
    if let Some(nkey) = nkey {
        let what = format!("an NKey ({})", nkey.origin);
        given.push((NatsAuth::NKey(nkey), what));
    }
    if let Some(creds) = creds {
        let what = format!("a credentials file ({})", creds.origin);
        given.push((NatsAuth::Creds(creds), what));
    }
    if let [(_, first), (_, second), ..] = given.as_slice() {
        return Err(SettingsError::TwoWaysToAuthenticate {
            first: first.clone(),
            second: second.clone(),
        });
    }
    Ok(given.pop().map_or(NatsAuth::None, |(auth, _)| auth))
}

/// The TLS settings: a client certificate needs its key and the other way round; trusting a
/// CA or presenting a certificate requires TLS.
fn tls_settings(
    ca: Option<Sourced<Vec<PathBuf>>>,
    cert: Option<Sourced<PathBuf>>,
    key: Option<Sourced<PathBuf>>,
    required: Option<Sourced<bool>>,
) -> Result<NatsTls, SettingsError> {
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientCertificate { cert, key }),
        (None, None) => None,
        (Some(cert), None) => {
            return Err(SettingsError::Incomplete {
                given: format!("a client certificate ({})", cert.origin),
                missing: format!("its private key ({})", TLS_KEY.any()),
            });
        }
        (None, Some(key)) => {
            return Err(SettingsError::Incomplete {
                given: format!("a client key ({})", key.origin),
                missing: format!("its certificate ({})", TLS_CERT.any()),
            });
        }
    };
    let ca = ca.filter(|ca| !ca.value.is_empty());
    // Trusting a CA or presenting a certificate means TLS (as nats.go's RootCAs and
    // ClientCert options do): never fall back to plain text.
    let required = match &required {
        Some(r) if r.value => Some(r.origin.clone()),
        _ => ca
            .as_ref()
            .map(|ca| ca.origin.clone())
            .or_else(|| client.as_ref().map(|c| c.cert.origin.clone())),
    };
    Ok(NatsTls {
        ca,
        client,
        required,
    })
}

/// The servers of `url` (a comma-separated list) without credentials, and the credentials
/// they held (the same for every URL).
fn servers(url: &Sourced<String>) -> Result<(Vec<ServerAddr>, Option<NatsAuth>), SettingsError> {
    let mut servers = Vec::new();
    let mut found: Option<NatsAuth> = None;
    let in_url = Origin::Url(Box::new(url.origin.clone()));
    for one in url.value.split(',').map(str::trim) {
        let invalid = |reason: String| SettingsError::Url {
            url: redact_url(one),
            origin: url.origin.clone(),
            reason,
        };
        let text = if one.contains("://") {
            one.to_owned()
        } else {
            format!("nats://{one}")
        };
        let mut parsed = url::Url::parse(&text).map_err(|e| invalid(e.to_string()))?;
        let user = percent_decoded(parsed.username());
        let auth = match parsed.password().map(percent_decoded) {
            _ if user.is_empty() => None,
            Some(password) => Some(NatsAuth::UserPassword {
                user: Sourced::new(user, in_url.clone()),
                password: Sourced::new(Secret::new(password), in_url.clone()),
            }),
            None => Some(NatsAuth::Token(Sourced::new(
                Secret::new(user),
                in_url.clone(),
            ))),
        };
        if auth.is_some() {
            if found.is_some() && found != auth {
                return Err(invalid(
                    "the URLs hold different credentials; give them once, with the flags or \
                     environment variables for them"
                        .into(),
                ));
            }
            found = auth;
            // Cannot fail: the URL has a host (or it would have no credentials).
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
        }
        servers.push(ServerAddr::from_url(parsed).map_err(|e| invalid(e.to_string()))?);
    }
    Ok((servers, found))
}

/// A URL's user or password with its `%xx` escapes decoded (`url::Url` keeps them).
fn percent_decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Resolved NATS settings: what [`connect`](super::connect) connects with.
#[derive(Clone)]
pub struct NatsOptions {
    /// The URL(s) as given: they may hold credentials, print [`NatsOptions::shown_url`].
    url: Sourced<String>,
    /// The servers, without credentials.
    servers: Vec<ServerAddr>,
    pub auth: NatsAuth,
    pub tls: NatsTls,
}

impl NatsOptions {
    /// `url` (credentials in it included) and nothing else, as set by a program.
    pub fn from_url(url: &str) -> Result<NatsOptions, SettingsError> {
        NatsSettings {
            url: Some(Sourced::new(url.to_owned(), Origin::Caller)),
            ..NatsSettings::default()
        }
        .resolve()
    }

    /// The URL(s) without credentials, for messages.
    pub fn shown_url(&self) -> String {
        redact_url(&self.url.value)
    }

    /// The servers to connect to (without credentials).
    pub fn servers(&self) -> &[ServerAddr] {
        &self.servers
    }
}

impl fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsOptions")
            .field("url", &self.shown_url())
            .field("url_origin", &self.url.origin)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .finish()
    }
}

/// How weir proves who it is to NATS: one way, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsAuth {
    None,
    UserPassword {
        user: Sourced<String>,
        password: Sourced<Secret>,
    },
    Token(Sourced<Secret>),
    NKey(Sourced<NKey>),
    /// A `.creds` file: a user JWT and its NKey seed.
    Creds(Sourced<PathBuf>),
}

/// TLS settings beyond what the URL (`tls://`) and the server ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// CA certificate files trusted in place of the system's trust store.
    pub ca: Option<Sourced<Vec<PathBuf>>>,
    /// The certificate weir presents (mutual TLS).
    pub client: Option<ClientCertificate>,
    /// Why TLS is required, when it is (the flag, or the setting that implies it).
    pub required: Option<Origin>,
}

/// A client certificate and its key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert: Sourced<PathBuf>,
    pub key: Sourced<PathBuf>,
}

/// NATS settings that cannot be used, found before any connection is tried.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{url} ({origin}) is not a NATS server URL: {reason}")]
    Url {
        /// Without credentials.
        url: String,
        origin: Origin,
        reason: String,
    },
    #[error("two ways to authenticate to NATS were given, {first} and {second}: give one")]
    TwoWaysToAuthenticate { first: String, second: String },
    #[error("{given} was given without {missing}")]
    Incomplete { given: String, missing: String },
    #[error("cannot use {what} {} ({origin}): {reason}", path.display())]
    File {
        /// What the file should hold, e.g. "the CA certificate file".
        what: &'static str,
        path: PathBuf,
        origin: Origin,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag<T>(value: T, names: SettingNames) -> Option<Sourced<T>> {
        Some(Sourced::new(value, Origin::Flag(names.flag)))
    }

    fn env<T>(value: T, names: SettingNames) -> Option<Sourced<T>> {
        Some(Sourced::new(value, Origin::Env(names.env)))
    }

    fn secret(s: &str) -> Secret {
        Secret::new(s)
    }

    #[test]
    fn a_url_without_settings_connects_without_credentials() {
        let o = NatsSettings::default().resolve().unwrap();
        assert_eq!(o.auth, NatsAuth::None);
        assert_eq!(o.shown_url(), DEFAULT_URL);
        assert_eq!(o.tls, NatsTls::default());
    }

    #[test]
    fn credentials_in_the_url_are_taken_out_and_decoded() {
        let s = NatsSettings {
            url: flag("nats://weir:p%40ss@127.0.0.1:4222".into(), URL),
            ..Default::default()
        };
        let o = s.resolve().unwrap();
        let in_url = Origin::Url(Box::new(Origin::Flag("--nats-url")));
        assert_eq!(
            o.auth,
            NatsAuth::UserPassword {
                user: Sourced::new("weir".into(), in_url.clone()),
                password: Sourced::new(secret("p@ss"), in_url),
            }
        );
        assert_eq!(o.servers()[0].as_url_str(), "nats://127.0.0.1:4222");
        assert_eq!(o.shown_url(), "nats://***@127.0.0.1:4222");
        assert!(!format!("{o:?}").contains("p@ss"), "{o:?}");
    }

    #[test]
    fn a_lone_user_in_the_url_is_a_token_and_lists_of_urls_work() {
        let o = NatsOptions::from_url("tls://s3cr3t@h1:4222, h2").unwrap();
        assert_eq!(
            o.auth,
            NatsAuth::Token(Sourced::new(
                secret("s3cr3t"),
                Origin::Url(Box::new(Origin::Caller))
            ))
        );
        let servers: Vec<_> = o.servers().iter().map(|s| s.as_url_str()).collect();
        assert_eq!(servers, ["tls://h1:4222", "nats://h2"]);
    }

    #[test]
    fn higher_layers_win_key_by_key() {
        let file = Path::new("/p/pipeline.toml");
        let config: NatsConfig = toml::from_str(
            r#"url = "nats://file:4222"
            user = "from-file"
            password = "file-pass"
            tls = { ca = "ca.pem", required = true }"#,
        )
        .unwrap();
        let cli = NatsSettings {
            password: env(secret("env-pass"), PASSWORD),
            ..Default::default()
        };
        let o = cli
            .or(NatsSettings::from_config(&config, file))
            .resolve()
            .unwrap();
        let NatsAuth::UserPassword { user, password } = &o.auth else {
            panic!("{:?}", o.auth)
        };
        assert_eq!(user.value, "from-file");
        assert_eq!(user.origin.to_string(), "`nats.user` in /p/pipeline.toml");
        assert_eq!(password.value.expose(), "env-pass");
        assert_eq!(password.origin.to_string(), "WEIR_NATS_PASSWORD");
        assert_eq!(o.shown_url(), "nats://file:4222");
        let ca = o.tls.ca.unwrap();
        assert_eq!(ca.value, [PathBuf::from("/p/ca.pem")]);
        assert_eq!(
            o.tls.required.unwrap().to_string(),
            "`nats.tls.required` in /p/pipeline.toml"
        );
    }

    #[test]
    fn the_nats_section_refuses_unknown_keys_and_debug_hides_secrets() {
        let parse = |text: &str| toml::from_str::<NatsConfig>(text);
        let e = parse("url = \"nats://h\"\npasswd = \"x\"").unwrap_err();
        assert!(e.message().contains("unknown field `passwd`"), "{e}");
        let e = parse("tls = { ca = \"a.pem\", verify = true }").unwrap_err();
        assert!(e.message().contains("unknown field `verify`"), "{e}");
        let c = parse(
            "url = \"nats://u:url-pw@h\"\npassword = \"pa55\"\n[tls]\nca = [\"a.pem\", \"b.pem\"]",
        )
        .unwrap();
        assert_eq!(c.tls.ca.len(), 2);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("url-pw") && !shown.contains("pa55"),
            "{shown}"
        );
    }

    #[test]
    fn a_seed_is_a_seed_and_anything_else_a_file() {
        let seed = nkeys::KeyPair::new_user().seed().unwrap();
        assert_eq!(NKey::parse(&seed, None), NKey::Seed(secret(&seed)));
        assert_eq!(
            NKey::parse("keys/user.nk", Some(Path::new("/p"))),
            NKey::File("/p/keys/user.nk".into())
        );
        assert!(!format!("{:?}", NKey::parse(&seed, None)).contains(&seed));
    }

    #[test]
    fn two_ways_to_authenticate_are_refused_naming_both() {
        let s = NatsSettings {
            url: flag("nats://u:p@h".into(), URL),
            token: env(secret("t0k3n"), TOKEN),
            ..Default::default()
        };
        let e = s.resolve().unwrap_err().to_string();
        assert!(e.contains("credentials in the URL of --nats-url"), "{e}");
        assert!(e.contains("a token (WEIR_NATS_TOKEN)"), "{e}");
        assert!(!e.contains("t0k3n") && !e.contains("u:p"), "{e}");
    }

    #[test]
    fn half_a_pair_is_refused_saying_what_is_missing() {
        let s = NatsSettings {
            user: flag("weir".into(), USER),
            ..Default::default()
        };
        let e = s.resolve().unwrap_err().to_string();
        assert_eq!(
            e,
            "a user (--nats-user) was given without a password (--nats-password, \
             WEIR_NATS_PASSWORD or `nats.password`)"
        );
        let s = NatsSettings {
            tls_cert: flag("c.pem".into(), TLS_CERT),
            ..Default::default()
        };
        let e = s.resolve().unwrap_err().to_string();
        assert!(
            e.starts_with(
                "a client certificate (--nats-tls-cert) was given without its private key"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_ca_or_a_client_certificate_requires_tls() {
        let s = NatsSettings {
            tls_cert: flag("c.pem".into(), TLS_CERT),
            tls_key: flag("k.pem".into(), TLS_KEY),
            ..Default::default()
        };
        let o = s.resolve().unwrap();
        assert_eq!(o.tls.required, Some(Origin::Flag("--nats-tls-cert")));
    }

    #[test]
    fn a_bad_url_is_named_without_its_credentials() {
        let e = NatsOptions::from_url("http://u:secret-pw@h")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("http://***@h (the embedding program) is not a NATS server URL"),
            "{e}"
        );
        assert!(!e.contains("secret-pw"), "{e}");
    }
}
