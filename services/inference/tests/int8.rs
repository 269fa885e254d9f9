//! An int8 encoder drops its f32 projections once quantised, and training
//! from one fails with a message that says how to load it instead.

use patroli_inference::{int8_supported, Classifier, InferenceOptions};

#[test]
fn an_int8_encoder_keeps_no_f32_weights_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    patroli_training::build_tiny_model(dir.path(), 3).unwrap();
    let load = |int8| {
        Classifier::load(
            dir.path(),
            &InferenceOptions {
                int8: Some(int8),
                ..InferenceOptions::default()
            },
        )
        .unwrap()
    };
    assert!(load(false).network().layers[0].tensors().is_ok());
    let int8 = load(true);
    let copied = int8.network().layers[0].tensors().map(|_| ());
    if int8_supported() {
        assert_eq!(
            copied.unwrap_err().to_string(),
            "this layer runs in int8 and kept no f32 weights: load the model with int8 off \
             to train or copy from it"
        );
    } else {
        assert!(copied.is_ok(), "without VNNI the layer stays f32");
    }
}
