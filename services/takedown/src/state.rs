//! What the service remembers, as records of its compacted state topic: one per post that joined
//! a narrative (`post:<platform:post_id>`), one per complaint attached to one
//! (`complaint:<complaint_id>`, a key space of its own), one per takedown request
//! (`request:<request_id>`) and one per narrative (`narrative:<id>`), so no record grows with a
//! narrative's size. The latest record per key is the state; start-up reads the
//! topic to its end before consuming anything else.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use patroli_contracts::{MatchedClaim, NarrativeStatus, PartnerStatus, PostRef, ReviewDecision};
use serde::{Deserialize, Serialize};

const POST_PREFIX: &str = "post:";
const NARRATIVE_PREFIX: &str = "narrative:";
const COMPLAINT_PREFIX: &str = "complaint:";
const REQUEST_PREFIX: &str = "request:";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostRecord {
    pub narrative_id: String,
    pub post: PostRef,
    pub scored_event_id: String,
    pub url: Option<String>,
    pub author: String,
    pub created_at: String,
    pub score: f32,
    pub category: String,
    pub categories: BTreeMap<String, f32>,
    pub reason_words: Vec<String>,
    pub fingerprint: u64,
    pub text: Option<String>,
    pub protected: bool,
    /// Known claims the classifier matched (absent in state written before matching).
    #[serde(default)]
    pub matches: Vec<MatchedClaim>,
    /// The request that lists this post; a post is requested at most once.
    pub requested_in: Option<String>,
    /// Whether its `labels.v1` record went out (needs a decision and the text).
    pub labelled: bool,
}

/// A complaint from the public attached to a narrative: evidence, never a post. The post it
/// names is a reference a reviewer may confirm, nothing more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplaintRecord {
    pub complaint_id: String,
    pub narrative_id: String,
    pub scored_event_id: String,
    pub referenced_post: Option<PostRef>,
    /// The complainant's link, unverified.
    pub url: Option<String>,
    pub score: f32,
    /// The complaint's `reported_at`.
    pub received: String,
    pub fingerprint: u64,
    /// The request that lists the referenced post, once a reviewer confirmed it.
    pub requested_in: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NarrativeRecord {
    pub narrative_id: String,
    pub status: NarrativeStatus,
    pub revision: u64,
    /// Wall-clock RFC 3339 time it entered the review queue (queue age metric).
    pub queued_at: String,
    /// The decision that set `status`.
    pub decision: Option<ReviewDecision>,
    /// Every decision id applied or ignored, so a re-delivered decision is a no-op.
    pub decisions_seen: BTreeSet<String>,
    /// Requests as records written before they had their own (`request:` keys); read at
    /// start-up only, never written (docs/architecture.md, "Takedown state").
    #[serde(default, rename = "requests", skip_serializing)]
    pub legacy_requests: BTreeMap<String, RequestRecord>,
}

/// A request's life at the partner. Moves only forward: `sent` → `acknowledged` →
/// `removed` | `rejected` (a partner may skip `acknowledged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Sent,
    Acknowledged,
    Removed,
    Rejected,
}

impl RequestState {
    pub const ALL: [RequestState; 4] = [
        Self::Sent,
        Self::Acknowledged,
        Self::Removed,
        Self::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Acknowledged => "acknowledged",
            Self::Removed => "removed",
            Self::Rejected => "rejected",
        }
    }

    /// The state a partner status moves to, or `None` if it would move backwards or leave a
    /// final state (a late `acknowledged` after `removed` changes nothing).
    pub fn advance(self, status: PartnerStatus) -> Option<RequestState> {
        let next = match status {
            PartnerStatus::Acknowledged => Self::Acknowledged,
            PartnerStatus::Removed => Self::Removed,
            PartnerStatus::Rejected => Self::Rejected,
        };
        let terminal = matches!(self, Self::Removed | Self::Rejected);
        (!terminal && next > self).then_some(next)
    }
}

/// A takedown request the service sent, and how far its partner got with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Empty in a legacy record (inside its narrative's, keyed by request id).
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub narrative_id: String,
    pub platform: String,
    pub category: String,
    pub state: RequestState,
    pub created_at: String,
}

/// One record of the state topic.
#[derive(Debug, Clone, PartialEq)]
pub enum StateRecord {
    Post(Box<PostRecord>),
    Narrative(Box<NarrativeRecord>),
    Complaint(Box<ComplaintRecord>),
    Request(Box<RequestRecord>),
}

