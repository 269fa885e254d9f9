//! Which decision the desk may send on a narrative, judged on what the view shows of it now,
//! and the per-narrative claim that makes that judgement and the send one step: two reviewers
//! (or a double click) deciding at once get exactly one decision out, never two.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::http::StatusCode;
use patroli_contracts::{DecisionAction, NarrativeStatus, PostRef, ReviewItem};

use crate::auth::Problem;
use crate::state::Narrative;

/// The reason every release decision carries, so the audit trail says what it was for.
pub const RELEASE_REASON: &str = "release held copies";

/// What a reviewer asks the desk to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Confirm,
    Reject,
    /// Confirm a confirmed narrative again, so the takedown service requests the protected
    /// copies it held back (services/takedown engine: confirmed, then confirmed again).
    Release,
}

impl Ask {
    pub const ALL: [Ask; 3] = [Self::Confirm, Self::Reject, Self::Release];

    pub fn parse(action: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|ask| ask.as_str() == action)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Reject => "reject",
            Self::Release => "release",
        }
    }

    /// The action of the decision sent: a release is a confirmation.
    pub fn action(self) -> DecisionAction {
        match self {
            Self::Reject => DecisionAction::Reject,
            Self::Confirm | Self::Release => DecisionAction::Confirm,
        }
    }
}

/// What a decision is signed on: the revision of the review item the desk shows and its posts.
#[derive(Debug, PartialEq)]
pub struct Shown {
    pub revision: u64,
    pub posts: Vec<PostRef>,
}

fn conflict(code: &'static str, message: String) -> Result<Shown, Problem> {
    Err(Problem::new(StatusCode::CONFLICT, code, message))
}

/// Whether `ask` (with the ticked complaint `references`) may go out on narrative `id`, as the
/// view knows it. Narratives only move forward (pending, then confirmed or rejected); after
/// that a decision is allowed only to release held copies, or to confirm complaint references
/// of a confirmed narrative that came in after (or were not ticked at) its confirmation.
pub fn judge(
    id: &str,
    narrative: Option<&Narrative>,
    ask: Ask,
    references: &[PostRef],
) -> Result<Shown, Problem> {
    let Some((narrative, item)) = narrative.and_then(|n| Some((n, n.item.as_ref()?))) else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown_narrative",
            format!("no review item for narrative {id}"),
        ));
    };
    if ask != Ask::Confirm && !references.is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_references",
            "complaint references can only be confirmed",
        ));
    }
    let shown = || Shown {
        revision: item.revision,
        posts: item.sample_posts.iter().map(|p| p.post.clone()).collect(),
    };
    let checked = || match unknown_reference(item, references) {
        Some(problem) => Err(problem),
        None => Ok(shown()),
    };
    if ask == Ask::Release {
        if item.status != NarrativeStatus::Confirmed {
            return conflict(
                "not_confirmed",
                format!("narrative {id} is not confirmed by the takedown service: nothing is held"),
            );
        }
        if narrative.held_copies().is_empty() {
            return conflict(
                "nothing_held",
                format!("narrative {id} has no held copies to release"),
            );
        }
        return Ok(shown());
    }
    let more_references = !references.is_empty()
        && item.status != NarrativeStatus::Rejected
        && narrative
            .decision
            .as_ref()
            .map_or(item.status == NarrativeStatus::Confirmed, |d| {
                d.action == DecisionAction::Confirm
            });
    match (&narrative.decision, item.status) {
        _ if more_references => checked(),
        (Some(d), _) => conflict(
            "already_decided",
            format!(
                "narrative {id} was already {} by {}",
                decided(d.action),
                d.reviewer
            ),
        ),
        (None, NarrativeStatus::PendingReview) => checked(),
        (None, status) => conflict(
            "already_decided",
            format!("narrative {id} is already {}", status.as_str()),
        ),
    }
}

/// Refuses `references` when one is not among those `item` lists.
fn unknown_reference(item: &ReviewItem, references: &[PostRef]) -> Option<Problem> {
    let unknown = references
        .iter()
        .find(|post| !item.complaint_references.iter().any(|r| r.post == **post))?;
    Some(Problem::new(
        StatusCode::BAD_REQUEST,
        "unknown_reference",
        format!(
            "{}:{} is not a complaint reference of narrative {}",
            unknown.platform, unknown.post_id, item.narrative_id
        ),
    ))
}

pub fn decided(action: DecisionAction) -> &'static str {
    match action {
        DecisionAction::Confirm => "confirmed",
        DecisionAction::Reject => "rejected",
    }
}

/// Narratives a decision is being judged, sent and shown for right now.
#[derive(Default)]
pub struct Claims(Mutex<HashSet<String>>);

/// Held from before a decision is judged until the view shows it sent (or it failed): while
/// held, nobody else can decide on the narrative.
pub struct Claim<'a> {
    claims: &'a Claims,
    narrative: String,
}

impl Claims {
    /// The claim on `narrative`, or a 409 when another decision on it is under way.
    pub fn take(&self, narrative: &str) -> Result<Claim<'_>, Problem> {
        if self.lock().insert(narrative.to_owned()) {
            Ok(Claim {
                claims: self,
                narrative: narrative.to_owned(),
            })
        } else {
            Err(Problem::new(
                StatusCode::CONFLICT,
                "decision_in_flight",
                format!(
                    "another decision on narrative {narrative} is being sent right now: reload the desk to see it"
                ),
            ))
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A set of names: still right after a panic elsewhere.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.claims.lock().remove(&self.narrative);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrative_is_claimed_once_until_the_claim_is_dropped() {
        let claims = Claims::default();
        let first = claims.take("n1").expect("free");
        let second = claims.take("n1").map(|_| ()).unwrap_err();
        assert_eq!(
            (second.status, second.code, second.message.as_str()),
            (
                StatusCode::CONFLICT,
                "decision_in_flight",
                "another decision on narrative n1 is being sent right now: reload the desk to see it"
            )
        );
        assert!(claims.take("n2").is_ok(), "other narratives stay free");
        drop(first);
        assert!(claims.take("n1").is_ok());
    }

    #[test]
    fn actions_parse_by_name_and_a_release_is_a_confirmation() {
        assert_eq!(Ask::parse("release"), Some(Ask::Release));
        assert_eq!(Ask::parse("Release"), None);
        assert_eq!(Ask::Release.action(), DecisionAction::Confirm);
        assert_eq!(Ask::Reject.action(), DecisionAction::Reject);
    }
}
