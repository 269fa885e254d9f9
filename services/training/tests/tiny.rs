//! size: independent tests over one shared tiny model and data builder.
//!
//! The whole inference/training pipeline on the tiny random model.

use std::io::Cursor;
use std::path::PathBuf;

use patroli_inference::{Classifier, InferenceOptions};
use patroli_training::{
    build_tiny_model, evaluate, score_jsonl, train, ScoreStats, Split, TrainOptions,
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
        // Packed in a batch, a post's tokens are still its own.
        assert_eq!(alone.top_tokens, p.top_tokens, "{t:?}");
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
        int8: None,
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
    let no_archive = |_| unreachable!("the tiny model has no claim archive");
    let stats = score_jsonl(Cursor::new(input), &mut out, &clf, 2, &no_archive).unwrap();
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

/// Public and reviewer data carry only a binary label: training must work on
/// it alone, set the threshold on dev genuine news, and record the data
/// version in the model and its evaluation.
#[test]
fn trains_end_to_end_on_binary_labels_only() {
    let dir = tempfile::tempdir().unwrap();
    build_tiny_model(dir.path(), 5).unwrap();
    let data = dir.path().join("labels.jsonl");
    let hoaxes = [
        "SEBARKAN surat suara sudah tercoblos di gudang",
        "viral kpu curang kotak suara hilang sebarkan",
        "hoaks coblos dua kali boleh pakai ktp lama",
    ];
    let news = [
        "kpu umumkan jadwal pemungutan suara 14 februari",
        "bawaslu cek dpt di jakarta besok pukul 07",
        "capres ganjar dan anies hadiri debat resmi",
    ];
    let mut lines = String::new();
    let (mut counts, mut n) = ([0usize; 3], 0);
    for i in 0..60 {
        let hoax = i % 2 == 0;
        let text = if hoax { hoaxes[i % 3] } else { news[i % 3] };
        let split = ["train", "train", "train", "dev", "test"][(i / 2) % 5];
        counts[["train", "dev", "test"]
            .iter()
            .position(|s| *s == split)
            .unwrap()] += 1;
        lines += &serde_json::json!({
            "text": format!("{text} {i}"),
            "label": if hoax { "hoax" } else { "not" },
            "source": if i % 3 == 0 { "reviewers" } else { "public" },
            "genre": if hoax { "post" } else { "news" },
            "split": split,
        })
        .to_string();
        lines.push('\n');
        n += 1;
    }
    assert_eq!((n, counts), (60, [36, 12, 12]));
    std::fs::write(&data, lines).unwrap();
    let opts = TrainOptions {
        data: vec![data.clone()],
        out: dir.path().to_path_buf(),
        base_dir: dir.path().join("base"),
        name: "tiny-binary".into(),
        epochs: 10,
        head_lr: 1e-2,
        lr: 1e-3,
        batch_size: 8,
        finetune_layers: 1,
        max_len: 32,
        patience: 100,
        source_weights: [("reviewers".to_string(), 2.0)].into_iter().collect(),
        cache_dir: Some(dir.path().join("cache")),
        ..TrainOptions::default()
    };
    let report = train(&opts).unwrap();
    assert_eq!(
        (
            report.train_examples,
            report.dev_examples,
            report.test_examples_held_out
        ),
        (36, 12, 12)
    );
    assert_eq!(report.train_per_source["reviewers"], 12);
    assert_eq!(report.train_per_source["public"], 24);
    let first = report.epochs.first().unwrap().train_loss;
    let last = report.epochs.last().unwrap().train_loss;
    assert!(last < first * 0.8, "loss {first} -> {last}");
    // 6 dev news items at 2%: none may reach the threshold.
    let t = &report.threshold;
    assert_eq!((t.dev_protected, t.dev_protected_fpr), (6, 0.0));
    assert!(t.threshold >= 0.5, "{t:?}");
    let clf = Classifier::load(dir.path(), &InferenceOptions::default()).unwrap();
    assert_eq!(clf.info().threshold, t.threshold);
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache")).unwrap().count(),
        1,
        "one cache file"
    );
    // A re-run reads the cached states and reproduces the run exactly.
    let again = train(&opts).unwrap();
    assert_eq!(again.epochs, report.epochs);
    assert_eq!(again.threshold, report.threshold);

    let eval = evaluate(dir.path(), &[data], Some(Split::Test), "eval_binary").unwrap();
    assert_eq!((eval.n, eval.positives), (12, 6));
    assert_eq!(
        eval.model_data_sha.as_deref(),
        Some(report.data_sha.as_str())
    );
    assert_eq!(eval.data_sha, report.data_sha);
    let sources: Vec<(&str, usize)> = eval
        .per_source
        .iter()
        .map(|r| (r.source.as_str(), r.n))
        .collect();
    assert_eq!(sources, [("public", 8), ("reviewers", 4)]);
    assert_eq!(eval.protected_n, 6);
    assert!(dir.path().join("eval_binary.md").exists());
    assert!(eval.category_confusion.iter().flatten().all(|&c| c == 0));
}

