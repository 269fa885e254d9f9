//! The pages people use: the live overview and the review desk (sign-in: signin.rs) where reviewers
//! confirm or reject narratives, or release a confirmed narrative's held copies (rules.rs: which
//! decision may go out); each decision goes to review.decisions.v1 under their name.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use patroli_contracts::{
    now_rfc3339, PostRef, ReviewDecision, MAX_COMPLAINT_REFERENCES, SCHEMA_VERSION,
};
use rdkafka::producer::FutureRecord;
use serde::Deserialize;

use crate::accounts::Role;
use crate::app::App;
use crate::auth::{caller, check_csrf, clear_cookie, Caller, Problem, Reader};
use crate::rules::{self, Ask, RELEASE_REASON};
use crate::{desk_page, pages};

/// Longest reason a reviewer may give.
pub const MAX_REASON_CHARS: usize = 2_000;

/// The overview shell; without public aggregates, people who have not signed in go to sign-in.
pub async fn overview_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match Reader::of(&app, &headers) {
        Ok(_) => Html(pages::overview()).into_response(),
        Err(_) => Redirect::to("/login").into_response(),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let caller = match caller(&app, &headers) {
        Ok(caller) => caller,
        Err(problem) => return refuse(&app, problem),
    };
    let sent = form.ok().and_then(|Form(f)| f.csrf);
    if let Err(problem) = check_csrf(&caller, sent.as_deref()) {
        return refuse(&app, problem);
    }
    if let Some(token) = &caller.session {
        app.sessions.remove(token);
    }
    app.shared
        .metrics
        .sessions
        .set(app.sessions.active() as i64);
    let cookie = clear_cookie(app.config.cookie_secure);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

pub async fn review_page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match caller(&app, &headers) {
        Ok(caller) => {
            Html(app.shared.read(|view| desk_page::review(view, &caller))).into_response()
        }
        // A person without a session belongs on the sign-in page, told why.
        Err(problem) => {
            (problem.status, Html(pages::login(Some(&problem.message)))).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct DecisionForm {
    narrative_id: String,
    action: String,
    reason: Option<String>,
    csrf: Option<String>,
    /// The ticked complaint references (`reference.<n>`, see [`desk_page::REFERENCE_FIELD`]) and
    /// any other field, which is ignored.
    #[serde(flatten)]
    fields: std::collections::BTreeMap<String, String>,
}

pub async fn decide(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    match decision(&app, &headers, form).await {
        Ok(decision) => {
            let to = format!("/review#n-{}", fragment(&decision.narrative_id));
            Redirect::to(&to).into_response()
        }
        Err(problem) => refuse(&app, problem),
    }
}

pub(crate) fn refuse(app: &App, problem: Problem) -> Response {
    app.shared
        .metrics
        .refusals
        .with_label_values(&[problem.code])
        .inc();
    problem.html()
}

async fn decision(
    app: &App,
    headers: &HeaderMap,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Result<ReviewDecision, Problem> {
    let caller = caller(app, headers)?;
    let Form(form) = form.map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_form",
            "the decision form needs narrative_id, action and csrf",
        )
    })?;
    check_csrf(&caller, form.csrf.as_deref())?;
    // Taken before the view is judged and held until the view shows the decision sent: a
    // second request judges only after the first is shown (or failed), never on the same view.
    let _claim = app.deciding.take(&form.narrative_id)?;
    let (ask, decision) = validate(app, &caller, form)?;
    publish(app, &decision).await?;
    app.shared
        .metrics
        .decisions
        .with_label_values(&[ask.as_str()])
        .inc();
    tracing::info!(
        reviewer = %decision.reviewer,
        narrative = %decision.narrative_id,
        action = ask.as_str(),
        "decision published"
    );
    // Shown at once; the same decision read back from the topic changes nothing.
    let shown = decision.clone();
    app.shared.update(|view, _| view.decision(shown));
    Ok(decision)
}

/// The decision `form` asks for, signed: reviewer, narrative, action, time, and the revision and
/// posts of the review item the desk shows now (what the reviewer decided on).
fn validate(
    app: &App,
    caller: &Caller,
    form: DecisionForm,
) -> Result<(Ask, ReviewDecision), Problem> {
    let Some(signer) = &app.signer else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "decisions_disabled",
            "this dashboard has no decision signing key; decisions cannot be made here",
        ));
    };
    if caller.role != Role::Reviewer {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "not_a_reviewer",
            "only reviewers may confirm or reject",
        ));
    }
    let Some(ask) = Ask::parse(&form.action) else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_action",
            "action must be confirm, reject or release",
        ));
    };
    let reason = match ask {
        Ask::Release => Some(RELEASE_REASON.to_owned()),
        Ask::Confirm | Ask::Reject => form
            .reason
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty()),
    };
    if ask == Ask::Reject && reason.is_none() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "reason_required",
            "a reason is required to reject",
        ));
    }
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "reason_too_long",
            format!("the reason must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    let confirmed_references = ticked_references(&form.fields)?;
    let shown = app.shared.read(|view| {
        let narrative = view.narrative_by_id(&form.narrative_id);
        rules::judge(&form.narrative_id, narrative, ask, &confirmed_references)
    })?;
    let mut decision = ReviewDecision {
        schema_version: SCHEMA_VERSION,
        decision_id: hex::encode(rand::random::<[u8; 16]>()),
        narrative_id: form.narrative_id,
        action: ask.action(),
        reason,
        reviewer: caller.user.clone(),
        decided_at: now_rfc3339(),
        confirmed_references,
        revision: shown.revision,
        shown_posts: shown.posts,
        signature: None,
    };
    signer.sign(&mut decision);
    Ok((ask, decision))
}

