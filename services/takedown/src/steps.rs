//! The steps the engine's inputs share: opening a narrative, requesting, labelling, re-issuing
//! the review item, auditing, and writing the state records of what changed.

use std::collections::{BTreeMap, BTreeSet};

use patroli_contracts::{
    audit_event_id, audit_link, topics, AuditEvent, AuditSubject, NarrativeStatus, RequestBasis,
    ReviewDecision, ReviewLabel, ScoredEvent, TakedownRequest, SCHEMA_VERSION,
};

use crate::bounds::AUDIT_WHY_CHARS;
use crate::engine::{Effects, Engine, Outgoing, AUDIT_PARTITION, POLICY_ACTOR};
use crate::state::{NarrativeRecord, RequestRecord, RequestState, StateRecord};
use crate::{outputs, time_of};

impl Engine {
    pub(crate) fn open_narrative(
        &mut self,
        id: &str,
        event: &ScoredEvent,
        review: f32,
        now: &str,
        fx: &mut Effects,
    ) {
        let why = format!(
            "score {:.2} >= review threshold {review:.2} for {}/{}",
            event.score, event.post.platform, event.category
        );
        self.queue_for_review(id, POLICY_ACTOR, &why, &event.event_id, now, fx);
    }

    /// Puts narrative `id` in the review queue, audited as `who`'s step for `why`, caused by
    /// `cause`.
    pub(crate) fn queue_for_review(
        &mut self,
        id: &str,
        who: &str,
        why: &str,
        cause: &str,
        now: &str,
        fx: &mut Effects,
    ) {
        self.insert_pending(id, now, fx);
        self.audit(
            fx,
            AuditRecord {
                narrative_id: id,
                subject: AuditSubject::Narrative,
                subject_id: id,
                from: None,
                to: NarrativeStatus::PendingReview.as_str(),
                who,
                when: now,
                why,
                cause,
            },
        );
    }

    pub(crate) fn insert_pending(&mut self, id: &str, now: &str, fx: &mut Effects) {
        let record = NarrativeRecord {
            narrative_id: id.to_owned(),
            status: NarrativeStatus::PendingReview,
            revision: 0,
            queued_at: now.to_owned(),
            decision: None,
            decisions_seen: BTreeSet::new(),
            legacy_requests: BTreeMap::new(),
        };
        self.queue.enter(&record);
        if let Some(old) = self.narratives.insert(id.to_owned(), record) {
            self.queue.leave(&old);
        }
        fx.dirty_narratives.insert(id.to_owned());
    }

    /// Requests for every post of the narrative not requested yet: per platform, pages of at
    /// most `max_posts_per_request` posts in post-key order, so the same posts always make the
    /// same pages (and request ids).
    pub(crate) fn request_unrequested(
        &mut self,
        narrative_id: &str,
        decision: &ReviewDecision,
        now: &str,
        fx: &mut Effects,
    ) {
        let mut by_platform: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in self.members.get(narrative_id).into_iter().flatten() {
            let post = &self.posts[key];
            if post.requested_in.is_none() {
                by_platform
                    .entry(post.post.platform.clone())
                    .or_default()
                    .push(key.clone());
            }
        }
        for (platform, keys) in by_platform {
            for page in keys.chunks(self.bounds.max_posts_per_request) {
                self.request(
                    narrative_id,
                    &platform,
                    page.to_vec(),
                    RequestBasis::Confirmed,
                    decision,
                    now,
                    fx,
                );
            }
        }
    }

    /// A request for the narrative's posts `keys` not requested yet (a post is requested at
    /// most once, whichever way it was confirmed), resting on `decision` (verified, confirming
    /// `narrative_id`); nothing when none is left.
    #[allow(clippy::too_many_arguments)] // each argument is one field of the request
    pub(crate) fn request(
        &mut self,
        narrative_id: &str,
        platform: &str,
        mut keys: Vec<String>,
        basis: RequestBasis,
        decision: &ReviewDecision,
        now: &str,
        fx: &mut Effects,
    ) {
        keys.retain(|key| self.posts[key].requested_in.is_none());
        if keys.is_empty() {
            return;
        }
        let request = outputs::takedown_request(
            self,
            narrative_id,
            platform,
            &keys,
            basis,
            decision.decision_id.clone(),
            now,
        );
        for key in &keys {
            let post = self.posts.get_mut(key).expect("requested posts are known");
            post.requested_in = Some(request.request_id.clone());
            fx.dirty_posts.insert(key.clone());
        }
        self.send_request(narrative_id, request, &decision.reviewer, fx, now);
    }

