//! Keeping secrets out of what weir prints: logs, errors, dead-letter headers.
//!
//! - [`redact_url`]: a NATS URL (or a comma-separated list of them) without its credentials —
//!   `nats://user:pass@host` and `nats://token@host` print as `nats://***@host`.
//! - [`Secrets`]: the secret values of a plugin's config — strings under keys that name a
//!   secret (`password`, `token`, `api_key`, `secret`, `credentials`, `seed`, `auth`, …) and the
//!   credentials of URLs anywhere in it — and [`Secrets::scrub`], which replaces them with
//!   `[redacted]` in text the plugin produced (its log lines and error messages), in case the
//!   plugin echoes its own config.
//! - [`Secret`]: a password, token or NKey seed weir holds itself (NATS credentials): its
//!   `Debug` prints [`REDACTED`], it has no `Display`, and only [`Secret::expose`] gives the
//!   value — to the one place that sends it.
//!
//! The host itself never prints a plugin's config: errors name the operator and the field.

use std::borrow::Cow;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Shortest config value scrubbed from plugin text: shorter ones would blank out common words
/// and are no secrets worth the name.
const MIN_SECRET_LEN: usize = 4;

/// Key fragments (lowercase, without `_` and `-`) marking a config value as secret.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "credential",
    "apikey",
    "accesskey",
    "privatekey",
    "signingkey",
    "nkey",
    "seed",
    "auth",
];

/// A secret value weir holds (see the module docs). Read from a pipeline file as a string;
/// a value of another type is refused without being shown (serde's message would quote it).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(E::custom(NOT_TEXT))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(E::custom(NOT_TEXT))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(E::custom(NOT_TEXT))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(E::custom(NOT_TEXT))
            }
        }
        const NOT_TEXT: &str = "a secret must be a string (in quotes); its value is not shown";
        d.deserialize_str(Text)
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself: only for sending it where it belongs, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// `urls` (one URL or a comma-separated list) with the credentials (`user:pass@`,
/// `token@`) of every URL replaced by `***`.
pub fn redact_url(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let (scheme, rest) = match url.find("://") {
                Some(i) => url.split_at(i + 3),
                None => ("", url),
            };
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}***{}", &rest[at..]),
                None => url.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The credentials (`user:pass`, `token`) of a URL in `text`, if it is one.
fn url_credentials(text: &str) -> Option<&str> {
    let rest = &text[text.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    Some(&authority[..authority.rfind('@')?])
}

fn is_secret_key(key: &str) -> bool {
    let key: String = key
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// The secret values of one plugin config (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// Longest first, so that a secret containing another is replaced whole.
    values: Vec<String>,
}

impl Secrets {
    /// The secrets of `config` (the JSON text given to `configure`); none when it is not JSON.
    pub fn of_config(config: &str) -> Self {
        let mut values = Vec::new();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(config) {
            collect(&v, false, &mut values);
        }
        values.retain(|v| v.len() >= MIN_SECRET_LEN);
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Secrets { values }
    }

    /// Whether there is nothing to scrub.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret replaced by [`REDACTED`]; borrowed when it holds none.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.values {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }
}

/// Collects the secret strings of `v`; `secret`: `v` sits under a secret-naming key.
fn collect(v: &serde_json::Value, secret: bool, out: &mut Vec<String>) {
    use serde_json::Value;
    match v {
        Value::String(s) if secret => out.push(s.clone()),
        Value::String(s) => out.extend(url_credentials(s).map(str::to_owned)),
        Value::Number(n) if secret => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|i| collect(i, secret, out)),
        Value::Object(map) => {
            for (k, v) in map {
                collect(v, secret || is_secret_key(k), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_redacted() {
        assert_eq!(
            redact_url("nats://weir:s3cret@127.0.0.1:4222"),
            "nats://***@127.0.0.1:4222"
        );
        assert_eq!(
            redact_url("tls://tok3n@nats.example.com/x?y=1"),
            "tls://***@nats.example.com/x?y=1"
        );
        assert_eq!(redact_url("u:p@localhost:4222"), "***@localhost:4222");
        assert_eq!(
            redact_url("nats://a:b@h1:4222,nats://h2:4222"),
            "nats://***@h1:4222,nats://h2:4222"
        );
    }

    #[test]
    fn a_secret_is_redacted_when_debug_printed() {
        let s = Secret::new("hunter22");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "hunter22");
    }

    #[test]
    fn a_secret_of_another_type_is_refused_without_its_value() {
        #[derive(serde::Deserialize, Debug)]
        struct S {
            #[allow(dead_code)]
            token: Secret,
        }
        // weir reports the message and the line, not toml's snippet of the source.
        let e = toml::from_str::<S>("token = 987654").unwrap_err();
        let e = e.message();
        assert!(e.contains("a secret must be a string"), "{e}");
        assert!(!e.contains("987654"), "{e}");
        assert!(toml::from_str::<S>("token = \"t\"").is_ok());
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for url in ["nats://127.0.0.1:4222", "localhost", "nats://h/p@th"] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn values_under_secret_keys_and_url_credentials_are_secrets() {
        let s = Secrets::of_config(
            r#"{"api_key":"sk-live-123","field":"amount","auth":{"user":"svc","password":"hunter22"},
                "upstream":"https://bob:pw-in-url@example.com/v1","tokens":["t0k3n-a"],
                "mode":"error","Client-Secret":"shh-it-is","seed":12345}"#,
        );
        let text = "key sk-live-123 for svc, hunter22, bob:pw-in-url, t0k3n-a, shh-it-is, 12345 on amount in mode error";
        assert_eq!(
            s.scrub(text),
            "key [redacted] for svc, [redacted], [redacted], [redacted], [redacted], [redacted] on amount in mode error"
        );
    }

    #[test]
    fn text_without_secrets_is_borrowed() {
        let s = Secrets::of_config(r#"{"token":"abcd-efgh"}"#);
        assert!(matches!(s.scrub("nothing here"), Cow::Borrowed(_)));
        assert!(Secrets::of_config("not json").is_empty());
        assert!(Secrets::of_config(r#"{"password":"ab"}"#).is_empty());
    }

    #[test]
    fn a_secret_containing_another_is_replaced_whole() {
        let s = Secrets::of_config(r#"{"token":"abcd","secret":"xxabcdxx"}"#);
        assert_eq!(s.scrub("xxabcdxx abcd"), "[redacted] [redacted]");
    }
}
