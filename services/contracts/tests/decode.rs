use patroli_contracts::{
    decode_input, topics, DlqReason, InvalidInput, Limits, PostRef, ScoringInput, SourceKind,
};
use serde_json::{json, Value};

fn post() -> Value {
    json!({
        "schema_version": 1,
        "platform": "tiktok",
        "post_id": "7301",
        "text": "Surat suara sudah dicoblos duluan!!",
        "created_at": "2024-02-13T21:04:05+07:00",
        "author": "u_1",
        "url": "https://tiktok.com/@a/video/7301",
        "lang": "id",
        "region": null,
        "engagement": { "likes": 3, "views": null },
        "parent": { "platform": "tiktok", "post_id": "7300", "relation": "reply" },
        "added_by_partner_later": true
    })
}

fn complaint() -> Value {
    json!({
        "schema_version": 1,
        "complaint_id": "c-9",
        "text": "Pesan WA: pencoblosan diundur",
        "reported_at": "2024-02-12T08:30:00Z",
        "reporter": "r_1",
        "channel": "web"
    })
}

fn decode(topic: &str, value: &Value) -> Result<ScoringInput, InvalidInput> {
    let bytes = serde_json::to_vec(value).expect("test value serialises");
    decode_input(topic, Some(&bytes), &Limits::default())
}

fn rejected(topic: &str, payload: Option<&[u8]>) -> (DlqReason, String) {
    let error = decode_input(topic, payload, &Limits::default()).expect_err("input is invalid");
    (error.reason, error.detail)
}

fn rejected_post(edit: impl FnOnce(&mut Value)) -> (DlqReason, String) {
    let mut value = post();
    edit(&mut value);
    let error = decode(topics::POSTS_RAW, &value).expect_err("post is invalid");
    (error.reason, error.detail)
}

fn expect(reason: DlqReason, detail: &str) -> (DlqReason, String) {
    (reason, detail.to_owned())
}

fn remove(value: &mut Value, field: &str) {
    value.as_object_mut().expect("object").remove(field);
}

#[test]
fn valid_post_decodes_exactly() {
    let input = decode(topics::POSTS_RAW, &post()).expect("valid post");
    assert_eq!(
        input,
        ScoringInput {
            source_kind: SourceKind::Post,
            post: PostRef {
                platform: "tiktok".into(),
                post_id: "7301".into()
            },
            complaint_id: None,
            referenced_post: None,
            text: "Surat suara sudah dicoblos duluan!!".into(),
            author: "u_1".into(),
            created_at: "2024-02-13T21:04:05+07:00".into(),
            url: Some("https://tiktok.com/@a/video/7301".into()),
            lang: Some("id".into()),
            region: None,
        }
    );
    assert_eq!(input.post.key(), "tiktok:7301");
}

#[test]
fn complaint_without_post_stands_alone() {
    let input = decode(topics::COMPLAINTS, &complaint()).expect("valid complaint");
    assert_eq!(
        input,
        ScoringInput {
            source_kind: SourceKind::Complaint,
            post: PostRef {
                platform: "complaint".into(),
                post_id: "c-9".into()
            },
            complaint_id: Some("c-9".into()),
            referenced_post: None,
            text: "Pesan WA: pencoblosan diundur".into(),
            author: "r_1".into(),
            created_at: "2024-02-12T08:30:00Z".into(),
            url: None,
            lang: None,
            region: None,
        }
    );
}

#[test]
fn complaint_naming_a_post_keeps_its_own_key_and_only_references_the_post() {
    let mut value = complaint();
    value["platform"] = "x".into();
    value["post_id"] = "1999999999999999999".into();
    value["url"] = "https://x.com/i/status/1999999999999999999".into();
    let input = decode(topics::COMPLAINTS, &value).expect("valid complaint");
    assert_eq!(
        input,
        ScoringInput {
            source_kind: SourceKind::Complaint,
            post: PostRef {
                platform: "complaint".into(),
                post_id: "c-9".into()
            },
            complaint_id: Some("c-9".into()),
            referenced_post: Some(PostRef {
                platform: "x".into(),
                post_id: "1999999999999999999".into()
            }),
            text: "Pesan WA: pencoblosan diundur".into(),
            author: "r_1".into(),
            created_at: "2024-02-12T08:30:00Z".into(),
            url: Some("https://x.com/i/status/1999999999999999999".into()),
            lang: None,
            region: None,
        }
    );
    assert_eq!(input.post.key(), "complaint:c-9");
}

