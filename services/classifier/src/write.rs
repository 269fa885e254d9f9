//! Stage 3, writing: produce a batch's outputs, then make its input offsets
//! durable: stored after delivery in at-least-once mode, inside the
//! transaction in exactly-once mode.

use crate::config::DeliveryMode;
use crate::metrics::Metrics;
use crate::output::{OutRecord, Outcome};
use crate::rebalance::{InFlight, ServiceConsumer};
use crate::score::ScoredBatch;
use crate::service::ClassifierError;
use patroli_runtime::Health;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) struct Writer {
    pub producer: FutureProducer,
    pub consumer: Arc<ServiceConsumer>,
    pub in_flight: Arc<InFlight>,
    pub delivery: DeliveryMode,
    pub metrics: Metrics,
    pub health: Health,
    pub dlq_topic: String,
}

pub(crate) async fn write_stage(
    mut scored: mpsc::Receiver<ScoredBatch>,
    writer: Writer,
    stop: CancellationToken,
) -> Result<(), ClassifierError> {
    let Writer {
        producer,
        consumer,
        in_flight,
        delivery,
        metrics,
        ..
    } = writer;
    while let Some(batch) = scored.recv().await {
        let written = match delivery {
            DeliveryMode::AtLeastOnce => {
                write_at_least_once(&batch, &producer, &consumer, &metrics, &stop).await
            }
            DeliveryMode::ExactlyOnce => write_transaction(&batch, &producer, &consumer).await,
        };
        in_flight.finish();
        metrics.in_flight_batches.dec();
        match written {
            Ok(true) => count_outcomes(&batch.records, &metrics),
            Ok(false) => {}
            Err(e) => {
                stop.cancel();
                return Err(e);
            }
        }
    }
    Ok(())
}

fn count_outcomes(records: &[OutRecord], metrics: &Metrics) {
    for record in records {
        match &record.outcome {
            Outcome::Scored(label) => metrics.scored.with_label_values(&[label.as_str()]).inc(),
            Outcome::DeadLetter(reason) => metrics.dlq.with_label_values(&[reason]).inc(),
        }
    }
}

async fn produce_all(batch: &ScoredBatch, producer: &FutureProducer) -> Result<(), KafkaError> {
    let sends = batch.records.iter().map(|record| {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        producer.send(
            FutureRecord::to(&record.topic)
                .key(&record.key)
                .payload(&record.payload)
                .headers(headers),
            Duration::from_secs(30),
        )
    });
    for delivery in futures::future::join_all(sends).await {
        delivery.map_err(|(e, _)| e)?;
    }
    Ok(())
}

fn offsets_list(batch: &ScoredBatch) -> Result<TopicPartitionList, KafkaError> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in &batch.next_offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    Ok(list)
}

/// Produces until every output is acknowledged, then stores the input
/// offsets. Retries forever on delivery failure (stalling is better than
/// losing a post); gives up only on shutdown, leaving the offsets unstored.
/// Returns whether the batch was completed.
async fn write_at_least_once(
    batch: &ScoredBatch,
    producer: &FutureProducer,
    consumer: &ServiceConsumer,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<bool, ClassifierError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match produce_all(batch, producer).await {
            Ok(()) => break,
            Err(e) => {
                metrics
                    .produce_retries
                    .with_label_values(&["at-least-once"])
                    .inc();
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "delivery failed; producing the batch again");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(false),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    if batch.generation != consumer.context().generation() {
        tracing::info!(
            "batch finished after its partitions were revoked; the new owner re-delivers it"
        );
        return Ok(true);
    }
    let offsets = offsets_list(batch)?;
    if let Err(e) = consumer.store_offsets(&offsets) {
        tracing::warn!(error = %e, "cannot store offsets; the batch will be re-delivered");
    }
    Ok(true)
}

/// Outputs and input offsets in one Kafka transaction. Any failure aborts
/// it and is fatal: the process restarts from the last committed
/// transaction, which is exactly where nothing was lost or duplicated.
async fn write_transaction(
    batch: &ScoredBatch,
    producer: &FutureProducer,
    consumer: &ServiceConsumer,
) -> Result<bool, ClassifierError> {
    if batch.generation != consumer.context().generation() {
        tracing::info!("dropping a batch of revoked partitions; the new owner re-consumes it");
        return Ok(false);
    }
    let group = consumer
        .group_metadata()
        .ok_or_else(|| ClassifierError::Stage("the consumer has no group metadata".into()))?;
    let timeout = Duration::from_secs(30);
    let result: Result<(), KafkaError> = async {
        producer.begin_transaction()?;
        produce_all(batch, producer).await?;
        let offsets = offsets_list(batch)?;
        tokio::task::block_in_place(|| {
            producer.send_offsets_to_transaction(&offsets, &group, timeout)?;
            producer.commit_transaction(timeout)
        })
    }
    .await;
    match result {
        Ok(()) => Ok(true),
        Err(e) => {
            let _ = tokio::task::block_in_place(|| producer.abort_transaction(timeout));
            Err(ClassifierError::Transaction(e))
        }
    }
}

