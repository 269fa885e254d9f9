//! Who may do what on Kafka: one principal per service, each allowed exactly the topics,
//! consumer groups and transactional ids its code uses, and nothing else. This table is the
//! one source of truth for both the local broker's ACLs (`LocalBroker::start_secured`) and
//! the Strimzi `KafkaUser`s in `deploy/k8s/base/kafkausers.yaml`, which [`strimzi_users`]
//! writes and `tests/kafka_users.rs` keeps equal to it. docs/broker.md explains each row.
//!
//! Consumers that assign partitions themselves and never commit (the dashboard, the
//! classifier's claim follower, the takedown service's state rebuild) need no group ACL: the
//! broker checks a group only for joining, committing and reading committed offsets.

use crate::topics;

/// What an ACL is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Topic(&'static str),
    Group(&'static str),
    /// Every transactional id starting with this prefix.
    TransactionalIdPrefix(&'static str),
    /// The cluster itself (`IdempotentWrite`).
    Cluster,
}

/// The Kafka operations patroli grants (Kafka's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
    Describe,
    IdempotentWrite,
}

impl Operation {
    /// Kafka's (and Strimzi's) name of the operation.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "Read",
            Operation::Write => "Write",
            Operation::Describe => "Describe",
            Operation::IdempotentWrite => "IdempotentWrite",
        }
    }
}

/// Operations allowed on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub resource: Resource,
    pub operations: &'static [Operation],
}

/// A Kafka user (SCRAM-SHA-512): `User:<name>` to the broker's authorizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub name: &'static str,
    /// Who runs as this principal.
    pub used_by: &'static str,
    pub grants: &'static [Grant],
}

const READ: &[Operation] = &[Operation::Read, Operation::Describe];
const WRITE: &[Operation] = &[Operation::Write, Operation::Describe];
const READ_WRITE: &[Operation] = &[Operation::Read, Operation::Write, Operation::Describe];
/// Brokers before Kafka 3.0 (KIP-679) ask idempotent producers for this on the cluster;
/// newer ones imply it from `Write` on a topic.
const IDEMPOTENT: Grant = Grant {
    resource: Resource::Cluster,
    operations: &[Operation::IdempotentWrite],
};

const fn topic(name: &'static str, operations: &'static [Operation]) -> Grant {
    Grant {
        resource: Resource::Topic(name),
        operations,
    }
}

pub const GATEWAY: &str = "patroli-gateway";
pub const CLASSIFIER: &str = "patroli-classifier";
pub const TAKEDOWN: &str = "patroli-takedown";
pub const DASHBOARD: &str = "patroli-dashboard";
pub const KEDA: &str = "patroli-keda";

/// Every principal, in data-flow order.
pub const PRINCIPALS: &[Principal] = &[
    Principal {
        name: GATEWAY,
        used_by: "the ingest gateway (internet-facing)",
        grants: &[
            topic(topics::POSTS_RAW, WRITE),
            topic(topics::COMPLAINTS, WRITE),
            topic(topics::COMPLAINT_CONTACTS, WRITE),
            IDEMPOTENT,
        ],
    },
    Principal {
        name: CLASSIFIER,
        used_by: "the classifier",
        grants: &[
            topic(topics::POSTS_RAW, READ),
            topic(topics::COMPLAINTS, READ),
            topic(topics::CLAIMS, READ),
            topic(topics::POSTS_SCORED, WRITE),
            topic(topics::POSTS_DLQ, WRITE),
            // Its consumer group (`group_id`), joined and committed to, also inside
            // transactions (`send_offsets_to_transaction`).
            Grant {
                resource: Resource::Group("patroli-classifier"),
                operations: READ,
            },
            // Exactly-once: each pod's `transactional_id` is its pod name.
            Grant {
                resource: Resource::TransactionalIdPrefix("patroli-classifier-"),
                operations: WRITE,
            },
            IDEMPOTENT,
        ],
    },
    Principal {
        name: TAKEDOWN,
        used_by: "the takedown service",
        grants: &[
            topic(topics::POSTS_RAW, READ),
            topic(topics::COMPLAINTS, READ),
            topic(topics::POSTS_SCORED, READ),
            topic(topics::REVIEW_DECISIONS, READ),
            topic(topics::TAKEDOWN_STATUS, READ),
            topic(topics::REVIEW_QUEUE, WRITE),
            topic(topics::TAKEDOWN_REQUESTS, WRITE),
            topic(topics::LABELS, WRITE),
            topic(topics::TAKEDOWN_AUDIT, WRITE),
            topic(topics::CLAIMS, WRITE),
            topic(topics::TAKEDOWN_STATE, READ_WRITE),
            // Its consumer group, whose offsets it commits inside its transactions.
            Grant {
                resource: Resource::Group("patroli-takedown"),
                operations: READ,
            },
            // Exactly-once: outputs, state and input offsets in one transaction
            // (`transactional_id`, one replica).
            Grant {
                resource: Resource::TransactionalIdPrefix("patroli-takedown"),
                operations: WRITE,
            },
            IDEMPOTENT,
        ],
    },
    Principal {
        name: DASHBOARD,
        used_by: "the dashboard and review desk",
        grants: &[
            topic(topics::POSTS_SCORED, READ),
            topic(topics::POSTS_DLQ, READ),
            topic(topics::REVIEW_QUEUE, READ),
            topic(topics::REVIEW_DECISIONS, READ_WRITE),
            topic(topics::TAKEDOWN_REQUESTS, READ),
            topic(topics::TAKEDOWN_STATUS, READ),
            IDEMPOTENT,
        ],
    },
    Principal {
        name: KEDA,
        used_by: "KEDA's lag reader (scales the classifier)",
        grants: &[
            topic(topics::POSTS_RAW, &[Operation::Describe]),
            Grant {
                resource: Resource::Group("patroli-classifier"),
                operations: &[Operation::Describe],
            },
        ],
    },
];

