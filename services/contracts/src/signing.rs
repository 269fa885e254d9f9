//! Reviewer decisions signed with Ed25519: the dashboard signs, the takedown service verifies.
//! One place defines the signed bytes, so a field added to [`ReviewDecision`] is covered
//! without anyone remembering to add it here.
//!
//! The signed bytes are the decision's canonical JSON without `signature`: object keys sorted,
//! no whitespace, and members that are `null`, `[]` or `{}` left out (a reader fills them in with
//! the same default, so a verifier that knows a new defaulted field still agrees with a signer
//! that did not send it).
//!
//! Key files are TOML. The dashboard's signing key (one Secret, readable by the dashboard only):
//! `key_id = "..."`, `secret_key = "<base64 of the 32-byte seed>"`. The takedown service's
//! verifying keys (public; several during a rotation): `[keys]` with `"<key id>" = "<base64 of
//! the 32-byte public key>"` lines.

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ReviewDecision;

/// Longest key id accepted: it is shown in audit entries and logs.
const MAX_KEY_ID: usize = 64;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Why a decision is not believed. The text goes into the audit entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("decision is not signed")]
    Unsigned,
    #[error("decision signed by unknown key {0:?}")]
    UnknownKey(String),
    #[error("decision signature is not 64 base64-encoded bytes")]
    Malformed,
    #[error("decision signature does not match its content (key {0:?})")]
    Mismatch(String),
}

/// Key id and value of a decision's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DecisionSignature {
    /// Which verifying key checks it (several are held during a key rotation).
    pub key_id: String,
    /// Base64 of the 64-byte Ed25519 signature over the decision's canonical JSON.
    pub value: String,
}

/// The bytes a decision's signature covers: its canonical JSON without `signature`.
pub fn canonical_bytes(decision: &ReviewDecision) -> Vec<u8> {
    let mut value = serde_json::to_value(decision).expect("a decision serialises");
    if let Value::Object(map) = &mut value {
        map.remove("signature");
    }
    let mut out = Vec::new();
    write_canonical(&value, &mut out);
    out
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            // Sorted here, whatever order serde_json's map keeps (its `preserve_order` feature
            // may be switched on by any crate in the build).
            let mut members: Vec<(&String, &Value)> =
                map.iter().filter(|(_, v)| !is_empty(v)).collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(key).expect("a string serialises"));
                out.push(b':');
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend(serde_json::to_vec(scalar).expect("a scalar serialises")),
    }
}

/// The dashboard's signing key.
pub struct DecisionSigner {
    key_id: String,
    key: SigningKey,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SigningKeyFile {
    key_id: String,
    secret_key: String,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
struct VerifyingKeysFile {
    keys: BTreeMap<String, String>,
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn invalid(path: &str, message: impl Into<String>) -> KeyError {
    KeyError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn key_bytes(text: &str, what: &str, origin: &str) -> Result<[u8; 32], KeyError> {
    BASE64
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| invalid(origin, format!("{what} is not 32 base64-encoded bytes")))
}

fn check_key_id(key_id: &str, origin: &str) -> Result<(), KeyError> {
    let ok = !key_id.is_empty()
        && key_id.len() <= MAX_KEY_ID
        && key_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            origin,
            format!("key id {key_id:?} must be 1 to {MAX_KEY_ID} of A-Z a-z 0-9 - _ ."),
        ))
    }
}