#[test]
fn complaint_naming_half_a_post_references_nothing() {
    for (platform, post_id) in [("x", None), ("x", Some("  ")), (" ", Some("42"))] {
        let mut value = complaint();
        value["platform"] = platform.into();
        if let Some(post_id) = post_id {
            value["post_id"] = post_id.into();
        }
        let input = decode(topics::COMPLAINTS, &value).expect("valid complaint");
        assert_eq!(input.referenced_post, None, "{platform:?} {post_id:?}");
        assert_eq!(input.post.key(), "complaint:c-9");
    }
}

#[test]
fn unknown_topic() {
    assert_eq!(
        rejected("posts.scored.v1", Some(b"{}")),
        expect(
            DlqReason::UnknownTopic,
            "topic `posts.scored.v1` is not an input topic (expected posts.raw.v1 or complaints.v1)"
        )
    );
}

#[test]
fn empty_payload() {
    assert_eq!(
        rejected(topics::POSTS_RAW, None),
        expect(DlqReason::EmptyPayload, "message has no value")
    );
    assert_eq!(
        rejected(topics::COMPLAINTS, Some(b"")),
        expect(DlqReason::EmptyPayload, "message value is empty")
    );
}

#[test]
fn invalid_utf8() {
    assert_eq!(
        rejected(topics::POSTS_RAW, Some(b"{\"text\": \"\xff\"}")),
        expect(DlqReason::InvalidUtf8, "invalid UTF-8 at byte 10")
    );
}

#[test]
fn not_json() {
    assert_eq!(
        rejected(topics::POSTS_RAW, Some(b"platform=x&text=hoaks")),
        expect(DlqReason::NotJson, "expected value at line 1 column 1")
    );
    assert_eq!(
        rejected(topics::POSTS_RAW, Some(b"{\"schema_version\": 1} trailing")),
        expect(
            DlqReason::NotJson,
            "trailing characters at line 1 column 23"
        )
    );
}

#[test]
fn not_an_object() {
    assert_eq!(
        rejected(topics::POSTS_RAW, Some(b"[1, 2]")),
        expect(
            DlqReason::NotAnObject,
            "expected a JSON object, got an array"
        )
    );
    assert_eq!(
        rejected(topics::COMPLAINTS, Some(b"null")),
        expect(DlqReason::NotAnObject, "expected a JSON object, got null")
    );
}

#[test]
fn missing_field() {
    assert_eq!(
        rejected_post(|p| remove(p, "text")),
        expect(DlqReason::MissingField, "missing field `text`")
    );
    assert_eq!(
        rejected_post(|p| remove(p, "schema_version")),
        expect(DlqReason::MissingField, "missing field `schema_version`")
    );
    assert_eq!(
        rejected_post(|p| remove(&mut p["parent"], "relation")),
        expect(DlqReason::MissingField, "missing field `parent.relation`")
    );
    let mut value = complaint();
    remove(&mut value, "reporter");
    let error = decode(topics::COMPLAINTS, &value).expect_err("no reporter");
    assert_eq!(
        (error.reason, error.detail),
        expect(DlqReason::MissingField, "missing field `reporter`")
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        rejected_post(|p| p["text"] = json!(12)),
        expect(DlqReason::WrongType, "field `text` must be a string")
    );
    assert_eq!(
        rejected_post(|p| p["author"] = Value::Null),
        expect(DlqReason::WrongType, "field `author` must be a string")
    );
    assert_eq!(
        rejected_post(|p| p["schema_version"] = json!("1")),
        expect(
            DlqReason::WrongType,
            "field `schema_version` must be a non-negative integer"
        )
    );
    assert_eq!(
        rejected_post(|p| p["engagement"]["likes"] = json!(-1)),
        expect(
            DlqReason::WrongType,
            "field `engagement.likes` must be a non-negative integer"
        )
    );
    assert_eq!(
        rejected_post(|p| p["engagement"] = json!([3])),
        expect(DlqReason::WrongType, "field `engagement` must be an object")
    );
    assert_eq!(
        rejected_post(|p| p["parent"]["relation"] = json!("retweet")),
        expect(
            DlqReason::WrongType,
            "field `parent.relation` must be one of \"reply\", \"share\", \"quote\""
        )
    );
}

