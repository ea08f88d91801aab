//! The checkpoint loader on arbitrary bytes: `Ok` or `Err`, never a panic, and a failed load
//! leaves the parameters and the optimizer as they were.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nn::checkpoint;
use nn::{Activation, Adam, AdamConfig, Mlp, MlpConfig, Optimizer, ParamStore};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fuzz_target!(|bytes: &[u8]| {
    let mut store = ParamStore::new();
    let config = MlpConfig::new(&[3, 4, 2], Activation::Tanh);
    Mlp::new(&mut store, "net", &config, &mut ChaCha8Rng::seed_from_u64(0));
    let mut adam = Adam::new(&store, AdamConfig::default());
    let before: Vec<_> = store.iter().map(|(_, _, v)| v.clone()).collect();
    let state = adam.state();
    if checkpoint::load_from_bytes(bytes, &mut store, &mut adam).is_err() {
        assert!(store.iter().map(|(_, _, v)| v.clone()).eq(before.clone()));
        assert_eq!(adam.state(), state);
    }
    let _ = checkpoint::load_params_from_bytes(bytes, &mut store);
    let _ = checkpoint::metadata_from_bytes(bytes);
});
