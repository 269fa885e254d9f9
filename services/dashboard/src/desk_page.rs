//! The review desk page: every narrative the view knows, its evidence, and the forms a reviewer
//! decides with (rendered on the server, so they work without JavaScript).

use std::fmt::Write as _;

use patroli_contracts::{
    ClaimVerdict, ComplaintReference, DecisionAction, MatchedClaim, NarrativeStatus, Priority,
    ReviewItem,
};

use crate::accounts::Role;
use crate::auth::Caller;
use crate::html::{escape, highlight};
use crate::pages::layout;
use crate::state::{Narrative, View};

pub fn review(view: &View, caller: &Caller) -> String {
    let queue = view.review_queue();
    let mut body = format!(
        "<h1>Review desk</h1>\n<p>{} narratives; awaiting review first, high priority first.</p>\n",
        queue.len()
    );
    if queue.is_empty() {
        body.push_str(r#"<p id="empty">Nothing to review.</p>"#);
    }
    for (item, narrative) in queue {
        body.push_str(&review_item(item, narrative, caller));
    }
    layout("Review desk", Some(caller), &body, "")
}

/// One known claim the narrative repeats: the evidence a reviewer checks first. Only web
/// addresses become links.
fn known_claim(claim: &MatchedClaim) -> String {
    let (class, verdict) = match claim.verdict {
        ClaimVerdict::Hoax => ("hoax", "a known hoax"),
        ClaimVerdict::Genuine => ("genuine", "a known genuine item"),
    };
    let date = claim
        .date
        .as_deref()
        .map(|d| format!(" on {}", escape(d)))
        .unwrap_or_default();
    let link = claim
        .url
        .as_deref()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(|u| {
            format!(
                r#" · <a href="{}" rel="noopener noreferrer">the check</a>"#,
                escape(u)
            )
        })
        .unwrap_or_default();
    format!(
        "<li class=\"claim {class}\">Repeats {verdict}: <code>{}</code>, similarity {:.3}, checked by {}{date}{link}</li>\n",
        escape(&claim.claim_id),
        claim.similarity,
        escape(&claim.source),
    )
}

fn review_item(item: &ReviewItem, narrative: &Narrative, caller: &Caller) -> String {
    let decision = narrative.decision.as_ref();
    let id = escape(&item.narrative_id);
    let priority = match item.priority {
        Priority::High => r#"<span class="badge high">high priority</span>"#,
        Priority::Normal => r#"<span class="badge">normal</span>"#,
    };
    let burst = item
        .coordinated
        .as_ref()
        .map(|b| {
            format!(
                r#"<span class="badge burst">burst: {} accounts in {} min from {}</span>"#,
                b.distinct_authors,
                b.window_minutes,
                escape(&b.window_start)
            )
        })
        .unwrap_or_default();
    let mut out = format!(
        r#"<article class="item" id="n-{id}" data-narrative="{id}">
<h2>{category} · score {score:.2} {priority} {burst} <span class="badge takedown">takedown service: {status}</span>{awaiting}</h2>
<p class="meta">narrative <code>{id}</code> · {posts} posts on {platforms} · first {first} · last {last}</p>
"#,
        category = escape(&item.category),
        score = item.score,
        status = item.status.as_str(),
        awaiting = if narrative.awaiting_takedown() {
            r#" <span class="badge awaiting">decision sent, awaiting takedown</span>"#
        } else {
            ""
        },
        posts = item.post_count,
        platforms = escape(&item.platforms.join(", ")),
        first = escape(&item.first_seen),
        last = escape(&item.last_seen),
    );
    out.push_str(r#"<table class="categories"><tr>"#);
    for (category, p) in &item.categories {
        let _ = write!(out, "<th>{}</th><td>{p:.2}</td>", escape(category));
    }
    out.push_str("</tr></table>\n<ul class=\"samples\">\n");
    for sample in &item.sample_posts {
        let text = sample
            .text
            .as_deref()
            .map(|t| highlight(t, &item.reason_words))
            .unwrap_or_else(|| "<em>text not seen</em>".into());
        let _ = writeln!(
            out,
            r#"<li><span class="post">{}:{}</span> score {:.2} · {} · <span class="text">{text}</span></li>"#,
            escape(&sample.post.platform),
            escape(&sample.post.post_id),
            sample.score,
            escape(&sample.author),
        );
    }
    out.push_str("</ul>\n");
    if !item.matched_claims.is_empty() {
        out.push_str("<ul class=\"claims\">\n");
        for claim in &item.matched_claims {
            out.push_str(&known_claim(claim));
        }
        out.push_str("</ul>\n");
    }
    if !item.complaint_references.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"complaints\">{} complaint(s) from the public; the posts they name are \
             unverified: open each, and tick only those that are copies of this narrative.</p>\n\
             <ul class=\"references\">",
            item.complaint_count
        );
        for reference in &item.complaint_references {
            out.push_str(&complaint_reference(reference));
        }
        out.push_str("</ul>\n");
    }
    let confirmable = confirmable_references(item);
    match decision {
        Some(d) => {
            let verb = match d.action {
                DecisionAction::Confirm => "Confirmed",
                DecisionAction::Reject => "Rejected",
            };
            let reason = d
                .reason
                .as_deref()
                .map(|r| format!(": {}", escape(r)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                r#"<p class="decision">{verb} by <strong>{}</strong> at {}{reason}</p>"#,
                escape(&d.reviewer),
                escape(&d.decided_at)
            );
            // A confirmed narrative keeps gathering complaints: their posts can be confirmed
            // later, one decision at a time.
            let confirmed =
                d.action == DecisionAction::Confirm && item.status != NarrativeStatus::Rejected;
            if confirmed && caller.role == Role::Reviewer && !confirmable.is_empty() {
                let _ = write!(
                    out,
                    r#"<form method="post" action="/review/decisions" class="decide references">
<input type="hidden" name="narrative_id" value="{id}">
<input type="hidden" name="csrf" value="{csrf}">
{confirmable}<input name="reason" placeholder="reason (optional)" maxlength="2000">
<button type="submit" name="action" value="confirm">Confirm ticked posts</button>
</form>
"#,
                    csrf = escape(&caller.csrf)
                );
            }
        }
        None if caller.role == Role::Reviewer && narrative.awaiting_review() => {
            let _ = write!(
                out,
                r#"<form method="post" action="/review/decisions" class="decide">
<input type="hidden" name="narrative_id" value="{id}">
<input type="hidden" name="csrf" value="{csrf}">
{confirmable}<input name="reason" placeholder="reason (required to reject)" maxlength="2000">
<button type="submit" name="action" value="confirm">Confirm hoax</button>
<button type="submit" name="action" value="reject">Reject</button>
</form>
"#,
                csrf = escape(&caller.csrf)
            );
        }
        None if caller.role != Role::Reviewer => {
            out.push_str(r#"<p class="viewer">Viewers cannot decide.</p>"#)
        }
        None => {}
    }
    out.push_str(&held_copies(&id, narrative, caller));
    out.push_str("</article>\n");
    out
}

/// The protected copies the takedown service holds back, and for reviewers the one button that
/// releases them: a new confirmation of the narrative.
fn held_copies(id: &str, narrative: &Narrative, caller: &Caller) -> String {
    let held = narrative.held_copies();
    if held.is_empty() {
        return String::new();
    }
    let posts: Vec<String> = held
        .iter()
        .map(|p| format!("{}:{}", escape(&p.platform), escape(&p.post_id)))
        .collect();
    let mut out = format!(
        "<p class=\"held\">Held back (protected sources, not requested until released): {}</p>\n",
        posts.join(", ")
    );
    if caller.role == Role::Reviewer {
        let _ = write!(
            out,
            r#"<form method="post" action="/review/decisions" class="decide release">
<input type="hidden" name="narrative_id" value="{id}">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" name="action" value="release">Release held copies</button>
</form>
"#,
            csrf = escape(&caller.csrf)
        );
    }
    out
}

/// The form field of the `index`-th ticked reference; its value is the post as JSON, so a
/// platform or post id holding any character comes back exactly.
pub const REFERENCE_FIELD: &str = "reference.";

/// One complaint reference: who reported which post when, and the complainant's link (only a
/// web address becomes a link, and it is marked as theirs).
fn complaint_reference(reference: &ComplaintReference) -> String {
    let link = reference
        .url
        .as_deref()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(|u| {
            format!(
                r#" · <a href="{}" rel="noopener noreferrer nofollow">complainant's link</a>"#,
                escape(u)
            )
        })
        .unwrap_or_default();
    let state = match (&reference.request_id, reference.protected) {
        (Some(request), _) => format!(
            r#" <span class="badge">requested in <code>{}</code></span>"#,
            escape(request)
        ),
        (None, true) => {
            r#" <span class="badge protected">protected source: never requested</span>"#.to_owned()
        }
        (None, false) => String::new(),
    };
    format!(
        "<li class=\"reference\"><span class=\"post\">{}:{}</span> named by complaint <code>{}</code>, \
         score {:.2}, reported {}{link}{state}</li>\n",
        escape(&reference.post.platform),
        escape(&reference.post.post_id),
        escape(&reference.complaint_id),
        reference.score,
        escape(&reference.received),
    )
}

/// A checkbox for each reference a reviewer can still confirm (not requested, not protected).
fn confirmable_references(item: &ReviewItem) -> String {
    let mut boxes = String::new();
    for (index, reference) in item
        .complaint_references
        .iter()
        .filter(|r| r.request_id.is_none() && !r.protected)
        .enumerate()
    {
        let value = serde_json::to_string(&reference.post).expect("a post reference serialises");
        let _ = writeln!(
            boxes,
            r#"<label class="reference"><input type="checkbox" name="{REFERENCE_FIELD}{index}" value="{}"> also request {}:{}</label>"#,
            escape(&value),
            escape(&reference.post.platform),
            escape(&reference.post.post_id),
        );
    }
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_claim_names_its_checker_and_links_only_web_addresses() {
        let mut claim = MatchedClaim {
            claim_id: "review:n-<1>".into(),
            similarity: 0.9612,
            verdict: ClaimVerdict::Hoax,
            source: "komdigi".into(),
            date: Some("2024-01-02".into()),
            url: Some("https://komdigi.example/hoaks?id=1&x=2".into()),
        };
        assert_eq!(
            known_claim(&claim),
            "<li class=\"claim hoax\">Repeats a known hoax: <code>review:n-&lt;1&gt;</code>, \
             similarity 0.961, checked by komdigi on 2024-01-02 · <a \
             href=\"https://komdigi.example/hoaks?id=1&amp;x=2\" rel=\"noopener noreferrer\">the \
             check</a></li>\n"
        );
        claim.url = Some("javascript:alert(1)".into());
        claim.verdict = ClaimVerdict::Genuine;
        claim.date = None;
        assert_eq!(
            known_claim(&claim),
            "<li class=\"claim genuine\">Repeats a known genuine item: \
             <code>review:n-&lt;1&gt;</code>, similarity 0.961, checked by komdigi</li>\n"
        );
    }
}

#[cfg(test)]
mod reference_tests {
    use super::*;
    use patroli_contracts::ReviewDecision;
    use patroli_contracts::{PostRef, Priority};

    fn reference(post_id: &str, protected: bool, request_id: Option<&str>) -> ComplaintReference {
        ComplaintReference {
            complaint_id: format!("c-{post_id}"),
            post: PostRef {
                platform: "x".into(),
                post_id: post_id.into(),
            },
            url: Some("javascript:alert(1)".into()),
            score: 0.91,
            received: "2024-02-14T09:00:00Z".into(),
            protected,
            request_id: request_id.map(str::to_owned),
        }
    }

    fn item(status: NarrativeStatus) -> ReviewItem {
        ReviewItem {
            schema_version: 1,
            event_id: "e".into(),
            narrative_id: "n-1".into(),
            revision: 3,
            status,
            priority: Priority::Normal,
            coordinated: None,
            category: "ballot_fraud".into(),
            score: 0.9,
            categories: Default::default(),
            reason_words: Vec::new(),
            post_count: 2,
            platforms: vec!["x".into()],
            first_seen: "2024-02-13T08:00:00Z".into(),
            last_seen: "2024-02-13T09:00:00Z".into(),
            sample_posts: Vec::new(),
            matched_claims: Vec::new(),
            complaint_count: 4,
            complaint_references: vec![
                reference("1\"><b>", false, None),
                reference("kpu", true, None),
                reference("done", false, Some("r-1")),
            ],
            policy_version: "p".into(),
            updated_at: "2024-02-14T10:00:00Z".into(),
        }
    }

    fn render(item: ReviewItem, decision: Option<ReviewDecision>, caller: &Caller) -> String {
        let mut narrative = Narrative::default();
        narrative.item = Some(item.clone());
        narrative.decision = decision;
        review_item(&item, &narrative, caller)
    }

    fn reviewer() -> Caller {
        Caller {
            user: "rina".into(),
            role: Role::Reviewer,
            csrf: "t0k".into(),
            session: None,
        }
    }

    const TICK: &str = "<label class=\"reference\"><input type=\"checkbox\" name=\"reference.0\" \
        value=\"{&quot;platform&quot;:&quot;x&quot;,&quot;post_id&quot;:&quot;1\\&quot;&gt;&lt;b&gt;&quot;}\"> \
        also request x:1&quot;&gt;&lt;b&gt;</label>\n";

    #[test]
    fn only_unrequested_unprotected_references_get_a_checkbox() {
        let page = render(item(NarrativeStatus::PendingReview), None, &reviewer());
        assert_eq!(page.matches("type=\"checkbox\"").count(), 1, "{page}");
        assert!(page.contains(TICK), "{page}");
        assert!(page.contains(
            "<li class=\"reference\"><span class=\"post\">x:kpu</span> named by complaint \
             <code>c-kpu</code>, score 0.91, reported 2024-02-14T09:00:00Z <span class=\"badge \
             protected\">protected source: never requested</span></li>\n"
        ));
        assert!(page.contains("<span class=\"badge\">requested in <code>r-1</code></span>"));
        assert!(!page.contains("javascript:"), "only web links become links");
        assert!(page.contains("4 complaint(s) from the public"));
    }

    #[test]
    fn a_confirmed_narrative_offers_its_unconfirmed_references_only_to_reviewers() {
        let page = render(
            item(NarrativeStatus::Confirmed),
            Some(ReviewDecision::example()),
            &reviewer(),
        );
        assert!(page.contains("Confirm ticked posts"), "{page}");
        assert!(page.contains(TICK));
        assert!(page.contains("<input type=\"hidden\" name=\"csrf\" value=\"t0k\">"));
        assert!(!page.contains("value=\"reject\""));
        let viewer = Caller {
            role: Role::Viewer,
            ..reviewer()
        };
        let page = render(
            item(NarrativeStatus::Confirmed),
            Some(ReviewDecision::example()),
            &viewer,
        );
        assert!(!page.contains("<form method=\"post\" action=\"/review/decisions\""));
        let mut all_done = item(NarrativeStatus::Confirmed);
        all_done.complaint_references.remove(0);
        let page = render(all_done, Some(ReviewDecision::example()), &reviewer());
        assert!(!page.contains("Confirm ticked posts"));
    }
}
