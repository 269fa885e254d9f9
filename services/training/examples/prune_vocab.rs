//! Prunes a model directory's vocabulary in place (what `patroli train
//! --teacher` does after distilling), e.g. for a student distilled before
//! pruning existed, or to try another `top`.
//!
//! cargo run --release -p patroli-training --example prune_vocab -- MODEL_DIR DATA TOP

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, data, top] = &args[..] else {
        return Err("usage: prune_vocab MODEL_DIR DATA TOP".into());
    };
    let kept = patroli_training::prune_vocab(
        &PathBuf::from(dir),
        &[PathBuf::from(data)],
        &[],
        top.parse()?,
    )?;
    println!("{dir}: kept {kept} pieces");
    Ok(())
}
