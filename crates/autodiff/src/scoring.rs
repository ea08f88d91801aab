//! Losses scored without a tape, for evaluation: the values of the likelihood ops, with the
//! targets' rows gathered by index, so that many samples of one image are scored against the
//! image itself rather than against copies of it.
//!
//! Not ops: nothing is recorded and there is no backward (and so no gradcheck row). Each is
//! tested against its op.

use std::f32::consts::PI;

use ndarray::ArrayView2;

use crate::math::{softplus_and_logistic, sum_lanes};
use crate::ops::PARALLEL_MIN_ELEMENTS;
use crate::parallel::for_each_block;

/// [`bce_with_logits`](crate::bce_with_logits)'s value alone, without a tape, with the targets' rows gathered: row `r`
/// of `logits` is scored against row `target_rows[r]` of `targets`, so that many samples of one
/// image need no copies of it (the importance-weighted likelihood decodes a thousand per image).
/// The same bits as the op on `targets.select(Axis(0), target_rows)`. Shared over the pool.
///
/// Panics if `target_rows` is not one index per row of `logits`, an index is out of range, or
/// the widths differ.
#[track_caller]
pub fn bce_with_logits_rows(
    logits: ArrayView2<'_, f32>,
    targets: ArrayView2<'_, f32>,
    target_rows: &[usize],
) -> Vec<f32> {
    gathered_rows(
        "bce_with_logits_rows",
        logits,
        targets,
        target_rows,
        bce_gathered,
    )
}

/// [`gaussian_nll`](crate::gaussian_nll)'s value alone for a fixed `log_var` shared by every pixel, without a tape,
/// with the targets' rows gathered as in [`bce_with_logits_rows`]:
/// `yᵣ = ½ Σⱼ (ln 2π + log σ² + (x_{t(r)j} − meanᵣⱼ)² e^{−log σ²})`. Equal to the op to
/// rounding (the terms are grouped differently).
///
/// Panics as [`bce_with_logits_rows`] does.
#[track_caller]
pub fn gaussian_nll_rows(
    mean: ArrayView2<'_, f32>,
    log_var: f32,
    targets: ArrayView2<'_, f32>,
    target_rows: &[usize],
) -> Vec<f32> {
    let ln_2pi = (2.0 * PI).ln();
    let (offset, scale) = (0.5 * (ln_2pi + log_var), 0.5 * (-log_var).exp());
    gathered_rows(
        "gaussian_nll_rows",
        mean,
        targets,
        target_rows,
        |l, t, rows, y, cols| gaussian_gathered(l, t, rows, y, cols, offset, scale),
    )
}

/// Checks the shapes of a gathered loss, then runs `kernel(values, targets, rows, y, cols)` on
/// row blocks shared over the pool.
#[track_caller]
fn gathered_rows(
    op: &str,
    values: ArrayView2<'_, f32>,
    targets: ArrayView2<'_, f32>,
    target_rows: &[usize],
    kernel: impl Fn(&[f32], &[f32], &[usize], &mut [f32], usize) + Sync,
) -> Vec<f32> {
    let cols = values.ncols();
    assert!(
        target_rows.len() == values.nrows(),
        "{op}: {} target rows for {} rows",
        target_rows.len(),
        values.nrows()
    );
    assert!(
        targets.ncols() == cols,
        "{op}: targets of width {} for values of width {cols}",
        targets.ncols()
    );
    if let Some(&bad) = target_rows.iter().find(|&&t| t >= targets.nrows()) {
        panic!("{op}: target row {bad} of {}", targets.nrows());
    }
    let (vc, tc) = (values.as_standard_layout(), targets.as_standard_layout());
    let (v_flat, t_flat) = (
        vc.as_slice().expect("standard"),
        tc.as_slice().expect("standard"),
    );
    let mut y = vec![0.0f32; values.nrows()];
    if cols == 0 {
        return y;
    }
    let rows_per_block = if values.len() < PARALLEL_MIN_ELEMENTS {
        values.nrows().max(1)
    } else {
        values.nrows().div_ceil(4 * rayon::current_num_threads())
    };
    let blocks: Vec<_> = y.chunks_mut(rows_per_block).enumerate().collect();
    for_each_block(blocks, |(block, y)| {
        let first = block * rows_per_block;
        let rows = &target_rows[first..][..y.len()];
        kernel(&v_flat[first * cols..], t_flat, rows, y, cols);
    });
    y
}

