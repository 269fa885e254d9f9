//! size: the state machine's entry points, one per input kind, and its restore; the steps they share are steps.rs, the messages outputs.rs.
//!
//! The takedown workflow as a pure state machine: each input (scored event, raw text, decision,
//! partner status) changes the state and yields the messages to produce, including the state
//! records themselves. No Kafka here, so every rule is tested without a broker.
//!
//! Idempotence: a post joins a narrative once, a decision id applies once, a request state only
//! moves forward, and every id is derived from its content, so replaying any input after a crash
//! yields nothing new or the very same messages again.
//!
//! Trust: a decision counts only with a valid signature by a dashboard key the service holds,
//! and a state record's decision is checked again at start-up; nothing else (a policy setting,
//! a state record, a partner) can make a narrative's first request.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use patroli_contracts::{
    audit_event_id, AuditEvent, AuditSubject, DecisionVerifier, NarrativeStatus, PostRef,
    RequestBasis, ReviewDecision, ScoredEvent, SourceKind, TakedownStatus, AUDIT_GENESIS,
    SCHEMA_VERSION,
};

use crate::bounds::{Bounds, MAX_DECISION_BYTES};
use crate::steps::AuditRecord;
use crate::trust::decided_status;

use crate::metrics::Metrics;
use crate::narrative::{narrative_id, NarrativeIndex};
use crate::policy::Policy;
use crate::queue::QueueGauges;
use crate::state::{
    ComplaintRecord, NarrativeRecord, PostRecord, RequestRecord, StateRecord, TextCache,
};

/// Who automatic steps are attributed to in the audit trail.
pub const POLICY_ACTOR: &str = "policy";
/// Who the service's own judgements (unusable input, repaired state) are attributed to.
pub const TAKEDOWN_ACTOR: &str = "takedown";

/// The one partition of `takedown.audit.v1` the service writes: one hash chain in one total
/// order, whose tail a restart reads back (docs/architecture.md, "Audit chain").
pub const AUDIT_PARTITION: i32 = 0;

/// One message to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub topic: &'static str,
    pub key: String,
    pub payload: Vec<u8>,
    /// Set where the partition must not depend on the key (the audit chain).
    pub partition: Option<i32>,
}

impl Outgoing {
    pub fn json<T: serde::Serialize>(topic: &'static str, key: String, value: &T) -> Self {
        Outgoing {
            topic,
            key,
            payload: serde_json::to_vec(value).expect("contract types serialise"),
            partition: None,
        }
    }
}

pub struct Engine {
    pub(crate) policy: Policy,
    pub(crate) verifier: DecisionVerifier,
    /// The link the next audit record carries: the hash of the last one written.
    pub(crate) audit_tip: String,
    pub(crate) narratives: BTreeMap<String, NarrativeRecord>,
    pub(crate) posts: HashMap<String, PostRecord>,
    pub(crate) members: HashMap<String, BTreeSet<String>>,
    /// Every request sent, by request id.
    pub(crate) requests: HashMap<String, RequestRecord>,
    pub(crate) index: NarrativeIndex,
    /// Complaints attached to narratives, by complaint id (never in `posts`).
    pub(crate) complaints: HashMap<String, ComplaintRecord>,
    pub(crate) complaints_of: HashMap<String, BTreeSet<String>>,
    /// Posts requested because a reviewer confirmed them as complaint references, so a post
    /// that arrives later is never requested a second time.
    pub(crate) requested_references: HashMap<PostRef, String>,
    texts: TextCache,
    pub(crate) queue: QueueGauges,
    pub(crate) bounds: Bounds,
    pub(crate) metrics: Metrics,
}

/// What one input changed: messages to produce, and which records to write to the state topic.
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) out: Vec<Outgoing>,
    pub(crate) dirty_posts: BTreeSet<String>,
    pub(crate) dirty_narratives: BTreeSet<String>,
    pub(crate) dirty_complaints: BTreeSet<String>,
    pub(crate) dirty_requests: BTreeSet<String>,
}

