//! Near-duplicate grouping: posts whose content fingerprints (the contracts crate's simhash,
//! computed by the classifier) differ in few bits are one narrative.
//!
//! Simhash banding (candidates share one of `max_distance + 1` bit bands) only pays when the
//! distance is small against 64 bits; at the ~10 bits light edits flip, bands would be ~5 bits
//! wide and nearly everything a candidate. A linear scan of XOR + popcount over the members'
//! fingerprints is exact and costs ~1 ns per member, so it stays below a millisecond per post
//! up to a million distinct fingerprints.

use std::collections::BTreeMap;

/// Most distinct fingerprints remembered per narrative: enough to follow a narrative through
/// its variants while bounding the scan, and keeping a long chain of small edits from drifting
/// one narrative into an unrelated one.
pub const MAX_MEMBERS: usize = 64;

/// The fingerprint of a text with no words left after normalisation (emoji, links, hashtags
/// only). Such posts have no content to compare: every one of them would be "identical", so
/// they never group (the corpus has 23 pairs of unrelated emoji-only replies).
pub const EMPTY: u64 = 0;

/// The narrative a post founds: named after its fingerprint, so the same first post always
/// founds the same narrative, across restarts and instances; a post without words is a
/// narrative of its own, named after the post.
pub fn narrative_id(seed: u64, post_key: &str) -> String {
    if seed == EMPTY {
        format!("n-post-{post_key}")
    } else {
        format!("n-{seed:016x}")
    }
}

/// Fingerprints of every narrative's members, for finding the narrative a post belongs to.
#[derive(Debug, Default, Clone)]
pub struct NarrativeIndex {
    members: Vec<(u64, String)>,
    per_narrative: BTreeMap<String, usize>,
}

impl NarrativeIndex {
    /// The narrative with the member closest to `fingerprint`, if within `max_distance`; ties go
    /// to the smaller narrative id so the answer never depends on insertion order.
    pub fn find(&self, fingerprint: u64, max_distance: u32) -> Option<&str> {
        if fingerprint == EMPTY {
            return None;
        }
        self.members
            .iter()
            .map(|(member, id)| ((member ^ fingerprint).count_ones(), id))
            .filter(|(distance, _)| *distance <= max_distance)
            .min()
            .map(|(_, id)| id.as_str())
    }

    /// Remembers `fingerprint` as a member of `narrative_id` (up to [`MAX_MEMBERS`] each).
    pub fn add(&mut self, narrative_id: &str, fingerprint: u64) {
        if fingerprint == EMPTY {
            return;
        }
        let count = self
            .per_narrative
            .entry(narrative_id.to_owned())
            .or_default();
        if *count >= MAX_MEMBERS
            || self
                .members
                .iter()
                .any(|(member, id)| *member == fingerprint && id == narrative_id)
        {
            return;
        }
        *count += 1;
        self.members.push((fingerprint, narrative_id.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_closest_narrative_within_the_distance() {
        let mut index = NarrativeIndex::default();
        index.add("n-a", 0xf000);
        index.add("n-b", 0xf0ff);
        assert_eq!(index.find(0xf001, 3), Some("n-a"));
        assert_eq!(index.find(0xf07f, 3), Some("n-b"));
        assert_eq!(index.find(0xf00f, 3), None);
    }

    #[test]
    fn ties_go_to_the_smaller_id() {
        let mut index = NarrativeIndex::default();
        index.add("n-b", 0x1003);
        index.add("n-a", 0x1000);
        assert_eq!(index.find(0x1001, 1), Some("n-a"));
    }

    #[test]
    fn members_per_narrative_are_bounded() {
        let mut index = NarrativeIndex::default();
        for bit in 0..64 {
            index.add("n-a", 1 << bit);
        }
        index.add("n-a", 0b11);
        assert_eq!(index.find(0b11, 0), None);
        assert_eq!(narrative_id(0xab, "x:1"), "n-00000000000000ab");
    }

    #[test]
    fn posts_without_words_never_group() {
        let mut index = NarrativeIndex::default();
        index.add("n-a", EMPTY);
        assert_eq!(index.find(EMPTY, 64), None);
        assert_eq!(narrative_id(EMPTY, "x:1"), "n-post-x:1");
    }
}
