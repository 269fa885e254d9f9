//! Kafka topic names and settings. The `.v1` suffix is part of the contract: an incompatible
//! change gets a new topic so old and new producers can run side by side during a migration.
//!
//! [`TABLE`] is the one place a topic's partitions, retention and limits are decided: the local
//! broker (`patroli up`, the tests) is made from it, and `deploy/k8s/base/kafkatopics.yaml` is
//! rendered from it ([`strimzi_topics`]; a test fails when the committed file differs).

pub const POSTS_RAW: &str = "posts.raw.v1";
pub const COMPLAINTS: &str = "complaints.v1";
/// How to reach a member of the public who filed a complaint. Kept apart from
/// `complaints.v1` so personal data never flows into scored or DLQ events; only the
/// team that answers complaints may read it (ACL, short retention).
pub const COMPLAINT_CONTACTS: &str = "complaints.contacts.v1";
pub const POSTS_SCORED: &str = "posts.scored.v1";
pub const POSTS_DLQ: &str = "posts.dlq.v1";
pub const REVIEW_QUEUE: &str = "review.queue.v1";
pub const REVIEW_DECISIONS: &str = "review.decisions.v1";
pub const TAKEDOWN_REQUESTS: &str = "takedown.requests.v1";
pub const TAKEDOWN_STATUS: &str = "takedown.status.v1";
pub const LABELS: &str = "labels.v1";
pub const TAKEDOWN_AUDIT: &str = "takedown.audit.v1";
/// Checked claims every classifier matches posts against; compacted, keyed by claim id.
pub const CLAIMS: &str = "claims.v1";
/// The takedown service's own compacted state (narratives, posts, requests), read back at
/// start-up. Internal to that service, so it has no schema here and is not in [`ALL`].
pub const TAKEDOWN_STATE: &str = "takedown.state.v1";

/// Every topic this crate defines a value for, in data-flow order.
pub const ALL: [&str; 12] = [
    POSTS_RAW,
    COMPLAINTS,
    COMPLAINT_CONTACTS,
    POSTS_SCORED,
    POSTS_DLQ,
    REVIEW_QUEUE,
    REVIEW_DECISIONS,
    TAKEDOWN_REQUESTS,
    TAKEDOWN_STATUS,
    LABELS,
    TAKEDOWN_AUDIT,
    CLAIMS,
];

/// The broker's default `max.message.bytes` (1 MiB), which the gateway's and classifier's
/// producers also keep to; only the dead-letter topic allows more.
pub const MAX_MESSAGE_BYTES: u32 = 1_048_576;

/// How long a topic keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Deleted after this many days.
    Days(u32),
    /// Kept forever: records people and partners rely on.
    Forever,
    /// Compacted: the latest record of each key is kept (a tombstone removes the key).
    Compacted,
}

/// One topic: its name and everything the deployments decide about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: &'static str,
    /// Partitions on a local broker: enough to show consumer-group scaling.
    pub local_partitions: i32,
    /// Partitions in production. Only ever raised: more partitions change which partition a
    /// key goes to (per-key order breaks for keys in flight); Kafka refuses fewer.
    pub partitions: i32,
    pub retention: Retention,
    /// `max.message.bytes`, when the topic must allow more than [`MAX_MESSAGE_BYTES`].
    pub max_message_bytes: Option<u32>,
    /// `min.compaction.lag.ms` of a compacted topic that readers follow.
    pub min_compaction_lag_ms: Option<u64>,
    /// Why these settings, written above the topic in the manifest.
    pub why: &'static str,
}

const fn topic(name: &'static str, local: i32, production: i32, retention: Retention) -> TopicSpec {
    TopicSpec {
        name,
        local_partitions: local,
        partitions: production,
        retention,
        max_message_bytes: None,
        min_compaction_lag_ms: None,
        why: "",
    }
}

