//! size: one test per answer the gateway gives; the shared setup is tests/common/gateway.rs.
//!
//! The gateway against a real broker: every status a client can get, exact bodies, and what
//! lands on the topics (and what never does).

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use common::*;
use gateway::*;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

const KEY_X: &str = "pk_test_x_0123456789abcdef0123456789abcdef";
const KEY_SLOW: &str = "pk_test_slow_0123456789abcdef0123456789ab";
const JSON: &str = "application/json";

/// One broker for every scenario (each with its own topics and gateway), run one after the
/// other: the broker is a JVM, too heavy to start per scenario on a small machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_on_a_real_broker() {
    let broker = start_broker();
    let brokers = broker.bootstrap_servers();
    posts_are_written_once_and_every_refusal_says_why(&brokers).await;
    complaints_keep_contact_details_off_the_complaint_topic(&brokers).await;
    rotated_keys_take_effect_without_a_restart(&brokers).await;
    bodies_are_read_only_when_admitted_and_records_must_fit(&brokers).await;
    without_a_broker_requests_get_503_and_readyz_fails(&brokers).await;
    unknown_paths_and_the_served_openapi_document(&brokers).await;
}

fn keys_file(entries: &[String]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), entries.concat()).unwrap();
    file
}

fn raw_post(id: &str) -> serde_json::Value {
    json!({
        "schema_version": 1,
        "platform": "x",
        "post_id": id,
        "text": format!("Surat suara sudah dicoblos duluan! {id}"),
        "created_at": "2024-02-13T21:04:05+07:00",
        "author": "anon-1",
        "partner_extra": {"kept": true},
    })
}

