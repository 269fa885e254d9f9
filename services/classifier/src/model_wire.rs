//! The model's own types to and from the wire's (`patroli-contracts`): the
//! model knows nothing of topics, so its claim archive and its matches are
//! mapped here. The matches are exhaustive both ways, so a verdict added on
//! either side does not compile until it is mapped.

use patroli_contracts::{ClaimRecord, ClaimVerdict, MatchedClaim};
use patroli_inference::{Claim, ClaimMatch, Verdict};

/// A `claims.v1` record as the claim the model's archive holds.
pub fn claim_of(r: ClaimRecord) -> Claim {
    Claim {
        id: r.claim_id,
        verdict: match r.verdict {
            ClaimVerdict::Hoax => Verdict::Hoax,
            ClaimVerdict::Genuine => Verdict::Genuine,
        },
        source: r.source,
        text: Some(r.text),
        date: r.date,
        url: r.url,
    }
}

/// A match the model found, as a scored event carries it (the claim's text
/// stays out: the event names the claim, its source and where it is checked).
pub fn matched_claim(m: ClaimMatch) -> MatchedClaim {
    let c = m.claim;
    MatchedClaim {
        claim_id: c.id,
        similarity: m.similarity,
        verdict: match c.verdict {
            Verdict::Hoax => ClaimVerdict::Hoax,
            Verdict::Genuine => ClaimVerdict::Genuine,
        },
        source: c.source,
        date: c.date,
        url: c.url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_to_the_match_a_scored_event_carries() {
        let record = ClaimRecord {
            schema_version: patroli_contracts::SCHEMA_VERSION,
            claim_id: "review-1".into(),
            verdict: ClaimVerdict::Genuine,
            text: "KPU: pemungutan suara tetap 14 Februari".into(),
            source: "review".into(),
            date: Some("2024-02-01".into()),
            url: Some("https://example.org/cek".into()),
        };
        let claim = claim_of(record);
        assert_eq!(claim.verdict, Verdict::Genuine);
        assert_eq!(
            claim.text.as_deref(),
            Some("KPU: pemungutan suara tetap 14 Februari")
        );
        let m = matched_claim(ClaimMatch {
            claim,
            similarity: 0.93,
        });
        assert_eq!(
            m,
            MatchedClaim {
                claim_id: "review-1".into(),
                similarity: 0.93,
                verdict: ClaimVerdict::Genuine,
                source: "review".into(),
                date: Some("2024-02-01".into()),
                url: Some("https://example.org/cek".into()),
            }
        );
    }
}
