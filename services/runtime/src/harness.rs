//! How a service runs its stages: all under one stop token, health and metrics served until the
//! very end, readiness false from the first signal (so Kubernetes stops routing while the
//! service drains), a drain deadline after which the process gives up naming the stages still
//! running, and a second signal that gives up at once.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use prometheus::Registry;
use tokio::task::{Id, JoinError, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::http::{serve_http, Health, HttpError};
use crate::shutdown::Shutdown;

/// The drain deadline when a service's configuration names none: below the 30 s Kubernetes
/// gives a pod between SIGTERM and SIGKILL, so the process reports what hung itself.
pub const DEFAULT_DRAIN_TIMEOUT_SECS: u64 = 20;

/// `/readyz` check: true until the service is asked to stop.
pub const READY_NOT_STOPPING: &str = "not_stopping";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("stage {stage} failed: {source}")]
    Stage { stage: String, source: BoxError },
    #[error("stage {stage} panicked")]
    Panicked { stage: String },
    #[error("the drain did not finish within {after:?}; still running: {}", .stages.join(", "))]
    DrainTimeout {
        after: Duration,
        stages: Vec<String>,
    },
    #[error("a second signal: stopping at once; still running: {}", .stages.join(", "))]
    Abandoned { stages: Vec<String> },
}

/// How a stage ends: a stage with nothing to report returns `()`.
pub trait StageEnd {
    fn into_result(self) -> Result<(), BoxError>;
}

