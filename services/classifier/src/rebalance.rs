//! Rebalances: a revoke waits for in-flight batches to finish (bounded by
//! `drain_timeout_ms`) and commits before the partitions go; anything still
//! queued is dropped uncommitted and re-fetched by the next owner. Every
//! assignment change bumps a generation, so a batch formed under an older
//! assignment never stores offsets.

use crate::metrics::Metrics;
use patroli_runtime::Health;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub(crate) const READY_ASSIGNED: &str = "partitions_assigned";

/// Counts batches between dispatch and durable completion, so a rebalance
/// can wait for them.
#[derive(Default)]
pub(crate) struct InFlight {
    count: Mutex<usize>,
    idle: Condvar,
}

impl InFlight {
    pub fn start(&self) {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    pub fn finish(&self) {
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.idle.notify_all();
        }
    }

    pub fn wait_idle(&self, limit: Duration) -> bool {
        let count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        let (count, _) = self
            .idle
            .wait_timeout_while(count, limit, |c| *c > 0)
            .unwrap_or_else(|p| p.into_inner());
        *count == 0
    }
}

pub(crate) struct ServiceContext {
    pub in_flight: Arc<InFlight>,
    /// Bumped on every assignment change; a batch stores offsets only if
    /// the generation it was formed in is still current.
    pub generation: Arc<AtomicU64>,
    pub health: Health,
    pub metrics: Metrics,
    pub commit_on_revoke: bool,
    pub drain_timeout: Duration,
}

impl ServiceContext {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

pub(crate) type ServiceConsumer = rdkafka::consumer::StreamConsumer<ServiceContext>;

/// Commits the stored offsets; having nothing to commit is fine.
pub(crate) fn commit_stored<C: ConsumerContext + 'static>(
    consumer: &impl Consumer<C>,
) -> Result<(), KafkaError> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl ClientContext for ServiceContext {}

impl ConsumerContext for ServiceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let wait = || self.in_flight.wait_idle(self.drain_timeout);
            // Rebalance callbacks run inside `recv` on a runtime worker;
            // block_in_place lets the write stage finish meanwhile.
            let drained = match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(wait)
                }
                _ => wait(),
            };
            // After the drain, so batches that finished during it still
            // store their offsets; later ones must not.
            self.generation.fetch_add(1, Ordering::SeqCst);
            if !drained {
                tracing::warn!(
                    timeout_ms = self.drain_timeout.as_millis() as u64,
                    "in-flight batches did not finish before the rebalance; their inputs will be re-delivered"
                );
            }
            if self.commit_on_revoke {
                if let Err(e) = commit_stored(consumer) {
                    tracing::warn!(error = %e, "commit before revoke failed");
                }
            }
            tracing::info!(partitions = partitions.count(), "partitions revoked");
            // Lag of partitions we no longer own would go stale and keep
            // lag alerts firing; the new owner reports them.
            self.metrics.consumer_lag.reset();
            self.metrics.assigned_partitions.set(0);
            self.health.set(READY_ASSIGNED, false);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.generation.fetch_add(1, Ordering::SeqCst);
            let count = partitions.count();
            tracing::info!(partitions = count, "partitions assigned");
            self.metrics.assigned_partitions.set(count as i64);
            self.health.set(READY_ASSIGNED, count > 0);
        }
    }
}
