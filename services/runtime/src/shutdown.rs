//! What SIGTERM (Kubernetes) and SIGINT (Ctrl-C) ask of a process: the first to drain (every
//! task selects on [`Shutdown::draining`] and finishes its work instead of dying), a second to
//! stop at once without finishing it.

use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
pub struct Shutdown {
    draining: CancellationToken,
    abandoned: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancelled at the first signal (or [`Shutdown::drain`]).
    pub fn draining(&self) -> &CancellationToken {
        &self.draining
    }

    /// Cancelled at the second signal (or [`Shutdown::abandon`]).
    pub fn abandoned(&self) -> &CancellationToken {
        &self.abandoned
    }

    pub fn drain(&self) {
        self.draining.cancel();
    }

    pub fn abandon(&self) {
        self.abandoned.cancel();
    }

    /// A shutdown that also drains when `self` does (a service among others in one process)
    /// and gives up when `self` gives up.
    pub fn child(&self) -> Shutdown {
        Shutdown {
            draining: self.draining.child_token(),
            abandoned: self.abandoned.clone(),
        }
    }
}

/// Drains at the first SIGTERM or SIGINT and gives up at the second.
pub fn shutdown_on_signals() -> Shutdown {
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        let mut signals = match Signals::listen() {
            Ok(signals) => signals,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops this process");
                Signals::CtrlC
            }
        };
        let first = signals.next().await;
        tracing::info!("{first} received, shutting down (again to stop at once)");
        trigger.drain();
        let second = signals.next().await;
        tracing::warn!("{second} received again, stopping at once");
        trigger.abandon();
    });
    shutdown
}

enum Signals {
    #[cfg(unix)]
    Unix(tokio::signal::unix::Signal),
    CtrlC,
}

impl Signals {
    #[cfg(unix)]
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals::Unix(signal(SignalKind::terminate())?))
    }

    #[cfg(not(unix))]
    fn listen() -> std::io::Result<Self> {
        Ok(Signals::CtrlC)
    }

    /// The name of the next signal received.
    async fn next(&mut self) -> &'static str {
        match self {
            #[cfg(unix)]
            Signals::Unix(term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Signals::CtrlC => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
}
