//! Component bytes in the object store [`OBJECTS`](super::OBJECTS): stored once per content,
//! read back only when their SHA-256 still matches the name they are stored under, and kept
//! on local disk for the runtime to load.

use std::path::{Path, PathBuf};

use async_nats::jetstream::object_store;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::names::{check_digest, object_name};
use super::{OBJECTS, Registry, RegistryError, Tag};
use crate::runtime::cache::content_hash;

/// How the object store states the digest of an object's bytes (`SHA-256=<base64url>`).
fn object_store_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!(
        "SHA-256={}",
        base64::engine::general_purpose::URL_SAFE.encode(hash)
    )
}

impl Registry {
    /// Stores `bytes` (whose SHA-256 is `digest`) unless an intact copy is already there; a
    /// damaged copy is replaced.
    pub(super) async fn store_object(
        &self,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        let object = object_name(digest);
        if let Ok(info) = self.objects.info(&object).await {
            let intact = !info.deleted
                && info.size == bytes.len()
                && info.digest.as_deref() == Some(object_store_digest(bytes).as_str());
            if intact {
                return Ok(());
            }
        }
        let mut reader = bytes;
        self.objects
            .put(object.as_str(), &mut reader)
            .await
            .map_err(|e| {
                RegistryError::nats(format!("storing {object:?} in object store {OBJECTS:?}"), e)
            })?;
        Ok(())
    }

    /// Whether the object of `digest` is in the object store.
    pub async fn has_object(&self, digest: &str) -> Result<bool, RegistryError> {
        check_digest(digest)?;
        let object = object_name(digest);
        match self.objects.info(&object).await {
            Ok(info) => Ok(!info.deleted),
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => Ok(false),
            Err(e) => Err(RegistryError::nats(
                format!("looking up {object:?} in object store {OBJECTS:?}"),
                e,
            )),
        }
    }

    /// The component bytes of `digest`, verified: the SHA-256 of what the object store holds
    /// is recomputed, and a mismatch is [`RegistryError::DigestMismatch`] naming both digests.
    pub async fn fetch(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        check_digest(digest)?;
        let object = object_name(digest);
        let missing = || RegistryError::MissingObject {
            bucket: OBJECTS.to_owned(),
            object: object.clone(),
            digest: digest.to_owned(),
        };
        let mut reader = match self.objects.get(&object).await {
            Ok(r) => r,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Err(missing()),
            Err(e) => {
                return Err(RegistryError::nats(
                    format!("reading {object:?} from object store {OBJECTS:?}"),
                    e,
                ));
            }
        };
        let mut bytes = Vec::with_capacity(reader.info().size);
        reader.read_to_end(&mut bytes).await.map_err(|e| {
            RegistryError::nats(
                format!("reading {object:?} from object store {OBJECTS:?}"),
                e,
            )
        })?;
        let actual = content_hash(&bytes);
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                bucket: OBJECTS.to_owned(),
                object,
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The component of `tag` as a file, `<cache_dir>/components/<digest>.wasm`: reused when
    /// present and intact, else fetched ([`Registry::fetch`]) and written atomically (a
    /// temporary file renamed into place, so concurrent hosts never load half a file).
    pub async fn fetch_to(&self, tag: &Tag, cache_dir: &Path) -> Result<PathBuf, RegistryError> {
        check_digest(&tag.digest)?;
        let dir = cache_dir.join("components");
        let path = dir.join(format!("{}.wasm", tag.digest));
        if let Ok(bytes) = tokio::fs::read(&path).await
            && content_hash(&bytes) == tag.digest
        {
            return Ok(path);
        }
        let bytes = self.fetch(&tag.digest).await?;
        let failed = |path: &Path| {
            let path = path.to_owned();
            let digest = tag.digest.clone();
            move |source| RegistryError::Cache {
                digest,
                path,
                source,
            }
        };
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(failed(&dir))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let tmp = dir.join(format!(
            "{}.wasm.tmp{}-{nanos}",
            tag.digest,
            std::process::id()
        ));
        tokio::fs::write(&tmp, &bytes).await.map_err(failed(&tmp))?;
        if let Err(e) = tokio::fs::rename(&tmp, &path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(failed(&path)(e));
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_store_digest_is_base64url_sha256() {
        // SHA-256 of "" is e3b0c442…; its URL-safe base64 with padding:
        assert_eq!(
            object_store_digest(b""),
            "SHA-256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
