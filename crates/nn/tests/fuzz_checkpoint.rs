//! The checkpoint loader on arbitrary bytes: a bounded, seeded fuzz run that `cargo test` does
//! every time (the open-ended one is `fuzz/`, cargo-fuzz). Whatever the bytes, loading returns
//! `Ok` or `Err` (never a panic), and on `Err` the parameters and optimizer are unchanged.

use nn::checkpoint::{self, ErrorKind};
use nn::{Activation, Adam, AdamConfig, Mlp, MlpConfig, Optimizer, ParamStore};
use std::sync::OnceLock;

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A small model and its optimizer, and the bytes of its checkpoint (written once).
fn model() -> (ParamStore, Adam, Vec<u8>) {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let mut store = ParamStore::new();
    let config = MlpConfig::new(&[3, 4, 2], Activation::Tanh);
    Mlp::new(
        &mut store,
        "net",
        &config,
        &mut ChaCha8Rng::seed_from_u64(0),
    );
    let adam = Adam::new(&store, AdamConfig::default());
    let bytes = BYTES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("henbun-fuzz-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ck.safetensors");
        checkpoint::save(&path, &store, &adam, &Default::default()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        bytes
    });
    (store, adam, bytes.clone())
}

/// Loads `bytes` every way a checkpoint is read; checks nothing changed on error.
fn load_every_way(bytes: &[u8]) {
    let (mut store, mut adam, _) = model();
    let before: Vec<_> = store.iter().map(|(_, _, v)| v.clone()).collect();
    let state = adam.state();
    let unchanged = |store: &ParamStore| store.iter().map(|(_, _, v)| v.clone()).eq(before.clone());
    if checkpoint::load_from_bytes(bytes, &mut store, &mut adam).is_err() {
        assert!(unchanged(&store));
        assert_eq!(adam.state(), state);
    }
    let (mut store, _, _) = model();
    if checkpoint::load_params_from_bytes(bytes, &mut store).is_err() {
        assert!(unchanged(&store));
    }
    let _: Result<_, ErrorKind> = checkpoint::metadata_from_bytes(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        load_every_way(&bytes);
    }

    #[test]
    fn a_valid_checkpoint_with_bytes_changed_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (_, _, mut bytes) = model();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        load_every_way(&bytes);
    }

    #[test]
    fn a_header_of_any_length_never_panics(len in any::<u64>(), tail in prop::collection::vec(any::<u8>(), 0..64)) {
        // The 8-byte length prefix claims anything, up to u64::MAX.
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend(tail);
        load_every_way(&bytes);
    }
}