crate::widest! {
    /// Rows of [`bce_with_logits_rows`]: row `r` of `l` against row `rows[r]` of `x`.
    fn bce_gathered(l: &[f32], x: &[f32], rows: &[usize], y: &mut [f32], cols: usize) {
        let mut terms = vec![0.0f32; cols];
        for (r, (y, &t)) in y.iter_mut().zip(rows).enumerate() {
            let (l, x) = (&l[r * cols..][..cols], &x[t * cols..][..cols]);
            for ((term, &l), &x) in terms.iter_mut().zip(l).zip(x) {
                let (softplus, _) = softplus_and_logistic(l);
                *term = softplus - l * x;
            }
            *y = sum_lanes(&terms);
        }
    }
}

crate::widest! {
    /// Rows of [`gaussian_nll_rows`]: `offset + scale·(x − mean)²` summed per row.
    fn gaussian_gathered(
        mean: &[f32],
        x: &[f32],
        rows: &[usize],
        y: &mut [f32],
        cols: usize,
        offset: f32,
        scale: f32,
    ) {
        let mut terms = vec![0.0f32; cols];
        for (r, (y, &t)) in y.iter_mut().zip(rows).enumerate() {
            let (m, x) = (&mean[r * cols..][..cols], &x[t * cols..][..cols]);
            for ((term, &m), &x) in terms.iter_mut().zip(m).zip(x) {
                let d = x - m;
                *term = offset + scale * (d * d);
            }
            *y = sum_lanes(&terms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Matrix, Tape, bce_with_logits, gaussian_nll};
    use ndarray::{Axis, array};

    /// Logits of `rows` rows and 300 pixels, and 7 target images; row `r` is scored against
    /// image `r·5 mod 7`.
    fn gathered_case(rows: usize) -> (Matrix, Matrix, Vec<usize>) {
        let l = Matrix::from_shape_fn((rows, 300), |(i, j)| {
            ((i * 300 + j) as f32 * 0.011).sin() * 9.0
        });
        let x = Matrix::from_shape_fn((7, 300), |(i, j)| ((i + 3 * j) % 5) as f32 / 4.0);
        let target_rows = (0..rows).map(|r| r * 5 % 7).collect();
        (l, x, target_rows)
    }

    /// The gathered value is the op's on the gathered targets, bit for bit, on one block and on
    /// a pool's blocks (133 rows of 300 are over `PARALLEL_MIN_ELEMENTS`).
    #[test]
    fn bce_rows_are_the_op_on_the_gathered_targets_bit_for_bit() {
        for rows in [3, 133] {
            let (l, x, target_rows) = gathered_case(rows);
            let tape = Tape::new();
            let op = bce_with_logits(
                tape.constant(l.clone()),
                tape.constant(x.select(Axis(0), &target_rows)),
            )
            .value();
            let gathered = bce_with_logits_rows(l.view(), x.view(), &target_rows);
            assert_eq!(gathered.len(), rows);
            for (r, (a, b)) in gathered.iter().zip(op.iter()).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "row {r}: {a} against {b}");
            }
        }
    }

    /// Against the op with the same fixed log-variance broadcast, to rounding.
    #[test]
    fn gaussian_nll_rows_are_the_op_on_the_gathered_targets() {
        for log_var in [-1.5f32, 0.0, 2.0] {
            let (mean, x, target_rows) = gathered_case(133);
            let tape = Tape::new();
            let op = gaussian_nll(
                tape.constant(mean.clone()),
                tape.constant(array![[log_var]]),
                tape.constant(x.select(Axis(0), &target_rows)),
            )
            .value();
            let gathered = gaussian_nll_rows(mean.view(), log_var, x.view(), &target_rows);
            for (r, (a, b)) in gathered.iter().zip(op.iter()).enumerate() {
                assert!((a - b).abs() <= 1e-5 * b.abs(), "row {r}: {a} against {b}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "bce_with_logits_rows: target row 7 of 7")]
    fn gathered_rows_out_of_range_panic_with_the_op_s_name() {
        let (l, x, mut target_rows) = gathered_case(3);
        target_rows[1] = 7;
        bce_with_logits_rows(l.view(), x.view(), &target_rows);
    }

    #[test]
    #[should_panic(expected = "gaussian_nll_rows: 2 target rows for 3 rows")]
    fn gathered_rows_need_one_target_per_row() {
        let (l, x, _) = gathered_case(3);
        gaussian_nll_rows(l.view(), 0.0, x.view(), &[0, 1]);
    }
}