impl DecisionSigner {
    /// A new random key (the operating system's randomness, through `rand`'s CSPRNG).
    pub fn generate(key_id: &str) -> Result<Self, KeyError> {
        check_key_id(key_id, "new key")?;
        Ok(DecisionSigner {
            key_id: key_id.to_owned(),
            key: SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
        })
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let origin = path.display().to_string();
        Self::parse(&read(path)?, &origin)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, KeyError> {
        let file: SigningKeyFile =
            toml::from_str(text).map_err(|e| invalid(origin, e.message()))?;
        check_key_id(&file.key_id, origin)?;
        let seed = key_bytes(&file.secret_key, "secret_key", origin)?;
        Ok(DecisionSigner {
            key_id: file.key_id,
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The signing key file's text (for the dashboard's Secret only).
    pub fn to_toml(&self) -> String {
        toml::to_string(&SigningKeyFile {
            key_id: self.key_id.clone(),
            secret_key: BASE64.encode(self.key.to_bytes()),
        })
        .expect("a key file serialises")
    }

    /// Base64 of the public key, for the verifying keys file.
    pub fn public_key(&self) -> String {
        BASE64.encode(self.key.verifying_key().to_bytes())
    }

    /// Signs every field of `decision` (replacing any signature it had).
    pub fn sign(&self, decision: &mut ReviewDecision) {
        let signature = self.key.sign(&canonical_bytes(decision));
        decision.signature = Some(DecisionSignature {
            key_id: self.key_id.clone(),
            value: BASE64.encode(signature.to_bytes()),
        });
    }
}

/// The public keys decisions are checked against, by key id.
#[derive(Debug, Clone, Default)]
pub struct DecisionVerifier {
    keys: BTreeMap<String, VerifyingKey>,
}

impl DecisionVerifier {
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let origin = path.display().to_string();
        Self::parse(&read(path)?, &origin)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, KeyError> {
        let file: VerifyingKeysFile =
            toml::from_str(text).map_err(|e| invalid(origin, e.message()))?;
        if file.keys.is_empty() {
            return Err(invalid(
                origin,
                "[keys] lists no key: no decision could be verified",
            ));
        }
        let mut keys = BTreeMap::new();
        for (key_id, text) in &file.keys {
            check_key_id(key_id, origin)?;
            let bytes = key_bytes(text, &format!("key {key_id:?}"), origin)?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|_| invalid(origin, format!("key {key_id:?} is not an Ed25519 point")))?;
            keys.insert(key_id.clone(), key);
        }
        Ok(DecisionVerifier { keys })
    }

    /// `text` (a verifying keys file, possibly empty) with `signer`'s public key added.
    pub fn add_to(text: &str, signer: &DecisionSigner, origin: &str) -> Result<String, KeyError> {
        let mut file: VerifyingKeysFile = if text.trim().is_empty() {
            VerifyingKeysFile::default()
        } else {
            toml::from_str(text).map_err(|e| invalid(origin, e.message()))?
        };
        if file.keys.contains_key(signer.key_id()) {
            return Err(invalid(
                origin,
                format!("already holds a key {:?}", signer.key_id()),
            ));
        }
        file.keys
            .insert(signer.key_id().to_owned(), signer.public_key());
        Ok(toml::to_string(&file).expect("a key file serialises"))
    }

    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Checks that `decision` is signed, by a key held here, over exactly its content.
    pub fn verify(&self, decision: &ReviewDecision) -> Result<(), SignatureError> {
        let signature = decision
            .signature
            .as_ref()
            .ok_or(SignatureError::Unsigned)?;
        let key = self
            .keys
            .get(&signature.key_id)
            .ok_or_else(|| SignatureError::UnknownKey(signature.key_id.clone()))?;
        let bytes = BASE64
            .decode(&signature.value)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or(SignatureError::Malformed)?;
        // Strict: no malleable (non-canonical) signatures or weak keys.
        key.verify_strict(&canonical_bytes(decision), &Signature::from_bytes(&bytes))
            .map_err(|_| SignatureError::Mismatch(signature.key_id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DecisionAction, PostRef};
    use proptest::prelude::*;

    fn pair() -> (DecisionSigner, DecisionVerifier) {
        let signer = DecisionSigner::generate("k1").unwrap();
        let keys = DecisionVerifier::add_to("", &signer, "test").unwrap();
        (signer, DecisionVerifier::parse(&keys, "test").unwrap())
    }

    #[test]
    fn canonical_bytes_sort_keys_and_leave_out_signature_and_empty_members() {
        let (signer, _) = pair();
        let mut d = ReviewDecision::example();
        signer.sign(&mut d);
        assert_eq!(
            String::from_utf8(canonical_bytes(&d)).unwrap(),
            r#"{"action":"confirm","decided_at":"2024-02-13T09:00:00Z","decision_id":"d1","narrative_id":"n-1","reviewer":"rina","revision":3,"schema_version":1,"shown_posts":[{"platform":"x","post_id":"a1"}]}"#
        );
    }

    #[test]
    fn each_kind_of_forgery_is_named() {
        let (signer, verifier) = pair();
        let mut d = ReviewDecision::example();
        assert_eq!(verifier.verify(&d), Err(SignatureError::Unsigned));
        signer.sign(&mut d);
        assert_eq!(verifier.verify(&d), Ok(()));
        let other = DecisionSigner::generate("k2").unwrap();
        let mut foreign = ReviewDecision::example();
        other.sign(&mut foreign);
        assert_eq!(
            verifier.verify(&foreign),
            Err(SignatureError::UnknownKey("k2".into()))
        );
        // A key id it knows, but another key's signature.
        foreign.signature.as_mut().unwrap().key_id = "k1".into();
        assert_eq!(
            verifier.verify(&foreign),
            Err(SignatureError::Mismatch("k1".into()))
        );
        d.signature.as_mut().unwrap().value = "AAAA".into();
        assert_eq!(verifier.verify(&d), Err(SignatureError::Malformed));
    }

    #[test]
    fn a_signer_survives_its_key_file() {
        let (signer, verifier) = pair();
        let loaded = DecisionSigner::parse(&signer.to_toml(), "test").unwrap();
        let mut d = ReviewDecision::example();
        loaded.sign(&mut d);
        assert_eq!(verifier.verify(&d), Ok(()));
        assert_eq!(loaded.key_id(), "k1");
    }

    #[test]
    fn key_files_are_checked() {
        let err = |r: Result<DecisionVerifier, KeyError>| r.unwrap_err().to_string();
        assert_eq!(
            err(DecisionVerifier::parse("[keys]\n", "keys.toml")),
            "key file keys.toml: [keys] lists no key: no decision could be verified"
        );
        assert_eq!(
            err(DecisionVerifier::parse(
                "[keys]\nk1 = \"abc\"\n",
                "keys.toml"
            )),
            "key file keys.toml: key \"k1\" is not 32 base64-encoded bytes"
        );
        let (signer, _) = pair();
        let keys = DecisionVerifier::add_to("", &signer, "keys.toml").unwrap();
        assert_eq!(
            DecisionVerifier::add_to(&keys, &signer, "keys.toml")
                .unwrap_err()
                .to_string(),
            "key file keys.toml: already holds a key \"k1\""
        );
        assert!(DecisionSigner::generate("a b").is_err());
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-z0-9:\\- ]{1,12}"
    }

    proptest! {
        /// Any change to any field (the complaint references a reviewer confirms included), the signature's key id aside, breaks the signature.
        #[test]
        fn any_field_change_breaks_the_signature(
            field in 0usize..10,
            new in text(),
            number in 0u64..1000,
        ) {
            let (signer, verifier) = pair();
            let mut d = ReviewDecision::example();
            signer.sign(&mut d);
            let before = d.clone();
            match field {
                0 => d.schema_version = number as u32 + 2,
                1 => d.decision_id = format!("{}{new}", d.decision_id),
                2 => d.narrative_id = format!("{}{new}", d.narrative_id),
                3 => d.action = DecisionAction::Reject,
                4 => d.reason = Some(new),
                5 => d.reviewer = format!("{}{new}", d.reviewer),
                6 => d.decided_at = format!("{}{new}", d.decided_at),
                7 => d.revision = d.revision + 1 + number,
                8 => d.confirmed_references.push(PostRef { platform: "x".into(), post_id: new }),
                _ => d.shown_posts.push(PostRef { platform: "x".into(), post_id: new }),
            }
            prop_assert_ne!(&d, &before);
            prop_assert_eq!(
                verifier.verify(&d),
                Err(SignatureError::Mismatch("k1".into()))
            );
        }
    }
}
