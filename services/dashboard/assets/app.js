// The live overview: one EventSource on /api/v1/stream; each "snapshot" event redraws the tiles,
// the charts (Chart.js, vendored) and the narratives table.
"use strict";

const palette = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00", "#b82e2e", "#316395"];
const charts = {};

function chart(id, type, options) {
  if (!charts[id]) {
    charts[id] = new Chart(document.getElementById(id), {
      type,
      data: { labels: [], datasets: [] },
      options: Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, options || {}),
    });
  }
  return charts[id];
}

function set(id, text) {
  document.getElementById(id).textContent = text;
}

function time(iso) {
  return iso.slice(11, 16);
}

function drawSeries(series) {
  const c = chart("chart-series", "bar", {
    scales: {
      x: { stacked: true },
      y: { stacked: true, beginAtZero: true, title: { display: true, text: "posts" } },
      share: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "% flagged" } },
    },
  });
  const values = new Set();
  series.points.forEach((p) => Object.keys(p.values).forEach((v) => values.add(v)));
  c.data.labels = series.points.map((p) => time(p.start));
  const bars = [...values].sort().map((v, i) => ({
    label: v,
    backgroundColor: palette[i % palette.length],
    data: series.points.map((p) => (p.values[v] ? p.values[v].posts : 0)),
  }));
  const share = {
    type: "line",
    label: "share flagged",
    yAxisID: "share",
    borderColor: "#1d2330",
    backgroundColor: "#1d2330",
    data: series.points.map((p) => {
      const all = Object.values(p.values);
      const posts = all.reduce((n, v) => n + v.posts, 0);
      return posts ? (100 * all.reduce((n, v) => n + v.flagged, 0)) / posts : 0;
    }),
  };
  c.data.datasets = [share, ...bars];
  c.update();
}

// Posts and flagged posts per value of a dimension, summed over the series' buckets.
function drawTotals(id, series) {
  const totals = {};
  series.points.forEach((p) => Object.entries(p.values).forEach(([k, v]) => {
    totals[k] = totals[k] || { posts: 0, flagged: 0 };
    totals[k].posts += v.posts;
    totals[k].flagged += v.flagged;
  }));
  const names = Object.keys(totals).sort((a, b) => totals[b].posts - totals[a].posts).slice(0, 12);
  const c = chart(id, "bar", { indexAxis: "y", scales: { x: { beginAtZero: true } } });
  c.data.labels = names;
  c.data.datasets = [
    { label: "posts", backgroundColor: "#3366cc", data: names.map((n) => totals[n].posts) },
    { label: "flagged", backgroundColor: "#dc3912", data: names.map((n) => totals[n].flagged) },
  ];
  c.update();
}

function drawHistogram(histogram) {
  const c = chart("chart-histogram", "bar", { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } });
  c.data.labels = histogram.bins.map((b) => b.from.toFixed(1) + "–" + b.to.toFixed(1));
  c.data.datasets = [{ label: "posts", backgroundColor: histogram.bins.map((b) => (b.from >= 0.5 ? "#dc3912" : "#3366cc")), data: histogram.bins.map((b) => b.count) }];
  c.update();
}

function drawCounts(id, counts) {
  const names = Object.keys(counts);
  const c = chart(id, "doughnut", { plugins: { legend: { position: "right" } } });
  c.data.labels = names;
  c.data.datasets = [{ data: names.map((n) => counts[n]), backgroundColor: names.map((_, i) => palette[i % palette.length]) }];
  c.update();
}

function drawNarratives(narratives) {
  const body = document.querySelector("#narratives tbody");
  body.replaceChildren(...narratives.map((n) => {
    const row = document.createElement("tr");
    [n.narrative_id.slice(0, 8), n.status, n.post_count, n.platforms.join(", "), n.first_seen, n.last_seen, n.sample_text || ""].forEach((v) => {
      const cell = document.createElement("td");
      cell.textContent = String(v);
      row.appendChild(cell);
    });
    return row;
  }));
}

function draw(s) {
  const o = s.overview;
  set("posts-scored", o.posts_scored);
  set("posts-flagged", o.posts_flagged);
  set("share-flagged", (o.share_flagged * 100).toFixed(1) + "%");
  set("throughput", o.throughput.current_minute + " · " + o.throughput.per_minute_5m.toFixed(1));
  set("awaiting", o.review.awaiting);
  set("dlq-total", o.dlq_events);
  set("model", o.model ? o.model.name + " " + o.model.version : "–");
  set("lag", o.consumer_lag);
  set("window", "last " + o.window.lookback_secs / 3600 + " h (from " + o.window.from.replace("T", " ").slice(0, 16) + " UTC)");
  set("live-status", o.ready ? "live" : "rebuilding…");
  drawSeries(s.series);
  drawTotals("chart-categories", s.categories);
  drawTotals("chart-regions", s.regions);
  drawHistogram(s.histogram);
  drawCounts("chart-requests", s.requests.by_state);
  drawCounts("chart-dlq", s.dlq.by_reason);
  drawNarratives(s.narratives.narratives);
}

const source = new EventSource("/api/v1/stream");
source.addEventListener("snapshot", (e) => draw(JSON.parse(e.data)));
source.onerror = () => set("live-status", "reconnecting…");
