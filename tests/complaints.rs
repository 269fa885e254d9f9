//! Complaints are evidence, never posts, end to end on Apache Kafka: the gateway, the classifier
//! (tiny model) and the takedown service as operators run them. Reproduces the attack of issue
//! #20 (finding 1): once a reviewer confirmed a narrative, anyone could file a complaint with
//! the hoax's text naming any platform post, and the takedown service requested that post with
//! no reviewer having seen it. Now the complaint is listed as a reference on the review item,
//! nothing is requested, the named post keeps its own slot and text, and only a reviewer's
//! decision confirming that very post requests it, once.

mod common;
#[path = "common/gateway.rs"]
mod gateway;
#[allow(dead_code)] // the takedown tests use the rest
#[path = "common/takedown.rs"]
mod harness;

use common::*;
use gateway::{post, GatewayProcess, GatewayTopics};
use harness::{DecisionKeys, TakedownCollector, TakedownOutputs, TakedownProcess};
use patroli_contracts::{topics, PostRef, RequestBasis, ReviewItem, TakedownRequest};
use rdkafka::producer::FutureProducer;
use serde_json::json;

const HOAX: &str = "BREAKING!!! Surat suara di TPS 05 Kelurahan Cempaka sudah dicoblos duluan untuk paslon nomor 2 sebelum pemilih datang. Petugas KPPS diam saja, Bawaslu tdk bertindak. Sebarkan sebelum dihapus!";
const GENUINE: &str = "Jadwal pemungutan suara 14 Februari 2024 pukul 07.00 sampai 13.00 WIB, jangan lupa bawa KTP elektronik dan surat pemberitahuan memilih ke TPS masing-masing";
const NAMED: &str = "1999999999999999999";

/// Every post founds or joins a narrative whatever the tiny model scores it: what is tested is
/// where complaints go, not the model.
const POLICY: &str = r#"version = "test-complaints"
[defaults]
review = 0.0
[protected]
accounts = ["x:kpu_ri"]
domains = ["kpu.go.id"]
"#;

fn raw(platform: &str, post_id: &str, text: &str) -> (Option<String>, Option<Vec<u8>>) {
    let value = json!({
        "schema_version": 1, "platform": platform, "post_id": post_id, "text": text,
        "created_at": "2024-02-13T21:04:05+07:00", "author": format!("u-{post_id}"),
        "url": format!("https://{platform}.example/{post_id}"),
    });
    (
        Some(format!("{platform}:{post_id}")),
        Some(value.to_string().into_bytes()),
    )
}

/// A reviewer's signed confirmation of `item`, ticking `references`.
fn decision(
    keys: &DecisionKeys,
    id: &str,
    item: &ReviewItem,
    references: &[PostRef],
) -> (Option<String>, Option<Vec<u8>>) {
    let decision = keys.confirming_references(id, item, references);
    (
        Some(decision.narrative_id.clone()),
        Some(serde_json::to_vec(&decision).unwrap()),
    )
}

fn named() -> PostRef {
    PostRef {
        platform: "x".into(),
        post_id: NAMED.into(),
    }
}

fn naming(outputs: &TakedownOutputs) -> Vec<TakedownRequest> {
    outputs
        .unique_requests()
        .into_values()
        .filter(|r| r.posts.iter().any(|p| p.post_id == NAMED))
        .collect()
}