/// The posts of the ticked reference boxes, in box order.
fn ticked_references(
    fields: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<PostRef>, Problem> {
    let bad = |message: String| Problem::new(StatusCode::BAD_REQUEST, "bad_references", message);
    let mut ticked: Vec<(usize, PostRef)> = Vec::new();
    for (name, value) in fields {
        let Some(index) = name.strip_prefix(desk_page::REFERENCE_FIELD) else {
            continue;
        };
        let index: usize = index
            .parse()
            .map_err(|_| bad(format!("`{name}` is not a reference field")))?;
        let post: PostRef = serde_json::from_str(value)
            .map_err(|_| bad(format!("`{name}` does not name a post")))?;
        ticked.push((index, post));
    }
    if ticked.len() > MAX_COMPLAINT_REFERENCES {
        return Err(bad(format!(
            "at most {MAX_COMPLAINT_REFERENCES} references at once"
        )));
    }
    ticked.sort();
    Ok(ticked.into_iter().map(|(_, post)| post).collect())
}

async fn publish(app: &App, decision: &ReviewDecision) -> Result<(), Problem> {
    let payload = serde_json::to_vec(decision).expect("a decision serialises");
    let record = FutureRecord::to(&app.config.topics.review_decisions)
        .key(&decision.narrative_id)
        .payload(&payload);
    let timeout = Duration::from_millis(app.config.produce_timeout_ms);
    app.producer.send(record, timeout).await.map_err(|(e, _)| {
        tracing::error!(error = %e, narrative = %decision.narrative_id, "cannot publish a decision");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "publish_failed",
            "the decision could not be published; try again",
        )
    })?;
    Ok(())
}

/// `id` as a URL fragment: narrative ids come from a topic, and a character a header value
/// cannot hold must not make the redirect fail.
fn fragment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::fragment;
    use proptest::prelude::*;

    #[test]
    fn unsafe_characters_are_escaped() {
        assert_eq!(fragment("n-1_a.b~c"), "n-1_a.b~c");
        assert_eq!(fragment("a b\r\n#é"), "a%20b%0D%0A%23%C3%A9");
    }

    proptest! {
        #[test]
        fn any_id_makes_a_valid_location(id in ".*") {
            let location = format!("/review#n-{}", fragment(&id));
            prop_assert!(axum::http::HeaderValue::try_from(location).is_ok());
        }
    }
}

#[cfg(test)]
mod reference_tests {
    use super::*;
    use std::collections::BTreeMap;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ticked_references_come_back_exactly_in_box_order() {
        let ticked = ticked_references(&fields(&[
            ("reference.10", r#"{"platform":"x","post_id":"b:c"}"#),
            ("reference.2", r#"{"platform":"x:y","post_id":"1"}"#),
            ("reason", "seen on x"),
        ]))
        .expect("valid");
        let post = |platform: &str, post_id: &str| PostRef {
            platform: platform.into(),
            post_id: post_id.into(),
        };
        assert_eq!(ticked, [post("x:y", "1"), post("x", "b:c")]);
    }

    #[tokio::test]
    async fn the_decision_form_reads_ticked_boxes_next_to_its_fields() {
        use axum::extract::FromRequest;
        let body = "narrative_id=n-1&action=confirm&reason=&csrf=t&reference.0=%7B%22platform\
                    %22%3A%22x%22%2C%22post_id%22%3A%221%22%7D";
        let request = axum::http::Request::post("/review/decisions")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .unwrap();
        let Form(form) = Form::<DecisionForm>::from_request(request, &())
            .await
            .expect("the form decodes");
        assert_eq!(
            (
                form.narrative_id.as_str(),
                form.action.as_str(),
                form.reason.as_deref()
            ),
            ("n-1", "confirm", Some(""))
        );
        assert_eq!(
            ticked_references(&form.fields).expect("valid"),
            [PostRef {
                platform: "x".into(),
                post_id: "1".into()
            }]
        );
    }

    #[test]
    fn malformed_or_too_many_references_are_refused() {
        let message = |f: BTreeMap<String, String>| ticked_references(&f).unwrap_err().message;
        assert_eq!(
            message(fields(&[("reference.x", "{}")])),
            "`reference.x` is not a reference field"
        );
        assert_eq!(
            message(fields(&[("reference.0", "x:1")])),
            "`reference.0` does not name a post"
        );
        let many: BTreeMap<String, String> = (0..=MAX_COMPLAINT_REFERENCES)
            .map(|i| {
                let post = format!(r#"{{"platform":"x","post_id":"{i}"}}"#);
                (format!("reference.{i}"), post)
            })
            .collect();
        assert_eq!(message(many), "at most 20 references at once");
    }
}
