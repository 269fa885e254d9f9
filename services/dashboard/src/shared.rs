//! What the consumer thread and the web handlers share: the view behind a lock, a change
//! signal for the live stream, health and metrics.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use patroli_runtime::Health;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::state::View;

/// `/readyz` check: every partition was read up to where it ended at start-up.
pub const READY_REBUILT: &str = "view_rebuilt";

pub struct Shared {
    view: Mutex<View>,
    changes: watch::Sender<u64>,
    last_evicted_minute: AtomicI64,
    pub lag: AtomicI64,
    pub health: Health,
    pub metrics: Metrics,
}

impl Shared {
    pub fn new(view: View, health: Health, metrics: Metrics) -> Self {
        Shared {
            view: Mutex::new(view),
            changes: watch::channel(0).0,
            last_evicted_minute: AtomicI64::new(i64::MIN),
            lag: AtomicI64::new(0),
            health,
            metrics,
        }
    }

    /// Changes the view (given the current minute) and tells live pages.
    pub fn update(&self, change: impl FnOnce(&mut View, i64)) {
        change(&mut self.lock(), now_minute());
        self.changed();
    }

    pub fn read<T>(&self, look: impl FnOnce(&View) -> T) -> T {
        look(&self.lock())
    }

    pub fn changed(&self) {
        self.changes.send_modify(|version| *version += 1);
    }

    /// Counts changes: equal versions mean the same view.
    pub fn version(&self) -> u64 {
        *self.changes.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Drops minutes past the look-back, at most once a minute.
    pub fn evict_old(&self) {
        let now = now_minute();
        if self.last_evicted_minute.swap(now, Ordering::Relaxed) != now {
            let mut view = self.lock();
            view.evict(now);
            self.metrics.minutes.set(view.minutes() as i64);
            drop(view);
            self.changed();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, View> {
        // The view holds counts only; after a panic elsewhere they are still the best we have.
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

pub fn now_minute() -> i64 {
    now_ms().div_euclid(60_000)
}
