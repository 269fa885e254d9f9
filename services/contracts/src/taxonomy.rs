//! The categories a post is scored into (`models/data/TAXONOMY.md` describes each): the one
//! list training writes into a model, the classifier checks a model against at load, and the
//! takedown policy's per-category keys are checked against.

/// Head output order: the six hoax categories, then the five others.
pub const CATEGORIES: [&str; 11] = [
    "ballot_fraud",
    "fake_official",
    "procedure_misinfo",
    "fabricated_quote",
    "sara_provocation",
    "other_hoax",
    "election_news",
    "official_info",
    "fact_check",
    "satire",
    "non_election",
];

/// The categories whose probabilities sum to the disinformation score: the first six.
pub const DISINFO_CATEGORIES: [&str; 6] = {
    let mut out = [""; 6];
    let mut i = 0;
    while i < out.len() {
        out[i] = CATEGORIES[i];
        i += 1;
    }
    out
};

/// Non-hoax categories whose false positives would be takedowns of genuine journalism or
/// official information: thresholds are set on them.
pub const PROTECTED_CATEGORIES: [&str; 2] = ["election_news", "official_info"];

/// Whether `category` is one of [`CATEGORIES`].
pub fn is_category(category: &str) -> bool {
    CATEGORIES.contains(&category)
}

/// Checks a model's category lists against the taxonomy: every category known, and its
/// disinformation categories exactly the hoax ones. The error names the first mismatch.
pub fn check_model_categories(
    categories: &[String],
    disinformation: &[String],
) -> Result<(), String> {
    if let Some(unknown) = categories.iter().find(|c| !is_category(c)) {
        return Err(format!(
            "category {unknown:?} is not in the taxonomy ({})",
            CATEGORIES.join(", ")
        ));
    }
    let mut got: Vec<&str> = disinformation.iter().map(String::as_str).collect();
    got.sort_unstable();
    let mut want = DISINFO_CATEGORIES.to_vec();
    want.sort_unstable();
    if got != want {
        return Err(format!(
            "disinformation categories {got:?} are not the taxonomy's hoax categories {want:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hoax_categories_are_the_first_six_and_protected_ones_are_not_hoaxes() {
        assert_eq!(DISINFO_CATEGORIES[5], "other_hoax");
        for c in PROTECTED_CATEGORIES {
            assert!(is_category(c) && !DISINFO_CATEGORIES.contains(&c));
        }
    }

    #[test]
    fn a_model_is_checked_against_the_taxonomy() {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = owned(&CATEGORIES);
        let hoax = owned(&DISINFO_CATEGORIES);
        assert_eq!(check_model_categories(&all, &hoax), Ok(()));
        let mut typo = all.clone();
        typo[0] = "balot_fraud".into();
        assert_eq!(
            check_model_categories(&typo, &hoax),
            Err(format!(
                "category \"balot_fraud\" is not in the taxonomy ({})",
                CATEGORIES.join(", ")
            ))
        );
        assert!(check_model_categories(&all, &hoax[..5])
            .unwrap_err()
            .starts_with("disinformation categories"));
    }
}