impl Engine {
    pub fn new(
        policy: Policy,
        verifier: DecisionVerifier,
        bounds: Bounds,
        metrics: Metrics,
    ) -> Self {
        assert!(
            bounds.max_posts_per_request > 0,
            "a request lists at least one post"
        );
        Engine {
            policy,
            verifier,
            audit_tip: AUDIT_GENESIS.to_owned(),
            narratives: BTreeMap::new(),
            posts: HashMap::new(),
            members: HashMap::new(),
            requests: HashMap::new(),
            index: NarrativeIndex::default(),
            complaints: HashMap::new(),
            complaints_of: HashMap::new(),
            requested_references: HashMap::new(),
            texts: TextCache::new(bounds.text_cache_bytes),
            queue: QueueGauges::default(),
            bounds,
            metrics,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Continues the audit chain after the record whose value hashes to `tip` (read back from
    /// the topic at start-up).
    pub fn set_audit_tip(&mut self, tip: String) {
        self.audit_tip = tip;
    }

    /// Applies a state-topic record read at start-up (later records replace earlier ones);
    /// call [`Engine::reopen_orphans`] once all are in. A narrative record whose status or
    /// decision does not rest on a verified decision is ignored, with an audit entry naming
    /// `subject` (where it was read).
    pub fn restore(&mut self, record: StateRecord, subject: &str, now: &str) -> Vec<Outgoing> {
        if let StateRecord::Narrative(narrative) = &record {
            if let Err(why) = self.check_narrative_record(narrative) {
                let why = format!("state record for {} ignored: {why}", narrative.narrative_id);
                return self.reject_input(subject, &why, now);
            }
        }
        match record {
            StateRecord::Post(post) => {
                let key = post.post.key();
                self.index.add(&post.narrative_id, post.fingerprint);
                self.members
                    .entry(post.narrative_id.clone())
                    .or_default()
                    .insert(key.clone());
                self.posts.insert(key, *post);
            }
            StateRecord::Narrative(mut narrative) => {
                // A record from before requests had their own: they come along, unless a
                // request record (always newer) is already in.
                for (request_id, mut request) in std::mem::take(&mut narrative.legacy_requests) {
                    if !self.requests.contains_key(&request_id) {
                        request.request_id = request_id;
                        request.narrative_id = narrative.narrative_id.clone();
                        self.restore_request(request);
                    }
                }
                self.queue.enter(&narrative);
                if let Some(old) = self
                    .narratives
                    .insert(narrative.narrative_id.clone(), *narrative)
                {
                    self.queue.leave(&old);
                }
            }
            StateRecord::Request(request) => self.restore_request(*request),
            StateRecord::Complaint(complaint) => self.restore_complaint(*complaint),
        }
        Vec::new()
    }

    fn restore_request(&mut self, request: RequestRecord) {
        let old = self.requests.get(&request.request_id).map(|r| r.state);
        if old != Some(request.state) {
            self.metrics
                .request_moved(&request.platform, &request.category, old, request.state);
        }
        self.requests.insert(request.request_id.clone(), request);
    }

    /// Remembers a raw post's text; a post already in a narrative gets it (and, once decided,
    /// its label).
    pub fn on_text(&mut self, key: String, text: String) -> Vec<Outgoing> {
        let mut fx = Effects::default();
        if let Some(post) = self.posts.get_mut(&key) {
            if post.text.is_none() {
                post.text = Some(text.clone());
                fx.dirty_posts.insert(key.clone());
                self.label_post(&key, &mut fx);
            }
        }
        self.texts.insert(key, text);
        self.finish(fx)
    }

    pub fn on_scored(&mut self, event: ScoredEvent, now: &str) -> Vec<Outgoing> {
        match event.source_kind {
            SourceKind::Complaint => return self.on_complaint(event, now),
            SourceKind::Post if event.post.platform == PostRef::COMPLAINT_PLATFORM => {
                let why = "a post on the platform reserved for complaints";
                return self.reject_input(&event.source.key(), why, now);
            }
            SourceKind::Post => {}
        }
        let mut fx = Effects::default();
        let key = event.post.key();
        if self.posts.contains_key(&key) {
            self.metrics.ignore("duplicate_post");
            return vec![];
        }
        let Some(fingerprint) = patroli_contracts::parse_fingerprint(&event.fingerprint) else {
            let why = format!("fingerprint {:?} is not 16 hex chars", event.fingerprint);
            return self.reject_input(&event.source.key(), &why, now);
        };
        let review = self
            .policy
            .review_threshold(&event.post.platform, &event.category);
        let found = self
            .index
            .find(fingerprint, self.policy.max_distance)
            .map(str::to_owned);
        let narrative_id = match found {
            // Its posts are known but its record is not (state written before outputs were
            // atomic): the narrative is reviewed again rather than trusted or lost.
            Some(id) if !self.narratives.contains_key(&id) => {
                self.reopen(&id, now, &mut fx);
                id
            }
            Some(id) => id,
            None if event.score >= review => {
                let id = narrative_id(fingerprint, &key);
                self.open_narrative(&id, &event, review, now, &mut fx);
                id
            }
            None => {
                self.metrics.ignore("below_review");
                return vec![];
            }
        };
        let protected =
            self.policy
                .is_protected(&event.post.platform, &event.author, event.url.as_deref());
        let post = PostRecord {
            narrative_id: narrative_id.clone(),
            text: self.texts.get(&key).cloned(),
            post: event.post.clone(),
            scored_event_id: event.event_id.clone(),
            url: event.url.clone(),
            author: event.author.clone(),
            created_at: event.created_at.clone(),
            score: event.score,
            category: event.category.clone(),
            categories: event.categories.clone(),
            reason_words: event.reasons.top_tokens.clone(),
            fingerprint,
            protected,
            matches: event.matches.clone(),
            requested_in: self.requested_references.get(&event.post).cloned(),
            labelled: false,
        };
        self.index.add(&narrative_id, fingerprint);
        self.members
            .entry(narrative_id.clone())
            .or_default()
            .insert(key.clone());
        self.posts.insert(key.clone(), post);
        fx.dirty_posts.insert(key.clone());

        // A copy of a confirmed narrative is requested on the confirming (verified) decision;
        // protected copies wait for a person to confirm again, pending and rejected narratives
        // request nothing.
        let narrative = &self.narratives[&narrative_id];
        if narrative.status == NarrativeStatus::Confirmed && !protected {
            if let Some(decision) = narrative.decision.clone() {
                self.request(
                    &narrative_id,
                    &event.post.platform,
                    vec![key.clone()],
                    RequestBasis::ConfirmedNarrativeCopy,
                    &decision,
                    now,
                    &mut fx,
                );
            }
        }
        self.label_post(&key, &mut fx);
        self.bump_review_item(&narrative_id, now, &mut fx);
        self.finish(fx)
    }

    /// A reviewer's decision, read at `subject` (`topic:partition:offset`). Believed only if
    /// its signature verifies and it is about posts of a narrative as reviewers saw it.
    pub fn on_decision(
        &mut self,
        decision: ReviewDecision,
        subject: &str,
        now: &str,
    ) -> Vec<Outgoing> {
        let mut fx = Effects::default();
        let size = serde_json::to_vec(&decision)
            .expect("contract types serialise")
            .len();
        if size > MAX_DECISION_BYTES {
            self.metrics.ignore("oversized_decision");
            let why = format!(
                "decision {} refused: {size} bytes, over the {MAX_DECISION_BYTES} a narrative's state record can carry",
                decision.decision_id
            );
            return self.reject_input(subject, &why, now);
        }
        if let Err(why) = self.check_decision(&decision) {
            self.metrics.ignore("unverified_decision");
            let why = format!("decision {} ignored: {why}", decision.decision_id);
            return self.reject_input(subject, &why, now);
        }
        let Some(narrative) = self.narratives.get_mut(&decision.narrative_id) else {
            return self.reject_input(
                subject,
                &format!("decision for unknown narrative {}", decision.narrative_id),
                now,
            );
        };
        if !narrative
            .decisions_seen
            .insert(decision.decision_id.clone())
        {
            self.metrics.ignore("duplicate_decision");
            return vec![];
        }
        fx.dirty_narratives.insert(decision.narrative_id.clone());
        let from = narrative.status;
        let to = decided_status(decision.action);
        let narrative_id = decision.narrative_id.clone();
        match (from, to) {
            (NarrativeStatus::PendingReview, _) => {
                self.queue.leave(narrative);
                narrative.status = to;
                self.queue.enter(narrative);
                narrative.decision = Some(decision.clone());
                self.metrics.decision(decision.action);
                let why = decision.reason.clone().unwrap_or_else(|| match to {
                    NarrativeStatus::Confirmed => "confirmed by reviewer".into(),
                    _ => "rejected by reviewer (no reason given)".into(),
                });
                self.audit(
                    &mut fx,
                    AuditRecord {
                        narrative_id: &narrative_id,
                        subject: AuditSubject::Narrative,
                        subject_id: &narrative_id,
                        from: Some(from.as_str()),
                        to: to.as_str(),
                        who: &decision.reviewer,
                        when: &decision.decided_at,
                        why: &why,
                        cause: &decision.decision_id,
                    },
                );
                if to == NarrativeStatus::Confirmed {
                    self.request_unrequested(&narrative_id, &decision, now, &mut fx);
                }
                let keys: Vec<String> = self
                    .members
                    .get(&narrative_id)
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                for key in keys {
                    self.label_post(&key, &mut fx);
                }
                self.publish_claim(&narrative_id, &decision, &mut fx);
                self.bump_review_item(&narrative_id, now, &mut fx);
            }
            // Confirming again releases copies held back (protected sources that joined after
            // the first confirmation): a person has now seen them.
            (NarrativeStatus::Confirmed, NarrativeStatus::Confirmed) => {
                self.metrics.decision(decision.action);
                self.request_unrequested(&narrative_id, &decision, now, &mut fx);
                self.bump_review_item(&narrative_id, now, &mut fx);
            }
            (from, _) => {
                self.metrics.ignore("conflicting_decision");
                let why = format!(
                    "decision to {} ignored: narrative already {}",
                    to.as_str(),
                    from.as_str()
                );
                self.audit(
                    &mut fx,
                    AuditRecord {
                        narrative_id: &narrative_id,
                        subject: AuditSubject::Narrative,
                        subject_id: &narrative_id,
                        from: Some(from.as_str()),
                        to: from.as_str(),
                        who: &decision.reviewer,
                        when: &decision.decided_at,
                        why: &why,
                        cause: &decision.decision_id,
                    },
                );
            }
        }
        if !decision.confirmed_references.is_empty() {
            self.confirm_references(&decision, now, &mut fx);
        }
        self.finish(fx)
    }

    pub fn on_status(&mut self, status: TakedownStatus, now: &str) -> Vec<Outgoing> {
        let mut fx = Effects::default();
        let subject = format!("status:{}:{:?}", status.request_id, status.status);
        let Some(request) = self.requests.get_mut(&status.request_id) else {
            let why = format!("status for unknown request {}", status.request_id);
            return self.reject_input(&subject, &why, now);
        };
        if request.platform != status.platform {
            let why = format!(
                "status from platform {} for a request to {}",
                status.platform, request.platform
            );
            return self.reject_input(&subject, &why, now);
        }
        let Some(next) = request.state.advance(status.status) else {
            self.metrics.ignore("stale_status");
            return vec![];
        };
        let from = request.state;
        request.state = next;
        let narrative_id = request.narrative_id.clone();
        self.metrics
            .request_moved(&request.platform, &request.category, Some(from), next);
        fx.dirty_requests.insert(status.request_id.clone());
        let why = status
            .reason
            .clone()
            .unwrap_or_else(|| format!("partner reported {}", next.as_str()));
        self.audit(
            &mut fx,
            AuditRecord {
                narrative_id: &narrative_id,
                subject: AuditSubject::Request,
                subject_id: &status.request_id,
                from: Some(from.as_str()),
                to: next.as_str(),
                who: &status.reported_by,
                when: &status.reported_at,
                why: &why,
                cause: "partner-status",
            },
        );
        self.finish(fx)
    }

    /// An input that cannot be used: recorded in the audit trail with the reason, never dropped
    /// silently.
    pub fn reject_input(&mut self, subject_id: &str, why: &str, now: &str) -> Vec<Outgoing> {
        let mut fx = Effects::default();
        self.metrics.ignore("rejected_input");
        let event = AuditEvent {
            schema_version: SCHEMA_VERSION,
            event_id: audit_event_id(subject_id, "rejected", why),
            narrative_id: None,
            subject: AuditSubject::Input,
            subject_id: subject_id.to_owned(),
            from: None,
            to: "rejected".into(),
            who: TAKEDOWN_ACTOR.into(),
            when: now.to_owned(),
            why: why.to_owned(),
            policy_version: self.policy.version.clone(),
            prev_hash: String::new(),
        };
        self.chain_audit(&mut fx, subject_id.to_owned(), event);
        fx.out
    }

    /// Publishes the review-queue gauges (depth and oldest age at `now`).
    pub fn refresh_gauges(&self, now: time::OffsetDateTime) {
        self.queue.publish(&self.metrics, now);
    }
}
