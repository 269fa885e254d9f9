//! Coordinated bursts: one narrative posted by many distinct accounts within a short window is
//! more likely an organised push than organic sharing, so reviewers see it first.

use std::collections::HashMap;

use patroli_contracts::CoordinatedBurst;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::policy::BurstPolicy;

/// The window with the most distinct authors among `posts` (`created_at`, author), if that many
/// reach the policy's bar. Posts with an unparsable time are left out rather than guessed.
pub fn detect<'a>(
    posts: impl IntoIterator<Item = (&'a str, &'a str)>,
    policy: &BurstPolicy,
) -> Option<CoordinatedBurst> {
    let mut timed: Vec<(OffsetDateTime, &str)> = posts
        .into_iter()
        .filter_map(|(at, author)| Some((OffsetDateTime::parse(at, &Rfc3339).ok()?, author)))
        .collect();
    timed.sort();
    let window = time::Duration::minutes(i64::from(policy.window_minutes));
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut best: Option<(usize, OffsetDateTime)> = None;
    let mut start = 0;
    for end in 0..timed.len() {
        *counts.entry(timed[end].1).or_default() += 1;
        while timed[end].0 - timed[start].0 > window {
            let author = timed[start].1;
            let count = counts
                .get_mut(author)
                .expect("every author in the window is counted");
            *count -= 1;
            if *count == 0 {
                counts.remove(author);
            }
            start += 1;
        }
        if best.is_none_or(|(most, _)| counts.len() > most) {
            best = Some((counts.len(), timed[start].0));
        }
    }
    let (authors, window_start) = best?;
    (authors >= policy.distinct_authors as usize).then(|| CoordinatedBurst {
        distinct_authors: authors as u32,
        window_minutes: policy.window_minutes,
        window_start: window_start
            .format(&Rfc3339)
            .unwrap_or_else(|_| window_start.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BurstPolicy = BurstPolicy {
        distinct_authors: 3,
        window_minutes: 60,
    };

    #[test]
    fn many_authors_within_the_window_is_a_burst() {
        let posts = [
            ("2024-02-10T08:00:00Z", "a"),
            ("2024-02-10T08:10:00Z", "b"),
            ("2024-02-10T08:50:00Z", "c"),
        ];
        let burst = detect(posts, &POLICY).expect("burst");
        assert_eq!(burst.distinct_authors, 3);
        assert_eq!(burst.window_start, "2024-02-10T08:00:00Z");
    }

    #[test]
    fn one_author_repeating_or_a_slow_spread_is_not() {
        let same_author = [
            ("2024-02-10T08:00:00Z", "a"),
            ("2024-02-10T08:01:00Z", "a"),
            ("2024-02-10T08:02:00Z", "a"),
        ];
        assert_eq!(detect(same_author, &POLICY), None);
        let slow = [
            ("2024-02-10T08:00:00Z", "a"),
            ("2024-02-10T09:30:00Z", "b"),
            ("2024-02-10T11:00:00Z", "c"),
            ("not a time", "d"),
        ];
        assert_eq!(detect(slow, &POLICY), None);
    }
}
