//! Runs `patroli stack` from its recorded options (a `StackOptions` JSON
//! object, or a model's `stack_report.json`) and evaluates the result on the
//! test split of its data (`eval_report.{json,md}` in the model directory).
//! Builds with the model crate alone, like the `retrain` example.
//!
//! cargo run -p patroli-training --example stack -- [--no-eval] OPTIONS.json

use patroli_training::{evaluate, stack, Split, StackOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .ok_or("usage: stack [--no-eval] OPTIONS.json (StackOptions or a stack_report.json)")?;
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let opts: StackOptions = serde_json::from_value(v.get("options").cloned().unwrap_or(v))?;
    let r = stack(&opts)?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    if args.iter().any(|a| a == "--no-eval") {
        return Ok(());
    }
    let e = evaluate(&opts.out, &opts.data, Some(Split::Test), "eval_report")?;
    println!("{}", e.to_markdown());
    Ok(())
}
