//! Consumer lag per assigned partition: the partition's high watermark
//! minus the group's committed offset (its low watermark if nothing was
//! committed yet), both asked of the broker. Refreshed periodically on the
//! blocking pool, never on the poll thread.

use crate::metrics::Metrics;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::Offset;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages not yet committed, per `(topic, partition)` assigned to `consumer`.
pub(crate) fn consumer_lag<C, K>(consumer: &K) -> Result<Vec<(String, i32, i64)>, KafkaError>
where
    C: ConsumerContext + 'static,
    K: Consumer<C>,
{
    // The lists live only inside this function: a consumer dropped while
    // one from committed() is alive hangs (docs/broker.md, client rules).
    let assigned = consumer.assignment()?;
    if assigned.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = consumer.committed_offsets(assigned, REQUEST_TIMEOUT)?;
    committed
        .elements()
        .iter()
        .map(|e| {
            let (low, high) =
                consumer.fetch_watermarks(e.topic(), e.partition(), REQUEST_TIMEOUT)?;
            let done = match e.offset() {
                Offset::Offset(offset) => offset.max(low),
                _ => low,
            };
            Ok((e.topic().to_owned(), e.partition(), (high - done).max(0)))
        })
        .collect()
}

/// Sets `patroli_consumer_lag` to exactly the assigned partitions' lag.
pub(crate) fn refresh_lag<C, K>(consumer: &K, metrics: &Metrics) -> Result<(), KafkaError>
where
    C: ConsumerContext + 'static,
    K: Consumer<C>,
{
    let lags = consumer_lag(consumer)?;
    // Partitions no longer assigned must not keep reporting stale lag.
    metrics.consumer_lag.reset();
    for (topic, partition, lag) in lags {
        metrics
            .consumer_lag
            .with_label_values(&[topic.as_str(), &partition.to_string()])
            .set(lag);
    }
    Ok(())
}

/// Refreshes the lag gauge every `every` until `stop`.
pub(crate) async fn report_lag<C, K>(
    consumer: Arc<K>,
    metrics: Metrics,
    every: Duration,
    stop: CancellationToken,
) where
    C: ConsumerContext + 'static,
    K: Consumer<C> + Send + Sync + 'static,
{
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let (consumer, metrics) = (consumer.clone(), metrics.clone());
        let refresh = tokio::task::spawn_blocking(move || refresh_lag(consumer.as_ref(), &metrics));
        // Shutdown need not wait for a slow broker: the refresh owns its
        // consumer handle, so the consumer outlives its offset lists.
        let refreshed = tokio::select! {
            _ = stop.cancelled() => return,
            refreshed = refresh => refreshed,
        };
        match refreshed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot refresh consumer lag"),
            Err(e) => tracing::warn!(error = %e, "lag refresh panicked"),
        }
    }
}
