//! The dashboard's view: every event read from the topics folded into per-minute buckets (so
//! memory stays bounded and old minutes are simply dropped), plus the latest revision of each
//! review item, each narrative's latest decision and each takedown request's state, all capped.

use std::collections::{BTreeMap, HashMap};

use patroli_contracts::{
    DecisionAction, DlqEvent, Label, ModelRef, NarrativeStatus, PostRef, Priority, ReviewDecision,
    ReviewItem, ScoredEvent, TakedownRequest, TakedownStatus,
};

pub use crate::requests::RequestState;
use crate::requests::Requests;
use serde::Serialize;

/// Score histogram bins: `[0.0, 0.1)`, ..., `[0.9, 1.0]`.
pub const HISTOGRAM_BINS: usize = 10;
/// Distinct values kept per dimension per minute; more fold into [`OTHER`], so a partner
/// sending a new region per post cannot grow memory without bound.
pub const MAX_VALUES_PER_DIMENSION: usize = 64;
pub const OTHER: &str = "other";
/// The value shown for a post without a region.
pub const UNKNOWN: &str = "unknown";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Platform,
    Category,
    Region,
    Label,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [Self::Platform, Self::Category, Self::Region, Self::Label];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Category => "category",
            Self::Region => "region",
            Self::Label => "label",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn value(self, event: &ScoredEvent) -> &str {
        match self {
            Self::Platform => &event.post.platform,
            Self::Category => &event.category,
            Self::Region => event.region.as_deref().unwrap_or(UNKNOWN),
            Self::Label => event.label.as_str(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    pub posts: u64,
    pub flagged: u64,
}

impl Count {
    fn add(&mut self, other: Count) {
        self.posts += other.posts;
        self.flagged += other.flagged;
    }
}

/// Everything that happened in one minute.
#[derive(Debug, Clone, Default)]
struct Bucket {
    scored: Count,
    dimensions: [BTreeMap<String, Count>; 4],
    histogram: [u64; HISTOGRAM_BINS],
    dlq: BTreeMap<String, u64>,
}

/// A narrative as the review desk knows it: its latest review item and latest decision, either
/// of which may arrive first.
#[derive(Debug, Clone, Default)]
pub struct Narrative {
    pub item: Option<ReviewItem>,
    pub decision: Option<ReviewDecision>,
    touched: u64,
}

impl Narrative {
    /// Still waiting for a person: pending on the queue and nobody has decided here yet.
    pub fn awaiting_review(&self) -> bool {
        self.decision.is_none()
            && self
                .item
                .as_ref()
                .is_some_and(|item| item.status == NarrativeStatus::PendingReview)
    }

    /// A decision was sent that the takedown service has not acted on yet: acting on one, it
    /// republishes the review item at a later revision than the one decided on.
    pub fn awaiting_takedown(&self) -> bool {
        match (&self.item, &self.decision) {
            (Some(item), Some(decision)) => item.revision <= decision.revision,
            (None, Some(_)) => true,
            (_, None) => false,
        }
    }

    /// Protected copies the takedown service holds back until a person confirms the narrative
    /// again: on a narrative it has confirmed, protected sample posts that the latest
    /// confirmation did not show (those it showed were requested with it). Only sample posts
    /// are known here, so copies past the sample are released with them but not listed.
    pub fn held_copies(&self) -> Vec<&PostRef> {
        let Some(item) = self
            .item
            .as_ref()
            .filter(|item| item.status == NarrativeStatus::Confirmed)
        else {
            return Vec::new();
        };
        let released: &[PostRef] = match &self.decision {
            Some(d) if d.action == DecisionAction::Confirm => &d.shown_posts,
            _ => &[],
        };
        item.sample_posts
            .iter()
            .filter(|sample| sample.protected && !released.contains(&sample.post))
            .map(|sample| &sample.post)
            .collect()
    }
}

/// Caps on what the view keeps besides the time buckets.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub lookback_minutes: i64,
    pub max_narratives: usize,
    pub max_requests: usize,
}

pub struct View {
    limits: Limits,
    buckets: BTreeMap<i64, Bucket>,
    narratives: HashMap<String, Narrative>,
    requests: Requests,
    model: Option<ModelRef>,
    invalid_events: u64,
    clock: u64,
}

impl View {
    pub fn new(limits: Limits) -> Self {
        View {
            limits,
            buckets: BTreeMap::new(),
            narratives: HashMap::new(),
            requests: Requests::new(limits.max_requests),
            model: None,
            invalid_events: 0,
            clock: 0,
        }
    }

    pub fn lookback_minutes(&self) -> i64 {
        self.limits.lookback_minutes
    }

    /// Minutes older than this (relative to `now_minute`) are gone.
    fn oldest_minute(&self, now_minute: i64) -> i64 {
        now_minute - self.limits.lookback_minutes + 1
    }

    /// The bucket of minute `minute`, or `None` when it is already past the look-back.
    fn bucket(&mut self, minute: i64, now_minute: i64) -> Option<&mut Bucket> {
        (minute >= self.oldest_minute(now_minute)).then(|| self.buckets.entry(minute).or_default())
    }

    pub fn scored(&mut self, event: &ScoredEvent, minute: i64, now_minute: i64) {
        self.model = Some(event.model.clone());
        let Some(bucket) = self.bucket(minute, now_minute) else {
            return;
        };
        let count = Count {
            posts: 1,
            flagged: u64::from(event.label == Label::Disinformation),
        };
        bucket.scored.add(count);
        for dimension in Dimension::ALL {
            let values = &mut bucket.dimensions[dimension.index()];
            let value = dimension.value(event);
            let key = if values.contains_key(value) || values.len() < MAX_VALUES_PER_DIMENSION {
                value
            } else {
                OTHER
            };
            values.entry(key.to_owned()).or_default().add(count);
        }
        bucket.histogram[histogram_bin(event.score)] += 1;
    }

    pub fn dlq(&mut self, event: &DlqEvent, minute: i64, now_minute: i64) {
        if let Some(bucket) = self.bucket(minute, now_minute) {
            *bucket
                .dlq
                .entry(event.reason.as_str().to_owned())
                .or_default() += 1;
        }
    }

    pub fn review_item(&mut self, item: ReviewItem) {
        let narrative = self.narrative(&item.narrative_id);
        if narrative
            .item
            .as_ref()
            .is_none_or(|known| known.revision < item.revision)
        {
            narrative.item = Some(item);
        }
        self.evict_narratives();
    }

    pub fn decision(&mut self, decision: ReviewDecision) {
        let narrative = self.narrative(&decision.narrative_id);
        let newer = narrative.decision.as_ref().is_none_or(|known| {
            (&known.decided_at, &known.decision_id) <= (&decision.decided_at, &decision.decision_id)
        });
        if newer {
            narrative.decision = Some(decision);
        }
        self.evict_narratives();
    }

    pub fn request(&mut self, request: &TakedownRequest) {
        self.requests
            .advance(&request.request_id, RequestState::Requested);
    }

    /// A status may be read before its request (they are on different topics): it counts
    /// under the status either way.
    pub fn status(&mut self, status: &TakedownStatus) {
        self.requests
            .advance(&status.request_id, status.status.into());
    }

    pub fn invalid_event(&mut self) {
        self.invalid_events += 1;
    }

    fn narrative(&mut self, id: &str) -> &mut Narrative {
        self.clock += 1;
        let narrative = self.narratives.entry(id.to_owned()).or_default();
        narrative.touched = self.clock;
        narrative
    }

    /// Past the cap, the least recently updated narrative goes, settled ones before those still
    /// awaiting review.
    fn evict_narratives(&mut self) {
        while self.narratives.len() > self.limits.max_narratives {
            let victim = self
                .narratives
                .iter()
                .min_by_key(|(_, n)| (n.awaiting_review(), n.touched))
                .map(|(id, _)| id.clone());
            match victim {
                Some(id) => self.narratives.remove(&id),
                None => break,
            };
        }
    }

    /// Drops the minutes that fell out of the look-back.
    pub fn evict(&mut self, now_minute: i64) {
        let oldest = self.oldest_minute(now_minute);
        self.buckets = self.buckets.split_off(&oldest);
    }

    pub fn minutes(&self) -> usize {
        self.buckets.len()
    }

    pub fn model(&self) -> Option<&ModelRef> {
        self.model.as_ref()
    }

    pub fn invalid_events(&self) -> u64 {
        self.invalid_events
    }

    /// Scored posts in `[from, to)` minutes.
    pub fn scored_between(&self, from: i64, to: i64) -> Count {
        let mut total = Count::default();
        for bucket in self.buckets.range(from..to).map(|(_, b)| b) {
            total.add(bucket.scored);
        }
        total
    }

    pub fn scored_total(&self) -> Count {
        self.scored_between(i64::MIN, i64::MAX)
    }

    pub fn histogram(&self) -> [u64; HISTOGRAM_BINS] {
        let mut histogram = [0; HISTOGRAM_BINS];
        for bucket in self.buckets.values() {
            for (sum, n) in histogram.iter_mut().zip(bucket.histogram) {
                *sum += n;
            }
        }
        histogram
    }

    pub fn dlq_by_reason(&self) -> BTreeMap<String, u64> {
        let mut reasons = BTreeMap::new();
        for bucket in self.buckets.values() {
            for (reason, n) in &bucket.dlq {
                *reasons.entry(reason.clone()).or_default() += n;
            }
        }
        reasons
    }

    /// Counts per `bucket_minutes`-wide bucket (aligned to the epoch) and dimension value,
    /// oldest first; only buckets that saw posts.
    pub fn series(
        &self,
        bucket_minutes: i64,
        dimension: Dimension,
    ) -> Vec<(i64, BTreeMap<String, Count>)> {
        let mut series: Vec<(i64, BTreeMap<String, Count>)> = Vec::new();
        for (minute, bucket) in &self.buckets {
            if bucket.scored.posts == 0 {
                continue;
            }
            let start = minute.div_euclid(bucket_minutes) * bucket_minutes;
            if series.last().is_none_or(|(last, _)| *last != start) {
                series.push((start, BTreeMap::new()));
            }
            let (_, values) = series.last_mut().expect("just pushed");
            for (value, count) in &bucket.dimensions[dimension.index()] {
                values.entry(value.clone()).or_default().add(*count);
            }
        }
        series
    }

    pub fn requests_by_state(&self) -> BTreeMap<&'static str, u64> {
        self.requests.by_state()
    }

    pub fn narratives(&self) -> impl Iterator<Item = (&String, &Narrative)> {
        self.narratives.iter()
    }

    pub fn narrative_by_id(&self, id: &str) -> Option<&Narrative> {
        self.narratives.get(id)
    }

    /// Review items in desk order: awaiting review first, then high priority, higher score,
    /// more posts; the id breaks ties so the order is stable.
    pub fn review_queue(&self) -> Vec<(&ReviewItem, &Narrative)> {
        let mut items: Vec<_> = self
            .narratives
            .values()
            .filter_map(|n| Some((n.item.as_ref()?, n, n.awaiting_review())))
            .collect();
        items.sort_by(|(a, _, a_waiting), (b, _, b_waiting)| {
            b_waiting
                .cmp(a_waiting)
                .then_with(|| priority_rank(b.priority).cmp(&priority_rank(a.priority)))
                .then_with(|| b.score.total_cmp(&a.score))
                .then_with(|| b.post_count.cmp(&a.post_count))
                .then_with(|| a.narrative_id.cmp(&b.narrative_id))
        });
        items.into_iter().map(|(item, d, _)| (item, d)).collect()
    }
}

fn priority_rank(priority: Priority) -> u8 {
    match priority {
        Priority::Normal => 0,
        Priority::High => 1,
    }
}

/// The histogram bin of `score`; out-of-range scores land in the end bins.
pub fn histogram_bin(score: f32) -> usize {
    if score.is_nan() {
        return 0;
    }
    ((score * HISTOGRAM_BINS as f32) as i64).clamp(0, HISTOGRAM_BINS as i64 - 1) as usize
}
