//! What the engine believes: a reviewer decision only with a valid signature, about posts of a
//! narrative as reviewers saw it; a decided narrative's state record only with its verified
//! decision. Everything else is refused with an audit entry naming why.

use patroli_contracts::{DecisionAction, NarrativeStatus, ReviewDecision};

use crate::engine::{Effects, Engine, Outgoing, TAKEDOWN_ACTOR};
use crate::state::NarrativeRecord;

pub(crate) fn decided_status(action: DecisionAction) -> NarrativeStatus {
    match action {
        DecisionAction::Confirm => NarrativeStatus::Confirmed,
        DecisionAction::Reject => NarrativeStatus::Rejected,
    }
}

impl Engine {
    /// A decided narrative's record must carry the decision that decided it, signed by a held
    /// key, for this narrative, with the action its status says.
    pub(crate) fn check_narrative_record(&self, narrative: &NarrativeRecord) -> Result<(), String> {
        let Some(decision) = &narrative.decision else {
            return match narrative.status {
                NarrativeStatus::PendingReview => Ok(()),
                status => Err(format!("status {} without a decision", status.as_str())),
            };
        };
        self.verifier.verify(decision).map_err(|e| e.to_string())?;
        if decision.narrative_id != narrative.narrative_id {
            return Err(format!(
                "its decision {} is for narrative {}",
                decision.decision_id, decision.narrative_id
            ));
        }
        if narrative.status != decided_status(decision.action) {
            return Err(format!(
                "status {} but its decision {} says {}",
                narrative.status.as_str(),
                decision.decision_id,
                decided_status(decision.action).as_str()
            ));
        }
        Ok(())
    }

    /// Posts whose narrative record is missing (or was ignored) are queued for review again
    /// under a fresh pending narrative, so no post points at nothing.
    pub fn reopen_orphans(&mut self, now: &str) -> Vec<Outgoing> {
        let orphans: Vec<String> = self
            .members
            .keys()
            .filter(|id| !self.narratives.contains_key(*id))
            .cloned()
            .collect();
        let mut fx = Effects::default();
        for id in orphans {
            self.reopen(&id, now, &mut fx);
        }
        self.finish(fx)
    }

    /// Queues narrative `id`, whose posts are known but whose record is not, for review again,
    /// audited.
    pub(crate) fn reopen(&mut self, id: &str, now: &str, fx: &mut Effects) {
        let why = "narrative record missing or ignored: queued for review again";
        self.queue_for_review(id, TAKEDOWN_ACTOR, why, "reopened", now, fx);
        self.bump_review_item(id, now, fx);
    }

    /// Why `decision` is not believed, if it is not: a bad signature, or a narrative, revision
    /// or posts other than the ones reviewers were shown (a valid decision replayed against
    /// another narrative's state).
    pub(crate) fn check_decision(&self, decision: &ReviewDecision) -> Result<(), String> {
        self.verifier.verify(decision).map_err(|e| e.to_string())?;
        let Some(narrative) = self.narratives.get(&decision.narrative_id) else {
            return Ok(());
        };
        if decision.revision > narrative.revision {
            return Err(format!(
                "it was made on revision {} of {}, which is at revision {}",
                decision.revision, decision.narrative_id, narrative.revision
            ));
        }
        if decision.shown_posts.is_empty() {
            return Err("it names no post the reviewer was shown".into());
        }
        let members = self.members.get(&decision.narrative_id);
        if let Some(post) = decision
            .shown_posts
            .iter()
            .find(|p| !members.is_some_and(|m| m.contains(&p.key())))
        {
            return Err(format!(
                "it names post {}, not a post of {}",
                post.key(),
                decision.narrative_id
            ));
        }
        Ok(())
    }
}
