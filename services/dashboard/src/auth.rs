//! Who is asking: a signed-in session (cookie) or, when configured, the user a trusted reverse
//! proxy names in a header; and the refusals the review desk answers with.

use axum::http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

use crate::accounts::Role;
use crate::app::App;
use crate::sessions::{cookie, same_secret, Lookup, COOKIE};

/// A refusal: its HTTP status, a stable machine-readable code and the sentence people see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn sign_in_first() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "sign_in_required",
            "sign in first",
        )
    }

    pub fn session_expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "session_expired",
            "your session expired: sign in again",
        )
    }
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    /// The session cookie's token; `None` when the proxy header identified the caller.
    pub session: Option<String>,
}

pub fn caller(app: &App, headers: &HeaderMap) -> Result<Caller, Problem> {
    if let Some(name) = &app.config.trusted_user_header {
        if let Some(user) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            let accounts = app.accounts.current();
            let account = accounts.get(user).ok_or_else(|| {
                Problem::new(
                    StatusCode::FORBIDDEN,
                    "unknown_user",
                    format!("`{user}` has no dashboard account"),
                )
            })?;
            return Ok(Caller {
                user: account.user.clone(),
                role: account.role,
                csrf: proxy_csrf(&app.csrf_secret, &account.user),
                session: None,
            });
        }
    }
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie(v, COOKIE))
        .ok_or_else(Problem::sign_in_first)?;
    match app.sessions.lookup(token) {
        Lookup::Valid(session) => {
            // An account removed from the file, or given a new password, ends its sessions; a
            // changed role applies at once.
            let accounts = app.accounts.current();
            let Some(role) = accounts
                .get(&session.user)
                .filter(|a| a.credential() == session.credential)
                .map(|a| a.role)
            else {
                app.sessions.remove(token);
                return Err(Problem::sign_in_first());
            };
            Ok(Caller {
                user: session.user,
                role,
                csrf: session.csrf,
                session: Some(token.to_owned()),
            })
        }
        Lookup::Expired => Err(Problem::session_expired()),
        Lookup::Unknown => Err(Problem::sign_in_first()),
    }
}

/// Who reads the overview and the aggregates: anyone when `public_aggregates` is on, otherwise
/// only the signed in. Post texts go to the signed in only.
pub enum Reader {
    SignedIn,
    Anonymous,
}

impl Reader {
    pub fn of(app: &App, headers: &HeaderMap) -> Result<Self, Problem> {
        match caller(app, headers) {
            Ok(_) => Ok(Reader::SignedIn),
            Err(_) if app.config.public_aggregates => Ok(Reader::Anonymous),
            Err(problem) => Err(problem),
        }
    }

    pub fn sees_texts(&self) -> bool {
        matches!(self, Reader::SignedIn)
    }
}

/// The CSRF token of a proxy-identified user: without a session to hold a random one, it is
/// derived from a per-process secret, so only pages this process served carry it.
fn proxy_csrf(secret: &[u8; 32], user: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(secret);
    digest.update(user.as_bytes());
    hex::encode(digest.finalize())
}

/// Every POST form carries the session's CSRF token.
pub fn check_csrf(caller: &Caller, sent: Option<&str>) -> Result<(), Problem> {
    match sent.filter(|s| !s.is_empty()) {
        None => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "csrf_missing",
            "missing CSRF token",
        )),
        Some(sent) if same_secret(sent, &caller.csrf) => Ok(()),
        Some(_) => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "csrf_mismatch",
            "CSRF token does not match this session",
        )),
    }
}

pub fn session_cookie(token: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

pub fn clear_cookie(secure: bool) -> String {
    session_cookie("", 0, secure)
}
