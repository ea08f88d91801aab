//! GEMM throughput (GFLOP/s) at the shapes of the VAE training step and of the GAN's: rayon vs
//! single thread, and single thread against `matrixmultiply` called directly (the same as
//! `single` on a CPU without AVX-512F, where `gemm` uses it).

use std::hint::black_box;
use std::time::Duration;

use autodiff::gemm::{gemm, gemm_single_thread};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;

mod shapes;
use shapes::{GAN_SHAPES, Operands, SHAPES, Shape};

/// The allocator `vae-train` uses (matrixmultiply allocates its packing buffers on every call).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One benchmark group: `C (m×n) ← A (m×k) · B (k×n)`, timed with `gemm`, `gemm_single_thread`
/// and `matrixmultiply::sgemm`.
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
    group.bench_function("matrixmultiply", |bch| {
        bch.iter(|| {
            let c = out.view_mut();
            let (rsc, csc) = (c.strides()[0], c.strides()[1]);
            // SAFETY: a, b and c are live views of m×k, k×n and m×n; sgemm reads and writes
            // only inside them, through their strides.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    black_box(a).as_ptr(),
                    a.strides()[0],
                    a.strides()[1],
                    black_box(b).as_ptr(),
                    b.strides()[0],
                    b.strides()[1],
                    0.0,
                    black_box(out.as_mut_ptr()),
                    rsc,
                    csc,
                )
            }
        })
    });
    group.finish();
    black_box(&out);
}

fn benches(c: &mut Criterion) {
    for shape in SHAPES.iter().chain(&GAN_SHAPES) {
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