impl StateRecord {
    pub fn key(&self) -> String {
        match self {
            Self::Post(post) => format!("{POST_PREFIX}{}", post.post.key()),
            Self::Narrative(narrative) => format!("{NARRATIVE_PREFIX}{}", narrative.narrative_id),
            Self::Complaint(complaint) => format!("{COMPLAINT_PREFIX}{}", complaint.complaint_id),
            Self::Request(request) => format!("{REQUEST_PREFIX}{}", request.request_id),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        match self {
            Self::Post(post) => serde_json::to_vec(post),
            Self::Narrative(narrative) => serde_json::to_vec(narrative),
            Self::Complaint(complaint) => serde_json::to_vec(complaint),
            Self::Request(request) => serde_json::to_vec(request),
        }
        .expect("state records serialise")
    }

    /// Decodes a state-topic message; the key says which kind of record it is.
    pub fn from_message(key: &str, value: &[u8]) -> Result<Self, String> {
        if key.starts_with(POST_PREFIX) {
            serde_json::from_slice(value)
                .map(|post| Self::Post(Box::new(post)))
                .map_err(|e| format!("post record {key}: {e}"))
        } else if key.starts_with(NARRATIVE_PREFIX) {
            serde_json::from_slice(value)
                .map(|narrative| Self::Narrative(Box::new(narrative)))
                .map_err(|e| format!("narrative record {key}: {e}"))
        } else if key.starts_with(COMPLAINT_PREFIX) {
            serde_json::from_slice(value)
                .map(|complaint| Self::Complaint(Box::new(complaint)))
                .map_err(|e| format!("complaint record {key}: {e}"))
        } else if let Some(id) = key.strip_prefix(REQUEST_PREFIX) {
            serde_json::from_slice::<RequestRecord>(value)
                .map_err(|e| format!("request record {key}: {e}"))
                .and_then(|request| {
                    if request.request_id == id && !request.narrative_id.is_empty() {
                        Ok(Self::Request(Box::new(request)))
                    } else {
                        Err(format!(
                            "request record {key}: names request {:?} of narrative {:?}",
                            request.request_id, request.narrative_id
                        ))
                    }
                })
        } else {
            Err(format!("unknown state key {key:?}"))
        }
    }
}

/// Texts of recently seen raw posts by post key: scored events carry no text, and reviewers,
/// partners and retraining need it. Bounded in bytes (keys and texts), oldest out first: texts
/// run from a word to the input limit, so a count would bound nothing.
#[derive(Debug, Default)]
pub struct TextCache {
    texts: HashMap<String, String>,
    order: VecDeque<String>,
    bytes: usize,
    capacity_bytes: usize,
}

impl TextCache {
    pub fn new(capacity_bytes: usize) -> Self {
        TextCache {
            capacity_bytes,
            ..TextCache::default()
        }
    }

    pub fn insert(&mut self, key: String, text: String) {
        let size = key.len() + text.len();
        if size > self.capacity_bytes {
            return;
        }
        match self.texts.insert(key.clone(), text) {
            Some(old) => self.bytes = self.bytes - old.len() + size - key.len(),
            None => {
                self.bytes += size;
                self.order.push_back(key);
            }
        }
        while self.bytes > self.capacity_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(text) = self.texts.remove(&old) {
                self.bytes -= old.len() + text.len();
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.texts.get(key)
    }

    /// Bytes of keys and texts held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_states_only_move_forward() {
        use PartnerStatus::*;
        assert_eq!(
            RequestState::Sent.advance(Acknowledged),
            Some(RequestState::Acknowledged)
        );
        assert_eq!(
            RequestState::Sent.advance(Removed),
            Some(RequestState::Removed)
        );
        assert_eq!(
            RequestState::Acknowledged.advance(Rejected),
            Some(RequestState::Rejected)
        );
        assert_eq!(RequestState::Acknowledged.advance(Acknowledged), None);
        assert_eq!(RequestState::Removed.advance(Acknowledged), None);
        assert_eq!(RequestState::Removed.advance(Rejected), None);
        assert_eq!(RequestState::Rejected.advance(Removed), None);
    }

    #[test]
    fn text_cache_holds_at_most_its_bytes_oldest_out_first() {
        // Each entry: a 1-byte key and its text.
        let mut cache = TextCache::new(10);
        cache.insert("a".into(), "1234".into());
        cache.insert("b".into(), "1234".into());
        assert_eq!(cache.bytes(), 10);
        cache.insert("a".into(), "12".into());
        assert_eq!(cache.bytes(), 8);
        cache.insert("c".into(), "123".into());
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("b").map(String::as_str), Some("1234"));
        assert_eq!(cache.get("c").map(String::as_str), Some("123"));
        assert_eq!(cache.bytes(), 9);
        // Larger than the whole cache: not kept, nothing else lost.
        cache.insert("d".into(), "x".repeat(10));
        assert_eq!((cache.get("d"), cache.bytes()), (None, 9));
    }
}
