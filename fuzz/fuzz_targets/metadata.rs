//! A run's settings read from a checkpoint's metadata (what `eval`, `sample` and `--resume`
//! trust), from arbitrary key = value lines: accepted or refused, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nn::checkpoint::Metadata;
use vae::model::RunConfig;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let meta: Metadata = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(config) = RunConfig::default().from_checkpoint(&meta, Path::new("fuzz.safetensors")) {
        assert!(config.validate().is_ok());
    }
});