async fn posts_are_written_once_and_every_refusal_says_why(brokers: &str) {
    let topics = GatewayTopics::create(brokers, "posts").await;
    let keys = keys_file(&[
        key_entry("x-partner", "x", KEY_X, None),
        key_entry("slow-partner", "x", KEY_SLOW, Some((1, 2))),
    ]);
    let mut gw = GatewayProcess::spawn(
        brokers,
        &topics,
        keys.path(),
        &[
            ("PATROLI_MAX_BODY_BYTES", "20000"),
            ("PATROLI_MAX_BATCH_POSTS", "5"),
        ],
    );
    gw.wait_ready();
    let url = gw.url("/v1/posts");
    let send = |key: Option<&'static str>, body: String| {
        let url = url.clone();
        async move { post(&url, key, JSON, body).await }
    };

    // 401: no key, then a wrong one.
    let answer = send(None, raw_post("n1").to_string()).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    assert_eq!(
        answer.body,
        json!({"error": "unauthorized", "message": "send your partner key as `Authorization: Bearer <key>`"})
    );
    let answer = send(Some("pk_wrong"), raw_post("n2").to_string()).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            401,
            json!({"error": "unauthorized", "message": "unknown or revoked key"})
        )
    );

    // 415: not declared JSON.
    let answer = post(&url, Some(KEY_X), "text/plain", raw_post("n3").to_string()).await;
    assert_eq!(answer.status, 415);
    assert_eq!(answer.body["error"], "unsupported_media_type");

    // 413: body over 20,000 bytes; 400: more posts than a batch may hold.
    let mut big = raw_post("n4");
    big["padding"] = json!("x".repeat(20_001));
    let answer = send(Some(KEY_X), big.to_string()).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            413,
            json!({"error": "payload_too_large", "message": "the body exceeds 20000 bytes"})
        )
    );
    let six: Vec<_> = (0..6).map(|i| raw_post(&format!("n5-{i}"))).collect();
    let answer = send(Some(KEY_X), json!(six).to_string()).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            json!({"error": "too_many_posts", "message": "the batch has 6 posts, at most 5 are accepted per request"})
        )
    );

    // 400: the classifier's own validation, naming the field.
    let answer = send(Some(KEY_X), "{not json".into()).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["error"], "not_json");
    assert_eq!(answer.body.get("field"), None);
    let mut no_text = raw_post("n6");
    no_text.as_object_mut().unwrap().remove("text");
    let answer = send(Some(KEY_X), no_text.to_string()).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            json!({"error": "missing_field", "message": "missing field `text`", "field": "text"})
        )
    );
    let mut bad_time = raw_post("n7-1");
    bad_time["created_at"] = json!("kemarin");
    let mut bad_likes = raw_post("n7-2");
    bad_likes["engagement"] = json!({"likes": -3});
    let answer = send(
        Some(KEY_X),
        json!([raw_post("n7-0"), bad_time, bad_likes]).to_string(),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            json!({
                "error": "invalid_timestamp",
                "message": "[1]: field `created_at` is not an RFC 3339 timestamp: `kemarin` (2 invalid posts)",
                "field": "[1].created_at",
                "errors": [
                    {"index": 1, "error": "invalid_timestamp", "field": "[1].created_at",
                     "message": "[1]: field `created_at` is not an RFC 3339 timestamp: `kemarin`"},
                    {"index": 2, "error": "wrong_type", "field": "[2].engagement.likes",
                     "message": "[2]: field `engagement.likes` must be a non-negative integer"},
                ]
            })
        )
    );
    let mut long = raw_post("n8");
    long["text"] = json!("é".repeat(5_001));
    let answer = send(Some(KEY_X), long.to_string()).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            json!({"error": "text_too_long", "message": "text is 10002 bytes, limit 10000", "field": "text"})
        )
    );
    let answer = send(Some(KEY_X), "[]".into()).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            json!({"error": "empty_batch", "message": "the batch holds no posts"})
        )
    );

    // 403: the key is bound to platform `x`.
    let mut tiktok = raw_post("n9");
    tiktok["platform"] = json!("tiktok");
    let answer = send(Some(KEY_X), json!([raw_post("n9-0"), tiktok]).to_string()).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            403,
            json!({
                "error": "platform_not_allowed",
                "message": "key `x-partner` may only post as platform `x`, not `tiktok`",
                "field": "[1].platform"
            })
        )
    );

    // 202: one post, a batch, a retry (not written again), an edit (written: a new fact).
    let single = raw_post("a1").to_string();
    let answer = send(Some(KEY_X), single.clone()).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            202,
            json!({"accepted": 1, "duplicates": 0, "ids": ["x:a1"]})
        )
    );
    let batch = json!([raw_post("b1"), raw_post("b2"), raw_post("b3")]).to_string();
    let answer = send(Some(KEY_X), batch.clone()).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            202,
            json!({"accepted": 3, "duplicates": 0, "ids": ["x:b1", "x:b2", "x:b3"]})
        )
    );
    let answer = send(Some(KEY_X), single.clone()).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            202,
            json!({"accepted": 1, "duplicates": 1, "ids": ["x:a1"]})
        )
    );
    let answer = send(Some(KEY_X), batch).await;
    assert_eq!(answer.body["duplicates"], 3);
    let mut edited = raw_post("a1");
    edited["text"] = json!("Ralat: surat suara aman.");
    let answer = send(Some(KEY_X), edited.to_string()).await;
    assert_eq!(answer.body["duplicates"], 0);

    // 429: two posts' burst for the slow key, then a wait is asked for.
    let answer = send(
        Some(KEY_SLOW),
        json!([raw_post("s1"), raw_post("s2")]).to_string(),
    )
    .await;
    assert_eq!(answer.status, 202);
    let answer = send(Some(KEY_SLOW), raw_post("s3").to_string()).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(
        answer.body,
        json!({"error": "rate_limited", "message": "key `slow-partner` is limited to 1 posts/s (burst 2)"})
    );

    // On the topic: exactly the accepted posts, byte for byte, keyed and traced.
    let records = read_topic(brokers, &topics.posts, 7, Duration::from_secs(2));
    let mut count: HashMap<&str, usize> = HashMap::new();
    for record in &records {
        *count.entry(record.key.as_str()).or_default() += 1;
        assert!(record.header("trace_id").is_some_and(|t| t.len() == 32));
        assert!(record
            .header("ingest_time_ms")
            .is_some_and(|t| t.parse::<i64>().is_ok()));
    }
    let expected: HashMap<&str, usize> = [
        ("x:a1", 2),
        ("x:b1", 1),
        ("x:b2", 1),
        ("x:b3", 1),
        ("x:s1", 1),
        ("x:s2", 1),
    ]
    .into();
    assert_eq!(count, expected);
    let first = records.iter().find(|r| r.key == "x:a1").unwrap();
    assert_eq!(first.payload, single.as_bytes(), "forwarded byte for byte");

    assert_eq!(
        gw.metric(r#"patroli_gateway_requests_total{endpoint="posts",status="202"}"#),
        Some(6.0)
    );
    assert_eq!(gw.metric("patroli_gateway_duplicates_total"), Some(4.0));
    assert_eq!(gw.metric("patroli_gateway_keys"), Some(2.0));
    assert!(gw.terminate().success(), "clean exit on SIGTERM");
}

