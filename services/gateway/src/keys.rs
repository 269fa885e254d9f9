//! Partner API keys. The file holds only SHA-256 digests: keys are 256-bit random tokens, so
//! a fast hash is enough (a slow password hash like argon2 guards low-entropy secrets and
//! would cost milliseconds on every request). The file is re-read periodically, so rotating
//! a key is editing the file or the Kubernetes Secret behind it.
//!
//! While the file does not parse, the last valid keys stay in force and the file is parsed
//! again on every reload until it does. Keeping the old set means a revocation made by a
//! broken edit waits for the fix (the `keys_file_valid` gauge and its alert say so); the
//! alternative, refusing every key, would turn one typo in a Secret into an outage for every
//! partner, which an attacker who can only break the file could also cause at will.

use crate::config::Rate;
use governor::{DefaultDirectRateLimiter, Quota};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read keys file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("keys file {path} is invalid: {detail}")]
    Invalid {
        path: PathBuf,
        detail: String,
        /// This same content failed on the previous reload too.
        repeated: bool,
    },
}

impl KeysError {
    /// Whether this is the same failure as last time (already reported).
    pub fn repeated(&self) -> bool {
        matches!(self, KeysError::Invalid { repeated: true, .. })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    /// Names the key in logs and metrics; never secret.
    id: String,
    /// The only platform this key may post as.
    platform: String,
    /// Hex SHA-256 of the key.
    sha256: String,
    per_second: Option<u32>,
    burst: Option<u32>,
}

/// An authenticated partner key.
pub struct ApiKey {
    pub id: String,
    pub platform: String,
    pub rate: Rate,
    pub limiter: DefaultDirectRateLimiter,
}

type Digest32 = [u8; 32];

#[derive(Default)]
struct Seen {
    loaded: Option<Digest32>,
    failed: Option<Digest32>,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The file is the one already in force.
    Unchanged,
    /// A new valid file replaced the keys.
    Loaded,
}

#[derive(Default)]
struct Table {
    by_digest: HashMap<Digest32, Arc<ApiKey>>,
}

/// The current keys, swapped whole on reload.
#[derive(Clone)]
pub struct KeyStore {
    table: Arc<RwLock<Arc<Table>>>,
    /// Content digests of the file last loaded and of the last content that failed: an
    /// unchanged good file is not parsed again, an unchanged bad one is parsed again (it must
    /// never stand for a loaded one) but not reported again.
    seen: Arc<Mutex<Seen>>,
    default_rate: Rate,
}

/// Hex SHA-256 of `key`, as the keys file stores it.
pub fn key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key (256 bits, URL-safe) for a partner.
pub fn generate_key() -> String {
    format!("pk_{}", hex::encode(rand::random::<[u8; 32]>()))
}

impl KeyStore {
    pub fn new(default_rate: Rate) -> Self {
        KeyStore {
            table: Arc::default(),
            seen: Arc::default(),
            default_rate,
        }
    }

    pub fn authenticate(&self, presented: &str) -> Option<Arc<ApiKey>> {
        let digest: Digest32 = Sha256::digest(presented.as_bytes()).into();
        self.current().by_digest.get(&digest).cloned()
    }

