//! Server-side sessions: a random token in an HttpOnly, SameSite=Strict cookie maps to the user,
//! their role, a per-session CSRF token and an absolute expiry. Expired sessions are kept for a
//! while so the user is told their session expired rather than that they never signed in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "patroli_session";

#[derive(Debug, Clone)]
pub struct Session {
    /// The account; its role is looked up on every request, so a changed role applies at once.
    pub user: String,
    /// The account's [`crate::accounts::Account::credential`] at sign-in.
    pub credential: [u8; 32],
    pub csrf: String,
    expires: Instant,
}

pub enum Lookup {
    Valid(Session),
    Expired,
    Unknown,
}

pub struct Sessions {
    ttl: Duration,
    by_token: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Sessions {
            ttl,
            by_token: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session; returns its cookie token.
    pub fn create(&self, user: &str, credential: [u8; 32]) -> (String, Session) {
        let token = random_token();
        let session = Session {
            user: user.to_owned(),
            credential,
            csrf: random_token(),
            expires: Instant::now() + self.ttl,
        };
        let mut sessions = self.lock();
        self.forget_old(&mut sessions);
        sessions.insert(token.clone(), session.clone());
        (token, session)
    }

    pub fn lookup(&self, token: &str) -> Lookup {
        match self.lock().get(token) {
            Some(session) if session.expires > Instant::now() => Lookup::Valid(session.clone()),
            Some(_) => Lookup::Expired,
            None => Lookup::Unknown,
        }
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Ends every session `still_good` refuses; returns how many ended.
    pub fn end_unless(&self, still_good: impl Fn(&Session) -> bool) -> usize {
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|_, s| still_good(s));
        before - sessions.len()
    }

    /// Sessions not yet expired.
    pub fn active(&self) -> usize {
        let now = Instant::now();
        self.lock().values().filter(|s| s.expires > now).count()
    }

    /// Drops sessions that expired more than a ttl ago (by then "expired" is old news).
    fn forget_old(&self, sessions: &mut HashMap<String, Session>) {
        let now = Instant::now();
        sessions.retain(|_, s| s.expires + self.ttl > now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_token.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim())
    })
}

/// Compares secrets in time independent of where they first differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_session_expires_after_its_ttl() {
        let sessions = Sessions::new(Duration::from_millis(50));
        let (token, session) = sessions.create("ana", [1; 32]);
        assert_eq!(session.csrf.len(), 64);
        assert!(matches!(sessions.lookup(&token), Lookup::Valid(s) if s.user == "ana"));
        std::thread::sleep(Duration::from_millis(80));
        assert!(matches!(sessions.lookup(&token), Lookup::Expired));
        assert!(matches!(sessions.lookup("nope"), Lookup::Unknown));
        assert_eq!(sessions.active(), 0);
    }

    #[test]
    fn sessions_end_when_their_credential_is_refused() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (ana, _) = sessions.create("ana", [1; 32]);
        let (bob, _) = sessions.create("bob", [2; 32]);
        assert_eq!(sessions.end_unless(|s| s.credential != [1; 32]), 1);
        assert!(matches!(sessions.lookup(&ana), Lookup::Unknown));
        assert!(matches!(sessions.lookup(&bob), Lookup::Valid(s) if s.user == "bob"));
        assert_eq!(sessions.active(), 1);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = "theme=dark; patroli_session_old=1; patroli_session=abc ; x=y=z";
        assert_eq!(cookie(header, COOKIE), Some("abc"));
        assert_eq!(cookie(header, "x"), Some("y=z"));
        assert_eq!(cookie(header, "missing"), None);
    }

    proptest! {
        #[test]
        fn any_cookie_header_parses_without_panic(header in ".*", name in "[a-z_]{1,12}") {
            let _ = cookie(&header, &name);
        }

        #[test]
        fn a_cookie_written_is_read_back(
            others in proptest::collection::vec(("[a-z]{1,8}", "[A-Za-z0-9]{0,12}"), 0..4),
            value in "[a-f0-9]{1,64}",
        ) {
            let mut pairs: Vec<String> = others.iter().map(|(k, v)| format!("{k}={v}")).collect();
            pairs.insert(pairs.len() / 2, format!("{COOKIE}={value}"));
            let header = pairs.join("; ");
            prop_assert_eq!(cookie(&header, COOKIE), Some(value.as_str()));
        }

        #[test]
        fn secrets_compare_like_equality(a in "[a-f0-9]{0,8}", b in "[a-f0-9]{0,8}") {
            prop_assert_eq!(same_secret(&a, &b), a == b);
        }
    }
}
