//! Re-runs a training from its recorded options (a `TrainOptions` JSON
//! object, or a model's `train_report.json`) and evaluates the result on the
//! test split of its data (`eval_report.{json,md}` in the model directory).
//! Builds with the model crate alone, so a retrain on a busy machine does not
//! wait for the whole service binary.
//!
//! cargo run -p patroli-training --example retrain -- [--eval-only] OPTIONS.json

use patroli_training::{evaluate, train, Split, TrainOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let eval_only = args.iter().any(|a| a == "--eval-only");
    let path = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .ok_or("usage: retrain [--eval-only] OPTIONS.json (TrainOptions or a train_report.json)")?;
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let opts: TrainOptions = serde_json::from_value(v.get("options").cloned().unwrap_or(v))?;
    if !eval_only {
        let r = train(&opts)?;
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    let e = evaluate(&opts.out, &opts.data, Some(Split::Test), "eval_report")?;
    println!("{}", e.to_markdown());
    Ok(())
}
