//! A run's settings read from a checkpoint's metadata (what `eval`, `sample` and `--resume`
//! trust), from arbitrary key = value lines: accepted or refused, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nn::checkpoint::Metadata;
use vae::run::RunConfig;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let meta: Metadata = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut config = RunConfig::default();
    if config.apply_checkpoint(&meta, Path::new("fuzz.safetensors")).is_ok() {
        assert!(config.validate().is_ok());
    }
});
