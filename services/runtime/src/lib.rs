//! What every patroli service shares: layered configuration, the Kafka client
//! factory, the health/metrics HTTP server, graceful shutdown (the service harness) and tracing.
//! Kept free of any one service's logic so `classifier`, `takedown`,
//! `dashboard` and `gateway` start and stop the same way.

pub mod acl;
pub mod config;
pub mod harness;
pub mod http;
pub mod kafka;
pub mod local_broker;
pub mod metrics;
pub mod produce;
pub mod shutdown;
pub mod telemetry;

pub use config::{load_config, ConfigError};
pub use harness::{Harness, HarnessError, DEFAULT_DRAIN_TIMEOUT_SECS};
pub use http::{serve_http, Health, HttpError};
pub use kafka::{ensure_topics, KafkaConfig};
pub use local_broker::{find_repo_root, BrokerError, LocalBroker, LOCAL_ADMIN};
pub use metrics::Registrar;
pub use shutdown::{shutdown_on_signals, Shutdown};
pub use telemetry::{init_tracing, init_tracing_or};
