use patroli_takedown::policy::Policy;

const BASE: &str = r#"version = "2024.02.1"

[defaults]
review = 0.7

[categories.ballot_fraud]
review = 0.6

[platforms.tiktok]
review = 0.8
# (an auto threshold here is refused)

[platforms.tiktok.categories.ballot_fraud]
review = 0.5

[protected]
accounts = ["x:kpu_ri"]
domains = ["kpu.go.id", ".kompas.com"]
"#;

fn error(text: &str) -> String {
    Policy::parse(text, "policy.toml")
        .expect_err("policy is invalid")
        .to_string()
}

#[test]
fn the_most_specific_level_wins() {
    let policy = Policy::parse(BASE, "policy.toml").expect("valid");
    let t = |platform, category| policy.review_threshold(platform, category);
    assert_eq!(t("x", "other_hoax"), 0.7);
    assert_eq!(t("x", "ballot_fraud"), 0.6);
    assert_eq!(t("tiktok", "other_hoax"), 0.8);
    assert_eq!(t("tiktok", "ballot_fraud"), 0.5);
    assert_eq!(policy.version, "2024.02.1");
    assert_eq!(policy.max_distance, 10);
}

/// No setting lets a request go out before a person confirmed: `auto` is refused wherever it
/// appears, with the reason.
#[test]
fn auto_is_refused_with_the_reason() {
    let why = "is not supported: a narrative's first takedown request always needs a reviewer's \
               signed decision (copies of a confirmed narrative are already requested without \
               one); remove this line";
    let text = BASE.replace("# (an auto threshold here is refused)", "auto = 0.99");
    assert_eq!(
        error(&text),
        format!("policy.toml:11: platforms.tiktok.auto {why}")
    );
    let text = BASE.replace("review = 0.7", "review = 0.7\nauto = 0.95");
    assert_eq!(error(&text), format!("policy.toml:5: defaults.auto {why}"));
    let text = BASE.replace("review = 0.6", "auto = 1");
    assert_eq!(
        error(&text),
        format!("policy.toml:7: categories.ballot_fraud.auto {why}")
    );
}

#[test]
fn protected_accounts_and_domains() {
    let policy = Policy::parse(BASE, "policy.toml").expect("valid");
    assert!(policy.is_protected("x", "kpu_ri", None));
    assert!(!policy.is_protected("tiktok", "kpu_ri", None));
    assert!(policy.is_protected("x", "anon", Some("https://www.kpu.go.id/berita/1")));
    assert!(policy.is_protected("x", "anon", Some("https://KOMPAS.com/read")));
    assert!(policy.is_protected("x", "anon", Some("http://user@news.kompas.com:443/a?b")));
    assert!(!policy.is_protected("x", "anon", Some("https://notkpu.go.id.evil.example/x")));
    assert!(!policy.is_protected("x", "anon", Some("https://fakekompas.com/x")));
}

#[test]
fn out_of_range_threshold_names_its_line() {
    let text = BASE.replace("review = 0.8", "review = 1.8");
    assert_eq!(
        error(&text),
        "policy.toml:10: platforms.tiktok.review must be between 0 and 1, got 1.8"
    );
}

#[test]
fn unknown_key_names_its_line() {
    let text = BASE.replace("review = 0.6", "reveiw = 0.6");
    let message = error(&text);
    assert!(
        message.starts_with("policy.toml:7: unknown field `reveiw`"),
        "{message}"
    );
}

#[test]
fn syntax_error_names_its_line() {
    let text = BASE.replace("[protected]", "[protected");
    let message = error(&text);
    assert!(message.starts_with("policy.toml:16: "), "{message}");
}

#[test]
fn bad_protected_entries_name_their_line() {
    let text = BASE.replace("\"x:kpu_ri\"", "\"kpu_ri\"");
    assert_eq!(
        error(&text),
        "policy.toml:17: protected account \"kpu_ri\" must be platform:author"
    );
    let text = BASE.replace("\"kpu.go.id\"", "\"https://kpu.go.id\"");
    assert_eq!(
        error(&text),
        "policy.toml:18: protected domain \"https://kpu.go.id\" must be a bare host name like kpu.go.id"
    );
}

#[test]
fn missing_version_and_defaults_are_errors() {
    let message = error("[defaults]\nreview = 0.5\n");
    assert!(message.contains("missing field `version`"), "{message}");
    assert_eq!(
        error("version = \"v\"\n[defaults]\n"),
        "policy.toml:2: [defaults] needs a review threshold"
    );
    assert_eq!(
        error("version = \"  \"\n[defaults]\nreview = 0.5\n"),
        "policy.toml:1: version must not be empty"
    );
}

#[test]
fn grouping_and_burst_are_checked() {
    let text = format!("{BASE}\n[grouping]\nmax_distance = 40\n");
    assert_eq!(
        error(&text),
        "policy.toml:21: grouping.max_distance must be at most 32 of 64 bits, got 40"
    );
    let text = format!("{BASE}\n[burst]\ndistinct_authors = 0\n");
    assert_eq!(
        error(&text),
        "policy.toml:21: burst.distinct_authors must be at least 1"
    );
}

#[test]
fn the_bundled_policy_is_valid() {
    let policy = Policy::default();
    assert_eq!(policy.version, "2024.02-local");
    assert!(policy.is_protected("x", "anon", Some("https://www.kpu.go.id/")));
}

/// A category key the taxonomy does not know would silently fall back to the defaults: it is
/// refused, naming the table and its line.
#[test]
fn an_unknown_category_key_is_refused() {
    let known = patroli_contracts::taxonomy::CATEGORIES.join(", ");
    let text = BASE.replace("[categories.ballot_fraud]", "[categories.balot_fraud]");
    assert_eq!(
        error(&text),
        format!(
            "policy.toml:6: categories.balot_fraud: unknown category \"balot_fraud\" (one of {known})"
        )
    );
    let text = BASE.replace(
        "[platforms.tiktok.categories.ballot_fraud]",
        "[platforms.tiktok.categories.satir]",
    );
    assert_eq!(
        error(&text),
        format!(
            "policy.toml:13: platforms.tiktok.categories.satir: unknown category \"satir\" (one of {known})"
        )
    );
}
