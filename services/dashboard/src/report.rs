//! The JSON documents of the API (and of the live stream), read off the view. Field names here
//! are the API's contract: openapi.yaml documents each one.

use std::collections::BTreeMap;

use patroli_contracts::{ModelRef, NarrativeStatus, PostRef, ReviewDecision, ReviewItem};
use serde::Serialize;

use crate::state::{Count, Dimension, View, HISTOGRAM_BINS};

#[derive(Debug, Serialize)]
pub struct Overview {
    pub window: Window,
    pub posts_scored: u64,
    pub posts_flagged: u64,
    /// `posts_flagged / posts_scored`, 0 when nothing was scored.
    pub share_flagged: f64,
    pub dlq_events: u64,
    pub invalid_events: u64,
    pub model: Option<ModelRef>,
    pub consumer_lag: i64,
    pub ready: bool,
    pub throughput: Throughput,
    pub review: ReviewCounts,
    pub requests: u64,
}

#[derive(Debug, Serialize)]
pub struct Window {
    pub from: String,
    pub to: String,
    pub lookback_secs: i64,
}

#[derive(Debug, Serialize)]
pub struct Throughput {
    /// Posts scored so far in the current minute.
    pub current_minute: u64,
    /// Posts scored in the last complete minute.
    pub last_minute: u64,
    /// Mean posts per minute over the last five complete minutes.
    pub per_minute_5m: f64,
}

#[derive(Debug, Serialize)]
pub struct ReviewCounts {
    pub awaiting: u64,
    pub high_priority: u64,
    pub decided: u64,
}

pub fn overview(view: &View, now_minute: i64, consumer_lag: i64, ready: bool) -> Overview {
    let scored = view.scored_total();
    let dlq_events = view.dlq_by_reason().values().sum();
    let oldest = now_minute - view.lookback_minutes() + 1;
    let five = view.scored_between(now_minute - 5, now_minute).posts;
    let mut review = ReviewCounts {
        awaiting: 0,
        high_priority: 0,
        decided: 0,
    };
    for (_, narrative) in view.narratives() {
        if narrative.awaiting_review() {
            review.awaiting += 1;
            if narrative
                .item
                .as_ref()
                .is_some_and(|i| i.priority == patroli_contracts::Priority::High)
            {
                review.high_priority += 1;
            }
        }
        if narrative.decision.is_some() {
            review.decided += 1;
        }
    }
    Overview {
        window: Window {
            from: minute_rfc3339(oldest),
            to: minute_rfc3339(now_minute + 1),
            lookback_secs: view.lookback_minutes() * 60,
        },
        posts_scored: scored.posts,
        posts_flagged: scored.flagged,
        share_flagged: share(scored),
        dlq_events,
        invalid_events: view.invalid_events(),
        model: view.model().cloned(),
        consumer_lag,
        ready,
        throughput: Throughput {
            current_minute: view.scored_between(now_minute, now_minute + 1).posts,
            last_minute: view.scored_between(now_minute - 1, now_minute).posts,
            per_minute_5m: five as f64 / 5.0,
        },
        review,
        requests: view.requests_by_state().values().sum(),
    }
}

fn share(count: Count) -> f64 {
    if count.posts == 0 {
        0.0
    } else {
        count.flagged as f64 / count.posts as f64
    }
}

#[derive(Debug, Serialize)]
pub struct Series {
    pub bucket: &'static str,
    pub dimension: Dimension,
    pub points: Vec<Point>,
}

#[derive(Debug, Serialize)]
pub struct Point {
    pub start: String,
    pub values: BTreeMap<String, Count>,
}

/// The `bucket` query values and their width in minutes.
pub const BUCKETS: [(&str, i64); 3] = [("1m", 1), ("5m", 5), ("1h", 60)];

pub fn series(view: &View, bucket: &'static str, minutes: i64, dimension: Dimension) -> Series {
    Series {
        bucket,
        dimension,
        points: view
            .series(minutes, dimension)
            .into_iter()
            .map(|(start, values)| Point {
                start: minute_rfc3339(start),
                values,
            })
            .collect(),
    }
}

#[derive(Debug, Serialize)]
pub struct Histogram {
    pub total: u64,
    pub bins: Vec<Bin>,
}

#[derive(Debug, Serialize)]
pub struct Bin {
    pub from: f64,
    pub to: f64,
    pub count: u64,
}

