//! Scalar `f32` kernels for the fused losses: `e^{-a}` and `ln(1 + e)` as branch-free polynomials
//! that the compiler can vectorise, plus the stable logistic and softplus built on them.
//!
//! libm's `expf` and `log1pf` are calls the compiler cannot vectorise; in the Bernoulli
//! likelihood of a 128×784 batch they cost more than a third of the non-GEMM time of a training
//! step (measured with `perf`, see BENCHMARKS.md). These versions are accurate to a few ulps over
//! the ranges the losses use, which the tests below check against `f64`.
//!
//! Also the batch statistics of batch normalization, [`batch_moments`].

use ndarray::{Axis, Zip};

use crate::Matrix;

/// `e^{-a}` for `a ≥ 0` (0 for `a > 87`, below f32's smallest normal number).
///
/// `-a = n·ln 2 + r` with `|r| ≤ ½ ln 2`; `e^r` by its Taylor series to `r⁷` (truncation
/// `|r|⁸/8! < 5e-9`), times `2ⁿ` built in the exponent bits.
#[inline]
pub(crate) fn exp_neg(a: f32) -> f32 {
    // ln 2 split so that n·LN2_HI is exact for |n| < 2⁸.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Written so that a NaN stays NaN (`f32::min` would drop it).
    let x = -(if a > 87.0 { 87.0 } else { a });
    // Round to nearest by the 1.5·2²³ trick: `f32::round` is a libm call on baseline x86-64.
    const ROUND: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // n ∈ [-126, 0] here, so 2ⁿ is a normal number. `shifted` = 1.5·2²³ + n has an ulp of 1,
    // so its bits are those of 1.5·2²³ plus n: integer operations that vectorise, where
    // `n as i32` (saturating, NaN to 0) compiles to a compare and branch-free select per lane.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    if a > 87.0 { 0.0 } else { p * scale }
}

/// `ln(1 + e)` for `e ∈ [0, 1]`, accurate for tiny `e` (where `ln(1 + e)` would round to 0).
///
/// `ln(1 + e) = 2·atanh(s)` with `s = e/(2 + e) ∈ [0, ⅓]`, and
/// `atanh(s) = s + s³/3 + s⁵/5 + …`; eight terms leave `s¹⁶/17 < 2e-9`.
#[inline]
pub(crate) fn ln_1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0
                    + s2 * (1.0 / 9.0
                        + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 * (1.0 / 15.0)))))));
    2.0 * s * series
}

/// `softplus(l) = ln(1 + eˡ) = max(l, 0) + ln(1 + e^{-|l|})` and `σ(l) = 1/(1 + e^{-l})` from one
/// exponential; both finite for every finite `l`.
#[inline]
pub(crate) fn softplus_and_logistic(l: f32) -> (f32, f32) {
    let e = exp_neg(l.abs());
    let softplus = l.max(0.0) + ln_1p_unit(e);
    let logistic = if l >= 0.0 { 1.0 } else { e } / (1.0 + e);
    (softplus, logistic)
}

