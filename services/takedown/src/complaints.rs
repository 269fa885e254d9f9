//! Complaints from the public: evidence attached to a narrative, never posts. Anyone may file
//! one naming any platform post with any text, so a complaint never founds a narrative, never
//! becomes (or replaces, or de-duplicates) a post record or a post's text, never counts as a
//! post in a review item, label, claim or burst, and is never requested. The post it names is
//! a *reference*: listed on the review item, requested only once a reviewer confirms that very
//! post in a decision, and then only if the service does not know it as a protected source.

use std::collections::{BTreeMap, BTreeSet};

use patroli_contracts::{
    ComplaintReference, NarrativeStatus, PostRef, RequestedPost, ReviewDecision, ScoredEvent,
    MAX_COMPLAINT_REFERENCES,
};

use crate::engine::{Effects, Engine, Outgoing};
use crate::outputs;
use crate::state::ComplaintRecord;
use crate::steps::AuditRecord;
use crate::time_of;

/// Ignored references named in one audit entry; the rest are counted.
const AUDITED_REFERENCES: usize = 10;

impl Engine {
    /// A scored complaint joins the narrative holding the closest member fingerprint, exactly
    /// as a post would, or nothing: it founds no narrative (a text anyone can send must not
    /// fill the review queue or seed what later posts join), and its fingerprint is not added
    /// to the narrative's members.
    pub(crate) fn on_complaint(&mut self, event: ScoredEvent, now: &str) -> Vec<Outgoing> {
        let subject = event.source.key();
        let Some(complaint_id) = event.complaint_id.clone() else {
            return self.reject_input(&subject, "complaint event without complaint_id", now);
        };
        let own = PostRef {
            platform: PostRef::COMPLAINT_PLATFORM.to_owned(),
            post_id: complaint_id.clone(),
        };
        // Events written before references existed carry the named post as `post`.
        let referenced_post = event
            .referenced_post
            .clone()
            .or_else(|| (event.post != own).then(|| event.post.clone()));
        if self.complaints.contains_key(&complaint_id) {
            self.metrics.ignore("duplicate_complaint");
            return vec![];
        }
        let Some(fingerprint) = patroli_contracts::parse_fingerprint(&event.fingerprint) else {
            let why = format!("fingerprint {:?} is not 16 hex chars", event.fingerprint);
            return self.reject_input(&subject, &why, now);
        };
        let Some(narrative_id) = self
            .index
            .find(fingerprint, self.policy.max_distance)
            .map(str::to_owned)
        else {
            self.metrics.ignore("complaint_without_narrative");
            return vec![];
        };
        let mut fx = Effects::default();
        let requested_in = referenced_post
            .as_ref()
            .and_then(|post| self.reference_request_id(post));
        let record = ComplaintRecord {
            complaint_id: complaint_id.clone(),
            narrative_id: narrative_id.clone(),
            scored_event_id: event.event_id,
            referenced_post,
            url: event.url,
            score: event.score,
            received: event.created_at,
            fingerprint,
            requested_in,
        };
        self.attach_complaint(record);
        fx.dirty_complaints.insert(complaint_id);
        self.bump_review_item(&narrative_id, now, &mut fx);
        self.finish(fx)
    }

    pub(crate) fn restore_complaint(&mut self, complaint: ComplaintRecord) {
        if let (Some(post), Some(request)) = (&complaint.referenced_post, &complaint.requested_in) {
            self.requested_references
                .insert(post.clone(), request.clone());
        }
        self.attach_complaint(complaint);
    }

    fn attach_complaint(&mut self, complaint: ComplaintRecord) {
        self.complaints_of
            .entry(complaint.narrative_id.clone())
            .or_default()
            .insert(complaint.complaint_id.clone());
        self.complaints
            .insert(complaint.complaint_id.clone(), complaint);
    }

    /// The request that already lists `post`: as a member of a narrative, or as a reference a
    /// reviewer confirmed.
    fn reference_request_id(&self, post: &PostRef) -> Option<String> {
        self.posts
            .get(&post.key())
            .filter(|known| known.post == *post)
            .and_then(|known| known.requested_in.clone())
            .or_else(|| self.requested_references.get(post).cloned())
    }

    /// Protected as far as the service knows: the post itself when it has been scored (author
    /// and link), and the complainant's link either way.
    fn reference_protected(&self, post: &PostRef, url: Option<&str>) -> bool {
        let known = self
            .posts
            .get(&post.key())
            .filter(|known| known.post == *post);
        known.is_some_and(|known| known.protected)
            || self.policy.is_protected(&post.platform, "", url)
    }

    /// The first complaint naming each distinct post, not yet requested ones first (they are
    /// what a reviewer can still confirm), then earliest reported; at most
    /// [`MAX_COMPLAINT_REFERENCES`].
    fn recorded_references(&self, narrative_id: &str) -> Vec<&ComplaintRecord> {
        let mut first: BTreeMap<&PostRef, &ComplaintRecord> = BTreeMap::new();
        let order = |c: &ComplaintRecord| (time_of(&c.received), c.complaint_id.clone());
        for id in self.complaints_of.get(narrative_id).into_iter().flatten() {
            let complaint = &self.complaints[id];
            let Some(post) = &complaint.referenced_post else {
                continue;
            };
            let kept = first.entry(post).or_insert(complaint);
            if order(complaint) < order(kept) {
                *kept = complaint;
            }
        }
        let mut references: Vec<&ComplaintRecord> = first.into_values().collect();
        references.sort_by_cached_key(|c| {
            let post = c.referenced_post.as_ref().expect("kept above");
            (self.reference_request_id(post).is_some(), order(c))
        });
        references
    }