pub fn histogram(view: &View) -> Histogram {
    let counts = view.histogram();
    Histogram {
        total: counts.iter().sum(),
        bins: counts
            .iter()
            .enumerate()
            .map(|(i, count)| Bin {
                from: i as f64 / HISTOGRAM_BINS as f64,
                to: (i + 1) as f64 / HISTOGRAM_BINS as f64,
                count: *count,
            })
            .collect(),
    }
}

#[derive(Debug, Serialize)]
pub struct NarrativeSummary {
    pub narrative_id: String,
    pub status: patroli_contracts::NarrativeStatus,
    pub priority: patroli_contracts::Priority,
    pub category: String,
    pub score: f32,
    pub post_count: u64,
    pub platforms: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    /// A sample post's text, `Some(None)` when no sample's text was seen; left out (`None`)
    /// for readers who have not signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_text: Option<Option<String>>,
}

#[derive(Debug, Serialize)]
pub struct Narratives {
    pub narratives: Vec<NarrativeSummary>,
}

impl Narratives {
    /// For readers who have not signed in: post texts are the authors' words, not aggregates.
    pub fn withhold_texts(&mut self) {
        for narrative in &mut self.narratives {
            narrative.sample_text = None;
        }
    }
}

/// The `top` narratives with the most posts (latest first among equals).
pub fn narratives(view: &View, top: usize) -> Narratives {
    let mut items: Vec<&ReviewItem> = view
        .narratives()
        .filter_map(|(_, n)| n.item.as_ref())
        .collect();
    items.sort_by(|a, b| {
        b.post_count
            .cmp(&a.post_count)
            .then_with(|| b.last_seen.cmp(&a.last_seen))
            .then_with(|| a.narrative_id.cmp(&b.narrative_id))
    });
    Narratives {
        narratives: items
            .into_iter()
            .take(top)
            .map(|item| NarrativeSummary {
                narrative_id: item.narrative_id.clone(),
                status: item.status,
                priority: item.priority,
                category: item.category.clone(),
                score: item.score,
                post_count: item.post_count,
                platforms: item.platforms.clone(),
                first_seen: item.first_seen.clone(),
                last_seen: item.last_seen.clone(),
                sample_text: Some(item.sample_posts.iter().find_map(|p| p.text.clone())),
            })
            .collect(),
    }
}

#[derive(Debug, Serialize)]
pub struct Requests {
    pub total: u64,
    pub by_state: BTreeMap<&'static str, u64>,
}

pub fn requests(view: &View) -> Requests {
    let by_state = view.requests_by_state();
    Requests {
        total: by_state.values().sum(),
        by_state,
    }
}

#[derive(Debug, Serialize)]
pub struct Dlq {
    pub total: u64,
    pub by_reason: BTreeMap<String, u64>,
}

pub fn dlq(view: &View) -> Dlq {
    let by_reason = view.dlq_by_reason();
    Dlq {
        total: by_reason.values().sum(),
        by_reason,
    }
}

#[derive(Debug, Serialize)]
pub struct ReviewEntry {
    pub item: ReviewItem,
    pub awaiting_review: bool,
    pub decision: Option<ReviewDecision>,
    /// The narrative's status as the takedown service last published it (`item.status`): what
    /// it acts on, which a decision sent here changes only once the service has read it.
    pub takedown_status: NarrativeStatus,
    /// A decision was sent that the takedown service has not acted on yet.
    pub awaiting_takedown: bool,
    /// Protected copies held back until a reviewer releases them (sample posts only).
    pub held_copies: Vec<PostRef>,
}

#[derive(Debug, Serialize)]
pub struct ReviewItems {
    pub items: Vec<ReviewEntry>,
}

pub fn review_items(view: &View) -> ReviewItems {
    ReviewItems {
        items: view
            .review_queue()
            .into_iter()
            .map(|(item, narrative)| ReviewEntry {
                awaiting_review: narrative.awaiting_review(),
                decision: narrative.decision.clone(),
                takedown_status: item.status,
                awaiting_takedown: narrative.awaiting_takedown(),
                held_copies: narrative.held_copies().into_iter().cloned().collect(),
                item: item.clone(),
            })
            .collect(),
    }
}

/// What the live overview page needs, pushed on every change.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub overview: Overview,
    /// Five-minute buckets by platform, for the time-series chart.
    pub series: Series,
    /// Hourly buckets by category and by region, summed by the page.
    pub categories: Series,
    pub regions: Series,
    pub histogram: Histogram,
    pub narratives: Narratives,
    pub requests: Requests,
    pub dlq: Dlq,
}

pub fn minute_rfc3339(minute: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(minute * 60)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