    pub fn len(&self) -> usize {
        self.current().by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-reads `path`. On error the previous keys stay in force (see the module comment);
    /// `KeysError::repeated` tells whether this exact content failed before, so a caller
    /// reports each bad content once while it is retried on every call.
    pub fn reload(&self, path: &Path) -> Result<Reload, KeysError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
            path: path.to_owned(),
            source,
        })?;
        let digest: Digest32 = Sha256::digest(text.as_bytes()).into();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.loaded == Some(digest) {
            return Ok(Reload::Unchanged);
        }
        match self.parse(path, &text) {
            Ok(table) => {
                *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
                *seen = Seen {
                    loaded: Some(digest),
                    failed: None,
                };
                Ok(Reload::Loaded)
            }
            Err(KeysError::Invalid { path, detail, .. }) => Err(KeysError::Invalid {
                path,
                detail,
                repeated: seen.failed.replace(digest) == Some(digest),
            }),
            Err(e) => Err(e),
        }
    }

    fn parse(&self, path: &Path, text: &str) -> Result<Table, KeysError> {
        let old = self.current();
        let invalid = |detail: String| KeysError::Invalid {
            path: path.to_owned(),
            detail,
            repeated: false,
        };
        let file: KeysFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut by_digest = HashMap::new();
        let mut ids = std::collections::HashSet::new();
        for entry in file.keys {
            let digest = parse_digest(&entry.sha256).ok_or_else(|| {
                invalid(format!("key `{}`: sha256 must be 64 hex digits", entry.id))
            })?;
            if entry.id.trim().is_empty() || entry.platform.trim().is_empty() {
                return Err(invalid(
                    "every key needs a non-empty id and platform".into(),
                ));
            }
            if !ids.insert(entry.id.clone()) {
                return Err(invalid(format!("key id `{}` appears twice", entry.id)));
            }
            let rate = Rate {
                per_second: entry.per_second.unwrap_or(self.default_rate.per_second),
                burst: entry.burst.unwrap_or(self.default_rate.burst),
            };
            let key = match old.by_digest.get(&digest) {
                // Keep the bucket of an unchanged key, or a reload would refill it.
                Some(key)
                    if key.id == entry.id && key.platform == entry.platform && key.rate == rate =>
                {
                    key.clone()
                }
                _ => Arc::new(ApiKey {
                    limiter: DefaultDirectRateLimiter::direct(quota(rate).ok_or_else(|| {
                        invalid(format!(
                            "key `{}`: per_second and burst must be at least 1",
                            entry.id
                        ))
                    })?),
                    id: entry.id,
                    platform: entry.platform,
                    rate,
                }),
            };
            if by_digest.insert(digest, key).is_some() {
                return Err(invalid("two entries share one sha256".into()));
            }
        }
        Ok(Table { by_digest })
    }

    fn current(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub fn quota(rate: Rate) -> Option<Quota> {
    Some(
        Quota::per_second(NonZeroU32::new(rate.per_second)?)
            .allow_burst(NonZeroU32::new(rate.burst)?),
    )
}

fn parse_digest(hex_digest: &str) -> Option<Digest32> {
    hex::decode(hex_digest.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(text: &str) -> (KeyStore, tempfile::NamedTempFile) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let store = KeyStore::new(Rate {
            per_second: 10,
            burst: 20,
        });
        store.reload(file.path()).unwrap();
        (store, file)
    }

    #[test]
    fn authenticates_by_digest_and_binds_the_platform() {
        let entry = format!(
            "[[keys]]\nid = \"x-1\"\nplatform = \"x\"\nsha256 = \"{}\"\nburst = 50\n",
            key_digest("secret-a")
        );
        let (store, _file) = store_with(&entry);
        let key = store.authenticate("secret-a").expect("known key");
        assert_eq!((key.id.as_str(), key.platform.as_str()), ("x-1", "x"));
        assert_eq!(
            key.rate,
            Rate {
                per_second: 10,
                burst: 50
            }
        );
        assert!(store.authenticate("secret-b").is_none());
        assert!(store.authenticate(&key_digest("secret-a")).is_none());
    }

    #[test]
    fn a_broken_file_keeps_the_previous_keys() {
        let entry = format!(
            "[[keys]]\nid = \"x-1\"\nplatform = \"x\"\nsha256 = \"{}\"\n",
            key_digest("secret-a")
        );
        let (store, file) = store_with(&entry);
        std::fs::write(
            file.path(),
            "[[keys]]\nid = \"x-1\"\nplatform = \"x\"\nsha256 = \"abc\"\n",
        )
        .unwrap();
        let error = store.reload(file.path()).unwrap_err();
        assert!(!error.repeated());
        assert!(
            error
                .to_string()
                .ends_with("key `x-1`: sha256 must be 64 hex digits"),
            "{error}"
        );
        assert!(store.authenticate("secret-a").is_some());
        // Parsed again on the next reload (never taken for loaded), reported as a repeat.
        assert!(store.reload(file.path()).unwrap_err().repeated());
    }

    #[test]
    fn a_key_revoked_by_a_broken_edit_is_refused_once_the_file_is_fixed() {
        let a = format!(
            "[[keys]]\nid = \"a\"\nplatform = \"x\"\nsha256 = \"{}\"\n",
            key_digest("ka")
        );
        let b = format!(
            "[[keys]]\nid = \"b\"\nplatform = \"x\"\nsha256 = \"{}\"\n",
            key_digest("kb")
        );
        let (store, file) = store_with(&format!("{a}{b}"));
        // The edit revoking `b` is broken: the last valid set (a and b) stays in force.
        std::fs::write(file.path(), format!("{a}[[keys]]\nid = ")).unwrap();
        assert!(store.reload(file.path()).is_err());
        assert!(store.authenticate("kb").is_some());
        std::fs::write(file.path(), &a).unwrap();
        assert_eq!(store.reload(file.path()).unwrap(), Reload::Loaded);
        assert!(store.authenticate("kb").is_none(), "revoked key refused");
        assert!(store.authenticate("ka").is_some());
        // Going back to content that failed before is parsed again (and fails again).
        std::fs::write(file.path(), format!("{a}[[keys]]\nid = ")).unwrap();
        assert!(!store.reload(file.path()).unwrap_err().repeated());
        assert!(store.authenticate("ka").is_some());
    }

    #[test]
    fn rotation_replaces_keys_and_unchanged_keys_keep_their_bucket() {
        let a = format!(
            "[[keys]]\nid = \"a\"\nplatform = \"x\"\nsha256 = \"{}\"\n",
            key_digest("ka")
        );
        let (store, file) = store_with(&a);
        let before = store.authenticate("ka").unwrap();
        let b = format!(
            "[[keys]]\nid = \"b\"\nplatform = \"tiktok\"\nsha256 = \"{}\"\n",
            key_digest("kb")
        );
        std::fs::write(file.path(), format!("{a}{b}")).unwrap();
        assert_eq!(store.reload(file.path()).unwrap(), Reload::Loaded);
        assert!(Arc::ptr_eq(&before, &store.authenticate("ka").unwrap()));
        std::fs::write(file.path(), &b).unwrap();
        assert_eq!(store.reload(file.path()).unwrap(), Reload::Loaded);
        assert_eq!(store.reload(file.path()).unwrap(), Reload::Unchanged);
        assert!(store.authenticate("ka").is_none());
        assert_eq!(store.authenticate("kb").unwrap().platform, "tiktok");
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn generated_keys_are_256_bit_and_distinct() {
        let (a, b) = (generate_key(), generate_key());
        assert_eq!(a.len(), 3 + 64);
        assert_ne!(a, b);
    }
}
