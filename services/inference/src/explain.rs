//! A prediction as users read it: the label, the most probable category
//! and the words that most support the decision.

use crate::classifier::{Classifier, Prediction};

const TOP_TOKENS: usize = 5;

impl Classifier {
    pub(crate) fn prediction(
        &self,
        score: f32,
        probs: Vec<f32>,
        mut words: Vec<(String, f32)>,
    ) -> Prediction {
        let label = score >= self.spec.threshold;
        // Words supporting the decision first: up for a hoax label, down otherwise.
        let side = if label { 1.0 } else { -1.0 };
        words.sort_by(|a, b| (side * b.1).total_cmp(&(side * a.1)));
        let mut top_tokens: Vec<String> = Vec::new();
        for (w, _) in words {
            if top_tokens.len() == TOP_TOKENS {
                break;
            }
            if !top_tokens
                .iter()
                .any(|t| t.to_lowercase() == w.to_lowercase())
            {
                top_tokens.push(w);
            }
        }
        let best = probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        Prediction {
            score,
            label,
            category: self.spec.categories[best].clone(),
            categories: self.spec.categories.iter().cloned().zip(probs).collect(),
            top_tokens,
            matches: Vec::new(),
        }
    }
}
