//! Element-wise loops compiled for the widest vector instructions the CPU has, chosen at run
//! time.
//!
//! The workspace is built for baseline x86-64, where a loop over `f32` vectorises four lanes wide
//! (SSE2). A function written inside [`widest!`](crate::widest) is compiled three times: as
//! built, for AVX2 + FMA and for AVX-512F; each call runs the widest copy this CPU can. The
//! body's loops and the `#[inline]` helpers they call are then vectorised 8 or 16 lanes wide.
//!
//! The results are the same bits on every path: Rust never contracts `a·b + c` into a fused
//! multiply-add, IEEE-754 addition, multiplication, division and square root are correctly
//! rounded at any width, and the compiler keeps a loop's reductions in their written order (which
//! is why sums are written with explicit lanes, as in `sum_lanes`). The test below, and the
//! unchanged checkpoint bytes of the default run, check this.

use std::sync::OnceLock;

/// Whether this CPU has AVX-512F (detected once).
#[doc(hidden)]
pub fn has_avx512() -> bool {
    crate::avx512::available()
}

/// Whether this CPU has AVX2 and FMA (detected once).
#[doc(hidden)]
pub fn has_avx2_fma() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(detect_avx2_fma)
}

#[cfg(target_arch = "x86_64")]
fn detect_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_avx2_fma() -> bool {
    false
}

/// Defines a function whose body is compiled for AVX-512F, for AVX2 + FMA and as built, and
/// which runs the widest copy this CPU has (see [the module](crate::simd)). Arguments are plain
/// `name: Type` pairs; the body should be loops over slices and calls of `#[inline]` functions.
///
/// ```
/// autodiff::widest! {
///     /// `y ← a·x + y`.
///     pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
///         for (y, &x) in y.iter_mut().zip(x) {
///             *y += a * x;
///         }
///     }
/// }
/// let mut y = vec![1.0; 3];
/// axpy(2.0, &[1.0, 2.0, 3.0], &mut y);
/// assert_eq!(y, [3.0, 5.0, 7.0]);
/// ```
#[macro_export]
macro_rules! widest {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? $body
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? $body
                if $crate::simd::has_avx512() {
                    // SAFETY: the CPU has AVX-512F, AVX2 and FMA, checked at run time.
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::simd::has_avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA, checked at run time.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::math::{softplus_and_logistic, sum_lanes};

    /// The loop of the test, once through [`widest!`](crate::widest) and once as built.
    #[inline(always)]
    fn terms(xs: &[f32]) -> f32 {
        let terms: Vec<f32> = xs
            .iter()
            .map(|&l| {
                let (softplus, logistic) = softplus_and_logistic(l);
                softplus * logistic / (1.0 + l.abs().sqrt()) + 0.25 * l
            })
            .collect();
        sum_lanes(&terms)
    }

    crate::widest! {
        fn widest_terms(xs: &[f32]) -> f32 {
            terms(xs)
        }
    }

    /// The same loop on the widest path and as built gives the same bits.
    #[test]
    fn the_widest_path_gives_the_same_bits_as_the_baseline() {
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() * 30.0).collect();
        assert_eq!(widest_terms(&xs).to_bits(), terms(&xs).to_bits());
    }
}
