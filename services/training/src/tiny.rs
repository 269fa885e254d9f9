//! A complete, tiny random model directory with the real layout, so tests can
//! exercise loading, batching, scoring and training in seconds.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::{CATEGORIES, DISINFO_CATEGORIES};
use crate::ModelError;
use patroli_inference::bert::{BertConfig, LAYER_TENSORS};
use patroli_inference::spec::{ModelSpec, WEIGHTS_FILE};

const WORDS: &[&str] = &[
    "query",
    "pemilu",
    "kpu",
    "bawaslu",
    "tps",
    "surat",
    "suara",
    "coblos",
    "tercoblos",
    "hoaks",
    "hoax",
    "tidak",
    "benar",
    "sebarkan",
    "viral",
    "resmi",
    "pilpres",
    "capres",
    "caleg",
    "partai",
    "jadwal",
    "pemungutan",
    "februari",
    "pukul",
    "wib",
    "ktp",
    "dpt",
    "curang",
    "kotak",
    "klarifikasi",
    "yang",
    "yg",
    "dan",
    "di",
    "ke",
    "dari",
    "ini",
    "itu",
    "ada",
    "gak",
    "gk",
    "tdk",
    "sudah",
    "akan",
    "saya",
    "kita",
    "mereka",
    "bapak",
    "ibu",
    "hari",
    "besok",
    "warga",
    "berita",
    "info",
    "cek",
    "fakta",
    "salah",
    "penipuan",
    "link",
    "bantuan",
    "gratis",
    "vaksin",
    "gempa",
    "china",
    "tka",
    "pki",
    "anies",
    "prabowo",
    "ganjar",
    "gibran",
    "mahfud",
    "muhaimin",
    "jakarta",
    "makan",
    "bola",
];

/// Writes a model directory at `dir`: `base/` (tiny BERT config, random
/// weights, a small SentencePiece-style tokenizer.json) plus the trained
/// top layer, head, `patroli.json` and `labels.json`. Loads through the
/// same `Classifier::load` path as the real model.
pub fn build_tiny_model(dir: &Path, seed: u64) -> Result<(), ModelError> {
    let base_dir = dir.join("base");
    std::fs::create_dir_all(&base_dir).map_err(|e| ModelError::io(&base_dir, e))?;
    let tokenizer = tiny_tokenizer_json();
    let vocab_size = tokenizer["model"]["vocab"].as_array().map_or(0, Vec::len);
    let cfg = BertConfig {
        vocab_size,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 64,
        hidden_act: "gelu".into(),
        max_position_embeddings: 512,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        pad_token_id: 1,
    };
    cfg.save(&base_dir.join("config.json"))?;
    let tok_path = base_dir.join("tokenizer.json");
    std::fs::write(&tok_path, tokenizer.to_string()).map_err(|e| ModelError::io(&tok_path, e))?;

    let mut rng = StdRng::seed_from_u64(seed);
    let mut base = HashMap::new();
    let h = cfg.hidden_size;
    for (name, shape) in [
        ("embeddings.word_embeddings.weight", vec![vocab_size, h]),
        (
            "embeddings.position_embeddings.weight",
            vec![cfg.max_position_embeddings, h],
        ),
        ("embeddings.token_type_embeddings.weight", vec![2, h]),
    ] {
        base.insert(name.to_string(), random(&mut rng, &shape, 0.5)?);
    }
    base.insert(
        "embeddings.LayerNorm.weight".into(),
        Tensor::ones(h, candle_core::DType::F32, &Device::Cpu)?,
    );
    base.insert(
        "embeddings.LayerNorm.bias".into(),
        Tensor::zeros(h, candle_core::DType::F32, &Device::Cpu)?,
    );
    let mut trained = HashMap::new();
    for l in 0..cfg.num_hidden_layers {
        let last = l + 1 == cfg.num_hidden_layers;
        for name in LAYER_TENSORS {
            // The base keeps every layer so it can be trained from; the
            // trained file overrides the last one, as a fine-tuned model does.
            let t = layer_tensor(&mut rng, name, &cfg)?;
            if last {
                trained.insert(
                    format!("top.{l}.{name}"),
                    layer_tensor(&mut rng, name, &cfg)?,
                );
            }
            base.insert(format!("encoder.layer.{l}.{name}"), t);
        }
    }
    trained.insert(
        "head.weight".into(),
        random(&mut rng, &[CATEGORIES.len(), h], 0.5)?,
    );
    trained.insert(
        "head.bias".into(),
        random(&mut rng, &[CATEGORIES.len()], 0.1)?,
    );
    candle_core::safetensors::save(&base, base_dir.join("model.safetensors"))?;
    candle_core::safetensors::save(&trained, dir.join(WEIGHTS_FILE))?;
    tiny_spec(1).save(dir)
}

/// The spec of a tiny model; `finetuned` top layers come from the trained file.
pub(crate) fn tiny_spec(finetuned: usize) -> ModelSpec {
    ModelSpec {
        name: "patroli-tiny".into(),
        version: "0.0.0-test".into(),
        base_dir: "base".into(),
        text_prefix: "query: ".into(),
        max_len: 64,
        threshold: 0.5,
        temperature: 1.0,
        categories: CATEGORIES.iter().map(|s| s.to_string()).collect(),
        disinformation_categories: DISINFO_CATEGORIES.iter().map(|s| s.to_string()).collect(),
        finetuned_layers: finetuned,
        bos_id: 0,
        eos_id: 2,
        pad_id: 1,
        data_sha: None,
        stack: None,
        claims: None,
        encoder_layers: None,
        vocab: None,
        int8: false,
    }
}

fn layer_tensor(rng: &mut StdRng, name: &str, cfg: &BertConfig) -> Result<Tensor, ModelError> {
    let (h, ff) = (cfg.hidden_size, cfg.intermediate_size);
    let dev = &Device::Cpu;
    let f32 = candle_core::DType::F32;
    Ok(match name {
        n if n.ends_with("LayerNorm.weight") => Tensor::ones(h, f32, dev)?,
        n if n.ends_with("LayerNorm.bias") => Tensor::zeros(h, f32, dev)?,
        "intermediate.dense.weight" => random(rng, &[ff, h], 0.3)?,
        "intermediate.dense.bias" => random(rng, &[ff], 0.05)?,
        "output.dense.weight" => random(rng, &[h, ff], 0.3)?,
        n if n.ends_with("weight") => random(rng, &[h, h], 0.3)?,
        _ => random(rng, &[h], 0.05)?,
    })
}

fn random(rng: &mut StdRng, shape: &[usize], scale: f32) -> Result<Tensor, ModelError> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// A Unigram tokenizer in tokenizer.json form, shaped like XLM-R's (specials
/// at 0..=3, Metaspace pre-tokenizer), over a few domain words and characters.
fn tiny_tokenizer_json() -> serde_json::Value {
    let mut vocab: Vec<(String, f64)> = ["<s>", "<pad>", "</s>", "<unk>"]
        .iter()
        .map(|s| (s.to_string(), 0.0))
        .collect();
    vocab.push(("\u{2581}".into(), -8.0));
    for w in WORDS {
        vocab.push((format!("\u{2581}{w}"), -5.0));
    }
    for c in ('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain(".,!?:;-#@'\"/()".chars())
    {
        vocab.push((c.to_string(), -10.0));
    }
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u{2581}", "add_prefix_space": true},
        "post_processor": null,
        "decoder": {"type": "Metaspace", "replacement": "\u{2581}", "add_prefix_space": true},
        "model": {"type": "Unigram", "unk_id": 3, "vocab": vocab},
    })
}