/// The principal called `name`.
pub fn principal(name: &str) -> Option<&'static Principal> {
    PRINCIPALS.iter().find(|p| p.name == name)
}

/// The Strimzi `KafkaUser`s (SCRAM-SHA-512, simple authorization) for [`PRINCIPALS`], as the
/// YAML committed in `deploy/k8s/base/kafkausers.yaml`. Strimzi's User Operator creates a
/// Secret of the same name holding each user's `password`.
pub fn strimzi_users() -> String {
    let mut out = String::from(
        "# Generated from patroli_contracts::access::PRINCIPALS; do not edit. Rewrite with\n\
         # `UPDATE_KAFKA_USERS=1 cargo test -p patroli-contracts --test kafka_users`.\n\
         # Strimzi's User Operator (watching the app namespace) creates, for each user, a\n\
         # Secret of the same name whose key `password` the user's Deployment mounts.\n",
    );
    for (i, principal) in PRINCIPALS.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&format!(
            "# {}\napiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaUser\nmetadata:\n  name: {}\n  labels:\n    app.kubernetes.io/name: patroli\nspec:\n  authentication:\n    type: scram-sha-512\n  authorization:\n    type: simple\n    acls:\n",
            principal.used_by, principal.name
        ));
        for grant in principal.grants {
            let (kind, name, pattern) = match grant.resource {
                Resource::Topic(name) => ("topic", Some(name), "literal"),
                Resource::Group(name) => ("group", Some(name), "literal"),
                Resource::TransactionalIdPrefix(prefix) => {
                    ("transactionalId", Some(prefix), "prefix")
                }
                Resource::Cluster => ("cluster", None, ""),
            };
            out.push_str(&format!("      - resource:\n          type: {kind}\n"));
            if let Some(name) = name {
                out.push_str(&format!(
                    "          name: {name}\n          patternType: {pattern}\n"
                ));
            }
            let operations: Vec<&str> = grant.operations.iter().map(|o| o.name()).collect();
            out.push_str(&format!(
                "        operations: [{}]\n        host: \"*\"\n",
                operations.join(", ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_takedown_service_writes_decision_outcomes_and_only_the_dashboard_decisions() {
        let writers = |topic: &'static str| -> Vec<&str> {
            PRINCIPALS
                .iter()
                .filter(|p| {
                    p.grants.iter().any(|g| {
                        g.resource == Resource::Topic(topic)
                            && g.operations.contains(&Operation::Write)
                    })
                })
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(writers(topics::REVIEW_DECISIONS), [DASHBOARD]);
        assert_eq!(writers(topics::TAKEDOWN_STATE), [TAKEDOWN]);
        assert_eq!(writers(topics::TAKEDOWN_AUDIT), [TAKEDOWN]);
        assert_eq!(writers(topics::CLAIMS), [TAKEDOWN]);
        assert_eq!(writers(topics::POSTS_RAW), [GATEWAY]);
        assert!(writers(topics::TAKEDOWN_STATUS).is_empty(), "partners only");
    }

    #[test]
    fn nobody_reads_complaint_contacts() {
        // Only the team answering complaints may, under its own principal (not a service).
        assert!(!PRINCIPALS.iter().any(|p| p.grants.iter().any(|g| {
            g.resource == Resource::Topic(topics::COMPLAINT_CONTACTS)
                && g.operations.contains(&Operation::Read)
        })));
    }
}
