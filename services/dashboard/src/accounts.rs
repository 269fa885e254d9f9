//! Reviewer and viewer accounts: a TOML file (a mounted Secret in Kubernetes) of user names,
//! argon2 PHC password hashes and roles. Passwords themselves are never stored anywhere.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May confirm or reject review items.
    Reviewer,
    /// May look at the review desk, not decide.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reviewer => "reviewer",
            Self::Viewer => "viewer",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub user: String,
    /// Argon2 PHC string, as `patroli dashboard-user` prints it.
    pub password_hash: String,
    pub role: Role,
}

impl Account {
    /// Identifies the password in force: a session remembers it, so a changed password (a new
    /// hash in the file) ends the sessions signed in with the old one.
    pub fn credential(&self) -> [u8; 32] {
        Sha256::digest(self.password_hash.as_bytes()).into()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    #[serde(default)]
    users: Vec<Account>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("cannot read the accounts file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the accounts file {path} is not valid: {source}")]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("the accounts file {path}: user `{user}` {problem}")]
    Account {
        path: PathBuf,
        user: String,
        problem: String,
    },
}

#[derive(Debug, Default)]
pub struct Accounts {
    by_user: HashMap<String, Account>,
    /// Checked when the user is unknown, so a wrong user name takes as long as a wrong password
    /// and timing does not tell which user names exist.
    decoy: String,
}

impl Accounts {
    pub fn parse(text: &str, path: &Path) -> Result<Self, AccountsError> {
        let file: AccountsFile = toml::from_str(text).map_err(|source| AccountsError::Toml {
            path: path.to_owned(),
            source,
        })?;
        let mut accounts = Accounts::empty();
        for account in file.users {
            let problem = |problem: &str| AccountsError::Account {
                path: path.to_owned(),
                user: account.user.clone(),
                problem: problem.to_owned(),
            };
            if account.user.trim().is_empty() {
                return Err(problem("has an empty name"));
            }
            if PasswordHash::new(&account.password_hash).is_err() {
                return Err(problem(
                    "has a password_hash that is not an argon2 PHC string (make one with `patroli dashboard-user`)",
                ));
            }
            if accounts.by_user.contains_key(&account.user) {
                return Err(problem("is listed twice"));
            }
            accounts.by_user.insert(account.user.clone(), account);
        }
        Ok(accounts)
    }

    /// No accounts: nobody can sign in.
    pub fn empty() -> Self {
        Accounts {
            by_user: HashMap::new(),
            decoy: hash_password("decoy password"),
        }
    }

    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    pub fn get(&self, user: &str) -> Option<&Account> {
        self.by_user.get(user)
    }

    /// The account when `password` is its password. Slow on purpose (argon2): call it off the
    /// async workers.
    pub fn verify(&self, user: &str, password: &str) -> Option<&Account> {
        let account = self.by_user.get(user);
        let hash = account.map_or(self.decoy.as_str(), |a| a.password_hash.as_str());
        let matches = PasswordHash::new(hash).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        });
        account.filter(|_| matches)
    }
}

/// The accounts in force, re-read from their file while the service runs, so adding or removing
/// a reviewer (a changed Secret) takes effect without a restart.
pub struct AccountStore {
    current: RwLock<Arc<Accounts>>,
    /// The file's text when last loaded: an unchanged file is not parsed again.
    text: Mutex<String>,
}

impl AccountStore {
    pub fn new(accounts: Accounts) -> Self {
        AccountStore {
            current: RwLock::new(Arc::new(accounts)),
            text: Mutex::new(String::new()),
        }
    }

    pub fn load(path: &Path) -> Result<Self, AccountsError> {
        let store = AccountStore::new(Accounts::empty());
        store.reload(path)?;
        Ok(store)
    }

    pub fn current(&self) -> Arc<Accounts> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads `path` again; `Ok(true)` when the accounts changed. On an error the accounts in
    /// force stay.
    pub fn reload(&self, path: &Path) -> Result<bool, AccountsError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccountsError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut last = self.text.lock().unwrap_or_else(|p| p.into_inner());
        if *last == text {
            return Ok(false);
        }
        let accounts = Accounts::parse(&text, path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(accounts);
        *last = text;
        Ok(true)
    }
}

/// An argon2id PHC string for `password` with a fresh random salt.
pub fn hash_password(password: &str) -> String {
    let salt =
        SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        let text =
            format!("[[users]]\nuser = \"ana\"\npassword_hash = \"{hash}\"\nrole = \"reviewer\"\n");
        let accounts = Accounts::parse(&text, Path::new("a.toml")).unwrap();
        assert_eq!(
            accounts.verify("ana", "correct horse").unwrap().role,
            Role::Reviewer
        );
        assert!(accounts.verify("ana", "wrong").is_none());
        assert!(accounts.verify("bob", "correct horse").is_none());
    }

    #[test]
    fn a_bad_hash_names_the_user() {
        let text = "[[users]]\nuser = \"ana\"\npassword_hash = \"hunter2\"\nrole = \"viewer\"\n";
        let err = Accounts::parse(text, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the accounts file a.toml: user `ana` has a password_hash that is not an argon2 PHC string (make one with `patroli dashboard-user`)"
        );
    }

    #[test]
    fn a_changed_file_replaces_the_accounts_and_a_broken_one_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.toml");
        let entry = |user: &str| {
            format!(
                "[[users]]\nuser = \"{user}\"\npassword_hash = \"{}\"\nrole = \"viewer\"\n",
                hash_password("pw")
            )
        };
        std::fs::write(&path, entry("ana")).unwrap();
        let store = AccountStore::load(&path).unwrap();
        assert!(store.current().get("ana").is_some());
        assert!(!store.reload(&path).unwrap(), "unchanged");
        std::fs::write(&path, entry("bob")).unwrap();
        assert!(store.reload(&path).unwrap());
        assert!(store.current().get("ana").is_none());
        std::fs::write(&path, "[[users]]\nuser = ").unwrap();
        assert!(store.reload(&path).is_err());
        assert!(
            store.current().get("bob").is_some(),
            "the previous accounts stay"
        );
    }

    #[test]
    fn an_unknown_role_is_refused() {
        let hash = hash_password("x");
        let text =
            format!("[[users]]\nuser = \"ana\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n");
        let err = Accounts::parse(&text, Path::new("a.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `admin`"), "{err}");
    }
}