async fn complaints_keep_contact_details_off_the_complaint_topic(brokers: &str) {
    let topics = GatewayTopics::create(brokers, "complaints").await;
    let keys = keys_file(&[]);
    let mut gw = GatewayProcess::spawn(
        brokers,
        &topics,
        keys.path(),
        &[
            ("PATROLI_COMPLAINTS__PER_IP_BURST", "7"),
            ("PATROLI_COMPLAINTS__PER_IP_PER_MINUTE", "1"),
            ("PATROLI_COMPLAINTS__MAX_BODY_BYTES", "2000"),
        ],
    );
    gw.wait_ready();
    let url = gw.url("/v1/complaints");
    let with_contact = json!({
        "complaint_id": "form-7f3a",
        "text": "Ada pesan WA: pencoblosan diundur ke 21 Februari",
        "channel": "whatsapp",
        "contact": {"name": "Sari", "email": "sari@example.id", "phone": "+62 812 0000 1111"}
    })
    .to_string();

    // 1-2: accepted, then the retry is not written again.
    for _ in 0..2 {
        let answer = post(&url, None, JSON, with_contact.clone()).await;
        assert_eq!(
            (answer.status, answer.body),
            (202, json!({"complaint_id": "form-7f3a"}))
        );
    }
    // 3: URL only, server-chosen id.
    let answer = post(
        &url,
        None,
        JSON,
        json!({"url": "https://x.com/a/status/1"}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 202);
    let generated = answer.body["complaint_id"].as_str().unwrap().to_owned();
    assert!(
        generated.starts_with("c-") && generated.len() == 34,
        "{generated}"
    );
    // 4-7: refusals, each naming the problem.
    let answer = post(
        &url,
        None,
        JSON,
        json!({"text": "x", "contact": {"mail": "a@b"}}).to_string(),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            json!({"error": "unknown_field", "field": "contact.mail",
                   "message": "unknown field `mail`, expected one of `name`, `email`, `phone` at line 1 column 18"})
        )
    );
    let answer = post(&url, None, JSON, json!({"channel": "web"}).to_string()).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            400,
            json!({"error": "missing_field", "field": "text", "message": "a complaint needs `text`, `url` or both"})
        )
    );
    let answer = post(
        &url,
        None,
        "application/x-www-form-urlencoded",
        "text=hoaks",
    )
    .await;
    assert_eq!(answer.status, 415);
    let answer = post(
        &url,
        None,
        JSON,
        json!({"text": "a".repeat(3000)}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 413);
    // 8: over the per-address limit.
    let answer = post(&url, None, JSON, json!({"text": "lagi"}).to_string()).await;
    assert_eq!(answer.status, 429);
    assert_eq!(
        answer.body,
        json!({"error": "rate_limited", "message": "at most 1 complaints per minute from one address"})
    );
    let wait: u64 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((50..=60).contains(&wait), "{wait}");

    let complaints = read_topic(brokers, &topics.complaints, 2, Duration::from_secs(2));
    let keys: Vec<&str> = complaints.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&"form-7f3a") && keys.contains(&generated.as_str()));
    for record in &complaints {
        let text = String::from_utf8_lossy(&record.payload);
        for private in ["Sari", "sari@example.id", "0000 1111", "contact"] {
            assert!(!text.contains(private), "{private} leaked: {text}");
        }
    }
    let first = complaints
        .iter()
        .find(|r| r.key == "form-7f3a")
        .unwrap()
        .json();
    assert_eq!(first["channel"], "whatsapp");
    assert!(first["reporter"].as_str().unwrap().starts_with("r_"));
    let url_only = complaints
        .iter()
        .find(|r| r.key == generated)
        .unwrap()
        .json();
    assert_eq!(url_only["reporter"], "anonymous");
    assert_eq!(url_only["text"], "https://x.com/a/status/1");
    assert_eq!(url_only["channel"], "web");

    let contacts = read_topic(brokers, &topics.contacts, 1, Duration::from_secs(1));
    assert_eq!(contacts.len(), 1);
    let contact = contacts[0].json();
    assert_eq!(contacts[0].key, "form-7f3a");
    assert_eq!(
        (&contact["name"], &contact["email"], &contact["phone"]),
        (
            &json!("Sari"),
            &json!("sari@example.id"),
            &json!("+62 812 0000 1111")
        )
    );
    drop(gw);
}

