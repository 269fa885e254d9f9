//! `/api/v1/stream`: the overview page's live updates over server-sent events. A snapshot goes
//! out at once, then after every change, at most once a second however busy the topics are.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use crate::app::App;
use crate::report::{self, Snapshot};
use crate::state::Dimension;

const AT_MOST_EVERY: Duration = Duration::from_secs(1);

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
}

/// Counts connected browsers for as long as it lives.
struct Connected(Arc<App>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.shared.metrics.stream_clients.dec();
    }
}

pub async fn stream(
    State(app): State<Arc<App>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    app.shared.metrics.stream_clients.inc();
    let changes = app.shared.subscribe();
    let state = (Connected(app), changes, true);
    let events = futures::stream::unfold(state, |(connected, mut changes, first)| async move {
        if !first {
            let stop = connected.0.stop.clone();
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(AT_MOST_EVERY) => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                changed = changes.changed() => changed.ok()?,
            }
        }
        changes.mark_unchanged();
        let event = Event::default()
            .event("snapshot")
            .json_data(connected.0.snapshot())
            .unwrap_or_else(|_| Event::default().event("error"));
        Some((Ok(event), (connected, changes, false)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