/// Every topic, in data-flow order.
pub const TABLE: [TopicSpec; 13] = [
    TopicSpec {
        max_message_bytes: Some(MAX_MESSAGE_BYTES),
        why: "Partners' raw posts. 7 days: the replay window for re-scoring. Raising the \
              partitions changes which partition a post key goes to.",
        ..topic(POSTS_RAW, 6, 12, Retention::Days(7))
    },
    TopicSpec {
        why: "Complaints from the public, scored like posts but never taken for one.",
        ..topic(COMPLAINTS, 3, 6, Retention::Days(7))
    },
    TopicSpec {
        why: "Personal data of people who filed complaints (written only by the gateway). \
              Short retention: long enough for the team to answer, no longer; reads are \
              restricted by ACLs.",
        ..topic(COMPLAINT_CONTACTS, 1, 3, Retention::Days(30))
    },
    TopicSpec {
        why: "Every scored post and complaint, for dashboards and the takedown service.",
        ..topic(POSTS_SCORED, 6, 12, Retention::Days(14))
    },
    TopicSpec {
        max_message_bytes: Some(2 * MAX_MESSAGE_BYTES),
        why: "Dead letters: the original message base64-encoded (4/3 of up to 1 MiB) and the \
              reason, so 2 MiB; 30 days to inspect and replay them.",
        ..topic(POSTS_DLQ, 1, 3, Retention::Days(30))
    },
    TopicSpec {
        why: "The latest review item of each narrative: the dashboard reads it whole.",
        ..topic(REVIEW_QUEUE, 3, 3, Retention::Compacted)
    },
    TopicSpec {
        why: "Reviewers' signed decisions are the record: kept.",
        ..topic(REVIEW_DECISIONS, 3, 3, Retention::Forever)
    },
    TopicSpec {
        why: "Keyed by platform: each partner reads the partition its platform hashes to.",
        ..topic(TAKEDOWN_REQUESTS, 3, 3, Retention::Forever)
    },
    TopicSpec {
        why: "Partners' answers to requests.",
        ..topic(TAKEDOWN_STATUS, 3, 3, Retention::Forever)
    },
    TopicSpec {
        why: "Reviewers' labels: the next model's training data.",
        ..topic(LABELS, 3, 3, Retention::Forever)
    },
    TopicSpec {
        why: "One partition: the takedown service writes one hash chain (each record carries \
              the SHA-256 of the one before) in one total order, whose tail it reads back at \
              start-up; `patroli audit verify` recomputes it. A few records per narrative, far \
              below what one partition carries.",
        ..topic(TAKEDOWN_AUDIT, 1, 1, Retention::Forever)
    },
    TopicSpec {
        why: "The takedown service's own state, read back at start-up: one partition, one owner.",
        ..topic(TAKEDOWN_STATE, 1, 1, Retention::Compacted)
    },
    TopicSpec {
        min_compaction_lag_ms: Some(3_600_000),
        why: "Known claims every classifier reads whole at start-up and follows: the latest \
              record of a claim wins, a tombstone removes it; one partition, one order.",
        ..topic(CLAIMS, 1, 1, Retention::Compacted)
    },
];

/// `(name, partitions)` of every topic on a local broker, for `ensure_topics`.
pub const LOCAL_PARTITIONS: [(&str, i32); TABLE.len()] = {
    let mut out = [("", 0); TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        out[i] = (TABLE[i].name, TABLE[i].local_partitions);
        i += 1;
    }
    out
};

/// The spec of `name`, if it is a patroli topic.
pub fn spec(name: &str) -> Option<&'static TopicSpec> {
    TABLE.iter().find(|t| t.name == name)
}

/// The Strimzi `KafkaTopic`s for [`TABLE`], as committed in `deploy/k8s/base/kafkatopics.yaml`.
/// Overlays set `strimzi.io/cluster` and the Topic Operator's namespace.
pub fn strimzi_topics() -> String {
    let mut out = String::from(
        "# Generated from patroli_contracts::topics::TABLE; do not edit. Rewrite with\n\
         # `UPDATE_KAFKA_TOPICS=1 cargo test -p patroli-contracts --test kafka_topics`.\n\
         # Overlays set strimzi.io/cluster and the Topic Operator's namespace. Three\n\
         # replicas, two in sync: a write survives the loss of one broker.\n",
    );
    for (i, topic) in TABLE.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        for line in wrap(topic.why, 92) {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&format!(
            "apiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaTopic\nmetadata:\n  name: {}\n  \
             labels:\n    strimzi.io/cluster: patroli-kafka\n    app.kubernetes.io/name: patroli\n\
             spec:\n  topicName: {}\n  partitions: {}\n  replicas: 3\n  config:\n    \
             min.insync.replicas: \"2\"\n",
            topic.name.replace('.', "-"),
            topic.name,
            topic.partitions
        ));
        match topic.retention {
            Retention::Days(days) => out.push_str(&format!(
                "    retention.ms: \"{}\"  # {days} days\n    cleanup.policy: delete\n",
                u64::from(days) * 86_400_000
            )),
            Retention::Forever => {
                out.push_str("    retention.ms: \"-1\"  # forever\n    cleanup.policy: delete\n")
            }
            Retention::Compacted => out.push_str("    cleanup.policy: compact\n"),
        }
        out.push_str("    compression.type: producer\n");
        if let Some(bytes) = topic.max_message_bytes {
            out.push_str(&format!("    max.message.bytes: \"{bytes}\"\n"));
        }
        if let Some(lag) = topic.min_compaction_lag_ms {
            out.push_str(&format!("    min.compaction.lag.ms: \"{lag}\"\n"));
        }
    }
    out
}

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
