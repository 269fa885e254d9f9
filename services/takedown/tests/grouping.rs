//! The fingerprint the classifier stamps and the grouping built on it: invariant under the
//! edits copy-paste chains make, and rarely merging unrelated texts (measured on the corpus).

use std::path::Path;

use patroli_contracts::{fingerprint, parse_fingerprint};
use patroli_takedown::narrative::{NarrativeIndex, EMPTY};
use patroli_takedown::Policy;
use proptest::prelude::*;

const PUNCTUATION: [&str; 9] = [".", ",", "!", "?!", "...", "\"", ":", ";", "!!!"];
const EMOJI: [&str; 5] = ["😡", "🔥🔥", "🙏", "😱😱😱", "🇮🇩"];

/// One word and the edits applied to it in the variant.
#[derive(Debug, Clone)]
struct Word {
    word: String,
    upper: bool,
    punctuation: Option<(usize, bool)>,
    emoji: Option<(usize, bool)>,
    url_before: bool,
    elongate: Option<(usize, usize)>,
}

fn word() -> impl Strategy<Value = Word> {
    (
        "[a-z]{2,9}",
        any::<bool>(),
        proptest::option::of((0..PUNCTUATION.len(), any::<bool>())),
        proptest::option::of((0..EMOJI.len(), any::<bool>())),
        proptest::bool::weighted(0.1),
        proptest::option::of((0usize..9, 1usize..6)),
    )
        .prop_map(
            |(word, upper, punctuation, emoji, url_before, elongate)| Word {
                word,
                upper,
                punctuation,
                emoji,
                url_before,
                elongate,
            },
        )
}

fn edited(word: &Word) -> String {
    let mut text = word.word.clone();
    if let Some((at, times)) = word.elongate {
        let at = at % text.len();
        let c = text.as_bytes()[at] as char;
        text.insert_str(at, &c.to_string().repeat(times));
    }
    if word.upper {
        text = text.to_uppercase();
    }
    if let Some((p, before)) = word.punctuation {
        text = if before {
            format!("{}{text}", PUNCTUATION[p])
        } else {
            format!("{text}{}", PUNCTUATION[p])
        };
    }
    if let Some((e, glued)) = word.emoji {
        text = if glued {
            format!("{text}{}", EMOJI[e])
        } else {
            format!("{text} {}", EMOJI[e])
        };
    }
    if word.url_before {
        text = format!("https://bit.ly/{} {text}", word.word);
    }
    text
}

proptest! {
    #[test]
    fn fingerprint_ignores_case_punctuation_urls_emoji_and_elongation(
        words in proptest::collection::vec(word(), 1..40)
    ) {
        let original: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        let variant: Vec<String> = words.iter().map(edited).collect();
        prop_assert_eq!(fingerprint(&original.join(" ")), fingerprint(&variant.join(" ")));
    }

    #[test]
    fn edited_copies_join_the_narrative_of_their_original(
        posts in proptest::collection::vec(proptest::collection::vec(word(), 8..30), 1..6)
    ) {
        let mut index = NarrativeIndex::default();
        for (i, words) in posts.iter().enumerate() {
            let original: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
            let fp = parse_fingerprint(&fingerprint(&original.join(" "))).unwrap();
            if index.find(fp, 0).is_none() {
                index.add(&format!("n-{i}"), fp);
            }
        }
        for words in &posts {
            let original: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
            let variant: Vec<String> = words.iter().map(edited).collect();
            let a = parse_fingerprint(&fingerprint(&original.join(" "))).unwrap();
            let b = parse_fingerprint(&fingerprint(&variant.join(" "))).unwrap();
            prop_assert_eq!(index.find(a, 0), index.find(b, 0));
            prop_assert!(index.find(b, 0).is_some());
        }
    }
}

/// Texts of the hand-written corpus with their narrative: different narratives are unrelated.
fn corpus() -> Vec<(String, u64)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/data/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the corpus is in the repository")
        .map(|e| e.expect("readable dir").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for file in files {
        for line in std::fs::read_to_string(&file).expect("readable").lines() {
            if line.trim().is_empty() {
                continue;
            }
            let row: serde_json::Value = serde_json::from_str(line).expect("corpus line is JSON");
            let text = row["text"].as_str().expect("text");
            let fp = parse_fingerprint(&fingerprint(text)).expect("valid fingerprint");
            rows.push((row["narrative"].as_str().expect("narrative").to_owned(), fp));
        }
    }
    rows
}

/// The figure in docs/architecture.md ("Narratives"): pairs of texts from different narratives
/// that the default `max_distance` would put in one narrative (texts without words never group).
/// Run with `--nocapture` for the table by distance.
#[test]
fn false_merge_rate_on_unrelated_corpus_texts() {
    let rows = corpus();
    let mut by_distance = [0u64; 65];
    let mut unrelated = 0u64;
    for (i, (narrative_a, a)) in rows.iter().enumerate() {
        for (narrative_b, b) in &rows[i + 1..] {
            if narrative_a != narrative_b {
                unrelated += 1;
                if *a != EMPTY && *b != EMPTY {
                    by_distance[(a ^ b).count_ones() as usize] += 1;
                }
            }
        }
    }
    let mut cumulative = 0;
    println!("texts: {}, unrelated pairs: {unrelated}", rows.len());
    println!("max_distance  merged pairs  rate");
    for (distance, count) in by_distance.iter().enumerate().take(17) {
        cumulative += count;
        println!(
            "{distance:>12}  {cumulative:>12}  {:.2e}",
            cumulative as f64 / unrelated as f64
        );
    }
    let max_distance = Policy::default().max_distance as usize;
    let merged: u64 = by_distance[..=max_distance].iter().sum();
    assert_eq!(rows.len(), 2754);
    assert!(
        (merged as f64) / (unrelated as f64) < 1e-4,
        "{merged} of {unrelated} unrelated pairs within distance {max_distance}"
    );
}
