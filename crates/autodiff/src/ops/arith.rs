//! Elementwise arithmetic with broadcasting (same shape, 1×n rows, m×1 columns, 1×1 scalars),
//! the one home of broadcasting's adjoint (`sum_to`), and the operator overloads.

use std::ops::{Add, Div, Mul, Neg, Sub};

use ndarray::Axis;

use crate::{Matrix, Var};

/// The shape `a ⊙ b` broadcasts to: per axis equal sizes, or one of them 1.
#[track_caller]
fn broadcast_shape(op: &str, a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    let axis = |x: usize, y: usize| match (x, y) {
        _ if x == y => Some(x),
        (1, y) => Some(y),
        (x, 1) => Some(x),
        _ => None,
    };
    match (axis(a.0, b.0), axis(a.1, b.1)) {
        (Some(r), Some(c)) => (r, c),
        _ => panic!("{op}: shapes {a:?} and {b:?} do not broadcast"),
    }
}

/// The adjoint of broadcasting: sums `g` over the axes along which `shape` was stretched, so that
/// the result has `shape`. Every broadcasting op sends its input gradients through here.
pub(crate) fn sum_to(g: Matrix, shape: (usize, usize)) -> Matrix {
    let mut g = g;
    if shape.0 == 1 && g.nrows() != 1 {
        g = g.sum_axis(Axis(0)).insert_axis(Axis(0));
    }
    if shape.1 == 1 && g.ncols() != 1 {
        g = g.sum_axis(Axis(1)).insert_axis(Axis(1));
    }
    debug_assert_eq!(g.dim(), shape);
    g
}

/// `y = a + b` (broadcasting); `∂y/∂a = ∂y/∂b = 1`.
#[track_caller]
pub fn add<'t>(a: Var<'t>, b: Var<'t>) -> Var<'t> {
    let (sa, sb) = (a.shape(), b.shape());
    broadcast_shape("add", sa, sb);
    let y = &*a.value() + &*b.value();
    a.tape().push("add", y, &[a, b], move |g| {
        vec![sum_to(g.clone(), sa), sum_to(g.clone(), sb)]
    })
}

/// `y = a - b` (broadcasting); `∂y/∂a = 1`, `∂y/∂b = -1`.
#[track_caller]
pub fn sub<'t>(a: Var<'t>, b: Var<'t>) -> Var<'t> {
    let (sa, sb) = (a.shape(), b.shape());
    broadcast_shape("sub", sa, sb);
    let y = &*a.value() - &*b.value();
    a.tape().push("sub", y, &[a, b], move |g| {
        vec![sum_to(g.clone(), sa), sum_to(-g, sb)]
    })
}

/// `y = a ⊙ b` (broadcasting); `∂y/∂a = b`, `∂y/∂b = a`.
#[track_caller]
pub fn mul<'t>(a: Var<'t>, b: Var<'t>) -> Var<'t> {
    let (va, vb) = (a.value(), b.value());
    broadcast_shape("mul", va.dim(), vb.dim());
    let y = &*va * &*vb;
    a.tape().push("mul", y, &[a, b], move |g| {
        vec![sum_to(g * &*vb, va.dim()), sum_to(g * &*va, vb.dim())]
    })
}

/// `y = a / b` (broadcasting); `∂y/∂a = 1/b`, `∂y/∂b = -a/b² = -y/b`.
#[track_caller]
pub fn div<'t>(a: Var<'t>, b: Var<'t>) -> Var<'t> {
    let (sa, vb) = (a.shape(), b.value());
    broadcast_shape("div", sa, vb.dim());
    let y = std::rc::Rc::new(&*a.value() / &*vb);
    let saved = std::rc::Rc::clone(&y);
    a.tape().push("div", y, &[a, b], move |g| {
        let ga = g / &*vb;
        let gb = -(&ga * &*saved);
        vec![sum_to(ga, sa), sum_to(gb, vb.dim())]
    })
}

/// `y = -x`; `∂y/∂x = -1`.
#[track_caller]
pub fn neg(x: Var<'_>) -> Var<'_> {
    let y = -&*x.value();
    x.tape().push("neg", y, &[x], |g| vec![-g])
}

/// `y = c·x` for a constant number `c`; `∂y/∂x = c`.
#[track_caller]
pub fn scale(x: Var<'_>, c: f32) -> Var<'_> {
    let y = &*x.value() * c;
    x.tape().push("scale", y, &[x], move |g| vec![g * c])
}

impl<'t> Add for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn add(self, rhs: Var<'t>) -> Var<'t> {
        add(self, rhs)
    }
}

impl<'t> Sub for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn sub(self, rhs: Var<'t>) -> Var<'t> {
        sub(self, rhs)
    }
}

impl<'t> Mul for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn mul(self, rhs: Var<'t>) -> Var<'t> {
        mul(self, rhs)
    }
}

impl<'t> Div for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn div(self, rhs: Var<'t>) -> Var<'t> {
        div(self, rhs)
    }
}

impl<'t> Neg for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn neg(self) -> Var<'t> {
        neg(self)
    }
}

/// `x * c` is [`scale`].
impl<'t> Mul<f32> for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn mul(self, c: f32) -> Var<'t> {
        scale(self, c)
    }
}

/// `x + c` adds a 1×1 constant (broadcast).
impl<'t> Add<f32> for Var<'t> {
    type Output = Var<'t>;
    #[track_caller]
    fn add(self, c: f32) -> Var<'t> {
        add(self, self.tape().constant(Matrix::from_elem((1, 1), c)))
    }
}

impl<'t> Var<'t> {
    /// [`scale`]: `c·self`.
    #[track_caller]
    pub fn scale(self, c: f32) -> Var<'t> {
        scale(self, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tape;
    use ndarray::array;

    #[test]
    fn sum_to_reduces_stretched_axes() {
        let g = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        assert_eq!(sum_to(g.clone(), (2, 3)), g);
        assert_eq!(sum_to(g.clone(), (1, 3)), array![[5.0f32, 7.0, 9.0]]);
        assert_eq!(sum_to(g.clone(), (2, 1)), array![[6.0f32], [15.0]]);
        assert_eq!(sum_to(g, (1, 1)), array![[21.0f32]]);
    }

    #[test]
    fn broadcasting_in_both_directions() {
        let tape = Tape::new();
        let col = tape.leaf(array![[1.0f32], [2.0]]);
        let row = tape.leaf(array![[10.0f32, 20.0, 30.0]]);
        let y = col + row; // outer sum, 2×3
        assert_eq!(
            *y.value(),
            array![[11.0f32, 21.0, 31.0], [12.0, 22.0, 32.0]]
        );
        let grads = tape.backward(y.sum());
        // Each column entry is used 3 times, each row entry twice.
        assert_eq!(grads.get(col), Some(&array![[3.0f32], [3.0]]));
        assert_eq!(grads.get(row), Some(&array![[2.0f32, 2.0, 2.0]]));
    }

    #[test]
    #[should_panic(expected = "mul: shapes (2, 3) and (3, 2) do not broadcast")]
    fn mismatched_shapes_panic_with_both_shapes() {
        let tape = Tape::new();
        let a = tape.leaf(Matrix::zeros((2, 3)));
        let b = tape.leaf(Matrix::zeros((3, 2)));
        let _ = a * b;
    }
}
