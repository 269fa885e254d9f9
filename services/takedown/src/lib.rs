//! The takedown service: scored posts → near-duplicate narratives → a human review queue →
//! per-platform takedown requests once a reviewer confirmed, partner statuses tracked to the
//! end, reviewers' decisions turned into training labels, and every state change audited.

pub mod audit_chain;
pub mod bounds;
pub mod burst;
mod complaints;
pub mod config;
pub mod engine;
pub mod metrics;
pub mod narrative;
mod outputs;
pub mod policy;
mod queue;
mod rebuild;
pub mod service;
pub mod state;
mod steps;
mod trust;
mod write;

pub use bounds::Bounds;
pub use config::TakedownConfig;
pub use engine::{Engine, Outgoing};
pub use metrics::Metrics;
pub use policy::{Policy, PolicyError};
pub use service::{run, TakedownError};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// An RFC 3339 time, or `None`: partners' clocks and formats are not trusted to parse.
pub(crate) fn time_of(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}
