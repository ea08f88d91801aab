//! The IDX gz reader (images and labels) on arbitrary bytes: `Ok` or `Err`, never a panic, and
//! never more memory than `MAX_BODY_BYTES` however large the header's declared size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vae::data::{parse_images, parse_labels};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(images) = parse_images(bytes) {
        assert_eq!(images.pixels.len(), images.count * images.height * images.width);
    }
    if let Ok(labels) = parse_labels(bytes) {
        assert!(labels.iter().all(|&l| l < 10));
    }
});
