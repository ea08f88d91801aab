//! GEMM throughput (GFLOP/s) at the shapes of the VAE training step: rayon vs single thread.

use std::hint::black_box;
use std::time::Duration;

use autodiff::gemm::{gemm, gemm_single_thread};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;

/// The allocator `vae-train` uses (matrixmultiply allocates its packing buffers on every call).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How an operand is stored and passed.
#[derive(Clone, Copy)]
enum Layout {
    /// Stored as used (row-major `rows×cols`).
    Plain,
    /// Stored as the transpose (`cols×rows`) and passed as `.t()`.
    Transposed,
}

/// Deterministic fill in [-1, 1) (no rand dependency).
fn filled(rows: usize, cols: usize, seed: u32) -> Array2<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    Array2::from_shape_fn((rows, cols), |_| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    })
}

/// Stored matrix for a logical `rows×cols` operand.
fn stored(rows: usize, cols: usize, layout: Layout, seed: u32) -> Array2<f32> {
    match layout {
        Layout::Plain => filled(rows, cols, seed),
        Layout::Transposed => filled(cols, rows, seed),
    }
}

/// One benchmark group: `C (m×n) ← A (m×k) · B (k×n)`, timed with `gemm` and `gemm_single_thread`.
fn bench_shape(
    c: &mut Criterion,
    name: &str,
    (m, k, n): (usize, usize, usize),
    la: Layout,
    lb: Layout,
) {
    let a_store = stored(m, k, la, 1);
    let b_store = stored(k, n, lb, 2);
    let a = match la {
        Layout::Plain => a_store.view(),
        Layout::Transposed => a_store.t(),
    };
    let b = match lb {
        Layout::Plain => b_store.view(),
        Layout::Transposed => b_store.t(),
    };
    assert_eq!((a.dim(), b.dim()), ((m, k), (k, n)));
    let mut out = Array2::<f32>::zeros((m, n));

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements((2 * m * k * n) as u64));
    group.bench_function("rayon", |bch| {
        bch.iter(|| {
            gemm(
                1.0,
                black_box(a),
                black_box(b),
                0.0,
                black_box(out.view_mut()),
            )
        })
    });
    group.bench_function("single", |bch| {
        bch.iter(|| {
            gemm_single_thread(
                1.0,
                black_box(a),
                black_box(b),
                0.0,
                black_box(out.view_mut()),
            )
        })
    });
    group.finish();
    black_box(&out);
}

fn benches(c: &mut Criterion) {
    use Layout::{Plain, Transposed};
    bench_shape(c, "128x784x400", (128, 784, 400), Plain, Plain);
    bench_shape(c, "128x400x40", (128, 400, 40), Plain, Plain);
    bench_shape(c, "128x20x400", (128, 20, 400), Plain, Plain);
    bench_shape(c, "128x400x784", (128, 400, 784), Plain, Plain);
    bench_shape(c, "784x128x400_aT", (784, 128, 400), Transposed, Plain);
    bench_shape(c, "400x128x784_aT", (400, 128, 784), Transposed, Plain);
    bench_shape(c, "128x400x784_bT", (128, 400, 784), Plain, Transposed);
}

criterion_group! {
    name = gemm_benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(gemm_benches);
