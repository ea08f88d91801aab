//! The 2-thread speed-up of `gemm` over single-thread matrixmultiply, measured in interleaved groups.
//!
//! On a shared host the speed of both cores drifts from second to second, so two criterion
//! groups measured one after the other can disagree by more than the effect being measured.
//! Here every sample is a group of four runs on the same operands, back to back, in the order
//! rayon, single, single, rayon (so that each entry point runs once first and once after the
//! other); the sample is the group's single-thread time over its rayon time.
//! The table gives the median, the quartiles and the share of groups at or above ×1.75 (the
//! target of the GEMM issue), for each shape of the VAE training step.

use std::hint::black_box;
use std::time::{Duration, Instant};

use autodiff::gemm::{gemm, gemm_single_thread};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// Deterministic fill in [-1, 1) (no rand dependency).
fn filled(rows: usize, cols: usize, seed: u32) -> Array2<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    Array2::from_shape_fn((rows, cols), |_| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    })
}

/// The allocator `vae-train` uses (matrixmultiply allocates its packing buffers on every call).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Entry = fn(f32, ArrayView2<'_, f32>, ArrayView2<'_, f32>, f32, ArrayViewMut2<'_, f32>);

/// Seconds for `reps` calls of `entry`.
fn time(
    entry: Entry,
    reps: u32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: &mut Array2<f32>,
) -> f64 {
    let start = Instant::now();
    for _ in 0..reps {
        entry(
            1.0,
            black_box(a),
            black_box(b),
            0.0,
            black_box(c.view_mut()),
        );
    }
    start.elapsed().as_secs_f64()
}

/// One product `C (m×n) ← A (m×k) · B (k×n)`; a transposed operand is stored as its
/// transpose and passed as `.t()`, as the backward pass does.
struct Shape {
    name: &'static str,
    mkn: (usize, usize, usize),
    a_transposed: bool,
    b_transposed: bool,
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

/// The shapes of `benches/gemm.rs`: the VAE training step's products at batch 128.
const SHAPES: [Shape; 7] = [
    shape("128x784x400", (128, 784, 400), false, false),
    shape("128x400x40", (128, 400, 40), false, false),
    shape("128x20x400", (128, 20, 400), false, false),
    shape("128x400x784", (128, 400, 784), false, false),
    shape("784x128x400_aT", (784, 128, 400), true, false),
    shape("400x128x784_aT", (400, 128, 784), true, false),
    shape("128x400x784_bT", (128, 400, 784), false, true),
];

/// The value at quantile `q` of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter (as criterion takes) selects shapes.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let budget = Duration::from_secs(4);
    println!(
        "gemm_pairs: {} threads; ratio = single-thread time / gemm time, per interleaved group",
        rayon::current_num_threads()
    );
    println!(
        "{:<16} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "shape", "GFLOP/s", "q25", "median", "q75", "≥1.75", "groups"
    );
    for shape in SHAPES {
        let Shape {
            name,
            mkn: (m, k, n),
            a_transposed,
            b_transposed,
        } = shape;
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let a_store = if a_transposed {
            filled(k, m, 1)
        } else {
            filled(m, k, 1)
        };
        let b_store = if b_transposed {
            filled(n, k, 2)
        } else {
            filled(k, n, 2)
        };
        let a = if a_transposed {
            a_store.t()
        } else {
            a_store.view()
        };
        let b = if b_transposed {
            b_store.t()
        } else {
            b_store.view()
        };
        let mut c = Array2::<f32>::zeros((m, n));
        // Each run is at least ~1.5·10⁷ FLOP (≈ 0.25 ms on two threads here), so that timer
        // resolution does not matter.
        let flop = 2.0 * (m * k * n) as f64;
        let reps = (1.5e7 / flop).ceil().max(1.0) as u32;
        for _ in 0..20 {
            time(gemm, reps, a, b, &mut c);
            time(gemm_single_thread, reps, a, b, &mut c);
        }
        let mut ratios = Vec::new();
        let mut rayon_secs = Vec::new();
        let start = Instant::now();
        while start.elapsed() < budget {
            let par = time(gemm, reps, a, b, &mut c);
            let single = time(gemm_single_thread, reps, a, b, &mut c)
                + time(gemm_single_thread, reps, a, b, &mut c);
            let par = par + time(gemm, reps, a, b, &mut c);
            ratios.push(single / par);
            rayon_secs.push(par / f64::from(2 * reps));
        }
        ratios.sort_by(f64::total_cmp);
        rayon_secs.sort_by(f64::total_cmp);
        let above = ratios.iter().filter(|&&r| r >= 1.75).count();
        println!(
            "{:<16} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>6.0}% {:>7}",
            name,
            flop / quantile(&rayon_secs, 0.5) / 1e9,
            quantile(&ratios, 0.25),
            quantile(&ratios, 0.5),
            quantile(&ratios, 0.75),
            100.0 * above as f64 / ratios.len() as f64,
            ratios.len()
        );
    }
}
