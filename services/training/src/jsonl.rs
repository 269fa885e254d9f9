//! `patroli score`: JSONL posts in, the same objects plus scores out.

use std::io::{BufRead, Write};

use serde_json::{Map, Value};

use patroli_inference::{ClaimMatch, Classifier, ModelError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScoreStats {
    pub scored: usize,
    pub errors: usize,
}

enum Line {
    Post(Map<String, Value>),
    Error(Value),
}

/// Reads JSONL objects with `id` and `text` and writes, one line per
/// non-blank input line and in input order, the object with `score`,
/// `label` (0/1), `categories` and, for a model with a claim archive,
/// `matches` (the known claims it repeats) added. A line that is not such an object
/// becomes `{"line": n, "id": ..?, "error": "..."}`; only I/O and model
/// failures abort. Posts are scored `batch` at a time. `write_matches` writes a
/// post's matches (the CLI writes them as a scored event carries them: the
/// wire types are the classifier's to map, not the model's).
pub fn score_jsonl<R: BufRead, W: Write>(
    reader: R,
    mut writer: W,
    clf: &Classifier,
    batch: usize,
    write_matches: &dyn Fn(Vec<ClaimMatch>) -> Value,
) -> Result<ScoreStats, ModelError> {
    let batch = batch.max(1);
    let mut stats = ScoreStats::default();
    let mut pending: Vec<Line> = Vec::new();
    let mut posts = 0;
    let io = |e: std::io::Error| ModelError::Io {
        path: "<score stream>".into(),
        source: e,
    };
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = parse_line(&line, n + 1);
        if matches!(parsed, Line::Post(_)) {
            posts += 1;
        }
        pending.push(parsed);
        if posts == batch {
            flush(&mut pending, &mut writer, clf, write_matches, &mut stats)?;
            posts = 0;
        }
    }
    flush(&mut pending, &mut writer, clf, write_matches, &mut stats)?;
    writer.flush().map_err(io)?;
    Ok(stats)
}

fn parse_line(line: &str, n: usize) -> Line {
    let err = |id: Option<&Value>, msg: String| {
        let mut m = Map::new();
        m.insert("line".into(), n.into());
        if let Some(id) = id {
            m.insert("id".into(), id.clone());
        }
        m.insert("error".into(), msg.into());
        Line::Error(Value::Object(m))
    };
    match serde_json::from_str::<Value>(line) {
        Err(e) => err(None, format!("invalid JSON: {e}")),
        Ok(Value::Object(m)) => match (m.get("id"), m.get("text")) {
            (None, _) => err(None, "missing field `id`".into()),
            (Some(id), None) => err(Some(id), "missing field `text`".into()),
            (Some(id), Some(t)) if !t.is_string() => {
                err(Some(id), "field `text` must be a string".into())
            }
            _ => Line::Post(m),
        },
        Ok(_) => err(None, "line is not a JSON object".into()),
    }
}

fn flush<W: Write>(
    pending: &mut Vec<Line>,
    writer: &mut W,
    clf: &Classifier,
    write_matches: &dyn Fn(Vec<ClaimMatch>) -> Value,
    stats: &mut ScoreStats,
) -> Result<(), ModelError> {
    let texts: Vec<&str> = pending
        .iter()
        .filter_map(|l| match l {
            Line::Post(m) => m.get("text").and_then(Value::as_str),
            Line::Error(_) => None,
        })
        .collect();
    let mut preds = clf.score(&texts)?.into_iter();
    let io = |e: std::io::Error| ModelError::Io {
        path: "<score stream>".into(),
        source: e,
    };
    for line in pending.drain(..) {
        let out = match line {
            Line::Post(mut m) => {
                let p = preds.next().expect("one prediction per post");
                m.insert("score".into(), round6(p.score).into());
                m.insert("label".into(), u8::from(p.label).into());
                let cats: Map<String, Value> = p
                    .categories
                    .into_iter()
                    .map(|(k, v)| (k, round6(v).into()))
                    .collect();
                m.insert("categories".into(), Value::Object(cats));
                // With a claim archive, always present (often empty): a stable shape.
                if clf.claim_count().is_some() {
                    m.insert("matches".into(), write_matches(p.matches));
                }
                stats.scored += 1;
                Value::Object(m)
            }
            Line::Error(v) => {
                stats.errors += 1;
                v
            }
        };
        serde_json::to_writer(&mut *writer, &out).map_err(|e| io(e.into()))?;
        writer.write_all(b"\n").map_err(io)?;
    }
    Ok(())
}

/// Six decimals: f32 noise beyond that only bloats the output.
fn round6(x: f32) -> f64 {
    (f64::from(x) * 1e6).round() / 1e6
}
