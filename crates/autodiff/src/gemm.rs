//! PLACEHOLDER until the helper lands the real driver.
#![allow(missing_docs)]
use ndarray::{ArrayView2, ArrayViewMut2};
pub fn gemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) {
    ndarray::linalg::general_mat_mul(alpha, &a, &b, beta, &mut c);
}
