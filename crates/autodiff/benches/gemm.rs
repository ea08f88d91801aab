//! GEMM throughput (GFLOP/s) at the shapes of the VAE training step: rayon vs single thread.

use std::hint::black_box;
use std::time::Duration;

use autodiff::gemm::{gemm, gemm_single_thread};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;

mod shapes;
use shapes::{Operands, SHAPES, Shape};

/// The allocator `vae-train` uses (matrixmultiply allocates its packing buffers on every call).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One benchmark group: `C (m×n) ← A (m×k) · B (k×n)`, timed with `gemm` and `gemm_single_thread`.
fn bench_shape(c: &mut Criterion, shape: &Shape) {
    let (m, k, n) = shape.mkn;
    let operands = Operands::new(shape);
    let (a, b) = operands.views();
    let mut out = Array2::<f32>::zeros((m, n));

    let mut group = c.benchmark_group(shape.name);
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
    for shape in &SHAPES {
        bench_shape(c, shape);
    }
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
