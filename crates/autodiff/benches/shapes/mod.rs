//! The GEMM shapes of the VAE training step at batch 128, and their operands, shared by the
//! GEMM benchmarks (`gemm.rs`, `gemm_pairs.rs`).

use ndarray::{Array2, ArrayView2};

/// One product `C (m×n) ← A (m×k) · B (k×n)`; a transposed operand is stored as its
/// transpose and passed as `.t()`, as the backward pass does.
pub struct Shape {
    pub name: &'static str,
    pub mkn: (usize, usize, usize),
    pub a_transposed: bool,
    pub b_transposed: bool,
}

const fn shape(
    name: &'static str,
    mkn: (usize, usize, usize),
    a_transposed: bool,
    b_transposed: bool,
) -> Shape {
    Shape {
        name,
        mkn,
        a_transposed,
        b_transposed,
    }
}

/// Forward products, the weight gradients (Aᵀ·B) and the input gradient (A·Bᵀ).
pub const SHAPES: [Shape; 7] = [
    shape("128x784x400", (128, 784, 400), false, false),
    shape("128x400x40", (128, 400, 40), false, false),
    shape("128x20x400", (128, 20, 400), false, false),
    shape("128x400x784", (128, 400, 784), false, false),
    shape("784x128x400_aT", (784, 128, 400), true, false),
    shape("400x128x784_aT", (400, 128, 784), true, false),
    shape("128x400x784_bT", (128, 400, 784), false, true),
];

/// The GAN step's products at batch 64 (PyTorch-GAN's gan.py): G's last two layers forward,
/// the weight gradient of its output layer, the input gradient through it, and D's first layer
/// forward and weight gradient.
pub const GAN_SHAPES: [Shape; 6] = [
    shape("64x512x1024", (64, 512, 1024), false, false),
    shape("64x1024x784", (64, 1024, 784), false, false),
    shape("1024x64x784_aT", (1024, 64, 784), true, false),
    shape("64x784x1024_bT", (64, 784, 1024), false, true),
    shape("64x784x512", (64, 784, 512), false, false),
    shape("784x64x512_aT", (784, 64, 512), true, false),
];

/// The stored operands of a shape: A and B, each stored transposed where the shape says so.
pub struct Operands {
    a: Array2<f32>,
    b: Array2<f32>,
    a_transposed: bool,
    b_transposed: bool,
}

impl Operands {
    pub fn new(shape: &Shape) -> Self {
        let (m, k, n) = shape.mkn;
        let stored = |rows, cols, transposed, seed| {
            if transposed {
                filled(cols, rows, seed)
            } else {
                filled(rows, cols, seed)
            }
        };
        Operands {
            a: stored(m, k, shape.a_transposed, 1),
            b: stored(k, n, shape.b_transposed, 2),
            a_transposed: shape.a_transposed,
            b_transposed: shape.b_transposed,
        }
    }

    /// A (m×k) and B (k×n) as the product uses them.
    pub fn views(&self) -> (ArrayView2<'_, f32>, ArrayView2<'_, f32>) {
        (
            view(&self.a, self.a_transposed),
            view(&self.b, self.b_transposed),
        )
    }
}

/// `x` as stored, or its transpose.
fn view(x: &Array2<f32>, transposed: bool) -> ArrayView2<'_, f32> {
    if transposed { x.t() } else { x.view() }
}

/// Deterministic fill in [-1, 1) (no rand dependency).
fn filled(rows: usize, cols: usize, seed: u32) -> Array2<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    Array2::from_shape_fn((rows, cols), |_| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    })
}
