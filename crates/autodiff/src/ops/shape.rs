//! Ops that move values without arithmetic: column concat and slice, row gather.

use std::ops::Range;

use ndarray::{Axis, s};

use crate::{Matrix, Var};

/// `y = [x₀ | x₁ | …]`, the inputs side by side (same number of rows); the gradient of each
/// input is its block of columns of `∂L/∂y`.
#[track_caller]
pub fn concat_cols<'t>(xs: &[Var<'t>]) -> Var<'t> {
    assert!(!xs.is_empty(), "concat_cols: no inputs");
    let values: Vec<_> = xs.iter().map(|x| x.value()).collect();
    let rows = values[0].nrows();
    if let Some(v) = values.iter().find(|v| v.nrows() != rows) {
        panic!(
            "concat_cols: row counts differ: {:?} and {:?}",
            values[0].dim(),
            v.dim()
        );
    }
    let views: Vec<_> = values.iter().map(|v| v.view()).collect();
    let y = ndarray::concatenate(Axis(1), &views).expect("row counts checked above");
    let widths: Vec<usize> = values.iter().map(|v| v.ncols()).collect();
    xs[0].tape().push("concat_cols", y, xs, move |g| {
        let mut start = 0;
        widths
            .iter()
            .map(|&w| {
                start += w;
                g.slice(s![.., start - w..start]).to_owned()
            })
            .collect()
    })
}

/// `y = x[:, cols]`; the gradient is `∂L/∂y` placed in those columns, zeros elsewhere.
#[track_caller]
pub fn slice_cols(x: Var<'_>, cols: Range<usize>) -> Var<'_> {
    let shape = x.shape();
    assert!(
        cols.start <= cols.end && cols.end <= shape.1,
        "slice_cols: columns {cols:?} out of range for shape {shape:?}"
    );
    let y = x.value().slice(s![.., cols.clone()]).to_owned();
    x.tape().push("slice_cols", y, &[x], move |g| {
        let mut gx = Matrix::zeros(shape);
        gx.slice_mut(s![.., cols]).assign(g);
        vec![gx]
    })
}

/// `yᵢ = x[indices[i]]`, rows picked (with repeats allowed); the gradient scatter-adds each row
/// of `∂L/∂y` back onto the row it came from.
#[track_caller]
pub fn gather_rows<'a>(x: Var<'a>, indices: &[usize]) -> Var<'a> {
    let shape = x.shape();
    if let Some(&bad) = indices.iter().find(|&&i| i >= shape.0) {
        panic!("gather_rows: index {bad} out of range for shape {shape:?}");
    }
    let y = x.value().select(Axis(0), indices);
    let indices = indices.to_vec();
    x.tape().push("gather_rows", y, &[x], move |g| {
        let mut gx = Matrix::zeros(shape);
        for (row, &i) in g.rows().into_iter().zip(&indices) {
            let mut target = gx.row_mut(i);
            target += &row;
        }
        vec![gx]
    })
}

/// The same elements in row-major order as a `rows × cols` matrix (e.g. a batch of `N` codes of
/// `D` dims per example, `B × N·D`, as `B·N × D`); the gradient is `∂L/∂y` read back in the
/// input's shape.
#[track_caller]
pub fn reshape(x: Var<'_>, (rows, cols): (usize, usize)) -> Var<'_> {
    let shape = x.shape();
    assert!(
        rows * cols == shape.0 * shape.1,
        "reshape: {shape:?} has {} elements, ({rows}, {cols}) {}",
        shape.0 * shape.1,
        rows * cols
    );
    let y = standard(&x.value()).into_shape_with_order((rows, cols));
    let y = y.expect("standard layout, same number of elements");
    x.tape().push("reshape", y, &[x], move |g| {
        let gx = standard(g).into_shape_with_order(shape);
        vec![gx.expect("standard layout, same number of elements")]
    })
}

/// An owned copy of `m` in standard (row-major) layout.
fn standard(m: &Matrix) -> Matrix {
    m.as_standard_layout().into_owned()
}

impl<'t> Var<'t> {
    /// [`reshape`]
    #[track_caller]
    pub fn reshape(self, shape: (usize, usize)) -> Var<'t> {
        reshape(self, shape)
    }
    /// [`slice_cols`]
    #[track_caller]
    pub fn slice_cols(self, cols: Range<usize>) -> Var<'t> {
        slice_cols(self, cols)
    }
    /// [`gather_rows`]
    #[track_caller]
    pub fn gather_rows(self, indices: &[usize]) -> Var<'t> {
        gather_rows(self, indices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tape;
    use ndarray::array;

    #[test]
    fn concat_then_slice_round_trips() {
        let tape = Tape::new();
        let a = tape.leaf(array![[1.0f32], [2.0]]);
        let b = tape.leaf(array![[3.0f32, 4.0], [5.0, 6.0]]);
        let c = concat_cols(&[a, b]);
        assert_eq!(*c.value(), array![[1.0f32, 3.0, 4.0], [2.0, 5.0, 6.0]]);
        assert_eq!(*c.slice_cols(1..3).value(), *b.value());
    }

    #[test]
    fn reshape_keeps_row_major_order_both_ways() {
        let tape = Tape::new();
        let x = tape.leaf(array![[1.0f32, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]);
        let y = x.reshape((4, 2));
        assert_eq!(
            *y.value(),
            array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]
        );
        // L = Σ w ⊙ y with w = [[1, 2], [3, 4], ...]: ∂L/∂x is w read back as 2×4.
        let w = tape.constant(Matrix::from_shape_fn((4, 2), |(i, j)| {
            (2 * i + j + 1) as f32
        }));
        let g = tape.backward((y * w).sum()).get(x).unwrap().clone();
        assert_eq!(g, array![[1.0f32, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]);
    }

    #[test]
    #[should_panic(expected = "reshape: (2, 3) has 6 elements, (4, 2) 8")]
    fn reshape_to_another_size_panics() {
        let tape = Tape::new();
        let _ = tape.leaf(Matrix::zeros((2, 3))).reshape((4, 2));
    }

    #[test]
    fn gather_accumulates_repeated_rows() {
        let tape = Tape::new();
        let x = tape.leaf(array![[1.0f32, 2.0], [3.0, 4.0]]);
        let y = x.gather_rows(&[1, 1, 0]);
        assert_eq!(*y.value(), array![[3.0f32, 4.0], [3.0, 4.0], [1.0, 2.0]]);
        let grads = tape.backward(y.sum());
        assert_eq!(grads.get(x), Some(&array![[1.0f32, 1.0], [2.0, 2.0]]));
    }

    #[test]
    #[should_panic(expected = "gather_rows: index 2 out of range for shape (2, 2)")]
    fn gather_checks_indices() {
        let tape = Tape::new();
        let x = tape.leaf(Matrix::zeros((2, 2)));
        let _ = x.gather_rows(&[0, 2]);
    }
}
