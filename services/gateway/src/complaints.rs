//! `POST /v1/complaints`: a report from the public, unauthenticated and limited per client
//! address. The complaint goes to `complaints.v1` under a reporter pseudonym; contact details,
//! if given, go only to `complaints.contacts.v1`, so they never reach a scored or DLQ event.

use crate::api::{accepted, json_body, trace, App};
use crate::error::{ApiError, ItemError};
use crate::publish::{fingerprint, Outgoing};
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use patroli_contracts::{
    decode_input, now_rfc3339, topics, Complaint, ComplaintContact, SCHEMA_VERSION,
};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;

const MAX_ID_CHARS: usize = 64;
const MAX_URL_BYTES: usize = 2048;
const MAX_SHORT_CHARS: usize = 128;
const MAX_CONTACT_CHARS: usize = 254;
const DEFAULT_CHANNEL: &str = "web";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComplaintRequest {
    /// Chosen by the client (e.g. a UUID made when the form opens) so a retry is recognised.
    complaint_id: Option<String>,
    text: Option<String>,
    url: Option<String>,
    channel: Option<String>,
    platform: Option<String>,
    post_id: Option<String>,
    contact: Option<ContactRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactRequest {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

pub async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    http: Request,
) -> Response {
    app.observe("complaints", accept(&app, peer, http)).await
}

async fn accept(app: &App, peer: SocketAddr, http: Request) -> Result<Response, ApiError> {
    let headers = &http.headers().clone();
    // The per-address limit first: a refused client's body is never read.
    app.per_ip.check(peer, headers).map_err(|wait| {
        ApiError::rate_limited(
            wait,
            format!(
                "at most {} complaints per minute from one address",
                app.config.complaints.per_ip_per_minute
            ),
        )
    })?;
    let _permit = app.admit()?;
    let body = json_body(http, app.config.complaints.max_body_bytes).await?;
    let request = parse(&body)?;
    let complaint_id = match request.complaint_id {
        Some(id) => checked_id(id)?,
        None => format!("c-{}", hex::encode(rand::random::<[u8; 16]>())),
    };
    let text = non_empty(request.text);
    // Checked before blanks are dropped: a URL field that is sent must be a URL.
    let url = request.url;
    if let Some(url) = &url {
        if url.len() > MAX_URL_BYTES || !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("`url` must be an http(s) URL of at most {MAX_URL_BYTES} bytes"),
            )
            .field("url"));
        }
    }
    let channel = short("channel", non_empty(request.channel))?;
    let platform = short("platform", non_empty(request.platform))?;
    let post_id = short("post_id", non_empty(request.post_id))?;
    let contact = request.contact.map(checked_contact).transpose()?.flatten();
    let Some(scored_text) = text.clone().or_else(|| url.clone()) else {
        return Err(ApiError::bad_request(
            "missing_field",
            "a complaint needs `text`, `url` or both",
        )
        .field("text"));
    };
    let complaint = Complaint {
        schema_version: SCHEMA_VERSION,
        complaint_id: complaint_id.clone(),
        // A URL-only report is scored on the URL; the classifier needs some text.
        text: scored_text,
        reported_at: now_rfc3339(),
        reporter: pseudonym(&app.reporter_salt, contact.as_ref()),
        channel: Some(channel.unwrap_or_else(|| DEFAULT_CHANNEL.to_owned())),
        platform,
        post_id,
        url,
    };
    let payload = serde_json::to_vec(&complaint).expect("a complaint serialises");
    decode_input(topics::COMPLAINTS, Some(&payload), &app.limits).map_err(|invalid| {
        ApiError::invalid_items(vec![ItemError::from_invalid(None, &invalid)])
    })?;
    // The request, not the event, identifies a retry: the event carries a fresh timestamp.
    let retry = fingerprint(&[&body]);
    let mut messages = vec![Outgoing {
        topic: app.config.complaints_topic.clone(),
        key: complaint_id.clone(),
        payload,
        fingerprint: retry,
    }];
    if let Some(contact) = contact {
        let record = ComplaintContact {
            schema_version: SCHEMA_VERSION,
            complaint_id: complaint_id.clone(),
            name: contact.name,
            email: contact.email,
            phone: contact.phone,
            received_at: complaint.reported_at.clone(),
        };
        messages.push(Outgoing {
            topic: app.config.contacts_topic.clone(),
            key: complaint_id.clone(),
            payload: serde_json::to_vec(&record).expect("a contact serialises"),
            fingerprint: retry,
        });
    }
    app.publisher
        .publish(messages, &trace(headers))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "complaint not written");
            ApiError::not_published(&e, "complaint", false)
        })?;
    Ok(accepted(json!({ "complaint_id": complaint_id })))
}