/// `Σ xs` with eight independent partial sums, which vectorises (a single running sum is a chain
/// of dependent additions the compiler may not reorder) and rounds less than a running sum.
pub(crate) fn sum_lanes(xs: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `tanh(x)`, branch-free so that a pass over a matrix vectorises (libm's `tanhf` is a call
/// through `expm1f`: 4 % of a GAN's step, whose generator ends in tanh over 64 × 784 pixels).
///
/// For `|x| < ½`, the odd Taylor series to `x¹⁵` (the first term left out is below `5e-9·|x|`);
/// beyond, `(1 − e)/(1 + e)` with `e = e^{−2|x|} ≤ e^{−1}`, whose rounding the quotient does not
/// amplify; the sign is put back.
#[inline]
pub(crate) fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let x2 = x * x;
    let series = x
        * (1.0
            + x2 * (-1.0 / 3.0
                + x2 * (2.0 / 15.0
                    + x2 * (-17.0 / 315.0
                        + x2 * (62.0 / 2835.0
                            + x2 * (-1382.0 / 155_925.0
                                + x2 * (21_844.0 / 6_081_075.0
                                    + x2 * (-929_569.0 / 638_512_875.0))))))));
    let e = exp_neg(2.0 * a);
    let quotient = ((1.0 - e) / (1.0 + e)).copysign(x);
    if a < 0.5 { series } else { quotient }
}

/// The mean and the biased variance (divided by `B`, not `B − 1`) of each column of a `B×F`
/// matrix, as `1×F` rows: the statistics batch normalization normalizes with.
///
/// Panics on a matrix without rows.
#[track_caller]
pub fn batch_moments(x: &Matrix) -> (Matrix, Matrix) {
    assert!(x.nrows() > 0, "batch_moments: no rows");
    let n = x.nrows() as f32;
    let mean = x.sum_axis(Axis(0)).insert_axis(Axis(0)) / n;
    let mut var = Matrix::zeros(mean.dim());
    for row in x.rows() {
        Zip::from(var.row_mut(0))
            .and(row)
            .and(mean.row(0))
            .for_each(|v, &x, &m| *v += (x - m) * (x - m));
    }
    var /= n;
    (mean, var)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error in units of f32 epsilon (1.19e-7) against an f64 reference.
    fn ulps(got: f32, want: f64) -> f64 {
        if want == 0.0 {
            return if got == 0.0 { 0.0 } else { f64::INFINITY };
        }
        ((f64::from(got) - want) / want).abs() / f64::from(f32::EPSILON)
    }

    #[test]
    fn exp_neg_is_accurate_to_a_few_ulps() {
        let mut worst = 0.0f64;
        for i in 0..=870_000 {
            let a = i as f32 * 1e-4; // 0 to 87
            worst = worst.max(ulps(exp_neg(a), (-f64::from(a)).exp()));
        }
        assert!(worst < 4.0, "worst error {worst} ulps");
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(88.0), 0.0);
        assert_eq!(exp_neg(f32::INFINITY), 0.0);
        assert!(exp_neg(f32::NAN).is_nan());
        assert!(softplus_and_logistic(f32::NAN).0.is_nan());
    }

    #[test]
    fn ln_1p_unit_is_accurate_to_a_few_ulps_including_tiny_arguments() {
        let mut worst = 0.0f64;
        for i in 0..=100_000 {
            let e = i as f32 * 1e-5;
            worst = worst.max(ulps(ln_1p_unit(e), f64::from(e).ln_1p()));
        }
        for k in 1..=38 {
            let e = 10f32.powi(-k); // where 1 + e rounds to 1 in f32
            worst = worst.max(ulps(ln_1p_unit(e), f64::from(e).ln_1p()));
        }
        assert!(worst < 4.0, "worst error {worst} ulps");
    }

    #[test]
    fn tanh_is_accurate_to_a_few_ulps_and_odd() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4; // −20 to 20, through the switch at ½
            worst = worst.max(ulps(tanh(x), f64::from(x).tanh()));
            assert_eq!(tanh(-x), -tanh(x));
        }
        for k in 1..=38 {
            let x = 10f32.powi(-k);
            worst = worst.max(ulps(tanh(x), f64::from(x).tanh()));
        }
        assert!(worst < 4.0, "worst error {worst} ulps");
        assert_eq!((tanh(100.0), tanh(-100.0), tanh(0.0)), (1.0, -1.0, 0.0));
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn sum_lanes_adds_every_element() {
        // 1 + 2 + … + 21 = 21·22/2 = 231: a tail of 5 after two chunks of 8.
        let xs: Vec<f32> = (1..=21).map(|i| i as f32).collect();
        assert_eq!(sum_lanes(&xs), 231.0);
        assert_eq!(sum_lanes(&[]), 0.0);
    }

    #[test]
    fn softplus_and_logistic_at_known_points() {
        let (sp, s) = softplus_and_logistic(0.0);
        // softplus(0) = ln 2, σ(0) = ½.
        assert!((sp - std::f32::consts::LN_2).abs() < 1e-7 && s == 0.5);
        // For |l| ≥ 88, e^{-|l|} is 0 in f32: softplus is max(l, 0), σ is 0 or 1 exactly.
        assert_eq!(softplus_and_logistic(1e4), (1e4, 1.0));
        assert_eq!(softplus_and_logistic(-1e4), (0.0, 0.0));
        // σ(-30) = e^{-30}/(1 + e^{-30}) ≈ 9.357623e-14; softplus(-30) ≈ the same.
        let (sp, s) = softplus_and_logistic(-30.0);
        assert!(ulps(s, 9.357_622_968_839_5e-14) < 4.0 && ulps(sp, 9.357_622_968_839_5e-14) < 4.0);
    }
}
