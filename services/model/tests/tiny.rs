//! The whole inference/training pipeline on the tiny random model.

use std::io::Cursor;
use std::path::PathBuf;

use patroli_model::{
    build_tiny_model, score_jsonl, train, Classifier, InferenceOptions, ScoreStats, TrainOptions,
};

fn tiny() -> (tempfile::TempDir, Classifier) {
    let dir = tempfile::tempdir().unwrap();
    build_tiny_model(dir.path(), 7).unwrap();
    let clf = Classifier::load(dir.path(), &InferenceOptions::default()).unwrap();
    (dir, clf)
}

#[test]
fn scores_odd_inputs_in_input_order() {
    let (_dir, clf) = tiny();
    assert_eq!(clf.info().categories.len(), 11);
    assert!(clf.score(&[]).unwrap().is_empty());
    let huge = "SEBARKAN surat suara tercoblos! ".repeat(20_000);
    let texts = [
        "",
        "   ",
        huge.as_str(),
        "KPU umumkan jadwal pemungutan 14 Februari pukul 07.00",
        "🤡🤡🤡 \u{202E} zalgo z̷̢̛a̴l̵g̶o̷ \u{0000} \u{FFFF} 中文 العربية",
        "yg gk coblos besok rugi",
    ];
    let batch = clf.score(&texts).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (t, p) in texts.iter().zip(&batch) {
        let alone = clf.score(&[t]).unwrap().remove(0);
        assert!(
            (alone.score - p.score).abs() < 1e-4,
            "{t:?}: {} vs {}",
            alone.score,
            p.score
        );
        assert!((0.0..=1.0).contains(&p.score));
        assert_eq!(p.label, p.score >= clf.info().threshold);
        let sum: f32 = p.categories.values().sum();
        assert!((sum - 1.0).abs() < 1e-4);
        assert!(p.top_tokens.len() <= 5);
        assert!(clf.info().categories.contains(&p.category));
    }
    assert!(batch[0].top_tokens.is_empty());
    assert!(!batch[5].top_tokens.is_empty());
    assert!(batch[5]
        .top_tokens
        .iter()
        .all(|t| "yg gk coblos besok rugi".contains(t.as_str())));
    assert_eq!(clf.token_count(&huge), 64);
    assert_eq!(clf.token_count(""), clf.token_count("   "));
    let short = InferenceOptions {
        max_len: 8,
        threads: Some(1),
    };
    let dir = tempfile::tempdir().unwrap();
    build_tiny_model(dir.path(), 7).unwrap();
    assert_eq!(
        Classifier::load(dir.path(), &short)
            .unwrap()
            .token_count(&huge),
        8
    );
}

#[test]
fn scores_ten_thousand_posts_quickly() {
    let (_dir, clf) = tiny();
    let texts: Vec<String> = (0..10_000)
        .map(|i| format!("post {i} pemilu kpu {}", "tps ".repeat(i % 40)))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let t = std::time::Instant::now();
    let preds = clf.score(&refs).unwrap();
    assert_eq!(preds.len(), 10_000);
    assert!(t.elapsed().as_secs() < 60, "{:?}", t.elapsed());
}

#[test]
fn missing_model_dir_is_a_clear_error() {
    let err = Classifier::load(
        &PathBuf::from("/nonexistent/m"),
        &InferenceOptions::default(),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("/nonexistent/m/patroli.json"),
        "{err}"
    );
}

