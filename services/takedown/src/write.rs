//! Committing one step: its outputs, state records and input offsets in one Kafka
//! transaction, so either all of them are in the log or none is. The audit chain and "a
//! narrative's state never names a record that is not there" both follow from this.
//!
//! A failed produce is classified as the classifier's are (`patroli_runtime::produce`): an
//! output the broker can never accept is replaced by an audit entry saying so and the
//! transaction is tried again; anything else aborts it and is an error, since the engine's
//! memory already holds the step (the service exits; its successor rebuilds from the log).

use std::time::Duration;

use patroli_contracts::{now_rfc3339, topics};
use patroli_runtime::produce::{classify, Failure};
use patroli_runtime::Health;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::TopicPartitionList;

use crate::engine::{Engine, Outgoing};
use crate::metrics::Metrics;
use crate::service::TakedownError;

/// Readiness check: false once the broker refused the output for good.
pub(crate) const READY_OUTPUT: &str = "output_accepted";

const TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Writer {
    producer: FutureProducer,
    max_message_bytes: usize,
    metrics: Metrics,
    health: Health,
}

impl Writer {
    pub(crate) fn new(
        producer: FutureProducer,
        max_message_bytes: usize,
        metrics: &Metrics,
        health: &Health,
    ) -> Self {
        Writer {
            producer,
            max_message_bytes,
            metrics: metrics.clone(),
            health: health.clone(),
        }
    }

    /// Produces `outgoing` in order and, with `offsets`, commits them as the consumer
    /// group's, all in one transaction.
    pub(crate) async fn commit(
        &self,
        engine: &mut Engine,
        mut outgoing: Vec<Outgoing>,
        offsets: Option<(&TopicPartitionList, &ConsumerGroupMetadata)>,
    ) -> Result<(), TakedownError> {
        if outgoing.is_empty() && offsets.is_none() {
            return Ok(());
        }
        let producer = &self.producer;
        let abort = || {
            if let Err(e) = tokio::task::block_in_place(|| producer.abort_transaction(TIMEOUT)) {
                tracing::warn!(error = %e, "aborting the transaction failed");
            }
        };
        loop {
            producer
                .begin_transaction()
                .map_err(TakedownError::Transaction)?;
            let failures = produce(producer, &outgoing).await;
            if failures.is_empty() {
                let committed = tokio::task::block_in_place(|| {
                    if let Some((offsets, group)) = offsets {
                        producer.send_offsets_to_transaction(offsets, group, TIMEOUT)?;
                    }
                    producer.commit_transaction(TIMEOUT)
                });
                return committed.map_err(|e| {
                    abort();
                    TakedownError::Transaction(e)
                });
            }
            abort();
            let refused = self.refusable(&outgoing, failures)?;
            // Back to front, so the indices still point at their records; each refusal's
            // audit entry continues the chain after everything already in `outgoing`.
            let now = now_rfc3339();
            for (i, error) in refused.into_iter().rev() {
                let out = outgoing.remove(i);
                let why = format!("the broker rejected it for good: {error}");
                self.metrics
                    .refused_outputs
                    .with_label_values(&[out.topic, "rejected"])
                    .inc();
                outgoing.extend(engine.refuse_output(&out, &why, "produce", &now));
            }
            tracing::warn!(
                max_message_bytes = self.max_message_bytes,
                "outputs the broker rejected are replaced by audit entries; committing again"
            );
        }
    }

    /// The failed records that may be replaced by an audit entry, or the error that ends the
    /// service: a transient failure (retrying would need the step again, which memory already
    /// holds), a refusal of everything (unready), or a rejected state or audit record (the
    /// state and the chain cannot do without it).
    fn refusable(
        &self,
        outgoing: &[Outgoing],
        failures: Vec<(usize, KafkaError)>,
    ) -> Result<Vec<(usize, KafkaError)>, TakedownError> {
        let mut refused = Vec::with_capacity(failures.len());
        for (i, error) in failures {
            let topic = outgoing[i].topic;
            match classify(&error) {
                Failure::Rejected
                    if topic != topics::TAKEDOWN_STATE && topic != topics::TAKEDOWN_AUDIT =>
                {
                    refused.push((i, error));
                }
                Failure::Fatal => {
                    self.health.set(READY_OUTPUT, false);
                    return Err(TakedownError::OutputRefused(error));
                }
                _ => {
                    return Err(TakedownError::Produce {
                        topic: topic.to_owned(),
                        source: error,
                    })
                }
            }
        }
        Ok(refused)
    }
}

/// Produces `outgoing` in order (the audit chain's order is the partition's) and returns the
/// ones that failed.
async fn produce(producer: &FutureProducer, outgoing: &[Outgoing]) -> Vec<(usize, KafkaError)> {
    let sends = outgoing.iter().map(|out| {
        let mut record = FutureRecord::to(out.topic)
            .key(&out.key)
            .payload(&out.payload);
        if let Some(partition) = out.partition {
            record = record.partition(partition);
        }
        producer.send(record, TIMEOUT)
    });
    futures::future::join_all(sends)
        .await
        .into_iter()
        .enumerate()
        .filter_map(|(i, delivery)| delivery.err().map(|(e, _)| (i, e)))
        .collect()
}
