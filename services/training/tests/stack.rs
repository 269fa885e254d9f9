//! The stacked head on the tiny random model: trained from binary labels,
//! written as a model directory that scores through the same `Classifier`,
//! measured per held-out source, reproducible from its cache.

use patroli_inference::Verdict;
use patroli_inference::{Classifier, InferenceOptions};
use patroli_training::{build_tiny_model, evaluate, stack, Split, StackOptions, Views, STACK_FILE};

const HOAXES: [&str; 4] = [
    "SEBARKAN surat suara sudah tercoblos di gudang",
    "viral hoaks kotak suara hilang sebarkan segera",
    "awas sebarkan coblos dua kali boleh pakai ktp lama",
    "sebarkan sebelum dihapus petugas curang",
];
const NEWS: [&str; 4] = [
    "kpu umumkan jadwal pemungutan suara 14 februari",
    "bawaslu periksa daftar pemilih tetap di jakarta",
    "debat resmi capres digelar kpu pekan depan",
    "kpu tetapkan hasil rekapitulasi nasional",
];

/// 80 rows: source `public` has both labels, `factcheck` only hoaxes.
fn write_data(path: &std::path::Path) {
    let mut lines = String::new();
    for i in 0..80 {
        let hoax = i % 2 == 0;
        let text = if hoax { HOAXES[i % 4] } else { NEWS[i % 4] };
        let split = ["train", "train", "train", "dev", "test"][(i / 2) % 5];
        let source = if hoax && i % 4 == 0 {
            "factcheck"
        } else {
            "public"
        };
        lines += &serde_json::json!({
            "id": format!("r{i}"),
            // Pairs share a number, so digits say nothing about the label.
            "text": format!("{text} nomor {}", i / 2),
            "label": if hoax { "hoax" } else { "not" },
            "source": source,
            "genre": if hoax { "post" } else { "news" },
            "split": split,
        })
        .to_string();
        lines.push('\n');
    }
    std::fs::write(path, lines).unwrap();
}

/// Options stacking `write_data`'s rows on a tiny random encoder in `dir`,
/// every source held out.
fn tiny_stack_options(dir: &std::path::Path) -> StackOptions {
    let encoder = dir.join("encoder");
    build_tiny_model(&encoder, 3).unwrap();
    let data = dir.join("labels.jsonl");
    write_data(&data);
    StackOptions {
        data: vec![data],
        encoder,
        out: dir.join("stacked"),
        name: "tiny-stacked".into(),
        version: "0.1.0".into(),
        cache_dir: Some(dir.join("cache")),
        leave_one_source_out: true,
        ..StackOptions::default()
    }
}

/// 16 train and dev rows of a small source `reposts` that copies `public`'s
/// texts under the opposite labels: how much it weighs moves the fit.
fn append_mislabelled_source(path: &std::path::Path) {
    let mut lines = std::fs::read_to_string(path).unwrap();
    for i in 0..16 {
        let hoax = i % 2 == 0;
        let text = if hoax { NEWS[i % 4] } else { HOAXES[i % 4] };
        lines += &serde_json::json!({
            "id": format!("m{i}"),
            "text": format!("{text} nomor {}", i / 2),
            "label": if hoax { "hoax" } else { "not" },
            "source": "reposts",
            "split": if i < 12 { "train" } else { "dev" },
        })
        .to_string();
        lines.push('\n');
    }
    std::fs::write(path, lines).unwrap();
}

#[test]
fn stacked_model_trains_on_binary_labels_scores_and_reports_held_out_sources() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny_stack_options(dir.path());
    let (out, data) = (opts.out.clone(), opts.data[0].clone());
    let report = stack(&opts).unwrap();
    assert!(report.platt.0 > 0.0, "{:?}", report.platt);
    // 80 rows in a 3:1:1 cycle of pairs: 48 train, 16 dev, 16 test.
    assert_eq!((report.train_examples, report.dev_examples), (48, 16));
    // The n-grams separate these texts; the random encoder alone cannot.
    assert_eq!(report.dev_roc_auc[&Views::Combined], Some(1.0));
    assert_eq!(report.dev_roc_auc[&Views::NgramsOnly], Some(1.0));
    // 8 dev news items, at most 2% above the threshold: none.
    let t = &report.threshold;
    assert_eq!((t.dev_protected, t.dev_protected_fpr), (8, 0.0));
    assert!(t.dev_recall >= 0.75, "{t:?}");

    let public = &report.leave_one_source_out["public"];
    let factcheck = &report.leave_one_source_out["factcheck"];
    // public: 60 rows of both labels; factcheck: its 20 hoaxes plus the 8
    // test news rows of public.
    assert_eq!((public.rows, public.one_sided), (60, false));
    assert_eq!((factcheck.rows, factcheck.one_sided), (28, true));
    assert_eq!(factcheck.roc_auc[&Views::Combined], Some(1.0));

    let clf = Classifier::load(&out, &InferenceOptions::default()).unwrap();
    assert_eq!(clf.info().name, "tiny-stacked");
    assert_eq!(clf.info().threshold, t.threshold);
    // Test-split rows (i = 18, 19): never seen by the fit.
    let (hoax, news) = (
        format!("{} nomor 9", HOAXES[2]),
        format!("{} nomor 9", NEWS[3]),
    );
    let texts = [hoax.as_str(), news.as_str(), "", "🤡 \u{0000}"];
    let preds = clf.score(&texts).unwrap();
    assert!(preds[0].label, "{:?}", preds[0]);
    assert!(!preds[1].label, "{:?}", preds[1]);
    for p in &preds {
        let sum: f32 = p.categories.values().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{p:?}");
        assert!((0.0..=1.0).contains(&p.score));
    }
    assert!(
        preds[0]
            .top_tokens
            .iter()
            .any(|t| ["awas", "sebarkan", "coblos"].contains(&t.to_lowercase().as_str())),
        "{:?}",
        preds[0].top_tokens
    );
    assert!(preds[2].top_tokens.is_empty());
    // The train rows are the shipped archive: the test hoax repeats a train
    // hoax's words, so its best match is a hoax claim above the threshold.
    assert_eq!(clf.claim_count(), Some(48));
    let best = &preds[0].matches[0];
    assert_eq!(best.claim.verdict, Verdict::Hoax);
    assert!(
        best.similarity >= report.match_threshold.unwrap(),
        "{best:?}"
    );
    assert!(best.claim.id.starts_with('r'), "{best:?}");

    let eval = evaluate(&out, &[data], Some(Split::Test), "eval_report").unwrap();
    assert_eq!((eval.n, eval.positives, eval.protected_fpr), (16, 8, 0.0));
    assert_eq!(eval.roc_auc, Some(1.0));

    // A re-run reads the encoder's outputs from the cache and reproduces the fit.
    let again = stack(&opts).unwrap();
    assert_eq!(again.dev_roc_auc, report.dev_roc_auc);
    assert_eq!(again.threshold, report.threshold);
    assert_eq!(again.leave_one_source_out, report.leave_one_source_out);
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache")).unwrap().count(),
        1
    );
}

