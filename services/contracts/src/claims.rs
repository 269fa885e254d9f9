//! Known claims: the archive of checked claims every classifier matches posts against
//! (`claims.v1`), and the matches a scored event carries.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What checking a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimVerdict {
    Hoax,
    /// Genuine news, official information or a clarification.
    Genuine,
}

/// Value of `claims.v1`, a compacted topic keyed by `claim_id`: the latest record of a claim
/// wins, and a record with a null value (a tombstone) removes the claim. Every classifier reads
/// the whole topic at start-up and follows it, so a claim added here is matched from then on
/// without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "claims.v1")]
pub struct ClaimRecord {
    pub schema_version: u32,
    pub claim_id: String,
    pub verdict: ClaimVerdict,
    /// The claim as worded by whoever checked it, or a post that repeats it: classifiers embed
    /// it with their own encoder.
    pub text: String,
    /// Who checked it (`review` for the takedown desk, a fact-checker's name otherwise).
    pub source: String,
    /// When it was checked (RFC 3339 or a date), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Where the check is published, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A known claim a scored post resembles: evidence for reviewers and platforms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MatchedClaim {
    pub claim_id: String,
    /// Cosine similarity of the post's and the claim's embeddings (at or above the model's
    /// match threshold, which its model card states).
    pub similarity: f32,
    pub verdict: ClaimVerdict,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