fn item_with(outputs: &TakedownOutputs, post_id: &str) -> Option<ReviewItem> {
    outputs
        .items()
        .into_values()
        .find(|i| i.sample_posts.iter().any(|p| p.post.post_id == post_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_naming_a_post_requests_nothing_until_a_reviewer_confirms_that_post() {
    let (_broker, brokers, policy) = harness::broker_with_policy(POLICY).await;
    let keys = tempfile::NamedTempFile::new().unwrap();
    let producer: FutureProducer = kafka(&brokers)
        .idempotent_producer("complaints-test")
        .create()
        .expect("producer");
    let collector = TakedownCollector::start(&brokers);

    let model = tiny_model();
    let stream = Stream::standard(&brokers);
    let mut classifier = ClassifierProcess::spawn(&stream, model.path(), "classifier", &[]);
    let decision_keys = DecisionKeys::generate();
    let mut takedown = TakedownProcess::spawn(&brokers, "takedown", policy.path(), &decision_keys);
    let standard = GatewayTopics {
        posts: topics::POSTS_RAW.into(),
        complaints: topics::COMPLAINTS.into(),
        contacts: topics::COMPLAINT_CONTACTS.into(),
    };
    let mut gateway = GatewayProcess::spawn(&brokers, &standard, keys.path(), &[]);
    classifier.wait_readyz(200, std::time::Duration::from_secs(120));
    takedown.wait_ready();
    gateway.wait_ready();

    // A hoax on three platforms, grouped into one narrative; a reviewer confirms it.
    let copies: Vec<_> = [("x", "h1"), ("facebook", "h2"), ("tiktok", "h3")]
        .into_iter()
        .map(|(platform, id)| raw(platform, id, HOAX))
        .collect();
    produce(&producer, topics::POSTS_RAW, &copies).await;
    let out = collector.wait_until("the hoax's three copies", |o| {
        item_with(o, "h1").is_some_and(|i| i.post_count == 3)
    });
    let confirmed = item_with(&out, "h1").unwrap();
    let narrative = confirmed.narrative_id.clone();
    produce(
        &producer,
        topics::REVIEW_DECISIONS,
        &[decision(&decision_keys, "d-1", &confirmed, &[])],
    )
    .await;
    collector.wait_until("the confirmation's requests", |o| {
        o.unique_requests().len() == 3
    });

    // The attack: no key, the confirmed hoax's text, naming someone else's post.
    let answer = post(
        &gateway.url("/v1/complaints"),
        None,
        "application/json",
        json!({"text": HOAX, "platform": "x", "post_id": NAMED}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    let complaint_id = answer.body["complaint_id"].as_str().unwrap().to_owned();
    let out = collector.wait_until("the complaint listed on the review item", |o| {
        o.items()
            .get(&narrative)
            .is_some_and(|i| !i.complaint_references.is_empty())
    });
    let item = &out.items()[&narrative];
    assert_eq!((item.post_count, item.complaint_count), (3, 1));
    let reference = &item.complaint_references[0];
    assert_eq!(
        (
            &reference.complaint_id,
            &reference.post,
            reference.protected,
            &reference.request_id
        ),
        (&complaint_id, &named(), false, &None)
    );
    assert!(naming(&out).is_empty(), "{:#?}", naming(&out));
    assert_eq!(out.unique_requests().len(), 3);

    // The real post with that key arrives: scored and grouped as itself, with its own text.
    produce(&producer, topics::POSTS_RAW, &[raw("x", NAMED, GENUINE)]).await;
    let out = collector.wait_until("the named post's own narrative", |o| {
        item_with(o, NAMED).is_some()
    });
    let own = item_with(&out, NAMED).unwrap();
    assert_ne!(own.narrative_id, narrative);
    assert_eq!(own.post_count, 1);
    assert_eq!(own.sample_posts[0].text.as_deref(), Some(GENUINE));
    assert!(naming(&out).is_empty());
    assert_eq!(
        takedown.metric("patroli_takedown_ignored_total{reason=\"duplicate_post\"}"),
        None,
        "nothing was dropped as a duplicate"
    );

    // A reviewer opens the named post and confirms it as a copy: one request names it.
    produce(
        &producer,
        topics::REVIEW_DECISIONS,
        &[decision(
            &decision_keys,
            "d-2",
            &out.items()[&narrative],
            &[named()],
        )],
    )
    .await;
    let out = collector.wait_until("the confirmed reference's request", |o| {
        !naming(o).is_empty()
    });
    let requests = naming(&out);
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let request = &requests[0];
    assert_eq!(
        (
            request.platform.as_str(),
            request.narrative_id.as_str(),
            request.basis,
            Some(request.decision_id.as_str()),
            request.posts.len()
        ),
        (
            "x",
            narrative.as_str(),
            RequestBasis::Confirmed,
            Some("d-2"),
            1
        )
    );
    assert_eq!(
        request.posts[0].url.as_deref(),
        Some(format!("https://x.example/{NAMED}").as_str()),
        "the link the service saw on the post itself"
    );
    let out = collector.wait_until("the reference marked requested", |o| {
        o.items()[&narrative].complaint_references[0]
            .request_id
            .is_some()
    });
    assert_eq!(
        out.items()[&narrative].complaint_references[0].request_id,
        Some(request.request_id.clone())
    );
    assert_eq!(out.unique_requests().len(), 4);
}
