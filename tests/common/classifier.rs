//! The classifier as operators run it: `patroli serve classifier` on a
//! test's stream.

use super::{service_wrapper, ServiceProcess, Stream};
use std::path::Path;
use std::time::Duration;

/// The consumer-group session timeout every test classifier runs with: a
/// SIGKILLed instance's partitions are handed on (and its uncommitted tail
/// re-delivered) only once it has passed.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// A `patroli serve classifier` child process.
pub struct ClassifierProcess(ServiceProcess);
service_wrapper!(ClassifierProcess, 0);

impl ClassifierProcess {
    /// Runs on `stream`'s topics in consumer group `group` (made unique to
    /// the stream); `extra_env` is applied last.
    pub fn spawn(
        stream: &Stream,
        model_dir: &Path,
        group: &str,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let mut env: Vec<(String, String)> = vec![
            ("PATROLI_KAFKA__BROKERS".into(), stream.brokers.clone()),
            ("PATROLI_MODEL_DIR".into(), model_dir.display().to_string()),
            ("PATROLI_GROUP_ID".into(), stream.unique(group)),
            (
                "PATROLI_SESSION_TIMEOUT_MS".into(),
                SESSION_TIMEOUT.as_millis().to_string(),
            ),
            ("PATROLI_THREADS".into(), "1".into()),
        ];
        env.extend(stream.classifier_env());
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        ClassifierProcess(ServiceProcess::spawn("classifier", env))
    }
}
