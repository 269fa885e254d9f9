//! The ingest gateway: partners without a Kafka producer post to `posts.raw.v1` over HTTP with
//! a per-partner key, and the public files complaints to `complaints.v1`. A request is
//! answered 202 only after the broker acknowledged every event it carries.

mod api;
mod complaints;
pub mod config;
mod error;
pub mod keys;
mod limits;
pub mod load;
mod metrics;
mod posts;
mod publish;
mod service;

pub use api::OPENAPI;
pub use config::{ComplaintLimits, GatewayConfig, Rate};
pub use keys::{generate_key, key_digest};
pub use service::{run, Bound, GatewayError};
