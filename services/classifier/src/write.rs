//! Stage 3, writing: produce a batch's outputs, then make its input offsets
//! durable: stored after delivery in at-least-once mode, inside the
//! transaction in exactly-once mode.
//!
//! A failed delivery is one of three kinds. Transient ones (the broker or
//! network may recover) are produced again, only the failed records. A
//! record the broker can never accept (too large, invalid) is replaced by a
//! dead letter saying so, so its post is not lost and does not stall its
//! partition. A refusal of everything (authorization, missing topic) is
//! fatal: retrying cannot help, so the service turns unready and exits.

use crate::config::DeliveryMode;
use crate::metrics::Metrics;
use crate::output::{rejected_record, OutRecord, Outcome};
use crate::rebalance::{InFlight, ServiceConsumer};
use crate::score::ScoredBatch;
use crate::service::ClassifierError;
use patroli_runtime::produce::{classify, Failure};
use patroli_runtime::Health;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Readiness check: false once the broker refused our output for good.
pub(crate) const READY_OUTPUT: &str = "output_accepted";

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
    // Partitions (and the assignment generation) of batches given up at
    // shutdown: storing a later offset of theirs would skip those posts.
    let mut abandoned = BTreeSet::new();
    while let Some(mut batch) = scored.recv().await {
        let written = match writer.delivery {
            DeliveryMode::AtLeastOnce => {
                writer
                    .write_at_least_once(&mut batch, &mut abandoned, &stop)
                    .await
            }
            DeliveryMode::ExactlyOnce => writer.write_transaction(&mut batch).await,
        };
        writer.in_flight.finish();
        writer.metrics.in_flight_batches.dec();
        match written {
            Ok(true) => count_outcomes(&batch.records, &writer.metrics),
            Ok(false) => {}
            Err(e) => {
                if matches!(e, ClassifierError::OutputRefused(_)) {
                    writer.health.set(READY_OUTPUT, false);
                }
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

/// Produces the records at `indices`; returns the ones that failed.
async fn produce(
    records: &[OutRecord],
    indices: &[usize],
    producer: &FutureProducer,
) -> Vec<(usize, KafkaError)> {
    let sends = indices.iter().map(|&i| {
        let record = &records[i];
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
    let deliveries = futures::future::join_all(sends).await;
    indices
        .iter()
        .zip(deliveries)
        .filter_map(|(&i, delivery)| delivery.err().map(|(e, _)| (i, e)))
        .collect()
}

/// Replaces rejected records by their dead letters. Returns the records to
/// produce again and the last transient error, if any.
fn settle(
    batch: &mut ScoredBatch,
    failures: Vec<(usize, KafkaError)>,
    dlq_topic: &str,
) -> Result<(Vec<usize>, Option<KafkaError>), ClassifierError> {
    let mut again = Vec::with_capacity(failures.len());
    let mut transient = None;
    for (i, error) in failures {
        match classify(&error) {
            Failure::Fatal => return Err(ClassifierError::OutputRefused(error)),
            Failure::Rejected => {
                let record = &batch.records[i];
                let replacement = rejected_record(record, &error, dlq_topic).ok_or_else(|| {
                    ClassifierError::Unwritable {
                        source_key: record.origin.source.key(),
                        error: error.clone(),
                    }
                })?;
                tracing::warn!(error = %error, source = %record.origin.source.key(), "the broker rejected an output for good; dead-lettering its post");
                batch.records[i] = replacement;
            }
            Failure::Transient => transient = Some(error),
        }
        again.push(i);
    }
    Ok((again, transient))
}

fn offsets_list<'a>(
    offsets: impl Iterator<Item = (&'a (String, i32), &'a i64)>,
) -> Result<TopicPartitionList, KafkaError> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    Ok(list)
}

impl Writer {
    /// Produces until every output is acknowledged, then stores the input
    /// offsets. Retries transient failures forever (stalling is better than
    /// losing a post); gives up only on shutdown, leaving the offsets of the
    /// batch's partitions unstored for good. Returns whether the batch was
    /// completed.
    async fn write_at_least_once(
        &self,
        batch: &mut ScoredBatch,
        abandoned: &mut BTreeSet<(String, i32, u64)>,
        stop: &CancellationToken,
    ) -> Result<bool, ClassifierError> {
        let mut pending: Vec<usize> = (0..batch.records.len()).collect();
        let mut backoff = Duration::from_millis(100);
        while !pending.is_empty() {
            let failures = produce(&batch.records, &pending, &self.producer).await;
            let (again, transient) = settle(batch, failures, &self.dlq_topic)?;
            pending = again;
            let Some(e) = transient else {
                continue;
            };
            self.metrics
                .produce_retries
                .with_label_values(&["at-least-once"])
                .inc();
            tracing::warn!(error = %e, records = pending.len(), retry_in_ms = backoff.as_millis() as u64, "delivery failed; producing again");
            tokio::select! {
                _ = stop.cancelled() => {
                    for (topic, partition) in batch.next_offsets.keys() {
                        abandoned.insert((topic.clone(), *partition, batch.generation));
                    }
                    return Ok(false);
                }
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        if batch.generation != self.consumer.context().generation() {
            tracing::info!(
                "batch finished after its partitions were revoked; the new owner re-delivers it"
            );
            return Ok(true);
        }
        let storable = batch.next_offsets.iter().filter(|((topic, partition), _)| {
            !abandoned.contains(&(topic.clone(), *partition, batch.generation))
        });
        let offsets = offsets_list(storable)?;
        if offsets.count() < batch.next_offsets.len() {
            tracing::info!(
                "not storing offsets past a batch abandoned at shutdown; they are re-delivered"
            );
        }
        if offsets.count() > 0 {
            if let Err(e) = self.consumer.store_offsets(&offsets) {
                tracing::warn!(error = %e, "cannot store offsets; the batch will be re-delivered");
            }
        }
        Ok(true)
    }

    /// Outputs and input offsets in one Kafka transaction. Rejected records
    /// are dead-lettered and the transaction is tried again; any other
    /// failure aborts it and is fatal: the process restarts from the last
    /// committed transaction, which is exactly where nothing was lost or
    /// duplicated.
    async fn write_transaction(&self, batch: &mut ScoredBatch) -> Result<bool, ClassifierError> {
        if batch.generation != self.consumer.context().generation() {
            tracing::info!("dropping a batch of revoked partitions; the new owner re-consumes it");
            return Ok(false);
        }
        let group = self
            .consumer
            .group_metadata()
            .ok_or_else(|| ClassifierError::Stage("the consumer has no group metadata".into()))?;
        let timeout = Duration::from_secs(30);
        let producer = &self.producer;
        let abort = || {
            let _ = tokio::task::block_in_place(|| producer.abort_transaction(timeout));
        };
        let all: Vec<usize> = (0..batch.records.len()).collect();
        loop {
            producer
                .begin_transaction()
                .map_err(ClassifierError::Transaction)?;
            let failures = produce(&batch.records, &all, producer).await;
            if failures.is_empty() {
                let committed = offsets_list(batch.next_offsets.iter()).and_then(|offsets| {
                    tokio::task::block_in_place(|| {
                        producer.send_offsets_to_transaction(&offsets, &group, timeout)?;
                        producer.commit_transaction(timeout)
                    })
                });
                return match committed {
                    Ok(()) => Ok(true),
                    Err(e) => {
                        abort();
                        Err(ClassifierError::Transaction(e))
                    }
                };
            }
            abort();
            if let (_, Some(e)) = settle(batch, failures, &self.dlq_topic)? {
                return Err(ClassifierError::Transaction(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Origin;
    use crate::rebalance::{commit_stored, ServiceContext};
    use patroli_contracts::{DlqEvent, DlqReason, Label, SourceOffset};
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::message::Message;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    use rdkafka::ClientConfig;
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU64;

    const INPUT: &str = "posts.in";
    const OUTPUT: &str = "posts.out";
    const DLQ: &str = "posts.dlq";

    type Mock = MockCluster<'static, DefaultProducerContext>;

    fn mock() -> Mock {
        let mock = MockCluster::new(1).expect("mock cluster");
        for topic in [INPUT, OUTPUT, DLQ] {
            mock.create_topic(topic, 2, 1).expect("mock topic");
        }
        mock
    }

    /// A writer on the mock with partitions 0 and 1 of the input assigned.
    fn writer(mock: &Mock, producer: &[(&str, &str)]) -> Writer {
        let metrics = Metrics::new();
        let health = Health::new(&["output_accepted"]);
        health.set("output_accepted", true);
        let context = ServiceContext {
            in_flight: Arc::new(InFlight::default()),
            generation: Arc::new(AtomicU64::new(0)),
            health: health.clone(),
            metrics: metrics.clone(),
            commit_on_revoke: false,
            drain_timeout: Duration::from_secs(1),
        };
        let in_flight = context.in_flight.clone();
        let consumer: ServiceConsumer = ClientConfig::new()
            .set("bootstrap.servers", mock.bootstrap_servers())
            .set("group.id", "writer-test")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create_with_context(context)
            .expect("consumer");
        let mut assigned = TopicPartitionList::new();
        for partition in 0..2 {
            assigned
                .add_partition_offset(INPUT, partition, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assigned).expect("assign");
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", mock.bootstrap_servers());
        for (key, value) in producer {
            config.set(*key, *value);
        }
        Writer {
            producer: config.create().expect("producer"),
            consumer: Arc::new(consumer),
            in_flight,
            delivery: DeliveryMode::AtLeastOnce,
            metrics,
            health,
            dlq_topic: DLQ.into(),
        }
    }

    /// One scored record per input message of `partition` at `offsets`,
    /// each `size` bytes.
    fn batch(parts: &[(i32, std::ops::Range<i64>)], size: usize) -> ScoredBatch {
        let mut records = Vec::new();
        let mut next_offsets = BTreeMap::new();
        for (partition, offsets) in parts {
            for offset in offsets.clone() {
                records.push(OutRecord {
                    topic: OUTPUT.into(),
                    key: format!("post-{partition}-{offset}"),
                    payload: vec![b'x'; size],
                    headers: vec![("trace_id".into(), b"t-1".to_vec())],
                    outcome: Outcome::Scored(Label::NotDisinformation),
                    origin: Origin {
                        source: SourceOffset {
                            topic: INPUT.into(),
                            partition: *partition,
                            offset,
                        },
                        key: Some(format!("post-{partition}-{offset}").into_bytes()),
                        payload: Some(format!("input {partition}/{offset}").into_bytes()),
                    },
                });
            }
            next_offsets.insert((INPUT.to_owned(), *partition), offsets.end);
        }
        ScoredBatch {
            records,
            next_offsets,
            generation: 0,
        }
    }

    async fn send(tx: &mpsc::Sender<ScoredBatch>, in_flight: &InFlight, batch: ScoredBatch) {
        in_flight.start();
        tx.send(batch).await.expect("writer is running");
    }

    async fn wait_idle(in_flight: Arc<InFlight>) {
        let idle =
            tokio::task::spawn_blocking(move || in_flight.wait_idle(Duration::from_secs(30)));
        assert!(idle.await.unwrap(), "the writer never finished the batch");
    }

    /// Committed offset per input partition after committing what is stored.
    fn committed(consumer: &ServiceConsumer) -> Vec<(i32, Option<i64>)> {
        commit_stored(consumer).expect("commit");
        // Dropped before the consumer can be (docs/broker.md, client rules).
        let list = consumer
            .committed(Duration::from_secs(10))
            .expect("committed offsets");
        list.elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => (e.partition(), Some(o)),
                _ => (e.partition(), None),
            })
            .collect()
    }

    /// Payloads and headers of everything on `topic`, waiting for `count`.
    fn read(mock: &Mock, topic: &str, count: usize) -> Vec<(Vec<u8>, Vec<String>)> {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", mock.bootstrap_servers())
            .set("group.id", "writer-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        let mut assigned = TopicPartitionList::new();
        for partition in 0..2 {
            assigned
                .add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap();
        }
        reader.assign(&assigned).expect("assign");
        let mut read = Vec::new();
        let started = std::time::Instant::now();
        while read.len() < count && started.elapsed() < Duration::from_secs(20) {
            if let Some(Ok(message)) = reader.poll(Duration::from_millis(100)) {
                use rdkafka::message::Headers;
                let headers = message
                    .headers()
                    .map(|h| h.iter().map(|h| h.key.to_owned()).collect())
                    .unwrap_or_default();
                read.push((message.payload().unwrap_or_default().to_vec(), headers));
            }
        }
        read
    }

    /// Shutdown during a produce outage abandons a batch; a later batch of
    /// the same partition that does get through must not store its offset,
    /// or the abandoned posts would be skipped for good.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_abandoned_at_shutdown_keeps_later_batches_of_its_partition_from_storing() {
        let mock = mock();
        let writer = writer(&mock, &[("message.timeout.ms", "300")]);
        let (consumer, in_flight) = (writer.consumer.clone(), writer.in_flight.clone());
        let stop = CancellationToken::new();
        stop.cancel();
        let (tx, rx) = mpsc::channel(1);
        let stage = tokio::spawn(write_stage(rx, writer, stop));

        mock.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 200],
        );
        send(&tx, &in_flight, batch(&[(0, 0..32)], 10)).await;
        wait_idle(in_flight.clone()).await;
        mock.clear_request_errors(RDKafkaApiKey::Produce);
        send(&tx, &in_flight, batch(&[(0, 32..64), (1, 0..10)], 10)).await;
        drop(tx);
        stage
            .await
            .unwrap()
            .expect("abandoning at shutdown is no error");

        assert_eq!(committed(&consumer), vec![(0, None), (1, Some(10))]);
    }

    /// A scored event larger than the broker accepts can never be written;
    /// its post goes to the DLQ with its own reason, without trace headers
    /// (often the cause), and the batch completes without retrying.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scored_event_the_broker_rejects_goes_to_the_dlq_with_its_own_reason() {
        let mock = mock();
        let writer = writer(&mock, &[("message.max.bytes", "2000")]);
        let (consumer, in_flight, metrics) = (
            writer.consumer.clone(),
            writer.in_flight.clone(),
            writer.metrics.clone(),
        );
        let (tx, rx) = mpsc::channel(1);
        let stage = tokio::spawn(write_stage(rx, writer, CancellationToken::new()));
        let mut mixed = batch(&[(0, 0..2)], 10);
        mixed.records[1].payload = vec![b'x'; 5000];
        send(&tx, &in_flight, mixed).await;
        drop(tx);
        tokio::time::timeout(Duration::from_secs(30), stage)
            .await
            .expect("the rejected record is not retried forever")
            .unwrap()
            .expect("a rejected record is no failure of the service");

        assert_eq!(read(&mock, OUTPUT, 1).len(), 1);
        let dead = read(&mock, DLQ, 1);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].1, vec!["event_id".to_owned()]);
        let event: DlqEvent = serde_json::from_slice(&dead[0].0).unwrap();
        assert_eq!(event.reason, DlqReason::OutputRejected);
        assert_eq!(
            event.detail,
            "the broker rejected the scored event (5000 bytes) for good: \
             Message production error: MessageSizeTooLarge (Broker: Message size too large)"
        );
        assert_eq!(event.original(), Some(b"input 0/1".to_vec()));
        assert_eq!(event.key.as_deref(), Some("post-0-1"));
        assert_eq!(
            event.source,
            SourceOffset {
                topic: INPUT.into(),
                partition: 0,
                offset: 1
            }
        );
        assert_eq!(metrics.dlq.with_label_values(&["output_rejected"]).get(), 1);
        assert_eq!(
            metrics
                .scored
                .with_label_values(&["not_disinformation"])
                .get(),
            1
        );
        assert_eq!(
            metrics
                .produce_retries
                .with_label_values(&["at-least-once"])
                .get(),
            0
        );
        assert_eq!(committed(&consumer), vec![(0, Some(2)), (1, None)]);
    }

    /// Without permission to write, retrying changes nothing: the writer
    /// fails (so the service exits non-zero), is unready, stores nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_authorization_failure_stops_the_writer_and_makes_it_unready() {
        let mock = mock();
        let writer = writer(&mock, &[]);
        let (consumer, in_flight, health) = (
            writer.consumer.clone(),
            writer.in_flight.clone(),
            writer.health.clone(),
        );
        mock.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
        );
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::channel(1);
        let stage = tokio::spawn(write_stage(rx, writer, stop.clone()));
        send(&tx, &in_flight, batch(&[(0, 0..3)], 10)).await;
        let failed = tokio::time::timeout(Duration::from_secs(30), stage)
            .await
            .expect("an authorization failure is not retried forever")
            .unwrap()
            .expect_err("an authorization failure is fatal");
        assert_eq!(
            failed.to_string(),
            "the broker refuses the classifier's output for good, check the topic and its ACLs: \
             Message production error: TopicAuthorizationFailed (Broker: Topic authorization failed)"
        );
        assert!(stop.is_cancelled());
        assert!(!health.is_ready());
        assert_eq!(committed(&consumer), vec![(0, None), (1, None)]);
    }
}
