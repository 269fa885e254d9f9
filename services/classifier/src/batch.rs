//! Micro-batching by token budget and maximum wait. The model packs a
//! batch end to end, so its cost is the sum of its posts' tokens; the rule
//! for what fits one forward pass is the model's own [`TokenBudget`], so the
//! batch formed here is exactly one forward pass. A batch closes when the
//! budget is spent, or when its oldest post has waited `max_wait`.

use crate::config::BatchConfig;
use patroli_inference::TokenBudget;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub struct Batcher<T> {
    queue: VecDeque<Queued<T>>,
    /// Tokens queued, summed.
    tokens: usize,
    budget: TokenBudget,
    max_wait: Duration,
}

struct Queued<T> {
    item: T,
    tokens: usize,
    arrived: Instant,
}

impl<T> Batcher<T> {
    pub fn new(limits: &BatchConfig) -> Self {
        Batcher {
            queue: VecDeque::new(),
            tokens: 0,
            budget: limits.budget(),
            max_wait: Duration::from_millis(limits.max_wait_ms),
        }
    }

    pub fn push(&mut self, item: T, tokens: usize, arrived: Instant) {
        self.tokens += tokens;
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

    /// A full batch is ready to go without waiting: the queue holds at
    /// least a forward pass's worth, so waiting could not grow the batch.
    pub fn is_full(&self) -> bool {
        !self.queue.is_empty() && !self.budget.fits(self.queue.len() + 1, self.tokens + 1)
    }

    /// When the oldest queued post has waited long enough.
    pub fn deadline(&self) -> Option<Instant> {
        self.queue.front().map(|q| q.arrived + self.max_wait)
    }

    /// Takes the oldest posts that fit one forward pass, in arrival order.
    pub fn take(&mut self) -> Vec<T> {
        let mut taken = Vec::new();
        let mut tokens = 0;
        while let Some(next) = self.queue.front() {
            if !self.budget.fits(taken.len() + 1, tokens + next.tokens) {
                break;
            }
            tokens += next.tokens;
            taken.push(self.queue.pop_front().expect("front exists").item);
        }
        self.tokens -= tokens;
        taken
    }

    /// Forgets everything queued: after a rebalance those offsets are
    /// fetched again from the last commit, by this or another instance.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.tokens = 0;
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
        let mut b = Batcher::new(&limits(3, 1000));
        for i in 0..4 {
            b.push(i, 10, now);
        }
        assert!(b.is_full());
        assert_eq!(b.take(), vec![0, 1, 2]);
        assert_eq!(b.len(), 1);
        assert!(!b.is_full());
    }

    #[test]
    fn counts_the_sum_of_lengths_not_padding() {
        let now = Instant::now();
        let mut b = Batcher::new(&limits(100, 100));
        // Packed, [10, 40, 10, 10] costs 70, not 4 x 40 = 160.
        for (i, tokens) in [10, 40, 10, 10, 40, 60].into_iter().enumerate() {
            b.push(i, tokens, now);
        }
        assert!(b.is_full());
        assert_eq!(b.take(), vec![0, 1, 2, 3]);
        assert!(b.is_full(), "40 + 60 fill the budget exactly");
        assert_eq!(b.take(), vec![4, 5]);
        assert!(b.is_empty());
        assert!(!b.is_full());
    }

    #[test]
    fn a_batch_that_fills_the_budget_exactly_is_full() {
        let now = Instant::now();
        let mut b = Batcher::new(&limits(100, 100));
        b.push(0, 50, now);
        assert!(!b.is_full());
        b.push(1, 50, now);
        assert!(b.is_full());
        assert_eq!(b.take(), vec![0, 1]);
    }

    #[test]
    fn an_oversized_post_forms_a_batch_of_its_own() {
        let now = Instant::now();
        let mut b = Batcher::new(&limits(100, 100));
        b.push("huge", 500, now);
        b.push("small", 5, now);
        assert!(b.is_full());
        assert_eq!(b.take(), vec!["huge"]);
        assert!(!b.is_full());
        assert_eq!(b.take(), vec!["small"]);
    }

    #[test]
    fn deadline_follows_the_oldest_post() {
        let t0 = Instant::now();
        let mut b = Batcher::new(&limits(1, 1000));
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
