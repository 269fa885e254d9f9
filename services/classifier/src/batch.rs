//! Micro-batching by token budget and maximum wait: the model's cost grows
//! with tokens, not posts, so a batch closes when either its post count or
//! its token total reaches the limit, or when its oldest post has waited
//! `max_wait`.

use crate::config::BatchConfig;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub struct Batcher<T> {
    queue: VecDeque<Queued<T>>,
    queued_tokens: usize,
    limits: BatchConfig,
}

struct Queued<T> {
    item: T,
    tokens: usize,
    arrived: Instant,
}

impl<T> Batcher<T> {
    pub fn new(limits: BatchConfig) -> Self {
        Batcher {
            queue: VecDeque::new(),
            queued_tokens: 0,
            limits,
        }
    }

    pub fn push(&mut self, item: T, tokens: usize, arrived: Instant) {
        self.queued_tokens += tokens;
        self.queue.push_back(Queued {
            item,
            tokens,
            arrived,
        });
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// A full batch is ready to go without waiting.
    pub fn is_full(&self) -> bool {
        self.queue.len() >= self.limits.max_posts || self.queued_tokens >= self.limits.max_tokens
    }

    /// When the oldest queued post has waited long enough.
    pub fn deadline(&self) -> Option<Instant> {
        self.queue
            .front()
            .map(|q| q.arrived + Duration::from_millis(self.limits.max_wait_ms))
    }

    /// Takes the oldest posts that fit the limits, in arrival order. A
    /// single post over the token budget still forms a batch of one, so it
    /// can never block the queue.
    pub fn take(&mut self) -> Vec<T> {
        let mut taken = Vec::new();
        let mut tokens = 0;
        while let Some(next) = self.queue.front() {
            let fits_posts = taken.len() < self.limits.max_posts;
            let fits_tokens = taken.is_empty() || tokens + next.tokens <= self.limits.max_tokens;
            if !(fits_posts && fits_tokens) {
                break;
            }
            let next = self.queue.pop_front().expect("front exists");
            tokens += next.tokens;
            self.queued_tokens -= next.tokens;
            taken.push(next.item);
        }
        taken
    }

    /// Forgets everything queued: after a rebalance those offsets are
    /// fetched again from the last commit, by this or another instance.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.queued_tokens = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_posts: usize, max_tokens: usize) -> BatchConfig {
        BatchConfig {
            max_posts,
            max_tokens,
            max_wait_ms: 100,
        }
    }

    #[test]
    fn closes_on_post_count() {
        let now = Instant::now();
        let mut b = Batcher::new(limits(3, 1000));
        for i in 0..4 {
            b.push(i, 10, now);
        }
        assert!(b.is_full());
        assert_eq!(b.take(), vec![0, 1, 2]);
        assert_eq!(b.len(), 1);
        assert!(!b.is_full());
    }

    #[test]
    fn closes_on_token_budget_without_exceeding_it() {
        let now = Instant::now();
        let mut b = Batcher::new(limits(100, 100));
        for (i, tokens) in [40, 40, 40, 10].into_iter().enumerate() {
            b.push(i, tokens, now);
        }
        assert!(b.is_full());
        assert_eq!(b.take(), vec![0, 1]);
        assert_eq!(b.take(), vec![2, 3]);
        assert!(b.is_empty());
    }

    #[test]
    fn an_oversized_post_forms_a_batch_of_its_own() {
        let now = Instant::now();
        let mut b = Batcher::new(limits(100, 100));
        b.push("huge", 500, now);
        b.push("small", 5, now);
        assert_eq!(b.take(), vec!["huge"]);
        assert_eq!(b.take(), vec!["small"]);
    }

    #[test]
    fn deadline_follows_the_oldest_post() {
        let t0 = Instant::now();
        let mut b = Batcher::new(limits(1, 1000));
        assert_eq!(b.deadline(), None);
        b.push(1, 1, t0);
        b.push(2, 1, t0 + Duration::from_millis(30));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(100)));
        b.take();
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(130)));
        b.clear();
        assert_eq!(b.deadline(), None);
        assert!(b.is_empty());
    }
}
