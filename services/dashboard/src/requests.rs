//! Takedown requests by state: each request id's furthest state, capped at the most recent
//! `max` ids so a long look-back cannot grow memory without bound.

use std::collections::{BTreeMap, HashMap, VecDeque};

use patroli_contracts::PartnerStatus;
use serde::Serialize;

/// Where a takedown request stands; partner statuses only move it forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Requested,
    Acknowledged,
    Removed,
    Rejected,
}

impl RequestState {
    pub const ALL: [RequestState; 4] = [
        Self::Requested,
        Self::Acknowledged,
        Self::Removed,
        Self::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Acknowledged => "acknowledged",
            Self::Removed => "removed",
            Self::Rejected => "rejected",
        }
    }
}

impl From<PartnerStatus> for RequestState {
    fn from(status: PartnerStatus) -> Self {
        match status {
            PartnerStatus::Acknowledged => Self::Acknowledged,
            PartnerStatus::Removed => Self::Removed,
            PartnerStatus::Rejected => Self::Rejected,
        }
    }
}

pub struct Requests {
    max: usize,
    state: HashMap<String, RequestState>,
    /// Request ids oldest first, to evict past `max`.
    order: VecDeque<String>,
}

impl Requests {
    pub fn new(max: usize) -> Self {
        Requests {
            max,
            state: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Moves request `id` to `state` unless it is already further along.
    pub fn advance(&mut self, id: &str, state: RequestState) {
        match self.state.get_mut(id) {
            Some(known) => *known = (*known).max(state),
            None => {
                self.state.insert(id.to_owned(), state);
                self.order.push_back(id.to_owned());
                while self.order.len() > self.max {
                    if let Some(oldest) = self.order.pop_front() {
                        self.state.remove(&oldest);
                    }
                }
            }
        }
    }

    /// Every state, with 0 when no request is in it.
    pub fn by_state(&self) -> BTreeMap<&'static str, u64> {
        let mut states: BTreeMap<&'static str, u64> =
            RequestState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for state in self.state.values() {
            *states.entry(state.as_str()).or_default() += 1;
        }
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_a_request_forward_and_old_ids_go_first() {
        let mut requests = Requests::new(2);
        requests.advance("r1", RequestState::Removed);
        requests.advance("r1", RequestState::Requested);
        requests.advance("r2", RequestState::Acknowledged);
        assert_eq!(requests.by_state()["removed"], 1);
        assert_eq!(requests.by_state()["requested"], 0);
        requests.advance("r3", RequestState::Requested);
        let states = requests.by_state();
        assert_eq!(states.values().sum::<u64>(), 2);
        assert_eq!(states["removed"], 0, "r1 was the oldest");
    }
}