#[test]
fn empty_identifier() {
    assert_eq!(
        rejected_post(|p| p["post_id"] = json!(" ")),
        expect(DlqReason::EmptyField, "field `post_id` is empty")
    );
}

#[test]
fn empty_text() {
    assert_eq!(
        rejected_post(|p| p["text"] = json!(" \n\t ")),
        expect(
            DlqReason::EmptyText,
            "field `text` is empty or whitespace-only"
        )
    );
}

#[test]
fn text_too_long() {
    assert_eq!(
        rejected_post(|p| p["text"] = json!("a".repeat(12_034))),
        expect(DlqReason::TextTooLong, "text is 12034 bytes, limit 10000")
    );
    // The limit is in bytes: 2,500 four-byte emoji are exactly 10,000 bytes and pass.
    let mut value = post();
    value["text"] = json!("😡".repeat(2_500));
    decode(topics::POSTS_RAW, &value).expect("at the limit");
}

#[test]
fn unknown_schema_version() {
    assert_eq!(
        rejected_post(|p| {
            p["schema_version"] = json!(2);
            remove(p, "text");
        }),
        expect(
            DlqReason::UnknownSchemaVersion,
            "schema_version 2 is not supported (expected 1)"
        )
    );
}

#[test]
fn invalid_timestamp() {
    assert_eq!(
        rejected_post(|p| p["created_at"] = json!("13/02/2024 21:04")),
        expect(
            DlqReason::InvalidTimestamp,
            "field `created_at` is not an RFC 3339 timestamp: `13/02/2024 21:04`"
        )
    );
    let mut value = complaint();
    value["reported_at"] = json!("2024-02-30T08:30:00Z");
    let error = decode(topics::COMPLAINTS, &value).expect_err("no 30 February");
    assert_eq!(error.reason, DlqReason::InvalidTimestamp);
}

#[test]
fn long_bad_values_are_truncated_in_details() {
    let (_, detail) = rejected_post(|p| p["created_at"] = json!("x".repeat(5_000)));
    assert_eq!(
        detail,
        format!(
            "field `created_at` is not an RFC 3339 timestamp: `{}…`",
            "x".repeat(64)
        )
    );
}

#[test]
fn error_display_and_reason_labels() {
    let (reason, detail) = rejected_post(|p| remove(p, "text"));
    let error = InvalidInput { reason, detail };
    assert_eq!(error.to_string(), "missing_field: missing field `text`");
    for reason in DlqReason::ALL {
        assert_eq!(
            serde_json::to_value(reason).expect("serialises"),
            json!(reason.as_str())
        );
    }
}

#[test]
fn errors_name_the_field_at_fault() {
    let field = |edit: fn(&mut Value)| {
        let mut value = post();
        edit(&mut value);
        decode(topics::POSTS_RAW, &value)
            .expect_err("post is invalid")
            .field()
            .map(str::to_owned)
    };
    assert_eq!(field(|p| remove(p, "text")).as_deref(), Some("text"));
    assert_eq!(field(|p| p["text"] = json!(" ")).as_deref(), Some("text"));
    assert_eq!(
        field(|p| p["text"] = json!("a".repeat(10_001))).as_deref(),
        Some("text")
    );
    assert_eq!(
        field(|p| p["engagement"]["likes"] = json!(-1)).as_deref(),
        Some("engagement.likes")
    );
    assert_eq!(
        field(|p| p["post_id"] = json!("")).as_deref(),
        Some("post_id")
    );
    assert_eq!(
        field(|p| p["created_at"] = json!("yesterday")).as_deref(),
        Some("created_at")
    );
    assert_eq!(
        field(|p| p["schema_version"] = json!(2)).as_deref(),
        Some("schema_version")
    );
    let not_json =
        decode_input(topics::POSTS_RAW, Some(b"{"), &Limits::default()).expect_err("not JSON");
    assert_eq!(not_json.field(), None);
}
