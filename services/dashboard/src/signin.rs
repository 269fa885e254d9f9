//! Sign-in: the form, its limits (per address, per typed name, a bounded number of argon2
//! checks at once), the session and device cookies, and logs that never hold what was typed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::auth::{session_cookie, Problem};
use crate::desk::refuse;
use crate::pages;
use crate::sessions::cookie;
use crate::throttle::{retry_after_secs, DEVICE_COOKIE, DEVICE_TTL};

/// How often buckets that are full again are forgotten.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

pub async fn login_page() -> Html<String> {
    Html(pages::login(None))
}

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
}

pub async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    // The sign-in form has no session, so no CSRF token, to protect it: a browser's Origin
    // header tells a forged cross-site sign-in (into the forger's account) from our own form.
    if let Err(problem) = same_origin(&headers) {
        return refuse(&app, problem);
    }
    let Ok(Form(form)) = form else {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_form",
            "the sign-in form needs a user and a password",
        )
        .html();
    };
    let address = app.throttle.client(peer, &headers);
    let refused = |outcome: &'static str| {
        app.shared
            .metrics
            .sign_ins
            .with_label_values(&[outcome])
            .inc();
        log_refused(outcome, &app.throttle.tag(&form.user), address);
    };
    let known_device = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie(v, DEVICE_COOKIE))
        .is_some_and(|device| app.throttle.is_device_of(device, &form.user));
    if let Err((limited, wait)) = app.throttle.admit(address, &form.user, known_device) {
        refused(limited.outcome());
        let secs = retry_after_secs(wait);
        return login_refused(
            StatusCode::TOO_MANY_REQUESTS,
            secs,
            &format!("too many sign-in attempts: try again in {secs} seconds"),
        );
    }
    // Never queue: a flood waiting here would hold its connections and everyone's sign-in.
    let Ok(permit) = app.password_checks.try_acquire() else {
        refused("busy");
        return login_refused(
            StatusCode::SERVICE_UNAVAILABLE,
            1,
            "sign-in is busy: try again in a moment",
        );
    };
    let checker = app.clone();
    let (user, password) = (form.user.clone(), form.password);
    let verified = tokio::task::spawn_blocking(move || {
        checker
            .accounts
            .current()
            .verify(&user, &password)
            .map(|a| (a.user.clone(), a.role, a.credential()))
    })
    .await
    .ok()
    .flatten();
    drop(permit);
    let Some((user, role, credential)) = verified else {
        refused("wrong_password");
        let page = pages::login(Some("wrong user name or password"));
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    };
    let metrics = &app.shared.metrics;
    metrics.sign_ins.with_label_values(&["ok"]).inc();
    let (token, _) = app.sessions.create(&user, credential);
    metrics.sessions.set(app.sessions.active() as i64);
    tracing::info!(%user, role = role.as_str(), %address, "signed in");
    let secure = app.config.cookie_secure;
    let session = session_cookie(&token, app.sessions.ttl().as_secs(), secure);
    let device = device_cookie(&app.throttle.device_cookie(&user), secure);
    (
        AppendHeaders([(header::SET_COOKIE, session), (header::SET_COOKIE, device)]),
        Redirect::to("/review"),
    )
        .into_response()
}

/// A refused sign-in in the log: why, from where, and a keyed tag of the typed name; never the
/// name itself (people type their password into the user box) nor the password.
fn log_refused(reason: &str, user_tag: &str, address: IpAddr) {
    tracing::info!(reason, user_tag, %address, "sign-in refused");
}

fn login_refused(status: StatusCode, retry_after_secs: u64, message: &str) -> Response {
    (
        status,
        [(header::RETRY_AFTER, retry_after_secs.to_string())],
        Html(pages::login(Some(message))),
    )
        .into_response()
}

/// Sent to /login only; marks this browser as one `user` signed in from.
fn device_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{DEVICE_COOKIE}={value}; Path=/login; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        DEVICE_TTL.as_secs()
    )
}

/// Refuses a request whose `Origin` (browsers send it with every POST) is another site. Behind
/// an ingress that rewrites `Host`, `X-Forwarded-Host` names the public one; a cross-site form
/// can set neither.
fn same_origin(headers: &HeaderMap) -> Result<(), Problem> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(origin) = header("origin") else {
        return Ok(());
    };
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    let ours = [header("host"), header("x-forwarded-host")];
    if ours
        .into_iter()
        .flatten()
        .any(|host| origin_host.eq_ignore_ascii_case(host))
    {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            "cross-site sign-in refused",
        ))
    }
}

/// Forgets full buckets every minute until `stop`, so memory follows the attempts of the last
/// refill periods, not every name and address ever typed.
pub async fn forget_idle(app: Arc<App>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(FORGET_IDLE_EVERY) => app.throttle.forget_idle(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_refused_sign_in_logs_the_reason_and_address_but_not_what_was_typed() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let throttle = crate::throttle::Throttle::new(&Default::default(), false);
        let typed = "correct-horse-battery";
        let tag = throttle.tag(typed);
        tracing::subscriber::with_default(subscriber, || {
            log_refused("wrong_password", &tag, "192.0.2.7".parse().unwrap());
        });
        let line = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let json: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(
            json["fields"],
            serde_json::json!({
                "message": "sign-in refused", "reason": "wrong_password",
                "user_tag": tag, "address": "192.0.2.7",
            })
        );
        assert!(!line.contains(typed), "{line}");
    }

    #[test]
    fn the_device_cookie_is_sent_to_the_sign_in_form_only() {
        assert_eq!(
            device_cookie("ab12", true),
            "patroli_device=ab12; Path=/login; HttpOnly; SameSite=Strict; Max-Age=2592000; Secure"
        );
    }
}
