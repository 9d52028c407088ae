//! Plugin names, versions and the keys of the tag bucket built from them — pure functions,
//! no NATS.
//!
//! Keys of plugin `p` in [`TAGS`](super::TAGS):
//! - `p`: the tag, the version running hosts use (one value, replaced on every move);
//! - `p.v.<version>`: each version as first deployed (never replaced: a version is immutable);
//! - `p.log.<revision>`: each move of the tag (deploy or rollback), keyed by the tag's KV
//!   revision (20 digits, so keys sort in move order) — the history outlives the bucket's
//!   per-key history limit.
//!
//! A name is one NATS token, `[A-Za-z0-9_-]+`, so tag keys never contain a `.` and cannot be
//! confused with version or log keys. A version is one or more such tokens joined by `.`
//! (`3`, `1.2.0`, `canary`); it goes into the key unencoded.

use super::RegistryError;

/// Longest name or version accepted (a NATS subject stays far below its limits).
const MAX_LEN: usize = 128;

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks that `name` can name a plugin: one token of `[A-Za-z0-9_-]`, at most 128 bytes.
pub fn check_name(name: &str) -> Result<(), RegistryError> {
    if is_token(name) && name.len() <= MAX_LEN {
        return Ok(());
    }
    Err(RegistryError::InvalidName {
        name: name.to_owned(),
    })
}

/// Checks that `version` can name a version of `name`: tokens of `[A-Za-z0-9_-]` joined by
/// single dots, at most 128 bytes.
pub fn check_version(name: &str, version: &str) -> Result<(), RegistryError> {
    if version.len() <= MAX_LEN && version.split('.').all(is_token) {
        return Ok(());
    }
    Err(RegistryError::InvalidVersion {
        name: name.to_owned(),
        version: version.to_owned(),
    })
}

/// The key of `name`'s tag.
pub fn tag_key(name: &str) -> String {
    name.to_owned()
}

/// The key prefix of `name`'s versions.
pub fn version_prefix(name: &str) -> String {
    format!("{name}.v.")
}

/// The key of version `version` of `name`.
pub fn version_key(name: &str, version: &str) -> String {
    format!("{name}.v.{version}")
}

/// The key prefix of `name`'s tag moves.
pub fn log_prefix(name: &str) -> String {
    format!("{name}.log.")
}

/// The key recording the tag move of `name` stored at KV revision `revision`.
pub fn log_key(name: &str, revision: u64) -> String {
    format!("{name}.log.{revision:020}")
}

/// Whether `key` is a tag key (a plugin name), not a version or log key.
pub fn is_tag_key(key: &str) -> bool {
    is_token(key)
}

/// The version a deploy without `--version` gets: one more than the highest version that is
/// a plain integer, `1` when there is none.
pub fn next_version<'a>(existing: impl IntoIterator<Item = &'a str>) -> String {
    let highest = existing
        .into_iter()
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|v| v.parse::<u64>().ok())
        .max();
    match highest {
        Some(n) => n.saturating_add(1).to_string(),
        None => "1".to_owned(),
    }
}

/// The object holding the component whose SHA-256 is `digest`.
pub fn object_name(digest: &str) -> String {
    format!("sha256-{digest}")
}

/// Checks that `digest` is a SHA-256 in lowercase hex (64 digits).
pub fn check_digest(digest: &str) -> Result<(), RegistryError> {
    if digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Ok(());
    }
    Err(RegistryError::InvalidDigest {
        digest: digest.to_owned(),
    })
}

/// `bytes` for people: `512 B`, `14.2 KiB`, `1.2 MiB`.
pub fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{:.1} MiB", b / (KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_safe_tokens() {
        for ok in ["json-filter", "window_stats", "A1", "x"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.b", "a b", "a*", "a>", "é", "a/b", &"x".repeat(129)] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.contains("[A-Za-z0-9_-]"), "{bad}: {e}");
        }
    }

    #[test]
    fn versions_may_have_dotted_tokens() {
        for ok in ["1", "1.2.0", "canary", "2024-05-01", "rc_1"] {
            assert!(check_version("p", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".1", "1.", "1..2", "1 2", "v*", "a>b", "1/2"] {
            let e = check_version("p", bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("plugin p"),
                "{e}"
            );
        }
    }

    #[test]
    fn next_version_follows_the_highest_integer() {
        assert_eq!(next_version([]), "1");
        assert_eq!(next_version(["1", "2"]), "3");
        assert_eq!(next_version(["2", "10", "9"]), "11");
        assert_eq!(next_version(["1.2.0", "canary"]), "1");
        assert_eq!(next_version(["1.2.0", "4", "+5", "-1"]), "5");
    }

    #[test]
    fn keys_of_a_plugin_do_not_collide() {
        assert_eq!(tag_key("f"), "f");
        assert_eq!(version_key("f", "1.2"), "f.v.1.2");
        assert_eq!(log_key("f", 7), "f.log.00000000000000000007");
        assert!(is_tag_key("f"));
        assert!(!is_tag_key(&version_key("f", "1")));
        assert!(!is_tag_key(&log_key("f", 1)));
        assert!(version_key("f", "1").starts_with(&version_prefix("f")));
        assert!(!version_key("f-x", "1").starts_with(&version_prefix("f")));
    }

    #[test]
    fn digests_are_lowercase_sha256_hex() {
        assert!(check_digest(&"a".repeat(64)).is_ok());
        assert!(check_digest(&"A".repeat(64)).is_err());
        assert!(check_digest("abc").is_err());
        assert!(check_digest(&format!("{}/", "a".repeat(63))).is_err());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(14 * 1024 + 200), "14.2 KiB");
        assert_eq!(human_size(1258291), "1.2 MiB");
    }
}