    /// Records `request` as sent (state, metrics, audit) and queues it for its platform; `who`
    /// is the reviewer whose verified decision it rests on.
    pub(crate) fn send_request(
        &mut self,
        narrative_id: &str,
        request: TakedownRequest,
        who: &str,
        fx: &mut Effects,
        now: &str,
    ) {
        let platform = request.platform.as_str();
        let basis = request.basis;
        let record = RequestRecord {
            request_id: request.request_id.clone(),
            narrative_id: narrative_id.to_owned(),
            platform: platform.to_owned(),
            category: request.category.clone(),
            state: RequestState::Sent,
            created_at: now.to_owned(),
        };
        self.requests.insert(request.request_id.clone(), record);
        fx.dirty_requests.insert(request.request_id.clone());
        let basis_name = match basis {
            RequestBasis::Confirmed => "confirmed",
            RequestBasis::ConfirmedNarrativeCopy => "confirmed_narrative_copy",
        };
        self.metrics
            .requests_created
            .with_label_values(&[platform, &request.category, basis_name])
            .inc();
        self.metrics
            .request_moved(platform, &request.category, None, RequestState::Sent);
        if let (Some(first), Some(created)) = (self.first_seen(narrative_id), time_of(now)) {
            let seconds = (created - first).as_seconds_f64();
            if seconds >= 0.0 {
                self.metrics.first_post_to_request_seconds.observe(seconds);
            }
        }
        let why = format!(
            "{basis_name}: {} post(s) on {platform}",
            request.posts.len()
        );
        self.audit(
            fx,
            AuditRecord {
                narrative_id,
                subject: AuditSubject::Request,
                subject_id: &request.request_id,
                from: None,
                to: RequestState::Sent.as_str(),
                who,
                when: now,
                why: &why,
                cause: basis_name,
            },
        );
        fx.out.push(Outgoing::json(
            topics::TAKEDOWN_REQUESTS,
            platform.to_owned(),
            &request,
        ));
    }

    /// The post's `labels.v1` record, once its narrative is decided and its text known.
    pub(crate) fn label_post(&mut self, key: &str, fx: &mut Effects) {
        let Some(post) = self.posts.get(key) else {
            return;
        };
        if post.labelled || post.text.is_none() {
            return;
        }
        let Some(decision) = self
            .narratives
            .get(&post.narrative_id)
            .and_then(|n| n.decision.clone())
        else {
            return;
        };
        let label = outputs::label(self, post, &decision);
        let name = match label.label {
            ReviewLabel::Hoax => "hoax",
            ReviewLabel::NotHoax => "not_hoax",
        };
        self.metrics.labels.with_label_values(&[name]).inc();
        fx.out
            .push(Outgoing::json(topics::LABELS, label.post.key(), &label));
        self.posts.get_mut(key).expect("checked above").labelled = true;
        fx.dirty_posts.insert(key.to_owned());
    }

    /// A decided narrative joins the known claims every classifier matches against.
    pub(crate) fn publish_claim(
        &mut self,
        narrative_id: &str,
        decision: &ReviewDecision,
        fx: &mut Effects,
    ) {
        let Some(claim) = outputs::claim(self, narrative_id, decision) else {
            tracing::warn!(%narrative_id, "decided narrative has no post text: no claim published");
            return;
        };
        fx.out.push(Outgoing::json(
            topics::CLAIMS,
            claim.claim_id.clone(),
            &claim,
        ));
    }

