//! Reductions: over everything (1×1), over the batch (`*_rows`, 1×n), over the features of each
//! example (`*_cols`, m×1), and the row-wise `logsumexp` / `log_softmax`.

use std::rc::Rc;

use ndarray::{Axis, Zip};

use crate::{Matrix, Var};

/// `y = Σᵢⱼ xᵢⱼ` (1×1); `∂y/∂xᵢⱼ = 1`.
#[track_caller]
pub fn sum(x: Var<'_>) -> Var<'_> {
    let shape = x.shape();
    let y = Matrix::from_elem((1, 1), x.value().sum());
    x.tape().push("sum", y, &[x], move |g| {
        vec![Matrix::from_elem(shape, g[[0, 0]])]
    })
}

/// `y = Σᵢⱼ xᵢⱼ / (m·n)` (1×1); `∂y/∂xᵢⱼ = 1/(m·n)`.
#[track_caller]
pub fn mean(x: Var<'_>) -> Var<'_> {
    let shape = x.shape();
    let count = (shape.0 * shape.1) as f32;
    let y = Matrix::from_elem((1, 1), x.value().sum() / count);
    x.tape().push("mean", y, &[x], move |g| {
        vec![Matrix::from_elem(shape, g[[0, 0]] / count)]
    })
}

/// `yⱼ = Σᵢ xᵢⱼ`: the sum over the batch (rows), 1×n; `∂yⱼ/∂xᵢⱼ = 1`.
#[track_caller]
pub fn sum_rows(x: Var<'_>) -> Var<'_> {
    let shape = x.shape();
    let y = x.value().sum_axis(Axis(0)).insert_axis(Axis(0));
    x.tape().push("sum_rows", y, &[x], move |g| {
        vec![
            g.broadcast(shape)
                .expect("1×n broadcasts to m×n")
                .to_owned(),
        ]
    })
}

/// `yⱼ = Σᵢ xᵢⱼ / m`: the mean over the batch (rows), 1×n; `∂yⱼ/∂xᵢⱼ = 1/m`.
#[track_caller]
pub fn mean_rows(x: Var<'_>) -> Var<'_> {
    let shape = x.shape();
    let m = shape.0 as f32;
    let y = x.value().sum_axis(Axis(0)).insert_axis(Axis(0)) / m;
    x.tape().push("mean_rows", y, &[x], move |g| {
        vec![
            g.broadcast(shape)
                .expect("1×n broadcasts to m×n")
                .mapv(|g| g / m),
        ]
    })
}

/// `yᵢ = Σⱼ xᵢⱼ`: the sum over each example's features (columns), m×1; `∂yᵢ/∂xᵢⱼ = 1`.
#[track_caller]
pub fn sum_cols(x: Var<'_>) -> Var<'_> {
    let shape = x.shape();
    let y = x.value().sum_axis(Axis(1)).insert_axis(Axis(1));
    x.tape().push("sum_cols", y, &[x], move |g| {
        vec![
            g.broadcast(shape)
                .expect("m×1 broadcasts to m×n")
                .to_owned(),
        ]
    })
}

/// `yᵢ = Σⱼ xᵢⱼ / n`: the mean over each example's features (columns), m×1; `∂yᵢ/∂xᵢⱼ = 1/n`.
#[track_caller]
pub fn mean_cols(x: Var<'_>) -> Var<'_> {
    let shape = x.shape();
    let n = shape.1 as f32;
    let y = x.value().sum_axis(Axis(1)).insert_axis(Axis(1)) / n;
    x.tape().push("mean_cols", y, &[x], move |g| {
        vec![
            g.broadcast(shape)
                .expect("m×1 broadcasts to m×n")
                .mapv(|g| g / n),
        ]
    })
}

/// Row-wise `ln Σⱼ e^{xᵢⱼ}` (m×1), shifted by the row maximum so that nothing overflows.
fn row_logsumexp(x: &Matrix) -> Matrix {
    let lse = x.map_axis(Axis(1), |row| {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        // A row of -inf (or an empty row) has logsumexp -inf; shifting by it would give NaN.
        let shift = if max.is_finite() { max } else { 0.0 };
        shift + row.fold(0.0f32, |s, &v| s + (v - shift).exp()).ln()
    });
    lse.insert_axis(Axis(1))
}

/// `yᵢ = ln Σⱼ e^{xᵢⱼ}` per row (m×1); `∂yᵢ/∂xᵢⱼ = softmax(xᵢ)ⱼ = e^{xᵢⱼ - yᵢ}`.
#[track_caller]
pub fn logsumexp(x: Var<'_>) -> Var<'_> {
    let v = x.value();
    let y = Rc::new(row_logsumexp(&v));
    let saved = Rc::clone(&y);
    x.tape().push("logsumexp", y, &[x], move |g| {
        let mut gx = (&*v - &*saved).mapv_into(f32::exp);
        gx *= g;
        vec![gx]
    })
}

/// `yᵢⱼ = xᵢⱼ - ln Σₖ e^{xᵢₖ}` per row; `∂L/∂xᵢⱼ = gᵢⱼ - softmax(xᵢ)ⱼ · Σₖ gᵢₖ`.
#[track_caller]
pub fn log_softmax(x: Var<'_>) -> Var<'_> {
    let y = Rc::new(&*x.value() - &row_logsumexp(&x.value()));
    let saved = Rc::clone(&y);
    x.tape().push("log_softmax", y, &[x], move |g| {
        let g_sum = g.sum_axis(Axis(1)).insert_axis(Axis(1));
        let gx = Zip::from(g)
            .and(&*saved)
            .and_broadcast(&g_sum)
            .map_collect(|&g, &y, &s| g - y.exp() * s);
        vec![gx]
    })
}

impl<'t> Var<'t> {
    /// [`sum`]
    #[track_caller]
    pub fn sum(self) -> Var<'t> {
        sum(self)
    }
    /// [`mean`]
    #[track_caller]
    pub fn mean(self) -> Var<'t> {
        mean(self)
    }
    /// [`sum_rows`]
    #[track_caller]
    pub fn sum_rows(self) -> Var<'t> {
        sum_rows(self)
    }
    /// [`mean_rows`]
    #[track_caller]
    pub fn mean_rows(self) -> Var<'t> {
        mean_rows(self)
    }
    /// [`sum_cols`]
    #[track_caller]
    pub fn sum_cols(self) -> Var<'t> {
        sum_cols(self)
    }
    /// [`mean_cols`]
    #[track_caller]
    pub fn mean_cols(self) -> Var<'t> {
        mean_cols(self)
    }
    /// [`logsumexp`]
    #[track_caller]
    pub fn logsumexp(self) -> Var<'t> {
        logsumexp(self)
    }
    /// [`log_softmax`]
    #[track_caller]
    pub fn log_softmax(self) -> Var<'t> {
        log_softmax(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::Tape;
    use ndarray::array;

    #[test]
    fn reductions_have_the_documented_shapes_and_values() {
        let tape = Tape::new();
        let x = tape.constant(array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        assert_eq!(x.sum().item(), 21.0);
        assert_eq!(x.mean().item(), 3.5);
        assert_eq!(*x.sum_rows().value(), array![[5.0f32, 7.0, 9.0]]);
        assert_eq!(*x.mean_rows().value(), array![[2.5f32, 3.5, 4.5]]);
        assert_eq!(*x.sum_cols().value(), array![[6.0f32], [15.0]]);
        assert_eq!(*x.mean_cols().value(), array![[2.0f32], [5.0]]);
    }

    #[test]
    fn logsumexp_is_stable_and_exact() {
        let tape = Tape::new();
        // Row 0: ln(e^1000 + e^1000) = 1000 + ln 2 (a naive sum overflows).
        // Row 1: ln(e^0 + e^{ln 3}) = ln 4. Row 2: all -inf gives -inf, not NaN.
        let x = tape.constant(array![
            [1000.0f32, 1000.0],
            [0.0, 3.0f32.ln()],
            [f32::NEG_INFINITY, f32::NEG_INFINITY]
        ]);
        let y = x.logsumexp().value();
        assert!((y[[0, 0]] - (1000.0 + std::f32::consts::LN_2)).abs() < 1e-3);
        assert!((y[[1, 0]] - 4.0f32.ln()).abs() < 1e-6);
        assert_eq!(y[[2, 0]], f32::NEG_INFINITY);
    }

    #[test]
    fn log_softmax_rows_normalise() {
        let tape = Tape::new();
        let x = tape.constant(array![[1.0f32, 2.0, 3.0], [-500.0, 0.0, 500.0]]);
        let p = x.log_softmax().value().mapv(f32::exp);
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-6, "{row}");
        }
    }
}