impl StageEnd for () {
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> StageEnd for Result<(), E> {
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

pub struct Harness {
    shutdown: Shutdown,
    /// What stages stop on: the first signal, or any stage failing.
    stop: CancellationToken,
    drain_timeout: Duration,
    health: Health,
    stages: JoinSet<Result<(), BoxError>>,
    names: HashMap<Id, String>,
    http_addr: SocketAddr,
    http_stop: CancellationToken,
    http: JoinHandle<()>,
}

impl Harness {
    /// Serves `/healthz`, `/readyz` and `/metrics` on `http_addr` from now until the harness
    /// has run (or is dropped), with [`READY_NOT_STOPPING`] among `health`'s checks.
    pub async fn start(
        shutdown: &Shutdown,
        drain_timeout: Duration,
        http_addr: SocketAddr,
        registry: Registry,
        health: Health,
    ) -> Result<Self, HttpError> {
        health.set(READY_NOT_STOPPING, true);
        let http_stop = CancellationToken::new();
        let (http_addr, http) =
            serve_http(http_addr, registry, health.clone(), http_stop.clone()).await?;
        Ok(Harness {
            shutdown: shutdown.clone(),
            stop: shutdown.draining().child_token(),
            drain_timeout,
            health,
            stages: JoinSet::new(),
            names: HashMap::new(),
            http_addr,
            http_stop,
            http,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The token every stage stops on.
    pub fn stop(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `stage` as the stage `name`; its failure stops the others.
    pub fn spawn<F>(&mut self, name: &str, stage: F)
    where
        F: Future + Send + 'static,
        F::Output: StageEnd,
    {
        let handle = self.stages.spawn(async move { stage.await.into_result() });
        self.names.insert(handle.id(), name.to_owned());
    }

    /// Runs `stage` on a thread of its own (a blocking client loop) as the stage `name`.
    pub fn spawn_blocking<F, T>(&mut self, name: &str, stage: F)
    where
        F: FnOnce() -> T + Send + 'static,
        T: StageEnd + Send + 'static,
    {
        let handle = self.stages.spawn_blocking(move || stage().into_result());
        self.names.insert(handle.id(), name.to_owned());
    }

    /// Waits for the stop (the first signal or a failing stage), then for the stages to drain
    /// within the deadline; serves health and metrics until it returns. The first stage to fail
    /// is the error; else a drain past the deadline or cut short by a second signal is.
    pub async fn run(mut self) -> Result<(), HarnessError> {
        let mut failed = None;
        while !self.stages.is_empty() && !self.stop.is_cancelled() {
            tokio::select! {
                _ = self.stop.cancelled() => {}
                Some(joined) = self.stages.join_next_with_id() => self.ended(joined, &mut failed),
            }
        }
        self.stop.cancel();
        self.health.set(READY_NOT_STOPPING, false);
        if !self.stages.is_empty() {
            tracing::info!(
                stages = %self.running().join(", "),
                deadline_secs = self.drain_timeout.as_secs(),
                "stopping: draining"
            );
        }
        let deadline = tokio::time::sleep(self.drain_timeout);
        tokio::pin!(deadline);
        let mut gave_up = None;
        while !self.stages.is_empty() {
            tokio::select! {
                Some(joined) = self.stages.join_next_with_id() => self.ended(joined, &mut failed),
                _ = &mut deadline => {
                    gave_up = Some(HarnessError::DrainTimeout {
                        after: self.drain_timeout,
                        stages: self.running(),
                    });
                    break;
                }
                _ = self.shutdown.abandoned().cancelled() => {
                    gave_up = Some(HarnessError::Abandoned { stages: self.running() });
                    break;
                }
            }
        }
        if let Some(e) = &gave_up {
            tracing::error!(error = %e, "giving up the drain");
        }
        // Async stages still running are aborted; threads cannot be and are left to the exit.
        self.stages.detach_all();
        self.http_stop.cancel();
        let _ = (&mut self.http).await;
        match (failed, gave_up) {
            (Some(e), _) | (None, Some(e)) => Err(e),
            (None, None) => Ok(()),
        }
    }

    fn ended(
        &mut self,
        joined: Result<(Id, Result<(), BoxError>), JoinError>,
        failed: &mut Option<HarnessError>,
    ) {
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let stage = self.names.remove(&id).unwrap_or_default();
        let error = match joined {
            Ok((_, Ok(()))) => {
                tracing::debug!(%stage, "stage ended");
                return;
            }
            Ok((_, Err(source))) => HarnessError::Stage { stage, source },
            Err(_) => HarnessError::Panicked { stage },
        };
        tracing::error!(error = %error, "stopping the service");
        self.stop.cancel();
        failed.get_or_insert(error);
    }

    /// Names of the stages still running, sorted.
    fn running(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names.values().cloned().collect();
        names.sort();
        names
    }
}

impl Drop for Harness {
    /// A service returning early (a failed bind after `start`) still stops what it started.
    fn drop(&mut self) {
        self.stop.cancel();
        self.http_stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn started(drain: Duration) -> (Shutdown, Harness) {
        let shutdown = Shutdown::new();
        let health = Health::new(&[]);
        let harness = Harness::start(
            &shutdown,
            drain,
            "127.0.0.1:0".parse().unwrap(),
            Registry::new(),
            health,
        )
        .await
        .unwrap();
        (shutdown, harness)
    }

    /// A stage that never looks at the stop token, on a thread of its own.
    fn stubborn(harness: &mut Harness, name: &str) -> std::sync::mpsc::Sender<()> {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        harness.spawn_blocking(name, move || {
            let _ = wait.recv();
        });
        release
    }

    #[tokio::test]
    async fn stages_that_stop_on_the_token_drain_cleanly_and_readiness_turns_false_first() {
        let (shutdown, mut harness) = started(Duration::from_secs(30)).await;
        let health = harness.health.clone();
        assert!(health.is_ready());
        let stop = harness.stop();
        let seen_ready = health.clone();
        harness.spawn("reader", async move {
            stop.cancelled().await;
            // Readiness is already false when stages start draining.
            if seen_ready.is_ready() {
                return Err("still ready while draining");
            }
            Ok(())
        });
        harness.spawn("idle", async {});
        shutdown.drain();
        harness.run().await.unwrap();
        assert!(!health.checks()[READY_NOT_STOPPING]);
    }

    #[tokio::test]
    async fn a_stage_ignoring_the_stop_makes_the_drain_fail_naming_it() {
        let (shutdown, mut harness) = started(Duration::from_millis(200)).await;
        let stop = harness.stop();
        harness.spawn("web", async move { stop.cancelled().await });
        let _release = stubborn(&mut harness, "consumer");
        shutdown.drain();
        let error = harness.run().await.unwrap_err();
        assert!(
            matches!(&error, HarnessError::DrainTimeout { stages, .. } if stages == &["consumer"]),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "the drain did not finish within 200ms; still running: consumer"
        );
    }

    #[tokio::test]
    async fn a_second_signal_gives_up_the_drain_at_once() {
        let (shutdown, mut harness) = started(Duration::from_secs(3600)).await;
        let _release = stubborn(&mut harness, "consumer");
        let _other = stubborn(&mut harness, "api");
        shutdown.drain();
        let run = tokio::spawn(harness.run());
        shutdown.abandon();
        let error = run.await.unwrap().unwrap_err();
        assert_eq!(
            error.to_string(),
            "a second signal: stopping at once; still running: api, consumer"
        );
    }

    #[tokio::test]
    async fn a_failing_stage_stops_the_others_and_is_the_error_while_metrics_stay_up() {
        let (_shutdown, mut harness) = started(Duration::from_secs(30)).await;
        let http = harness.http_addr();
        let stop = harness.stop();
        harness.spawn("web", async move {
            stop.cancelled().await;
            // Still answering while the stages drain.
            let answered = tokio::net::TcpStream::connect(http).await.is_ok();
            if answered {
                Ok(())
            } else {
                Err("health server gone while draining")
            }
        });
        harness.spawn("consumer", async {
            Err::<(), _>(std::io::Error::other("topic x does not exist"))
        });
        let error = harness.run().await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "stage consumer failed: topic x does not exist"
        );
        assert!(
            tokio::net::TcpStream::connect(http).await.is_err(),
            "served until the end, not after"
        );
    }

    #[tokio::test]
    async fn a_panicking_stage_is_named() {
        let (_shutdown, mut harness) = started(Duration::from_secs(30)).await;
        harness.spawn_blocking("consumer", || -> Result<(), BoxError> {
            panic!("wedged client")
        });
        let error = harness.run().await.unwrap_err();
        assert_eq!(error.to_string(), "stage consumer panicked");
    }
}
