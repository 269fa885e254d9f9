//! The HTML pages. The overview is a shell that assets/app.js fills from the live stream; the
//! review desk (desk_page.rs) is rendered on the server, so its forms work without JavaScript.

use crate::auth::{Caller, Problem};
use crate::html::escape;

pub(crate) fn layout(title: &str, nav_user: Option<&Caller>, body: &str, scripts: &str) -> String {
    let account = match nav_user {
        Some(caller) => format!(
            r#"<span class="who">{} ({})</span>
<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{}"><button type="submit">Sign out</button></form>"#,
            escape(&caller.user),
            caller.role.as_str(),
            escape(&caller.csrf)
        ),
        None => r#"<a href="/login">Sign in</a>"#.to_owned(),
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · patroli</title>
<link rel="stylesheet" href="/assets/style.css">
</head>
<body>
<header><strong>patroli</strong> <nav><a href="/">Overview</a> <a href="/review">Review desk</a></nav> <span class="account">{account}</span></header>
<main>
{body}
</main>
{scripts}
</body>
</html>
"#,
        title = escape(title)
    )
}

pub fn overview() -> String {
    let body = r#"<h1>Live overview</h1>
<p class="status"><span id="live-status">connecting…</span> · model <span id="model">–</span> · consumer lag <span id="lag">–</span> · window <span id="window">–</span></p>
<section class="tiles">
<div class="tile"><div class="label">Posts scored</div><div class="value" id="posts-scored">–</div></div>
<div class="tile"><div class="label">Flagged</div><div class="value" id="posts-flagged">–</div></div>
<div class="tile"><div class="label">Share flagged</div><div class="value" id="share-flagged">–</div></div>
<div class="tile"><div class="label">Posts this minute · per min (5 min)</div><div class="value" id="throughput">–</div></div>
<div class="tile"><div class="label">Awaiting review</div><div class="value" id="awaiting">–</div></div>
<div class="tile"><div class="label">DLQ</div><div class="value" id="dlq-total">–</div></div>
</section>
<section class="charts">
<figure class="wide"><figcaption>Posts scored per 5 minutes by platform, and share flagged</figcaption><canvas id="chart-series"></canvas></figure>
<figure><figcaption>Score distribution</figcaption><canvas id="chart-histogram"></canvas></figure>
<figure><figcaption>Posts and flagged posts by category</figcaption><canvas id="chart-categories"></canvas></figure>
<figure><figcaption>Posts and flagged posts by region</figcaption><canvas id="chart-regions"></canvas></figure>
<figure><figcaption>Takedown requests by state</figcaption><canvas id="chart-requests"></canvas></figure>
<figure><figcaption>Dead-letter queue by reason</figcaption><canvas id="chart-dlq"></canvas></figure>
</section>
<h2>Top narratives</h2>
<table id="narratives"><thead><tr><th>Narrative</th><th>Status</th><th>Posts</th><th>Platforms</th><th>First seen</th><th>Last seen</th><th>Sample</th></tr></thead><tbody></tbody></table>
"#;
    layout(
        "Overview",
        None,
        body,
        r#"<script src="/assets/vendor/chart.umd.min.js"></script>
<script src="/assets/app.js"></script>"#,
    )
}

pub fn login(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" id="error">{}</p>"#, escape(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Sign in</h1>
{error}
<form method="post" action="/login" class="login">
<label>User <input name="user" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>"#
    );
    layout("Sign in", None, &body, "")
}

pub fn problem(problem: &Problem) -> String {
    let body = format!(
        r#"<h1>{}</h1>
<p class="error" id="error">{}</p>
<p><a href="/review">Back to the review desk</a></p>"#,
        problem.status.as_u16(),
        escape(&problem.message)
    );
    layout("Refused", None, &body, "")
}
