//! The classifier as operators run it: a `patroli serve classifier` child
//! process, reached over its HTTP endpoints.

use super::Stream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `patroli serve classifier` child process.
pub struct ClassifierProcess {
    pub child: Child,
    pub http_port: u16,
}

impl ClassifierProcess {
    /// Runs on `stream`'s topics in consumer group `group` (made unique to
    /// the stream); `extra_env` is applied last.
    pub fn spawn(
        stream: &Stream,
        model_dir: &Path,
        group: &str,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let http_port = super::free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_patroli"));
        command
            .args(["serve", "classifier"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PATROLI_KAFKA__BROKERS", &stream.brokers)
            .env("PATROLI_MODEL_DIR", model_dir)
            .env("PATROLI_GROUP_ID", stream.unique(group))
            .env("PATROLI_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("PATROLI_SESSION_TIMEOUT_MS", "6000")
            .env("PATROLI_THREADS", "1")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(stream.classifier_env())
            .stdin(Stdio::null());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn patroli serve classifier");
        ClassifierProcess { child, http_port }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().expect("wait for classifier")
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http_port, path)
    }

    /// Value of an unlabelled or fully-labelled metric line, e.g.
    /// `patroli_assigned_partitions` or `patroli_dlq_total{reason="not_json"}`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    pub fn wait_for_metric(
        &self,
        series: &str,
        want: impl Fn(f64) -> bool,
        limit: Duration,
    ) -> f64 {
        let started = Instant::now();
        loop {
            if let Some(v) = self.metric(series) {
                if want(v) {
                    return v;
                }
            }
            assert!(
                started.elapsed() < limit,
                "{series} did not reach the expected value within {limit:?} (last {:?})",
                self.metric(series)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ClassifierProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}