    pub(crate) fn complaint_references(&self, narrative_id: &str) -> Vec<ComplaintReference> {
        self.recorded_references(narrative_id)
            .into_iter()
            .take(MAX_COMPLAINT_REFERENCES)
            .map(|c| {
                let post = c.referenced_post.clone().expect("references name a post");
                ComplaintReference {
                    complaint_id: c.complaint_id.clone(),
                    protected: self.reference_protected(&post, c.url.as_deref()),
                    request_id: self.reference_request_id(&post),
                    post,
                    url: c.url.clone(),
                    score: c.score,
                    received: c.received.clone(),
                }
            })
            .collect()
    }

    /// Requests the posts a confirming decision names among the narrative's complaint
    /// references, one request per platform. A named post that is not a recorded reference,
    /// or is protected, is not requested and the audit trail says so; one already requested
    /// is skipped. Only a decision that leaves the narrative confirmed does this, so a later
    /// decision can confirm references that arrived after the first one.
    pub(crate) fn confirm_references(
        &mut self,
        decision: &ReviewDecision,
        now: &str,
        fx: &mut Effects,
    ) {
        let narrative_id = decision.narrative_id.as_str();
        let status = self.narratives[narrative_id].status;
        let confirms = decision.action == patroli_contracts::DecisionAction::Confirm
            && status == NarrativeStatus::Confirmed;
        let recorded: BTreeMap<PostRef, Option<String>> = self
            .complaints_of
            .get(narrative_id)
            .into_iter()
            .flatten()
            .filter_map(|id| {
                let c = &self.complaints[id];
                Some((c.referenced_post.clone()?, c.url.clone()))
            })
            .collect();
        let mut ignored: Vec<String> = Vec::new();
        let mut by_platform: BTreeMap<String, Vec<PostRef>> = BTreeMap::new();
        let named: BTreeSet<&PostRef> = decision.confirmed_references.iter().collect();
        for post in named {
            let why = if !confirms {
                Some("the decision does not leave the narrative confirmed")
            } else if !recorded.contains_key(post) {
                Some("not among the narrative's complaint references")
            } else if self.reference_request_id(post).is_some() {
                None
            } else if self.reference_protected(post, recorded[post].as_deref()) {
                Some("a protected source")
            } else {
                by_platform
                    .entry(post.platform.clone())
                    .or_default()
                    .push(post.clone());
                None
            };
            if let Some(why) = why {
                ignored.push(format!("{} ({why})", post.key()));
            }
        }
        if !ignored.is_empty() {
            self.audit_ignored_references(decision, status, &ignored, fx);
        }
        let mut requested = false;
        for (platform, posts) in by_platform {
            requested |= self.request_references(narrative_id, &platform, posts, decision, now, fx);
        }
        if requested {
            self.bump_review_item(narrative_id, now, fx);
        }
    }

    fn request_references(
        &mut self,
        narrative_id: &str,
        platform: &str,
        posts: Vec<PostRef>,
        decision: &ReviewDecision,
        now: &str,
        fx: &mut Effects,
    ) -> bool {
        // A partner is given only a link the service saw on the post itself: the
        // complainant's may point anywhere.
        let listed = posts
            .iter()
            .map(|post| RequestedPost {
                post_id: post.post_id.clone(),
                url: self
                    .posts
                    .get(&post.key())
                    .filter(|known| known.post == *post)
                    .and_then(|known| known.url.clone()),
            })
            .collect();
        let Some(request) = outputs::reference_request(
            self,
            narrative_id,
            platform,
            listed,
            &decision.decision_id,
            now,
        ) else {
            return false;
        };
        for post in &posts {
            let key = post.key();
            if let Some(known) = self.posts.get_mut(&key).filter(|k| k.post == *post) {
                known.requested_in = Some(request.request_id.clone());
                fx.dirty_posts.insert(key);
            }
            self.requested_references
                .insert(post.clone(), request.request_id.clone());
        }
        for id in self.complaints_of.get(narrative_id).into_iter().flatten() {
            let complaint = self
                .complaints
                .get_mut(id)
                .expect("attached complaints exist");
            if complaint
                .referenced_post
                .as_ref()
                .is_some_and(|p| posts.contains(p))
            {
                complaint.requested_in = Some(request.request_id.clone());
                fx.dirty_complaints.insert(id.clone());
            }
        }
        self.send_request(narrative_id, request, &decision.reviewer, fx, now);
        true
    }

    fn audit_ignored_references(
        &mut self,
        decision: &ReviewDecision,
        status: NarrativeStatus,
        ignored: &[String],
        fx: &mut Effects,
    ) {
        let mut listed = ignored[..ignored.len().min(AUDITED_REFERENCES)].join(", ");
        if ignored.len() > AUDITED_REFERENCES {
            listed += &format!(" and {} more", ignored.len() - AUDITED_REFERENCES);
        }
        let why = format!("confirmed references not requested: {listed}");
        self.audit(
            fx,
            AuditRecord {
                narrative_id: &decision.narrative_id,
                subject: patroli_contracts::AuditSubject::Narrative,
                subject_id: &decision.narrative_id,
                from: Some(status.as_str()),
                to: status.as_str(),
                who: &decision.reviewer,
                when: &decision.decided_at,
                why: &why,
                cause: &format!("references:{}", decision.decision_id),
            },
        );
    }
}