async fn rotated_keys_take_effect_without_a_restart(brokers: &str) {
    let topics = GatewayTopics::create(brokers, "rotation").await;
    let (old, new) = (
        "pk_old_key_for_rotation_test_000000000",
        "pk_new_key_for_rotation_test_111111111",
    );
    let keys = keys_file(&[key_entry("x-2024", "x", old, None)]);
    let mut gw = GatewayProcess::spawn(brokers, &topics, keys.path(), &[]);
    gw.wait_ready();
    let url = gw.url("/v1/posts");
    assert_eq!(
        post(&url, Some(old), JSON, raw_post("r1").to_string())
            .await
            .status,
        202
    );
    assert_eq!(
        post(&url, Some(new), JSON, raw_post("r2").to_string())
            .await
            .status,
        401
    );

    std::fs::write(keys.path(), key_entry("x-2025", "x", new, None)).unwrap();
    let started = std::time::Instant::now();
    while post(&url, Some(new), JSON, raw_post("r3").to_string())
        .await
        .status
        != 202
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "new key never accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        post(&url, Some(old), JSON, raw_post("r4").to_string())
            .await
            .status,
        401
    );

    assert_eq!(gw.metric("patroli_gateway_keys_file_valid"), Some(1.0));

    // An edit revoking `spare` is broken (a half-written Secret): the last valid keys,
    // `spare` included, stay in force while the gauge says the file is invalid.
    let spare = "pk_spare_key_for_rotation_test_22222222";
    let valid = key_entry("x-2025", "x", new, None);
    std::fs::write(
        keys.path(),
        format!("{valid}{}", key_entry("x-spare", "x", spare, None)),
    )
    .unwrap();
    wait_for_status(&url, spare, "r5", 202).await;
    std::fs::write(keys.path(), format!("{valid}[[keys]]\nid = ")).unwrap();
    let started = std::time::Instant::now();
    while gw.metric("patroli_gateway_keys_file_valid") != Some(0.0) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "broken file not reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gw.metric("patroli_gateway_key_reload_failures_total"),
        Some(1.0)
    );
    assert_eq!(
        post(&url, Some(spare), JSON, raw_post("r6").to_string())
            .await
            .status,
        202
    );
    // The fix revokes it for good: the broken content was never taken for loaded.
    std::fs::write(keys.path(), &valid).unwrap();
    wait_for_status(&url, spare, "r7", 401).await;
    assert_eq!(gw.metric("patroli_gateway_keys_file_valid"), Some(1.0));
    assert_eq!(
        gw.metric("patroli_gateway_key_reload_failures_total"),
        Some(1.0),
        "each bad content is counted once, however often it is retried"
    );
    assert_eq!(
        post(&url, Some(new), JSON, raw_post("r8").to_string())
            .await
            .status,
        202
    );
    drop(gw);
}

