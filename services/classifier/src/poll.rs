//! Stage 1, the poll loop: receive, decode, tokenize, batch. It pauses
//! fetching when the scorer is behind, but keeps polling so rebalances are
//! served and `max.poll.interval.ms` is never exceeded.

use crate::batch::Batcher;
use crate::config::ClassifierConfig;
use crate::metrics::Metrics;
use crate::output::{Item, Valid};
use crate::rebalance::{InFlight, ServiceConsumer};
use patroli_contracts::{decode_as, DlqReason, InputKind, InvalidInput, Limits, SourceOffset};
use patroli_inference::Classifier;
use patroli_runtime::Health;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Headers carried from input to output so a post can be traced end to end.
const TRACE_HEADERS: [&str; 3] = ["trace_id", "traceparent", "ingest_time_ms"];

/// Posts of one assignment generation, on their way to the scorer.
pub(crate) struct Batch {
    pub items: Vec<Item>,
    pub generation: u64,
}

/// The `ingest_time_ms` header a partner set, if it is a time at all:
/// milliseconds since the epoch, never negative.
pub(crate) fn ingest_time_ms(value: &[u8]) -> Option<i64> {
    let ms: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    i64::try_from(ms).ok()
}

fn to_item(
    message: &BorrowedMessage<'_>,
    input_kind: InputKind,
    limits: &Limits,
    classifier: &Classifier,
) -> Item {
    let mut trace_headers = Vec::new();
    let mut ingest_ms = None;
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            if TRACE_HEADERS.contains(&header.key) {
                if let Some(value) = header.value {
                    if header.key == "ingest_time_ms" {
                        ingest_ms = ingest_time_ms(value);
                    }
                    trace_headers.push((header.key.to_owned(), value.to_vec()));
                }
            }
        }
    }
    let payload = message.payload().map(<[u8]>::to_vec);
    let decoded = decode_as(input_kind, payload.as_deref(), limits).and_then(|input| {
        match classifier.tokenize(&input.text) {
            Ok(tokens) => Ok(Valid { input, tokens }),
            Err(e) => Err(InvalidInput {
                reason: DlqReason::ModelError,
                detail: format!("cannot tokenize the text: {e}"),
            }),
        }
    });
    Item {
        source: SourceOffset {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
        },
        key: message.key().map(<[u8]>::to_vec),
        decoded,
        payload,
        ingest_ms: ingest_ms.or_else(|| message.timestamp().to_millis()),
        received: Instant::now(),
        trace_headers,
    }
}

/// What the poll loop reads from; it owns nothing but its batcher.
pub(crate) struct Poller<'a> {
    pub consumer: &'a Arc<ServiceConsumer>,
    pub classifier: &'a Classifier,
    pub config: &'a ClassifierConfig,
    pub in_flight: &'a InFlight,
    pub metrics: &'a Metrics,
    pub health: &'a Health,
}