#[test]
fn score_jsonl_exact_output() {
    let (_dir, clf) = tiny();
    let input = concat!(
        "{\"id\":\"a\",\"text\":\"KPU umumkan jadwal\",\"lang\":\"id\"}\n",
        "not json\n",
        "\n",
        "{\"id\":7,\"body\":\"no text\"}\n",
        "[1,2]\n",
        "{\"text\":\"no id\"}\n",
        "{\"id\":\"b\",\"text\":42}\n",
        "{\"id\":\"c\",\"text\":\"\"}\n",
    );
    let mut out = Vec::new();
    let stats = score_jsonl(Cursor::new(input), &mut out, &clf, 2).unwrap();
    assert_eq!(
        stats,
        ScoreStats {
            scored: 2,
            errors: 5
        }
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    let want = clf.score(&["KPU umumkan jadwal", ""]).unwrap();
    for (line, p, id) in [(&lines[0], &want[0], "a"), (&lines[6], &want[1], "c")] {
        assert_eq!(line["id"], id);
        assert!((line["score"].as_f64().unwrap() - f64::from(p.score)).abs() < 1e-6);
        assert_eq!(line["label"], u8::from(p.label));
        let cats = line["categories"].as_object().unwrap();
        assert_eq!(cats.len(), 11);
        for (k, v) in &p.categories {
            assert!((cats[k].as_f64().unwrap() - f64::from(*v)).abs() < 1e-6);
        }
    }
    assert_eq!(lines[0]["lang"], "id");
    assert_eq!(lines[0]["text"], "KPU umumkan jadwal");
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid JSON"));
    assert_eq!(lines[1].get("id"), None);
    assert_eq!(
        lines[2],
        serde_json::json!({"line": 4, "id": 7, "error": "missing field `text`"})
    );
    assert_eq!(
        lines[3],
        serde_json::json!({"line": 5, "error": "line is not a JSON object"})
    );
    assert_eq!(
        lines[4],
        serde_json::json!({"line": 6, "error": "missing field `id`"})
    );
    assert_eq!(
        lines[5],
        serde_json::json!({"line": 7, "id": "b", "error": "field `text` must be a string"})
    );
}

#[test]
fn training_smoke_loss_falls_and_artifacts_load() {
    let dir = tempfile::tempdir().unwrap();
    build_tiny_model(dir.path(), 3).unwrap();
    let data = dir.path().join("data.jsonl");
    let mut lines = String::new();
    let rows = [
        (
            "SEBARKAN surat suara sudah tercoblos di gudang",
            1,
            "ballot_fraud",
        ),
        ("KPU resmi tunda pemilu sebarkan viral", 1, "fake_official"),
        (
            "coblos dua kali boleh pakai ktp lama",
            1,
            "procedure_misinfo",
        ),
        (
            "jadwal pemungutan suara 14 februari pukul 07",
            0,
            "official_info",
        ),
        (
            "cek fakta hoaks tidak benar klarifikasi kpu",
            0,
            "fact_check",
        ),
        ("makan bola di jakarta besok", 0, "non_election"),
    ];
    // Narratives picked so both the train and the dev split get examples.
    let mut n = 0;
    for i in 0..40 {
        let (text, d, cat) = rows[i % rows.len()];
        let narrative = format!("n-{i}");
        lines += &serde_json::json!({
            "id": format!("t-{i}"), "text": format!("{text} {i}"), "disinformation": d,
            "category": cat, "narrative": narrative, "style": "tweet"
        })
        .to_string();
        lines.push('\n');
        n += 1;
    }
    assert_eq!(n, 40);
    std::fs::write(&data, lines).unwrap();
    let opts = TrainOptions {
        data: vec![data],
        out: dir.path().to_path_buf(),
        base_dir: dir.path().join("base"),
        name: "tiny-trained".into(),
        epochs: 12,
        head_lr: 1e-2,
        lr: 1e-3,
        batch_size: 8,
        finetune_layers: 1,
        max_len: 32,
        patience: 100,
        ..TrainOptions::default()
    };
    let report = train(&opts).unwrap();
    assert!(
        report.dev_examples > 0 && report.train_examples > 0,
        "{report:?}"
    );
    let first = report.epochs.first().unwrap().train_loss;
    let last = report.epochs.last().unwrap().train_loss;
    assert!(last < first * 0.8, "loss {first} -> {last}");
    let clf = Classifier::load(dir.path(), &InferenceOptions::default()).unwrap();
    assert_eq!(clf.info().name, "tiny-trained");
    let p = clf
        .score(&[
            "SEBARKAN surat suara sudah tercoblos",
            "makan bola di jakarta",
        ])
        .unwrap();
    assert!(p[0].score > p[1].score, "{} vs {}", p[0].score, p[1].score);
    // Same seed, same data: the same weights.
    let again = train(&opts).unwrap();
    assert_eq!(again.epochs, report.epochs);
    assert_eq!(again.temperature, report.temperature);
}
