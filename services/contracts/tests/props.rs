use patroli_contracts::{
    decode_input, fingerprint, topics, Engagement, Limits, ParentRef, ParentRelation, RawPost,
    ScoringInput, SCHEMA_VERSION,
};
use proptest::prelude::*;
use serde_json::Value;

const TOPICS: [&str; 3] = [topics::POSTS_RAW, topics::COMPLAINTS, "elsewhere"];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            // Field names from the contracts, so objects get past the first checks and reach
            // the nested ones.
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec![
                        "schema_version",
                        "platform",
                        "post_id",
                        "text",
                        "created_at",
                        "author",
                        "engagement",
                        "likes",
                        "parent",
                        "relation",
                        "complaint_id",
                        "reported_at",
                        "reporter",
                    ])
                    .prop_map(str::to_owned),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..10,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    prop::option::of("\\PC{0,20}")
}

fn raw_post() -> impl Strategy<Value = RawPost> {
    let engagement = prop::option::of(
        (
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u64>()),
        )
            .prop_map(|(likes, shares, replies, views)| Engagement {
                likes,
                shares,
                replies,
                views,
            }),
    );
    let parent = prop::option::of(
        (
            "[a-z]{1,10}",
            "[0-9]{1,19}",
            prop::sample::select(vec![
                ParentRelation::Reply,
                ParentRelation::Share,
                ParentRelation::Quote,
            ]),
        )
            .prop_map(|(platform, post_id, relation)| ParentRef {
                platform,
                post_id,
                relation,
            }),
    );
    (
        (
            "[a-z]{1,10}",
            "[0-9A-Za-z_-]{1,24}",
            "\\PC*\\S\\PC*",
            "[a-z0-9_]{0,16}",
        ),
        (0i64..4_102_444_800, -12i8..=14),
        (opt_string(), opt_string(), opt_string(), engagement, parent),
    )
        .prop_filter(
            "text within the default limit",
            |((_, _, text, _), _, _)| text.len() <= Limits::default().max_text_bytes,
        )
        .prop_map(
            |(
                (platform, post_id, text, author),
                (secs, offset_h),
                (url, lang, region, engagement, parent),
            )| {
                let offset = time::UtcOffset::from_hms(offset_h, 0, 0).expect("offset in range");
                let created_at = time::OffsetDateTime::from_unix_timestamp(secs)
                    .expect("timestamp in range")
                    .to_offset(offset)
                    .format(&time::format_description::well_known::Rfc3339)
                    .expect("formats");
                RawPost {
                    schema_version: SCHEMA_VERSION,
                    platform,
                    post_id,
                    text,
                    created_at,
                    author,
                    url,
                    lang,
                    region,
                    engagement,
                    parent,
                }
            },
        )
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(
        topic in prop::sample::select(TOPICS.to_vec()),
        bytes in prop::option::of(prop::collection::vec(any::<u8>(), 0..256)),
    ) {
        let _ = decode_input(topic, bytes.as_deref(), &Limits::default());
    }

    #[test]
    fn never_panics_on_arbitrary_json(
        topic in prop::sample::select(TOPICS.to_vec()),
        value in json_value(),
    ) {
        let bytes = serde_json::to_vec(&value).expect("serialises");
        let _ = decode_input(topic, Some(&bytes), &Limits { max_text_bytes: 16 });
    }

    #[test]
    fn valid_posts_round_trip(post in raw_post()) {
        let bytes = serde_json::to_vec(&post).expect("serialises");
        prop_assert_eq!(&serde_json::from_slice::<RawPost>(&bytes).expect("deserialises"), &post);
        let input = decode_input(topics::POSTS_RAW, Some(&bytes), &Limits::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(input, ScoringInput::from(post));
    }

    #[test]
    fn fingerprint_is_always_16_hex_chars(text in "\\PC*") {
        let fp = fingerprint(&text);
        prop_assert_eq!(fp.len(), 16);
        prop_assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
