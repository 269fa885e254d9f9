//! Replays a JSONL file into a topic: the way partners' traffic is
//! simulated locally and how a DLQ entry, once fixed, is sent again.

use anyhow::Context;
use patroli_contracts::topics;
use patroli_runtime::KafkaConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(clap::Args, Clone)]
pub struct ReplayArgs {
    /// JSONL file; every line becomes one message, valid or not.
    pub file: PathBuf,
    #[arg(long, default_value = topics::POSTS_RAW)]
    pub topic: String,
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Messages per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

/// The message key a partner would use: `platform:post_id` for posts,
/// `complaint_id` for complaints; none if the line is not such an object.
pub fn key_of(line: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    if let Some(id) = value.get("complaint_id").and_then(|v| v.as_str()) {
        return Some(id.to_owned());
    }
    let platform = value.get("platform")?.as_str()?;
    let post_id = value.get("post_id")?.as_str()?;
    Some(format!("{platform}:{post_id}"))
}

/// The non-blank lines of a JSONL file, as bytes: a line that is not valid
/// UTF-8 or JSON is still a message (the DLQ path is part of what replays).
pub fn jsonl_lines(text: &[u8]) -> Vec<&[u8]> {
    text.split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .collect()
}

pub async fn run(args: &ReplayArgs) -> anyhow::Result<usize> {
    let text = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let lines = jsonl_lines(&text);
    let kafka = KafkaConfig {
        brokers: args.brokers.clone(),
        ..KafkaConfig::default()
    };
    let producer: FutureProducer = kafka
        .idempotent_producer("patroli-replay")
        .create()
        .context("creating the producer")?;
    let pause = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    produce_lines(&producer, &args.topic, &lines, pause).await?;
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the producer")?;
    Ok(lines.len())
}

pub async fn produce_lines(
    producer: &FutureProducer,
    topic: &str,
    lines: &[&[u8]],
    pause: Option<Duration>,
) -> anyhow::Result<()> {
    // Sends borrow their keys until enqueued, so the keys outlive the loop.
    let keys: Vec<Option<String>> = lines.iter().map(|line| key_of(line)).collect();
    let mut deliveries = Vec::new();
    for (line, key) in lines.iter().zip(&keys) {
        let ingest_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            .to_string();
        let headers = OwnedHeaders::new().insert(Header {
            key: "ingest_time_ms",
            value: Some(&ingest_ms),
        });
        let mut record = FutureRecord::to(topic).payload(*line).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        deliveries.push(producer.send(record, Duration::from_secs(30)));
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        // Bound memory: await deliveries in chunks.
        if deliveries.len() >= 1000 {
            for delivery in futures::future::join_all(deliveries.drain(..)).await {
                delivery.map_err(|(e, _)| e).context("delivery failed")?;
            }
        }
    }
    for delivery in futures::future::join_all(deliveries).await {
        delivery.map_err(|(e, _)| e).context("delivery failed")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::key_of;

    #[test]
    fn keys_follow_the_topic_contracts() {
        assert_eq!(
            key_of(br#"{"platform":"x","post_id":"42","text":"t"}"#).as_deref(),
            Some("x:42")
        );
        assert_eq!(
            key_of(br#"{"complaint_id":"c-1","text":"t"}"#).as_deref(),
            Some("c-1")
        );
        assert_eq!(key_of(b"not json"), None);
        assert_eq!(key_of(br#"{"platform":3,"post_id":"42"}"#), None);
    }
}
