//! `patroli train --teacher`: a student distilled from the tiny model, end
//! to end (train, pick the epoch on dev, prune the vocabulary, load, score).

use patroli_inference::{Classifier, InferenceOptions, ModelSpec, VOCAB_FILE};
use patroli_training::{build_tiny_model, distill, DistillOptions};

const TRAIN: [&str; 4] = [
    "sebarkan surat suara sudah tercoblos",
    "kpu umumkan jadwal pemungutan suara",
    "viral kotak suara hilang sebarkan",
    "capres hadiri debat resmi di jakarta",
];

/// `rows` labelled texts cycling through `TRAIN`, every fourth in dev.
fn write_texts(path: &std::path::Path, rows: usize) {
    let lines: String = (0..rows)
        .map(|i| {
            let split = if i % 4 == 3 { "dev" } else { "train" };
            let text = format!("{} {i}", TRAIN[i % 4]);
            serde_json::json!({"text": text, "label": "not", "source": "s", "split": split})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(path, lines).unwrap();
}

#[test]
fn a_student_learns_the_teachers_vectors_and_keeps_only_the_pieces_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher");
    build_tiny_model(&teacher, 3).unwrap();
    let data = dir.path().join("texts.jsonl");
    write_texts(&data, 40);
    // Unlabelled posts teach too; a record needs only its text.
    let posts = dir.path().join("posts.jsonl");
    std::fs::write(
        &posts,
        "{\"text\": \"surat suara dicoblos duluan\"}\n\n{\"text\": \"debat capres malam ini\", \"event_id\": \"e2\"}\n",
    )
    .unwrap();
    let out = dir.path().join("student");
    let opts = DistillOptions {
        data: vec![data],
        unlabelled: vec![posts],
        teacher: teacher.clone(),
        out: out.clone(),
        name: "tiny-student".into(),
        version: "0.0.1".into(),
        layers: 1,
        epochs: 6,
        lr: 3e-3,
        keep_top_pieces: 0,
        ..DistillOptions::default()
    };
    let report = distill(&opts).unwrap();
    assert_eq!(
        (
            report.train_texts,
            report.unlabelled_texts,
            report.dev_texts
        ),
        (32, 2, 10)
    );
    assert_eq!(report.initialised_from, vec![1], "the teacher's last layer");
    assert_eq!(report.epochs.len(), 6);
    let first = report.epochs[0].dev_mse;
    let best = report.epochs[report.best_epoch - 1].dev_mse;
    assert!(best < first * 0.7, "dev mse {first} -> {best}");
    assert!(report.epochs.iter().all(|e| e.dev_mse >= best));

    let spec = ModelSpec::load(&out).unwrap();
    assert_eq!(
        (
            spec.encoder_layers,
            spec.finetuned_layers,
            spec.vocab.as_deref()
        ),
        (Some(1), 1, Some(VOCAB_FILE))
    );
    let kept: Vec<u32> =
        serde_json::from_str(&std::fs::read_to_string(out.join(VOCAB_FILE)).unwrap()).unwrap();
    // 4 specials, 78 one-character pieces and the train texts' words.
    assert_eq!(kept[..4], [0, 1, 2, 3]);
    assert_eq!(
        report.vocabulary,
        kept.len(),
        "the report counts the kept ids"
    );

    let teacher = Classifier::load(&teacher, &InferenceOptions::default()).unwrap();
    let student = Classifier::load(&out, &InferenceOptions::default()).unwrap();
    // A trained text segments as before; a word no train text has (`bawaslu`
    // is a tiny-vocabulary word) falls back to its letters.
    let seen = "kpu umumkan jadwal";
    assert_eq!(
        student.tokenize(seen).unwrap().len(),
        teacher.tokenize(seen).unwrap().len()
    );
    let unseen = "bawaslu";
    // <s> ▁query : ▁bawaslu </s>, then ▁ b a w a s l u in its place.
    assert_eq!(teacher.tokenize(unseen).unwrap().len(), 5);
    assert_eq!(student.tokenize(unseen).unwrap().len(), 5 - 1 + 8);
    // A word only an unlabelled post has (`ini`) keeps its piece too.
    assert_eq!(
        student.tokenize("ini").unwrap().len(),
        teacher.tokenize("ini").unwrap().len()
    );
    let scored = student.score(&[seen, unseen, ""]).unwrap();
    assert_eq!(scored.len(), 3);
    assert!(scored.iter().all(|p| (0.0..=1.0).contains(&p.score)));
}

/// An int8 teacher (the shipped default) teaches from its f32 weights: its
/// student starts from, and learns, exactly what the same teacher in f32
/// gives.
#[test]
fn a_teachers_int8_flag_does_not_change_its_student() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("texts.jsonl");
    write_texts(&data, 24);
    let student_of = |int8: bool| {
        let teacher = dir.path().join(format!("teacher-{int8}"));
        build_tiny_model(&teacher, 3).unwrap();
        let mut spec = ModelSpec::load(&teacher).unwrap();
        spec.int8 = int8;
        spec.save(&teacher).unwrap();
        distill(&DistillOptions {
            data: vec![data.clone()],
            teacher,
            out: dir.path().join(format!("student-{int8}")),
            layers: 1,
            epochs: 2,
            keep_top_pieces: 0,
            ..DistillOptions::default()
        })
        .unwrap()
    };
    let (f32_taught, int8_taught) = (student_of(false), student_of(true));
    let learnt = |r: &patroli_training::DistillReport| -> Vec<(f64, f64, f64)> {
        r.epochs
            .iter()
            .map(|e| (e.train_mse, e.dev_mse, e.dev_cosine))
            .collect()
    };
    assert_eq!(learnt(&int8_taught), learnt(&f32_taught));
    assert_eq!(int8_taught.best_epoch, f32_taught.best_epoch);
}

#[test]
fn a_student_as_deep_as_its_teacher_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    build_tiny_model(dir.path(), 3).unwrap();
    let opts = DistillOptions {
        teacher: dir.path().to_path_buf(),
        out: dir.path().join("student"),
        layers: 2,
        ..DistillOptions::default()
    };
    let err = distill(&opts).unwrap_err().to_string();
    assert_eq!(
        err,
        "bad model format: a student needs at least one layer and fewer than its teacher's 2, not 2"
    );
}

#[test]
fn an_unlabelled_record_without_text_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    build_tiny_model(dir.path(), 3).unwrap();
    let data = dir.path().join("texts.jsonl");
    std::fs::write(
        &data,
        "{\"text\": \"kpu umumkan jadwal\", \"label\": \"not\", \"split\": \"train\"}\n",
    )
    .unwrap();
    let posts = dir.path().join("posts.jsonl");
    std::fs::write(&posts, "{\"text\": \"ok\"}\n{\"body\": \"no text here\"}\n").unwrap();
    let opts = DistillOptions {
        data: vec![data],
        unlabelled: vec![posts.clone()],
        teacher: dir.path().to_path_buf(),
        out: dir.path().join("student"),
        layers: 1,
        ..DistillOptions::default()
    };
    let err = distill(&opts).unwrap_err().to_string();
    assert!(
        err.contains(&format!("{}:2: missing field `text`", posts.display())),
        "{err}"
    );
}