    pub(crate) fn bump_review_item(&mut self, narrative_id: &str, now: &str, fx: &mut Effects) {
        let narrative = self
            .narratives
            .get_mut(narrative_id)
            .expect("review items belong to known narratives");
        narrative.revision += 1;
        fx.dirty_narratives.insert(narrative_id.to_owned());
        let item = outputs::review_item(self, narrative_id, now);
        fx.out.push(Outgoing::json(
            topics::REVIEW_QUEUE,
            narrative_id.to_owned(),
            &item,
        ));
    }

    pub(crate) fn first_seen(&self, narrative_id: &str) -> Option<time::OffsetDateTime> {
        self.members
            .get(narrative_id)?
            .iter()
            .filter_map(|key| time_of(&self.posts[key].created_at))
            .min()
    }

    pub(crate) fn audit(&mut self, fx: &mut Effects, record: AuditRecord<'_>) {
        let event = AuditEvent {
            schema_version: SCHEMA_VERSION,
            event_id: audit_event_id(record.subject_id, record.to, record.cause),
            narrative_id: Some(record.narrative_id.to_owned()),
            subject: record.subject,
            subject_id: record.subject_id.to_owned(),
            from: record.from.map(str::to_owned),
            to: record.to.to_owned(),
            who: record.who.to_owned(),
            when: record.when.to_owned(),
            why: record.why.to_owned(),
            policy_version: self.policy.version.clone(),
            prev_hash: String::new(),
        };
        self.chain_audit(fx, record.narrative_id.to_owned(), event);
    }

    /// Links `event` to the last audit record and makes it the new last one. Every audit record
    /// goes through here, to [`AUDIT_PARTITION`], in the order the service produces them.
    pub(crate) fn chain_audit(&mut self, fx: &mut Effects, key: String, mut event: AuditEvent) {
        cap_why(&mut event.why);
        event.prev_hash = std::mem::take(&mut self.audit_tip);
        let mut out = Outgoing::json(topics::TAKEDOWN_AUDIT, key, &event);
        out.partition = Some(AUDIT_PARTITION);
        self.audit_tip = audit_link(&out.payload);
        fx.out.push(out);
    }

    /// Appends the state records of everything `fx` touched, after the outputs: a crash between
    /// the two re-runs the input and produces the same outputs again, never loses them.
    pub(crate) fn finish(&mut self, mut fx: Effects) -> Vec<Outgoing> {
        for key in &fx.dirty_posts {
            let record = StateRecord::Post(Box::new(self.posts[key].clone()));
            fx.out.push(state_message(&record));
        }
        for id in &fx.dirty_complaints {
            let record = StateRecord::Complaint(Box::new(self.complaints[id].clone()));
            fx.out.push(state_message(&record));
        }
        for id in &fx.dirty_requests {
            let record = StateRecord::Request(Box::new(self.requests[id].clone()));
            fx.out.push(state_message(&record));
        }
        for id in &fx.dirty_narratives {
            let record = StateRecord::Narrative(Box::new(self.narratives[id].clone()));
            fx.out.push(state_message(&record));
        }
        if !fx.dirty_narratives.is_empty() {
            self.refresh_gauges(time::OffsetDateTime::now_utc());
        }
        fx.out
    }
}

fn cap_why(why: &mut String) {
    if let Some((cut, _)) = why.char_indices().nth(AUDIT_WHY_CHARS) {
        let bytes = why.len();
        why.truncate(cut);
        why.push_str(&format!("… (truncated, {bytes} bytes)"));
    }
}

fn state_message(record: &StateRecord) -> Outgoing {
    Outgoing {
        topic: topics::TAKEDOWN_STATE,
        key: record.key(),
        payload: record.to_json(),
        partition: None,
    }
}

pub(crate) struct AuditRecord<'a> {
    pub(crate) narrative_id: &'a str,
    pub(crate) subject: AuditSubject,
    pub(crate) subject_id: &'a str,
    pub(crate) from: Option<&'a str>,
    pub(crate) to: &'a str,
    pub(crate) who: &'a str,
    pub(crate) when: &'a str,
    pub(crate) why: &'a str,
    /// What caused the transition (decision id, scored event id ...), for a deterministic id.
    pub(crate) cause: &'a str,
}
