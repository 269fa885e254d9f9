//! How big one forward pass may be, and how a list of posts is cut into
//! such passes.

use crate::text::Tokenized;
use crate::ModelError;

/// How big one forward pass may be. Inference packs a batch end to end, so
/// its cost is the sum of its posts' tokens; this is the one rule every
/// batcher (offline scoring, training, the classifier service) follows.
/// (Training pads, but over length-sorted batches, where padding is small.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBudget {
    pub max_posts: usize,
    /// Tokens per forward pass, summed over its posts.
    pub max_tokens: usize,
}

impl TokenBudget {
    /// Larger batches stop paying off on CPU beyond a few thousand tokens
    /// and only add latency and memory.
    pub const DEFAULT: TokenBudget = TokenBudget {
        max_posts: 32,
        max_tokens: 2048,
    };

    /// Whether `posts` posts of `tokens` tokens in all fit one pass. A
    /// single post always fits, so an oversized one cannot block a queue.
    pub fn fits(&self, posts: usize, tokens: usize) -> bool {
        posts <= 1 || (posts <= self.max_posts && tokens <= self.max_tokens)
    }
}

impl Default for TokenBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `f`'s outputs for `toks`, run in token-budget batches, in input order.
pub fn in_batches<T>(
    toks: &[Tokenized],
    mut f: impl FnMut(&[&Tokenized]) -> Result<Vec<T>, ModelError>,
) -> Result<Vec<T>, ModelError> {
    let mut out: Vec<Option<T>> = toks.iter().map(|_| None).collect();
    for batch in token_budget_batches(&toks.iter().map(|t| t.ids.len()).collect::<Vec<_>>()) {
        let items: Vec<&Tokenized> = batch.iter().map(|&i| &toks[i]).collect();
        for (&i, x) in batch.iter().zip(f(&items)?) {
            out[i] = Some(x);
        }
    }
    Ok(out
        .into_iter()
        .map(|x| x.expect("every input is in one batch"))
        .collect())
}

/// Groups item indices into batches of similar length (so that training,
/// which pads, pads little): sorted by length, cut when the next item would
/// exceed the default [`TokenBudget`].
pub fn token_budget_batches(lens: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| (lens[i], i));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut tokens = 0;
    for i in order {
        if !cur.is_empty() && !TokenBudget::DEFAULT.fits(cur.len() + 1, tokens + lens[i]) {
            batches.push(std::mem::take(&mut cur));
            tokens = 0;
        }
        cur.push(i);
        tokens += lens[i];
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_budget_and_cover_all() {
        let lens = vec![10, 1500, 3, 64, 64, 128, 7, 900, 900];
        let batches = token_budget_batches(&lens);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..lens.len()).collect::<Vec<_>>());
        let sizes: Vec<Vec<usize>> = batches
            .iter()
            .map(|b| b.iter().map(|&i| lens[i]).collect())
            .collect();
        // Shortest first, each batch as full as the 2048-token budget allows.
        assert_eq!(
            sizes,
            vec![vec![3, 7, 10, 64, 64, 128, 900], vec![900], vec![1500]]
        );
        assert!(token_budget_batches(&[]).is_empty());
    }
}