#[test]
fn stacking_without_dev_rows_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let encoder = dir.path().join("encoder");
    build_tiny_model(&encoder, 3).unwrap();
    let data = dir.path().join("train_only.jsonl");
    std::fs::write(
        &data,
        "{\"text\": \"sebarkan ini\", \"label\": \"hoax\", \"split\": \"train\"}\n\
         {\"text\": \"kpu umumkan\", \"label\": \"not\", \"split\": \"train\"}\n",
    )
    .unwrap();
    let err = stack(&StackOptions {
        data: vec![data],
        encoder,
        out: dir.path().join("out"),
        ..StackOptions::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("stacking needs train and dev rows (dev sets the threshold)"),
        "{err}"
    );
}

#[test]
fn of_several_source_balances_the_one_best_on_held_out_sources_ships() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StackOptions {
        source_balance: vec![6.0, 0.0],
        ..tiny_stack_options(dir.path())
    };
    append_mislabelled_source(&opts.data[0]);
    let report = stack(&opts).unwrap();
    let means: Vec<(f32, f64)> = report
        .source_balance_choice
        .iter()
        .map(|c| (c.source_balance, c.mean_held_out_roc_auc.unwrap()))
        .collect();
    // Weighing the small mislabelled source 6x its size makes the fit learn
    // its labels, and held out its rows score worse: the second balance ships.
    assert_eq!(means.iter().map(|m| m.0).collect::<Vec<_>>(), [6.0, 0.0]);
    assert!(means[0].1 < means[1].1, "{means:?}");
    let best = means[1];
    assert_eq!(report.source_balance, 0.0);
    let shipped: Vec<f64> = report
        .leave_one_source_out
        .values()
        .map(|h| h.roc_auc[&Views::Combined].unwrap())
        .collect();
    assert!((shipped.iter().sum::<f64>() / shipped.len() as f64 - best.1).abs() < 1e-12);

    // What ships is exactly what a run given that balance alone writes.
    let alone_dir = dir.path().join("alone");
    let alone = stack(&StackOptions {
        source_balance: vec![best.0],
        out: alone_dir.clone(),
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(alone.leave_one_source_out, report.leave_one_source_out);
    assert_eq!(alone.threshold, report.threshold);
    assert_eq!(alone.platt, report.platt);
    let head = |d: &std::path::Path| std::fs::read(d.join(STACK_FILE)).unwrap();
    assert_eq!(head(&alone_dir), head(&opts.out));
}

#[test]
fn several_source_balances_without_held_out_sources_or_none_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = stack(&StackOptions {
        source_balance: vec![0.0, 0.5],
        leave_one_source_out: false,
        ..tiny_stack_options(dir.path())
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "bad data: choosing among several source balances needs leave-one-source-out: \
         they are ranked by their held-out ROC-AUC"
    );
    let err = stack(&StackOptions {
        source_balance: vec![],
        ..tiny_stack_options(dir.path())
    })
    .unwrap_err()
    .to_string();
    assert_eq!(err, "bad data: source_balance needs at least one value");
}

#[test]
fn recorded_options_load_with_one_source_balance_or_several() {
    let one: StackOptions = serde_json::from_str(r#"{"source_balance": 0.5}"#).unwrap();
    let many: StackOptions = serde_json::from_str(r#"{"source_balance": [0, 0.5]}"#).unwrap();
    assert_eq!(one.source_balance, [0.5]);
    assert_eq!(many.source_balance, [0.0, 0.5]);
    assert_eq!(StackOptions::default().source_balance, [0.0]);
}
