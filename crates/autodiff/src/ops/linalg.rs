//! Matrix products on the parallel GEMM: `matmul` and the fused `affine` (x·W + b).

use ndarray::Axis;

use crate::gemm::gemm;
use crate::{Matrix, Var};

/// `a·b` into a fresh matrix.
fn product(a: ndarray::ArrayView2<'_, f32>, b: ndarray::ArrayView2<'_, f32>) -> Matrix {
    let mut c = Matrix::zeros((a.nrows(), b.ncols()));
    gemm(1.0, a, b, 0.0, c.view_mut());
    c
}

#[track_caller]
fn check_inner(op: &str, a: (usize, usize), b: (usize, usize)) {
    assert!(
        a.1 == b.0,
        "{op}: inner dimensions differ: {a:?} · {b:?} ({} vs {})",
        a.1,
        b.0
    );
}

/// `C = A·B`; `∂L/∂A = G·Bᵀ`, `∂L/∂B = Aᵀ·G` (transposes are strided views, never copies).
/// A gradient is only computed for an input that needs one.
#[track_caller]
pub fn matmul<'t>(a: Var<'t>, b: Var<'t>) -> Var<'t> {
    let (va, vb) = (a.value(), b.value());
    check_inner("matmul", va.dim(), vb.dim());
    let c = product(va.view(), vb.view());
    a.tape().push_masked("matmul", c, &[a, b], move |g, need| {
        vec![
            need[0].then(|| product(g.view(), vb.t())),
            need[1].then(|| product(va.t(), g.view())),
        ]
    })
}

/// `Y = X·W + b` with `b` a 1×n row broadcast over the batch, written straight into the GEMM's
/// output (β = 1) instead of a second pass; `∂L/∂X = G·Wᵀ`, `∂L/∂W = Xᵀ·G`, `∂L/∂b = Σᵢ Gᵢ`.
#[track_caller]
pub fn affine<'t>(x: Var<'t>, w: Var<'t>, b: Var<'t>) -> Var<'t> {
    let (vx, vw, vb) = (x.value(), w.value(), b.value());
    check_inner("affine", vx.dim(), vw.dim());
    let out = (vx.nrows(), vw.ncols());
    assert!(
        vb.dim() == (1, out.1),
        "affine: bias shape {:?} is not (1, {}) for x {:?} · w {:?}",
        vb.dim(),
        out.1,
        vx.dim(),
        vw.dim()
    );
    let mut y = vb.broadcast(out).expect("checked above").to_owned();
    gemm(1.0, vx.view(), vw.view(), 1.0, y.view_mut());
    x.tape()
        .push_masked("affine", y, &[x, w, b], move |g, need| {
            vec![
                need[0].then(|| product(g.view(), vw.t())),
                need[1].then(|| product(vx.t(), g.view())),
                need[2].then(|| g.sum_axis(Axis(0)).insert_axis(Axis(0))),
            ]
        })
}

impl<'t> Var<'t> {
    /// [`matmul`]: `self·rhs`.
    #[track_caller]
    pub fn matmul(self, rhs: Var<'t>) -> Var<'t> {
        matmul(self, rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tape;
    use ndarray::array;

    #[test]
    fn matmul_skips_the_gradient_of_a_constant() {
        let tape = Tape::new();
        let x = tape.constant(array![[1.0f32, 2.0]]);
        let w = tape.leaf(array![[1.0f32], [3.0]]);
        let y = x.matmul(w); // 1·1 + 2·3 = 7
        assert_eq!(y.item(), 7.0);
        let grads = tape.backward(y);
        assert_eq!(grads.get(w), Some(&array![[1.0f32], [2.0]])); // xᵀ
        assert_eq!(grads.get(x), None);
    }

    #[test]
    fn affine_equals_matmul_plus_bias() {
        let tape = Tape::new();
        let x = tape.constant(array![[1.0f32, 2.0], [3.0, 4.0]]);
        let w = tape.leaf(array![[1.0f32, 0.0, -1.0], [0.5, 2.0, 1.0]]);
        let b = tape.leaf(array![[0.1f32, 0.2, 0.3]]);
        assert_eq!(*affine(x, w, b).value(), *(x.matmul(w) + b).value());
    }

    #[test]
    #[should_panic(expected = "matmul: inner dimensions differ: (2, 3) · (2, 3)")]
    fn inner_dimension_mismatch_panics() {
        let tape = Tape::new();
        let a = tape.leaf(Matrix::zeros((2, 3)));
        let _ = a.matmul(a);
    }
}
