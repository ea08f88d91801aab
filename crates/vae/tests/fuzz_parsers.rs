//! The IDX gz reader and the checkpoint metadata reader on arbitrary input: a bounded, seeded
//! fuzz run that `cargo test` does every time (the open-ended one is `fuzz/`, cargo-fuzz).
//! Whatever the bytes, they give `Ok` or `Err`, never a panic; the IDX reader's allocation is
//! bounded by `MAX_BODY_BYTES` whatever the header declares.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use nn::checkpoint::Metadata;
use proptest::prelude::*;
use vae::data::{parse_images, parse_labels};
use vae::model::RunConfig;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A valid IDX images file of 3 images of 2×2 (uncompressed).
fn images() -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2];
    bytes.extend((0..12).map(|i| i * 20));
    bytes
}

fn parse_both(gz_bytes: &[u8]) {
    if let Ok(images) = parse_images(gz_bytes) {
        assert_eq!(
            images.pixels.len(),
            images.count * images.height * images.width
        );
    }
    if let Ok(labels) = parse_labels(gz_bytes) {
        assert!(labels.iter().all(|&l| l < 10));
    }
}

/// A metadata map with the keys a checkpoint has, each value arbitrary or dropped.
fn metadata() -> impl Strategy<Value = Metadata> {
    let keys = [
        "model",
        "observe",
        "labels",
        "alpha",
        "noise",
        "noise_level",
        "dataset",
        "train_limit",
        "binarize",
        "hidden",
        "latent_dim",
        "activation",
        "likelihood",
        "beta",
        "batch_size",
        "lr",
        "lr_schedule",
        "seed",
        "epoch",
        "image_size",
    ];
    let value = prop_oneof![
        Just("vae".to_string()),
        Just("dae".to_string()),
        Just("m2".to_string()),
        Just("none".to_string()),
        Just("400,0".to_string()),
        Just("NaN".to_string()),
        Just("-1".to_string()),
        "[a-z0-9.,:-]{0,12}",
    ];
    prop::collection::vec(prop::option::of(value), keys.len()).prop_map(move |values| {
        keys.iter()
            .zip(values)
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        parse_both(&bytes);
        parse_both(&gz(&bytes));
    }

    #[test]
    fn a_valid_file_with_bytes_changed_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut raw = images();
        for (at, byte) in edits {
            let i = at.index(raw.len());
            raw[i] = byte;
        }
        if truncate {
            raw.truncate(cut.index(raw.len()));
        }
        parse_both(&gz(&raw));
        // The compressed bytes changed too.
        let mut compressed = gz(&images());
        let i = cut.index(compressed.len());
        compressed[i] ^= 0x55;
        parse_both(&compressed);
    }

    #[test]
    fn any_declared_size_is_refused_or_read_within_the_cap(
        dims in prop::collection::vec(any::<u32>(), 3),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut raw = vec![0, 0, 8, 3];
        for d in &dims {
            raw.extend(d.to_be_bytes());
        }
        raw.extend(body);
        parse_both(&gz(&raw));
    }

    #[test]
    fn checkpoint_metadata_of_any_values_is_accepted_or_refused(meta in metadata()) {
        let found = RunConfig::default().from_checkpoint(&meta, Path::new("fuzz.safetensors"));
        if let Ok(config) = found {
            prop_assert!(config.validate().is_ok());
        }
    }

    #[test]
    fn settings_of_any_toml_are_accepted_or_refused(
        text in "(model = \"(vae|gan|dae|pixel-ar)\"\n)?(epochs = [0-9]{1,3}\n)?(seed = -?[0-9]{1,3}\n)?\
                 (iw_samples = [0-9]\n)?(\\[data\\]\n(dataset = \"(mnist|x)\"\n)?\
                 (classes = \"[0-9a-z,]{0,5}\"\n)?(binarize = \"(none|static)\"\n)?)?\
                 (\\[optimizer\\]\nbatch_size = [0-9]{1,2}\nlr = [0-9.e-]{1,5}\n\
                 weight_decay = 0.0\nlr_schedule = \"cosine\"\n)?\
                 (\\[(vae|gan|dae)\\]\n(hidden = \\[[0-9, ]{0,6}\\]\n)?\
                 (latent_dim = [0-9]{1,2}\n)?(noise_level = -?[0-9.]{1,4}\n)?)?"
    ) {
        let mut meta = Metadata::new();
        meta.insert("settings".into(), text);
        let found = RunConfig::default().from_checkpoint(&meta, Path::new("fuzz.safetensors"));
        if let Ok(config) = found {
            prop_assert!(config.validate().is_ok());
        }
    }
}
