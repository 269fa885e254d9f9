use patroli_contracts::{
    dlq_event_id, now_rfc3339, scored_event_id, ModelRef, PostRef, ScoringInput, SourceKind,
    SourceOffset,
};

fn input() -> ScoringInput {
    ScoringInput {
        source_kind: SourceKind::Post,
        post: PostRef {
            platform: "x".into(),
            post_id: "1".into(),
        },
        complaint_id: None,
        referenced_post: None,
        text: "Surat suara sudah dicoblos".into(),
        author: "u_1".into(),
        created_at: "2024-02-13T21:04:05+07:00".into(),
        url: None,
        lang: None,
        region: None,
    }
}

fn model() -> ModelRef {
    ModelRef {
        name: "indobert-hoaks".into(),
        version: "1".into(),
    }
}

#[test]
fn scored_event_id_is_stable() {
    let id = scored_event_id(&input(), &model());
    assert_eq!(id, scored_event_id(&input(), &model()));
    // A changed value here breaks de-duplication across a deploy: ids must not change silently.
    assert_eq!(id, "1ad5a3289e2106efe586736b871c476c");
}

#[test]
fn scored_event_id_changes_with_content_and_model() {
    let id = scored_event_id(&input(), &model());
    let mut edited = input();
    edited.text.push('!');
    assert_ne!(scored_event_id(&edited, &model()), id);
    let retrained = ModelRef {
        version: "2".into(),
        ..model()
    };
    assert_ne!(scored_event_id(&input(), &retrained), id);
    let mut complaint = input();
    complaint.source_kind = SourceKind::Complaint;
    complaint.complaint_id = Some("c-1".into());
    let plain = scored_event_id(&complaint, &model());
    assert_ne!(plain, id);
    complaint.referenced_post = Some(PostRef {
        platform: "x".into(),
        post_id: "2".into(),
    });
    let naming = scored_event_id(&complaint, &model());
    assert_ne!(naming, plain);
    // The two halves of the named post are separate fields, not one `platform:post_id` string.
    complaint.referenced_post = Some(PostRef {
        platform: "x:2".into(),
        post_id: String::new(),
    });
    assert_ne!(scored_event_id(&complaint, &model()), naming);
}

#[test]
fn scored_event_id_ignores_fields_outside_identity() {
    let mut other = input();
    other.author = "u_2".into();
    other.lang = Some("id".into());
    assert_eq!(
        scored_event_id(&other, &model()),
        scored_event_id(&input(), &model())
    );
}

#[test]
fn scored_event_id_framing_is_unambiguous() {
    // Same concatenated bytes, different field boundaries.
    let a = ModelRef {
        name: "ab".into(),
        version: "c".into(),
    };
    let b = ModelRef {
        name: "a".into(),
        version: "bc".into(),
    };
    assert_ne!(scored_event_id(&input(), &a), scored_event_id(&input(), &b));
}

#[test]
fn dlq_event_id_is_per_offset() {
    let source = SourceOffset {
        topic: "posts.raw.v1".into(),
        partition: 3,
        offset: 17,
    };
    let id = dlq_event_id(&source);
    assert_eq!(id, dlq_event_id(&source.clone()));
    assert_eq!(id.len(), 32);
    assert_ne!(
        id,
        dlq_event_id(&SourceOffset {
            offset: 18,
            ..source.clone()
        })
    );
    assert_ne!(
        id,
        dlq_event_id(&SourceOffset {
            partition: 4,
            ..source
        })
    );
}

#[test]
fn now_is_rfc3339() {
    let now = now_rfc3339();
    time::OffsetDateTime::parse(&now, &time::format_description::well_known::Rfc3339)
        .expect("parses back");
}

#[test]
fn label_names_match_their_serialised_form() {
    for label in patroli_contracts::Label::ALL {
        assert_eq!(
            serde_json::to_value(label).unwrap(),
            serde_json::Value::String(label.as_str().to_owned())
        );
    }
}
