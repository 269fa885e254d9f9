//! `patroli up`'s lines for the takedown service's output: new review items, decisions taking
//! effect, and takedown requests as they appear.

use patroli_contracts::{topics, NarrativeStatus, ReviewItem, TakedownRequest};

/// The topics shown, besides the classifier's.
pub const TOPICS: [&str; 2] = [topics::REVIEW_QUEUE, topics::TAKEDOWN_REQUESTS];

/// The line to show for a message of one of [`TOPICS`]; `None` for other topics and for item
/// revisions that only add a post (one line per narrative, not per copy).
pub fn line(topic: &str, payload: &[u8]) -> anyhow::Result<Option<String>> {
    Ok(match topic {
        topics::REVIEW_QUEUE => {
            let item: ReviewItem = serde_json::from_slice(payload)?;
            if item.revision > 1 && item.status == NarrativeStatus::PendingReview {
                return Ok(None);
            }
            let coordinated = if item.coordinated.is_some() {
                "  [coordinated]"
            } else {
                ""
            };
            Some(format!(
                "  REVIEW  {:<14} {} {:<18} {:.2} {} post(s) on {}{coordinated}",
                item.status.as_str(),
                item.narrative_id,
                item.category,
                item.score,
                item.post_count,
                item.platforms.join(","),
            ))
        }
        topics::TAKEDOWN_REQUESTS => {
            let request: TakedownRequest = serde_json::from_slice(payload)?;
            Some(format!(
                "  REQUEST {:<9} {} {} post(s) of {} ({:?})",
                request.platform,
                request.request_id,
                request.posts.len(),
                request.narrative_id,
                request.basis,
            ))
        }
        _ => None,
    })
}
