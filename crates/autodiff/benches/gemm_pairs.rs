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

mod shapes;
use shapes::{GAN_SHAPES, Operands, SHAPES};

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
    for shape in SHAPES.into_iter().chain(GAN_SHAPES) {
        let (name, (m, k, n)) = (shape.name, shape.mkn);
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let operands = Operands::new(&shape);
        let (a, b) = operands.views();
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