fn parse(body: &[u8]) -> Result<ComplaintRequest, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request: ComplaintRequest =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if !inner.is_data() {
                return ApiError::bad_request("not_json", inner.to_string());
            }
            let message = inner.to_string();
            let code = if message.starts_with("unknown field") {
                "unknown_field"
            } else {
                "wrong_type"
            };
            let error = ApiError::bad_request(code, message);
            if path == "." {
                error
            } else {
                error.field(path)
            }
        })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request("not_json", e.to_string()))?;
    Ok(request)
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn checked_id(id: String) -> Result<String, ApiError> {
    let valid = !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if valid {
        Ok(id)
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            format!("`complaint_id` must be 1 to {MAX_ID_CHARS} letters, digits or `-_.:`"),
        )
        .field("complaint_id"))
    }
}

fn short(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.chars().count() > MAX_SHORT_CHARS => Err(ApiError::bad_request(
            "invalid_field",
            format!("`{field}` is longer than {MAX_SHORT_CHARS} characters"),
        )
        .field(field)),
        other => Ok(other),
    }
}

/// `None` when every detail is empty: nothing to keep.
fn checked_contact(contact: ContactRequest) -> Result<Option<ContactRequest>, ApiError> {
    // Checked before blanks are dropped, as the schema does: a sent e-mail must look like one.
    if contact.email.as_ref().is_some_and(|e| !e.contains('@')) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "`contact.email` is not an e-mail address",
        )
        .field("contact.email"));
    }
    let mut kept = ContactRequest {
        name: non_empty(contact.name),
        email: non_empty(contact.email),
        phone: non_empty(contact.phone),
    };
    for (field, value) in [
        ("contact.name", &mut kept.name),
        ("contact.email", &mut kept.email),
        ("contact.phone", &mut kept.phone),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.chars().count() > MAX_CONTACT_CHARS)
        {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("`{field}` is longer than {MAX_CONTACT_CHARS} characters"),
            )
            .field(field));
        }
    }
    Ok((kept.name.is_some() || kept.email.is_some() || kept.phone.is_some()).then_some(kept))
}

/// The same person gets the same pseudonym (so reviewers see repeat reporters) without the
/// pseudonym revealing who they are: a salted hash of their most specific contact detail.
fn pseudonym(salt: &[u8], contact: Option<&ContactRequest>) -> String {
    let identity = contact.and_then(|c| {
        c.email
            .as_ref()
            .map(|e| format!("email:{}", e.trim().to_lowercase()))
            .or_else(|| {
                c.phone.as_ref().map(|p| {
                    let digits: String = p.chars().filter(char::is_ascii_digit).collect();
                    format!("phone:{digits}")
                })
            })
            .or_else(|| {
                c.name
                    .as_ref()
                    .map(|n| format!("name:{}", n.trim().to_lowercase()))
            })
    });
    match identity {
        None => "anonymous".to_owned(),
        Some(identity) => {
            let mut hash = Sha256::new();
            hash.update(salt);
            hash.update(identity.as_bytes());
            format!("r_{}", &hex::encode(hash.finalize())[..12])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_salted_and_normalised() {
        let contact = |email: Option<&str>, phone: Option<&str>| ContactRequest {
            name: Some("Sari".into()),
            email: email.map(str::to_owned),
            phone: phone.map(str::to_owned),
        };
        let a = pseudonym(b"s1", Some(&contact(Some("Sari@Example.id "), None)));
        assert_eq!(
            a,
            pseudonym(b"s1", Some(&contact(Some("sari@example.id"), Some("1"))))
        );
        assert_ne!(
            a,
            pseudonym(b"s2", Some(&contact(Some("sari@example.id"), None)))
        );
        assert_eq!(
            pseudonym(b"s1", Some(&contact(None, Some("+62 812-1"))),),
            pseudonym(b"s1", Some(&contact(None, Some("628121"))))
        );
        assert_eq!(pseudonym(b"s1", None), "anonymous");
        assert!(a.starts_with("r_") && a.len() == 14, "{a}");
    }
}