pub(crate) async fn poll_loop(
    poller: Poller<'_>,
    batch_tx: mpsc::Sender<Batch>,
    stop: &CancellationToken,
) {
    let Poller {
        consumer,
        classifier,
        config,
        in_flight,
        metrics,
        health,
    } = poller;
    let limits = Limits {
        max_text_bytes: config.max_text_bytes,
    };
    let mut queue = Queue {
        batcher: Batcher::new(&config.batch),
        ready: None,
        paused: false,
        generation: consumer.context().generation(),
    };
    loop {
        health.beat();
        queue.follow_assignment(consumer.context().generation(), metrics);
        let now = Instant::now();
        if queue.ready.is_none()
            && (queue.batcher.is_full() || queue.batcher.deadline().is_some_and(|d| d <= now))
        {
            queue.ready = Some(queue.batcher.take());
        }
        if let Some(items) = queue.ready.take() {
            match batch_tx.try_reserve() {
                Ok(permit) => {
                    in_flight.start();
                    metrics.in_flight_batches.inc();
                    permit.send(Batch {
                        items,
                        generation: queue.generation,
                    });
                    queue.set_paused(false, consumer, metrics);
                }
                Err(mpsc::error::TrySendError::Full(())) => {
                    queue.ready = Some(items);
                    queue.set_paused(true, consumer, metrics);
                }
                Err(mpsc::error::TrySendError::Closed(())) => return,
            }
        }
        let wake_at = if queue.ready.is_some() {
            now + Duration::from_millis(10)
        } else {
            queue
                .batcher
                .deadline()
                .unwrap_or(now + Duration::from_millis(500))
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            received = consumer.recv() => match received {
                Ok(message) => {
                    // Rebalance callbacks ran inside recv: compare first so a
                    // message of the new assignment is not dropped with the old.
                    queue.follow_assignment(consumer.context().generation(), metrics);
                    metrics.consumed.with_label_values(&[message.topic()]).inc();
                    let kind = if message.topic() == config.complaints_topic {
                        InputKind::Complaint
                    } else {
                        InputKind::Post
                    };
                    let item = to_item(&message, kind, &limits, classifier);
                    let tokens = item.decoded.as_ref().map_or(0, |valid| valid.tokens.len());
                    queue.batcher.push(item, tokens, Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, "consumer error"),
            },
            _ = tokio::time::sleep_until(wake_at.into()) => {}
        }
    }
    // Shutting down: hand over what is queued so it is scored now rather
    // than re-delivered after the restart. If the scorer is gone, the
    // items stay uncommitted, which is just as safe.
    let mut leftovers = queue.ready.take().into_iter().collect::<Vec<_>>();
    while !queue.batcher.is_empty() {
        leftovers.push(queue.batcher.take());
    }
    for items in leftovers {
        in_flight.start();
        metrics.in_flight_batches.inc();
        let batch = Batch {
            items,
            generation: queue.generation,
        };
        if batch_tx.send(batch).await.is_err() {
            in_flight.finish();
            metrics.in_flight_batches.dec();
            break;
        }
    }
}

/// What the poll loop holds between iterations.
struct Queue {
    batcher: Batcher<Item>,
    /// A formed batch waiting for the scorer to take it.
    ready: Option<Vec<Item>>,
    paused: bool,
    generation: u64,
}

impl Queue {
    /// Items queued under an older assignment are dropped uncommitted: their
    /// partitions restart from the last commit, wherever they now live. A
    /// new assignment starts unpaused.
    fn follow_assignment(&mut self, current: u64, metrics: &Metrics) {
        if current != self.generation {
            self.batcher.clear();
            self.ready = None;
            self.paused = false;
            metrics.paused.set(0);
            self.generation = current;
        }
    }

    fn set_paused(&mut self, pause: bool, consumer: &ServiceConsumer, metrics: &Metrics) {
        if self.paused == pause {
            return;
        }
        let result = consumer.assignment().and_then(|assigned| {
            if pause {
                consumer.pause(&assigned)
            } else {
                consumer.resume(&assigned)
            }
        });
        match result {
            Ok(()) => {
                self.paused = pause;
                metrics.paused.set(i64::from(pause));
            }
            Err(e) => tracing::warn!(error = %e, pause, "cannot change fetch pause state"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::elapsed_ms;
    use proptest::prelude::*;

    #[test]
    fn ingest_headers_are_times_since_the_epoch() {
        assert_eq!(ingest_time_ms(b"1707552000000"), Some(1_707_552_000_000));
        assert_eq!(ingest_time_ms(b"0"), Some(0));
        assert_eq!(ingest_time_ms(b"-1"), None);
        assert_eq!(ingest_time_ms(b"-9223372036854775808"), None);
        assert_eq!(ingest_time_ms(b"9223372036854775808"), None);
        assert_eq!(ingest_time_ms(b"12.5"), None);
        assert_eq!(ingest_time_ms(b"\xff"), None);
        assert_eq!(ingest_time_ms(b""), None);
    }

    #[test]
    fn latency_is_never_negative_and_never_overflows() {
        let now = 1_707_552_000_000;
        assert_eq!(elapsed_ms(now, now - 1500), 1500);
        assert_eq!(elapsed_ms(now, now + 1500), 0);
        assert_eq!(elapsed_ms(now, i64::MIN), i64::MAX);
        assert_eq!(elapsed_ms(i64::MIN, i64::MAX), 0);
    }

    proptest! {
        #[test]
        fn any_ingest_header_gives_a_latency_without_panicking(
            header in prop_oneof![
                "-?[0-9]{1,25}".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..32),
            ],
            now in any::<i64>(),
        ) {
            if let Some(ingest) = ingest_time_ms(&header) {
                prop_assert!(ingest >= 0);
                prop_assert!(elapsed_ms(now, ingest) >= 0);
            }
        }
    }
}
