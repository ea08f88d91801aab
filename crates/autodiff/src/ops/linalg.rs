//! Matrix products on the parallel GEMM: `matmul` and the fused `affine` (x·W + b).
//!
//! A left operand that is mostly zeros (a batch of images) is multiplied through its nonzeros
//! only, forward and in the weight's gradient `Aᵀ·G`; see [`crate::sparse`].

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use crate::gemm::gemm;
use crate::sparse::{self, SparseRows};
use crate::{Matrix, Var};

/// `a·b` into a fresh matrix.
fn product(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Matrix {
    let mut c = Matrix::zeros((a.nrows(), b.ncols()));
    gemm(1.0, a, b, 0.0, c.view_mut());
    c
}

/// A left operand: dense, or its nonzeros when it is sparse enough to pay
/// ([`sparse::max_density`]).
enum Left {
    Dense,
    Sparse(SparseRows),
}

impl Left {
    fn of(a: &Matrix) -> Left {
        let max_density = sparse::max_density();
        if max_density == 0.0 {
            return Left::Dense;
        }
        SparseRows::compress(a.view(), max_density).map_or(Left::Dense, Left::Sparse)
    }

    /// C ← A·B + β·C.
    fn times(&self, a: &Matrix, b: ArrayView2<'_, f32>, beta: f32, c: ArrayViewMut2<'_, f32>) {
        match self {
            Left::Dense => gemm(1.0, a.view(), b, beta, c),
            Left::Sparse(s) => sparse::sparse_gemm(1.0, s, b, beta, c),
        }
    }

    /// `Aᵀ·g` into a fresh matrix (the right operand's gradient).
    fn transposed_times(&self, a: &Matrix, g: &Matrix) -> Matrix {
        match self {
            Left::Dense => product(a.t(), g.view()),
            Left::Sparse(s) => {
                let mut c = Matrix::zeros((a.ncols(), g.ncols()));
                sparse::sparse_gemm(1.0, &s.transpose(), g.view(), 0.0, c.view_mut());
                c
            }
        }
    }
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
    let left = Left::of(&va);
    let mut c = Matrix::zeros((va.nrows(), vb.ncols()));
    left.times(&va, vb.view(), 0.0, c.view_mut());
    a.tape().push_masked("matmul", c, &[a, b], move |g, need| {
        vec![
            need[0].then(|| product(g.view(), vb.t())),
            need[1].then(|| left.transposed_times(&va, g)),
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
    let left = Left::of(&vx);
    left.times(&vx, vw.view(), 1.0, y.view_mut());
    x.tape()
        .push_masked("affine", y, &[x, w, b], move |g, need| {
            vec![
                need[0].then(|| product(g.view(), vw.t())),
                need[1].then(|| left.transposed_times(&vx, g)),
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

    /// A 9×30 left operand with 3 nonzeros per row (10 %), so `matmul` and `affine` take the
    /// sparse path (default threshold 30 %): values and gradients match the dense products.
    #[test]
    fn a_sparse_left_operand_gives_the_dense_results() {
        let x = Matrix::from_shape_fn((9, 30), |(i, j)| {
            if (j + 2 * i) % 10 == 0 {
                1.0 + i as f32 * 0.5 - j as f32 * 0.1
            } else {
                0.0
            }
        });
        assert!(matches!(Left::of(&x), Left::Sparse(_)));
        let w = Matrix::from_shape_fn((30, 5), |(i, j)| ((i * 5 + j) as f32 * 0.37).sin());
        let bias = Matrix::from_shape_fn((1, 5), |(_, j)| j as f32 - 2.0);
        let g = Matrix::from_shape_fn((9, 5), |(i, j)| ((i + 3 * j) as f32 * 0.61).cos());
        let close = |a: &Matrix, b: &Matrix| {
            assert_eq!(a.dim(), b.dim());
            assert!(
                a.iter()
                    .zip(b)
                    .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs()))
            );
        };
        let tape = Tape::new();
        let (xv, wv, bv) = (
            tape.constant(x.clone()),
            tape.leaf(w.clone()),
            tape.leaf(bias.clone()),
        );
        let y = affine(xv, wv, bv);
        close(&y.value(), &(x.dot(&w) + &bias));
        let loss = (y * tape.constant(g.clone())).sum();
        close(tape.backward(loss).get(wv).unwrap(), &x.t().dot(&g));

        let tape = Tape::new();
        let (xv, wv) = (tape.leaf(x.clone()), tape.leaf(w.clone()));
        let y = xv.matmul(wv);
        close(&y.value(), &x.dot(&w));
        let grads = tape.backward((y * tape.constant(g.clone())).sum());
        close(grads.get(wv).unwrap(), &x.t().dot(&g));
        close(grads.get(xv).unwrap(), &g.dot(&w.t()));
    }

    #[test]
    fn a_dense_left_operand_stays_dense() {
        let x = Matrix::from_elem((9, 30), 0.5);
        assert!(matches!(Left::of(&x), Left::Dense));
    }

    #[test]
    #[should_panic(expected = "matmul: inner dimensions differ: (2, 3) · (2, 3)")]
    fn inner_dimension_mismatch_panics() {
        let tape = Tape::new();
        let a = tape.leaf(Matrix::zeros((2, 3)));
        let _ = a.matmul(a);
    }
}
