//! The versioned takedown policy: review thresholds per category and platform, protected accounts and domains, near-duplicate distance and what counts as a
//! coordinated burst. Loaded once at start-up; every error names the file's line.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The policy shipped for local runs and used when no file is configured.
pub const DEFAULT_POLICY: &str = include_str!("../policy.default.toml");

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}:{line}: {message}")]
    Invalid {
        origin: String,
        line: usize,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: String,
    /// The `review` threshold of `[defaults]`.
    review: f32,
    categories: BTreeMap<String, Level>,
    platforms: BTreeMap<String, PlatformLevel>,
    protected_accounts: BTreeSet<String>,
    protected_domains: Vec<String>,
    /// Largest fingerprint Hamming distance at which two posts are one narrative.
    pub max_distance: u32,
    pub burst: BurstPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstPolicy {
    pub distinct_authors: u32,
    pub window_minutes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Level {
    review: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct PlatformLevel {
    level: Level,
    categories: BTreeMap<String, Level>,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates `text`; `origin` names it in errors (a path, or `default policy`).
    pub fn parse(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let invalid = |span: Option<Range<usize>>, message: String| PolicyError::Invalid {
            origin: origin.to_owned(),
            line: span.map_or(1, |span| line_of(text, span.start)),
            message,
        };
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            // toml's message repeats the snippet over several lines; the first one is the fact.
            let message = e.message().lines().next().unwrap_or_default().to_owned();
            invalid(e.span(), message)
        })?;
        let check =
            |value: &Option<Spanned<f32>>, what: &str| -> Result<Option<f32>, PolicyError> {
                match value {
                    None => Ok(None),
                    Some(v) if (0.0..=1.0).contains(v.get_ref()) => Ok(Some(*v.get_ref())),
                    Some(v) => Err(invalid(
                        Some(v.span()),
                        format!("{what} must be between 0 and 1, got {}", v.get_ref()),
                    )),
                }
            };
        let level = |raw: &RawLevel, at: &str| -> Result<Level, PolicyError> {
            if let Some(auto) = &raw.auto {
                return Err(invalid(Some(auto.span()), no_auto(at)));
            }
            Ok(Level {
                review: check(&raw.review, &format!("{at}.review"))?,
            })
        };
        if file.version.get_ref().trim().is_empty() {
            return Err(invalid(
                Some(file.version.span()),
                "version must not be empty".into(),
            ));
        }
        let defaults = level(&file.defaults, "defaults")?;
        let Some(review) = defaults.review else {
            return Err(PolicyError::Invalid {
                origin: origin.to_owned(),
                line: table_line(text, "[defaults]"),
                message: "[defaults] needs a review threshold".into(),
            });
        };
        // A misspelt category would otherwise fall back to the defaults without a word.
        let known = |category: &str, at: &str| -> Result<(), PolicyError> {
            if patroli_contracts::taxonomy::is_category(category) {
                return Ok(());
            }
            Err(PolicyError::Invalid {
                origin: origin.to_owned(),
                line: table_line(text, &format!("[{at}]")),
                message: format!(
                    "{at}: unknown category {category:?} (one of {})",
                    patroli_contracts::taxonomy::CATEGORIES.join(", ")
                ),
            })
        };
        let mut categories = BTreeMap::new();
        for (name, raw) in &file.categories {
            known(name, &format!("categories.{name}"))?;
            categories.insert(name.clone(), level(raw, &format!("categories.{name}"))?);
        }
        let mut platforms = BTreeMap::new();
        for (name, raw) in &file.platforms {
            let mut by_category = BTreeMap::new();
            for (category, raw) in &raw.categories {
                let at = format!("platforms.{name}.categories.{category}");
                known(category, &at)?;
                by_category.insert(category.clone(), level(raw, &at)?);
            }
            let platform = PlatformLevel {
                level: level(
                    &RawLevel {
                        review: raw.review.clone(),
                        auto: raw.auto.clone(),
                    },
                    &format!("platforms.{name}"),
                )?,
                categories: by_category,
            };
            platforms.insert(name.clone(), platform);
        }
        let max_distance = match &file.grouping.max_distance {
            None => DEFAULT_MAX_DISTANCE,
            Some(d) if *d.get_ref() <= 32 => *d.get_ref(),
            Some(d) => {
                return Err(invalid(
                    Some(d.span()),
                    format!(
                        "grouping.max_distance must be at most 32 of 64 bits, got {}",
                        d.get_ref()
                    ),
                ))
            }
        };
        let at_least_one = |value: &Option<Spanned<u32>>, field: &str, default: u32| match value {
            None => Ok(default),
            Some(v) if *v.get_ref() >= 1 => Ok(*v.get_ref()),
            Some(v) => Err(invalid(
                Some(v.span()),
                format!("{field} must be at least 1"),
            )),
        };
        let burst = BurstPolicy {
            distinct_authors: at_least_one(
                &file.burst.distinct_authors,
                "burst.distinct_authors",
                DEFAULT_BURST_AUTHORS,
            )?,
            window_minutes: at_least_one(
                &file.burst.window_minutes,
                "burst.window_minutes",
                DEFAULT_BURST_MINUTES,
            )?,
        };
        let mut protected_domains = Vec::new();
        for domain in &file.protected.domains {
            let name = domain
                .get_ref()
                .trim()
                .trim_start_matches('.')
                .to_ascii_lowercase();
            if name.is_empty() || name.contains('/') || name.contains(':') {
                return Err(invalid(
                    Some(domain.span()),
                    format!(
                        "protected domain {:?} must be a bare host name like kpu.go.id",
                        domain.get_ref()
                    ),
                ));
            }
            protected_domains.push(name);
        }
        let mut protected_accounts = BTreeSet::new();
        for account in &file.protected.accounts {
            match account.get_ref().split_once(':') {
                Some((platform, author)) if !platform.is_empty() && !author.is_empty() => {
                    protected_accounts.insert(account.get_ref().clone());
                }
                _ => {
                    return Err(invalid(
                        Some(account.span()),
                        format!(
                            "protected account {:?} must be platform:author",
                            account.get_ref()
                        ),
                    ))
                }
            }
        }
        let policy = Policy {
            version: file.version.into_inner(),
            review,
            categories,
            platforms,
            protected_accounts,
            protected_domains,
            max_distance,
            burst,
        };
        Ok(policy)
    }

    /// The review threshold for a post: the most specific level that sets one wins, in the
    /// order platform+category, category, platform, defaults.
    pub fn review_threshold(&self, platform: &str, category: &str) -> f32 {
        let platform_level = self.platforms.get(platform);
        [
            platform_level
                .and_then(|p| p.categories.get(category))
                .copied(),
            self.categories.get(category).copied(),
            platform_level.map(|p| p.level),
        ]
        .iter()
        .flatten()
        .find_map(|l| l.review)
        .unwrap_or(self.review)
    }

    /// News outlets and official election bodies: their posts are requested only in a
    /// confirmation's request, never as a copy of an already confirmed narrative.
    pub fn is_protected(&self, platform: &str, author: &str, url: Option<&str>) -> bool {
        if self
            .protected_accounts
            .contains(&format!("{platform}:{author}"))
        {
            return true;
        }
        let Some(host) = url.and_then(host_of) else {
            return false;
        };
        self.protected_domains
            .iter()
            .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")))
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::parse(DEFAULT_POLICY, "default policy").expect("the bundled policy is valid")
    }
}

/// Why a policy may not set `auto` (requests before any review): a first request must trace back
/// to a person's signed decision, whatever the configuration says.
fn no_auto(at: &str) -> String {
    format!(
        "{at}.auto is not supported: a narrative's first takedown request always needs a \
         reviewer's signed decision (copies of a confirmed narrative are already requested \
         without one); remove this line"
    )
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line of a `[table]` header (1 if absent: defaults and inherited values have no line).
fn table_line(text: &str, header: &str) -> usize {
    text.lines()
        .position(|line| line.trim() == header)
        .map_or(1, |i| i + 1)
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?.split(':').next()?;
    (!host.is_empty()).then(|| host.trim_end_matches('.').to_ascii_lowercase())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: Spanned<String>,
    defaults: RawLevel,
    #[serde(default)]
    categories: BTreeMap<String, RawLevel>,
    #[serde(default)]
    platforms: BTreeMap<String, RawPlatform>,
    #[serde(default)]
    protected: RawProtected,
    #[serde(default)]
    grouping: RawGrouping,
    #[serde(default)]
    burst: RawBurst,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    review: Option<Spanned<f32>>,
    /// Refused with a reason (see [`no_auto`]) rather than as an unknown key.
    auto: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPlatform {
    review: Option<Spanned<f32>>,
    auto: Option<Spanned<toml::Value>>,
    #[serde(default)]
    categories: BTreeMap<String, RawLevel>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProtected {
    #[serde(default)]
    accounts: Vec<Spanned<String>>,
    #[serde(default)]
    domains: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrouping {
    max_distance: Option<Spanned<u32>>,
}

/// See docs/architecture.md ("Narratives") for the measurement behind this value.
const DEFAULT_MAX_DISTANCE: u32 = 10;
const DEFAULT_BURST_AUTHORS: u32 = 10;
const DEFAULT_BURST_MINUTES: u32 = 60;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBurst {
    distinct_authors: Option<Spanned<u32>>,
    window_minutes: Option<Spanned<u32>>,
}
