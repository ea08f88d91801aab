//! How grayscale pixels become targets: dynamic, static or no binarization, and the fixed test targets.

use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::batch::GRAY;
use super::split::Split;

/// The seed of the one draw that fixes the training targets under [`Binarize::Static`].
pub const STATIC_BINARIZE_SEED: u64 = 0x5eed_0001;

/// The seed of the one draw that fixes the test targets under [`Binarize::Dynamic`] and
/// [`Binarize::Static`] (see [`eval_targets`]), so every evaluation scores the same targets.
pub const EVAL_BINARIZE_SEED: u64 = 0x5eed_0002;

/// How training targets are made from grayscale pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Binarize {
    /// A fresh Bernoulli(`pixel / 255`) sample every time an image is used (IWAE, Burda et al.).
    #[default]
    Dynamic,
    /// One Bernoulli(`pixel / 255`) sample per pixel, drawn once with [`STATIC_BINARIZE_SEED`].
    Static,
    /// Grayscale targets `pixel / 255` (as pytorch/examples' VAE).
    None,
}

impl Binarize {
    /// The name accepted by [`FromStr`]: `dynamic`, `static` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            Binarize::Dynamic => "dynamic",
            Binarize::Static => "static",
            Binarize::None => "none",
        }
    }
}

impl fmt::Display for Binarize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A binarization name that is not `dynamic`, `static` or `none`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown binarization {0:?}: expected dynamic, static or none")]
pub struct UnknownBinarize(pub String);

impl FromStr for Binarize {
    type Err = UnknownBinarize;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Binarize::Dynamic, Binarize::Static, Binarize::None]
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBinarize(s.to_owned()))
    }
}

/// `split` with each pixel replaced by one Bernoulli(`pixel / 255`) draw, stored as 0 or 255 (so
/// that `pixel / 255` of the result is the 0/1 target).
pub fn binarize_once(split: &Split, rng: &mut ChaCha8Rng) -> Split {
    let pixels = split
        .pixels()
        .iter()
        .map(|&p| {
            let u: f32 = rng.random();
            if u < GRAY[usize::from(p)] { 255 } else { 0 }
        })
        .collect();
    split.with_pixels(pixels)
}

/// The fixed evaluation targets of a test split: binarized once with [`EVAL_BINARIZE_SEED`] under
/// `Dynamic` and `Static`, left grayscale under `None`. Iterate them with [`Split::batches`].
pub fn eval_targets(test: &Split, binarize: Binarize) -> Split {
    match binarize {
        Binarize::Dynamic | Binarize::Static => {
            binarize_once(test, &mut ChaCha8Rng::seed_from_u64(EVAL_BINARIZE_SEED))
        }
        Binarize::None => test.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_three_names() {
        for b in [Binarize::Dynamic, Binarize::Static, Binarize::None] {
            assert_eq!(b.to_string().parse::<Binarize>(), Ok(b));
        }
        assert_eq!(Binarize::default(), Binarize::Dynamic);
        let err = "Dynamic".parse::<Binarize>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown binarization \"Dynamic\": expected dynamic, static or none"
        );
    }

    /// 100 images of 1×2: pixels 0 and 128.
    fn halves() -> Split {
        Split::new([0, 128].repeat(100), vec![0; 100], (1, 2))
    }

    #[test]
    fn binarize_once_draws_zero_or_255_at_the_pixel_rate() {
        let b = binarize_once(&halves(), &mut ChaCha8Rng::seed_from_u64(3));
        assert!(b.pixels().iter().all(|&p| p == 0 || p == 255));
        // Pixel 0 never fires; pixel 128 fires with p = 128/255 ≈ 0.502: 100 draws have
        // standard deviation √(100·0.502·0.498) ≈ 5, so 50 ± 20 is four of them.
        let ones: Vec<usize> = (0..2)
            .map(|j| (0..100).filter(|&i| b.image(i)[j] == 255).count())
            .collect();
        assert_eq!(ones[0], 0);
        assert!((30..=70).contains(&ones[1]), "{ones:?}");
        assert_eq!(b.labels(), halves().labels());
    }

    #[test]
    fn eval_targets_are_fixed_and_none_keeps_grayscale() {
        let test = halves();
        let a = eval_targets(&test, Binarize::Dynamic);
        // Same seed inside, so Dynamic and Static score the very same targets, every call.
        assert_eq!(a, eval_targets(&test, Binarize::Static));
        assert_eq!(a, eval_targets(&test, Binarize::Dynamic));
        assert_ne!(a, test);
        assert_eq!(eval_targets(&test, Binarize::None), test);
    }
}
