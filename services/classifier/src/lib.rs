//! The classifier service: `posts.raw.v1` + `complaints.v1` → decode and
//! validate → token-budget micro-batches → the transformer on a blocking
//! pool → `posts.scored.v1` (or `posts.dlq.v1`), with input offsets made
//! durable only together with, or after, the outputs they produced. Each
//! post is also matched against the known claims of `claims.v1`.

pub mod batch;
mod claims;
pub mod config;
mod lag;
pub mod metrics;
mod model_wire;
pub mod output;
mod poll;
mod rebalance;
mod score;
pub mod service;
mod write;

pub use config::{BatchConfig, ClassifierConfig, DeliveryMode};
pub use metrics::Metrics;
pub use model_wire::matched_claim;
pub use service::{run, ClassifierError};
