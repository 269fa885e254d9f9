//! Stage 2, scoring: the model on tokio's blocking pool, one forward pass
//! per batch over the tokens the poll loop already computed.

use crate::config::ClassifierConfig;
use crate::metrics::Metrics;
use crate::output::{dead_letter_record, elapsed_ms, scored_record, OutRecord};
use crate::poll::Batch;
use crate::service::{panic_message, ClassifierError};
use patroli_contracts::{DlqReason, InvalidInput, ModelRef};
use patroli_inference::{Classifier, Prediction, Tokenized};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// A batch's outputs, ready to be written.
pub(crate) struct ScoredBatch {
    pub records: Vec<OutRecord>,
    /// Next offset to consume per input partition.
    pub next_offsets: BTreeMap<(String, i32), i64>,
    pub generation: u64,
}

/// Scores batches with `score` (the model, or a stand-in in tests) until
/// the poll loop closes the channel.
pub(crate) async fn score_stage<F>(
    mut batches: mpsc::Receiver<Batch>,
    scored: mpsc::Sender<ScoredBatch>,
    score: F,
) -> Result<(), ClassifierError>
where
    F: Fn(Batch) -> ScoredBatch + Send + Sync + 'static,
{
    let score = Arc::new(score);
    while let Some(batch) = batches.recv().await {
        let score = score.clone();
        let done = tokio::task::spawn_blocking(move || score(batch)).await;
        match done {
            Ok(result) => {
                if scored.send(result).await.is_err() {
                    return Ok(());
                }
            }
            Err(e) => {
                let why = match e.try_into_panic() {
                    Ok(panic) => panic_message(panic.as_ref()),
                    Err(e) => e.to_string(),
                };
                return Err(ClassifierError::Stage(format!(
                    "the scorer panicked: {why}"
                )));
            }
        }
    }
    Ok(())
}

/// One batch through the model.
pub(crate) fn score_batch(
    classifier: &Classifier,
    batch: Batch,
    model: &ModelRef,
    config: &ClassifierConfig,
    metrics: &Metrics,
) -> ScoredBatch {
    let valid: Vec<&Tokenized> = batch
        .items
        .iter()
        .filter_map(|item| item.decoded.as_ref().ok().map(|valid| &valid.tokens))
        .collect();
    let tokens: usize = valid.iter().map(|t| t.len()).sum();
    let started = Instant::now();
    let predictions = score_isolating_failures(classifier, &valid);
    metrics
        .inference_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics.batch_posts.observe(valid.len() as f64);
    metrics.batch_tokens.observe(tokens as f64);

    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut predictions = predictions.into_iter();
    let mut records = Vec::with_capacity(batch.items.len());
    let mut next_offsets = BTreeMap::new();
    for item in &batch.items {
        let record = match &item.decoded {
            Ok(valid) => match predictions.next().expect("one prediction per valid item") {
                Ok(prediction) => scored_record(
                    item,
                    &valid.input,
                    prediction,
                    model,
                    &config.output_topic,
                    now_ms,
                ),
                Err(detail) => dead_letter_record(
                    item,
                    &InvalidInput {
                        reason: DlqReason::ModelError,
                        detail,
                    },
                    &config.dlq_topic,
                ),
            },
            Err(invalid) => dead_letter_record(item, invalid, &config.dlq_topic),
        };
        if let Some(end_to_end) = item.ingest_ms {
            metrics
                .end_to_end_seconds
                .observe(elapsed_ms(now_ms, end_to_end) as f64 / 1000.0);
        }
        records.push(record);
        next_offsets.insert(
            (item.source.topic.clone(), item.source.partition),
            item.source.offset + 1,
        );
    }
    ScoredBatch {
        records,
        next_offsets,
        generation: batch.generation,
    }
}

/// Scores the batch; if the model fails on it, scores post by post so one
/// poisonous post goes to the DLQ instead of stalling its partition.
fn score_isolating_failures(
    classifier: &Classifier,
    posts: &[&Tokenized],
) -> Vec<Result<Prediction, String>> {
    match classifier.score_tokenized(posts) {
        Ok(predictions) => predictions.into_iter().map(Ok).collect(),
        Err(e) => {
            tracing::warn!(error = %e, posts = posts.len(), "batch failed; scoring post by post");
            posts
                .iter()
                .map(|post| {
                    classifier
                        .score_tokenized(&[post])
                        .map_err(|e| e.to_string())
                        .and_then(|mut p| {
                            p.pop().ok_or_else(|| "model returned no prediction".into())
                        })
                })
                .collect()
        }
    }
}
