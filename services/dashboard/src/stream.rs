//! `/api/v1/stream`: the overview page's live updates over server-sent events. One task builds
//! the snapshot after each change of the view (at most once a second, and only while a page
//! listens), serialises it once with post texts and once without, and hands both to every
//! connected page, which sends the one its reader may see. Pages connected at once are capped.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::auth::{caller, Problem, Reader};
use crate::report::{self, Snapshot};
use crate::state::Dimension;

const AT_MOST_EVERY: Duration = Duration::from_secs(1);
/// What a page refused for the cap is told to wait before it tries again.
const FULL_RETRY_AFTER_SECS: u64 = 5;

/// The latest snapshot, serialised, as every connected page shares it.
#[derive(Clone, Default)]
struct Frames {
    /// The view version it was built from; `None` before the first.
    version: Option<u64>,
    signed_in: Arc<str>,
    anonymous: Arc<str>,
}

pub struct Feed {
    frames: watch::Sender<Frames>,
    /// A page connected while the frames were older than the view.
    nudge: Notify,
    slots: Arc<Semaphore>,
}

impl Feed {
    pub fn new(max_clients: usize) -> Self {
        Feed {
            frames: watch::channel(Frames::default()).0,
            nudge: Notify::new(),
            slots: Arc::new(Semaphore::new(max_clients)),
        }
    }
}

impl App {
    pub fn snapshot(&self) -> Snapshot {
        let overview = self.overview();
        let top = self.config.top_narratives;
        self.shared.read(|view| Snapshot {
            overview,
            series: report::series(view, "5m", 5, Dimension::Platform),
            categories: report::series(view, "1h", 60, Dimension::Category),
            regions: report::series(view, "1h", 60, Dimension::Region),
            histogram: report::histogram(view),
            narratives: report::narratives(view, top),
            requests: report::requests(view),
            dlq: report::dlq(view),
        })
    }

    /// Both variants of one snapshot; serialised after the view's lock is released.
    fn frames(&self, version: u64) -> Result<Frames, serde_json::Error> {
        let mut snapshot = self.snapshot();
        let signed_in = serde_json::to_string(&snapshot)?;
        snapshot.narratives.withhold_texts();
        let anonymous = serde_json::to_string(&snapshot)?;
        Ok(Frames {
            version: Some(version),
            signed_in: signed_in.into(),
            anonymous: anonymous.into(),
        })
    }
}

/// Builds the frames after each change of the view or a page's nudge, at most once a second,
/// until `stop`. Without pages listening it builds nothing; the next page to connect nudges.
pub async fn publish(app: Arc<App>, stop: CancellationToken) {
    let feed = &app.feed;
    let mut changes = app.shared.subscribe();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
            _ = feed.nudge.notified() => {}
        }
        let version = *changes.borrow_and_update();
        if feed.frames.receiver_count() == 0 {
            continue;
        }
        match app.frames(version) {
            Ok(frames) => {
                feed.frames.send_replace(frames);
            }
            Err(e) => tracing::error!(error = %e, "cannot serialise the live snapshot"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(AT_MOST_EVERY) => {}
        }
    }
}

/// One connected page: holds its slot and counts in the gauge for as long as it lives.
struct Page {
    app: Arc<App>,
    /// To check on every frame that a signed-in reader still is.
    headers: HeaderMap,
    texts: bool,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Page {
    fn drop(&mut self) {
        self.app.shared.metrics.stream_clients.dec();
    }
}

pub async fn stream(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let reader = match Reader::of(&app, &headers) {
        Ok(reader) => reader,
        Err(problem) => return problem.json(),
    };
    let metrics = &app.shared.metrics;
    let Ok(slot) = app.feed.slots.clone().try_acquire_owned() else {
        metrics.stream_refusals.inc();
        let problem = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            "too many live pages are open: try again later",
        );
        return (
            [(header::RETRY_AFTER, FULL_RETRY_AFTER_SECS.to_string())],
            problem.json(),
        )
            .into_response();
    };
    metrics.stream_clients.inc();
    let mut frames = app.feed.frames.subscribe();
    if frames.borrow().version == Some(app.shared.version()) {
        frames.mark_changed();
    } else {
        app.feed.nudge.notify_one();
    }
    let page = Page {
        app,
        headers,
        texts: reader.sees_texts(),
        _slot: slot,
    };
    let events = futures::stream::unfold((page, frames), |(page, mut frames)| async move {
        tokio::select! {
            _ = page.app.stop.cancelled() => return None,
            changed = frames.changed() => changed.ok()?,
        }
        // A session that ended (signed out, expired, password changed, account removed) ends
        // its stream: the page reconnects as whoever it is now.
        if page.texts && caller(&page.app, &page.headers).is_err() {
            return None;
        }
        let data = {
            let latest = frames.borrow_and_update();
            if page.texts {
                latest.signed_in.clone()
            } else {
                latest.anonymous.clone()
            }
        };
        let event = Event::default().event("snapshot").data(&*data);
        Some((Ok::<_, Infallible>(event), (page, frames)))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