/// Posts with `key` until the answer is `status` (a reload takes effect within a tick).
async fn wait_for_status(url: &str, key: &str, id: &str, status: u16) {
    let started = std::time::Instant::now();
    while post(url, Some(key), JSON, raw_post(id).to_string())
        .await
        .status
        != status
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "key never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn bodies_are_read_only_when_admitted_and_records_must_fit(brokers: &str) {
    let topics = GatewayTopics::create(brokers, "limits").await;
    let keys = keys_file(&[key_entry("x-partner", "x", KEY_X, None)]);
    let mut gw = GatewayProcess::spawn(
        brokers,
        &topics,
        keys.path(),
        &[("PATROLI_MAX_CONCURRENT_REQUESTS", "1")],
    );
    gw.wait_ready();

    // Without a key: 401 after the headers alone, though the body announced 1 MiB was
    // never sent (a gateway waiting for it would never answer).
    let mut stranger = RawRequest::send(gw.api_port, None, 1024 * 1024, b"[").await;
    assert_eq!(
        stranger.answer().await,
        (
            401,
            json!({"error": "unauthorized", "message": "send your partner key as `Authorization: Bearer <key>`"})
        )
    );

    // A partner's slow body holds the only permit: the next request gets 503 at once.
    let body = raw_post("slow").to_string();
    let (head, tail) = body.as_bytes().split_at(10);
    let mut slow = RawRequest::send(gw.api_port, Some(KEY_X), body.len(), head).await;
    let url = gw.url("/v1/posts");
    let started = std::time::Instant::now();
    while gw.metric("patroli_gateway_requests_in_flight") != Some(1.0) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never admitted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = post(&url, Some(KEY_X), JSON, raw_post("other").to_string()).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(
        refused.body,
        json!({"error": "overloaded", "message": "the gateway is at its limit of 1 concurrent requests; retry later"})
    );
    slow.finish(tail).await;
    assert_eq!(slow.answer().await.0, 202);
    assert_eq!(gw.metric("patroli_gateway_requests_in_flight"), Some(0.0));

    // A post within the body limit (1 MiB) whose record exceeds the producer's 1,000,000
    // bytes: 413, never 503, and nothing of its request is written.
    let mut big = raw_post("big");
    big["partner_extra"] = json!({"blob": "a".repeat(1_000_000)});
    let body = big.to_string();
    // Framing 36 + key `x:big` + value + headers trace_id (10 + 8 + `req-big`) and
    // ingest_time_ms (10 + 14 + 13 digits).
    let size = 36 + 5 + body.len() + (10 + 8 + 7) + (10 + 14 + 13);
    let answer = reqwest::Client::new()
        .post(&url)
        .bearer_auth(KEY_X)
        .header("content-type", JSON)
        .header("x-request-id", "req-big")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
    assert_eq!(
        answer.json::<serde_json::Value>().await.unwrap(),
        json!({"error": "record_too_large", "message": format!("the post would be a {size}-byte Kafka record; the broker accepts at most 1000000 bytes per record: shorten it (extra fields count too)")})
    );
    let mut big = raw_post("big2");
    big["partner_extra"] = json!({"blob": "a".repeat(1_000_000)});
    let batch = json!([raw_post("small"), big]).to_string();
    let answer = post(&url, Some(KEY_X), JSON, batch).await;
    assert_eq!(answer.status, 413);
    assert_eq!(
        (&answer.body["error"], &answer.body["field"]),
        (&json!("record_too_large"), &json!("[1]"))
    );
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .starts_with("post [1] would be a "),
        "{}",
        answer.body
    );
    let written = read_topic(brokers, &topics.posts, 1, Duration::from_secs(1));
    let keys: Vec<&str> = written.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["x:slow"], "only the slow post was written");
    assert_eq!(
        gw.metric("patroli_gateway_produce_failures_total"),
        Some(0.0)
    );
}