#[test]
fn bench_reports_every_thread_count_in_the_reference_shape() {
    let dir = tempfile::tempdir().unwrap();
    build_tiny_model(dir.path(), 7).unwrap();
    // 40 texts of 1 to 40 words: at most 32 posts per batch, so at least two batches.
    let texts: Vec<String> = (1..=40).map(|n| "kata ".repeat(n)).collect();
    let rows = patroli_training::bench(dir.path(), &texts, &[1, 2], 0, false).unwrap();
    assert_eq!(rows.iter().map(|r| r.threads).collect::<Vec<_>>(), [1, 2]);
    for r in &rows {
        assert_eq!(r.posts, 40);
        assert!(r.batches >= 2, "{r:?}");
        assert!(
            r.posts_per_sec > 0.0 && r.single_posts_per_sec > 0.0,
            "{r:?}"
        );
        assert!(r.batch_p50_ms <= r.batch_p99_ms && r.single_p50_ms <= r.single_p99_ms);
        assert!(r.peak_rss_mb.is_some_and(|mb| mb > 0), "{r:?}");
    }
    // The fields benches/reference/reference.py prints, under the same names.
    let json = serde_json::to_value(&rows[0]).unwrap();
    for field in [
        "threads",
        "posts",
        "mean_tokens",
        "batches",
        "posts_per_sec",
        "batch_p50_ms",
        "batch_p99_ms",
        "peak_rss_mb",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }
}

/// Int8 projections (where the CPU has AVX-512 VNNI; f32 elsewhere, and
/// then this compares f32 with itself) score as the f32 model does, to
/// within quantisation error, in a batch as alone.
#[test]
fn int8_scores_within_quantisation_error_of_f32() {
    let dir = tempfile::tempdir().unwrap();
    build_tiny_model(dir.path(), 7).unwrap();
    let f32_model = Classifier::load(dir.path(), &InferenceOptions::default()).unwrap();
    let int8_model = Classifier::load(
        dir.path(),
        &InferenceOptions {
            int8: Some(true),
            ..InferenceOptions::default()
        },
    )
    .unwrap();
    let texts = [
        "KPU umumkan jadwal pemungutan 14 Februari pukul 07.00",
        "SEBARKAN surat suara tercoblos!",
        "yg gk coblos besok rugi",
        "",
    ];
    let want = f32_model.score(&texts).unwrap();
    let got = int8_model.score(&texts).unwrap();
    for ((t, w), g) in texts.iter().zip(&want).zip(&got) {
        assert!(
            (w.score - g.score).abs() < 0.02,
            "{t:?}: f32 {} int8 {}",
            w.score,
            g.score
        );
        let alone = int8_model.score(&[t]).unwrap().remove(0);
        assert!((alone.score - g.score).abs() < 1e-5, "{t:?}");
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512bw") && std::is_x86_feature_detected!("avx512vnni") {
        assert!(
            want.iter().zip(&got).any(|(w, g)| w.score != g.score),
            "this CPU runs int8, so the scores should carry its rounding"
        );
    }
}
