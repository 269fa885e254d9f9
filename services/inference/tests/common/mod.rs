#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The installed base encoder; panics (fails the test) with the fix when absent.
pub fn base_dir() -> PathBuf {
    let dir = match std::env::var_os(patroli_inference::BASE_DIR_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join("models/base/multilingual-e5-small"),
    };
    assert!(
        dir.join("model.safetensors").exists() && dir.join("tokenizer.json").exists(),
        "base encoder not found in {}: run models/install-base.sh first",
        dir.display()
    );
    dir
}

pub fn shipped_model_dir() -> PathBuf {
    base_dir();
    repo_root().join(patroli_inference::DEFAULT_MODEL_DIR)
}