/// An HTTP/1.1 POST to `/v1/posts` written by hand, so a test controls when (and whether)
/// the body is sent.
struct RawRequest {
    stream: tokio::net::TcpStream,
}

impl RawRequest {
    async fn send(port: u16, key: Option<&str>, length: usize, first_bytes: &[u8]) -> Self {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let auth = key
            .map(|k| format!("authorization: Bearer {k}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST /v1/posts HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n{auth}content-length: {length}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(first_bytes).await.unwrap();
        RawRequest { stream }
    }

    async fn finish(&mut self, rest: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(rest).await.unwrap();
    }

    /// The status and JSON body of the answer; fails if none comes within a minute.
    async fn answer(&mut self) -> (u16, serde_json::Value) {
        use tokio::io::AsyncReadExt;
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        let read = async {
            loop {
                if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .expect("a content-length");
                    if received.len() >= end + 4 + length {
                        let status = head[9..12].parse().unwrap();
                        let body =
                            serde_json::from_slice(&received[end + 4..end + 4 + length]).unwrap();
                        return (status, body);
                    }
                }
                let n = self.stream.read(&mut buffer).await.unwrap();
                assert!(n > 0, "connection closed without an answer");
                received.extend_from_slice(&buffer[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("the gateway answered")
    }
}

async fn without_a_broker_requests_get_503_and_readyz_fails(brokers: &str) {
    let topics = GatewayTopics::create(brokers, "nobroker").await;
    let keys = keys_file(&[key_entry("x-partner", "x", KEY_X, None)]);
    // Nothing listens there.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut gw = GatewayProcess::spawn(&nowhere, &topics, keys.path(), &[]);
    gw.wait_readyz(503, Duration::from_secs(30));
    let answer = post(
        &gw.url("/v1/posts"),
        Some(KEY_X),
        JSON,
        raw_post("d1").to_string(),
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.headers["retry-after"], "5");
    assert_eq!(
        answer.body,
        json!({"error": "broker_unavailable", "message": "the event broker did not acknowledge every message; retry the same request later"})
    );
    let answer = post(
        &gw.url("/v1/complaints"),
        None,
        JSON,
        json!({"text": "hoaks"}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(
        gw.metric("patroli_gateway_produce_failures_total"),
        Some(2.0)
    );
    let (status, body) = http_get(gw.http_port, "/readyz").unwrap();
    assert_eq!(status, 503);
    assert!(body.contains(r#""broker_reachable":false"#), "{body}");
    assert_eq!(
        http_get(gw.http_port, "/healthz").unwrap(),
        (200, "ok\n".into())
    );
}

async fn unknown_paths_and_the_served_openapi_document(brokers: &str) {
    let topics = GatewayTopics::create(brokers, "paths").await;
    let keys = keys_file(&[]);
    let mut gw = GatewayProcess::spawn(brokers, &topics, keys.path(), &[]);
    gw.wait_ready();
    let response = reqwest::get(gw.url("/v1/openapi.yaml")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), patroli_gateway::OPENAPI);
    let answer = post(&gw.url("/v2/posts"), None, JSON, "{}").await;
    assert_eq!(
        (answer.status, answer.body),
        (
            404,
            json!({"error": "not_found", "message": "no such endpoint"})
        )
    );
}
