//! The review-queue gauges, kept up to date as narratives change status: publishing them costs
//! a lookup, not a scan of every narrative on every step.

use std::collections::{BTreeMap, BTreeSet};

use patroli_contracts::NarrativeStatus;

use crate::metrics::Metrics;
use crate::state::NarrativeRecord;
use crate::time_of;

const STATUSES: [NarrativeStatus; 3] = [
    NarrativeStatus::PendingReview,
    NarrativeStatus::Confirmed,
    NarrativeStatus::Rejected,
];

#[derive(Debug, Default)]
pub(crate) struct QueueGauges {
    by_status: BTreeMap<&'static str, i64>,
    /// Pending narratives by when they were queued (unix seconds), oldest first.
    pending: BTreeSet<(i64, String)>,
}

impl QueueGauges {
    /// Counts `narrative` as it is now.
    pub(crate) fn enter(&mut self, narrative: &NarrativeRecord) {
        *self.by_status.entry(narrative.status.as_str()).or_default() += 1;
        if let Some(queued) = queued(narrative) {
            self.pending.insert(queued);
        }
    }

    /// Stops counting `narrative` as it was (call before changing or dropping it).
    pub(crate) fn leave(&mut self, narrative: &NarrativeRecord) {
        *self.by_status.entry(narrative.status.as_str()).or_default() -= 1;
        if let Some(queued) = queued(narrative) {
            self.pending.remove(&queued);
        }
    }

    /// Sets the narrative and queue gauges, the oldest pending one's age taken at `now`.
    pub(crate) fn publish(&self, metrics: &Metrics, now: time::OffsetDateTime) {
        for status in STATUSES {
            let count = self.by_status.get(status.as_str()).copied().unwrap_or(0);
            metrics
                .narratives
                .with_label_values(&[status.as_str()])
                .set(count);
        }
        let pending = NarrativeStatus::PendingReview.as_str();
        metrics
            .review_queue_depth
            .set(self.by_status.get(pending).copied().unwrap_or(0));
        let age = self
            .pending
            .first()
            .map_or(0, |(queued, _)| (now.unix_timestamp() - queued).max(0));
        metrics.review_queue_oldest_seconds.set(age);
    }
}

fn queued(narrative: &NarrativeRecord) -> Option<(i64, String)> {
    if narrative.status != NarrativeStatus::PendingReview {
        return None;
    }
    let at = time_of(&narrative.queued_at)?;
    Some((at.unix_timestamp(), narrative.narrative_id.clone()))
}
