//! The first layer's two products with a mostly-zero batch, through its nonzeros
//! (`autodiff::sparse`) against the dense GEMM: `X·W` (128×784×400) and the weight gradient
//! `Xᵀ·G` (784×128×400), at 13 % and 19 % nonzeros (binarized and grayscale MNIST batches) and
//! at 30 % (the default threshold of `matmul`/`affine`). Each sparse row includes the work the op
//! adds: compressing X for the forward product, transposing it for the gradient.

use std::hint::black_box;
use std::time::Duration;

use autodiff::gemm::gemm;
use autodiff::sparse::{SparseRows, sparse_gemm};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;

/// The allocator `vae-train` uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A deterministic `rows×cols` matrix with `density` of its entries nonzero (placed uniformly,
/// where an image's ink is clustered), values in (0, 1].
fn sparse_filled(rows: usize, cols: usize, density: f32, seed: u32) -> Array2<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    Array2::from_shape_fn((rows, cols), |_| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let u = (s >> 8) as f32 / (1u32 << 24) as f32;
        if u < density { 1.0 - u } else { 0.0 }
    })
}

fn benches(c: &mut Criterion) {
    let w = sparse_filled(784, 400, 1.0, 2);
    let g = sparse_filled(128, 400, 1.0, 3);
    for density in [0.13f32, 0.19, 0.30] {
        let x = sparse_filled(128, 784, density, 1);
        let percent = (density * 100.0).round();

        let mut y = Array2::<f32>::zeros((128, 400));
        let mut group = c.benchmark_group(format!("x_w_128x784x400_{percent}pct"));
        group.bench_function("dense", |b| {
            b.iter(|| gemm(1.0, black_box(x.view()), w.view(), 0.0, y.view_mut()))
        });
        group.bench_function("sparse", |b| {
            b.iter(|| {
                let xs = SparseRows::compress(black_box(x.view()), 1.0).expect("max 1");
                sparse_gemm(1.0, &xs, w.view(), 0.0, y.view_mut())
            })
        });
        group.finish();

        let xs = SparseRows::compress(x.view(), 1.0).expect("max 1");
        let mut dw = Array2::<f32>::zeros((784, 400));
        let mut group = c.benchmark_group(format!("xT_g_784x128x400_{percent}pct"));
        group.bench_function("dense", |b| {
            b.iter(|| gemm(1.0, black_box(x.t()), g.view(), 0.0, dw.view_mut()))
        });
        group.bench_function("sparse", |b| {
            b.iter(|| {
                sparse_gemm(
                    1.0,
                    &black_box(&xs).transpose(),
                    g.view(),
                    0.0,
                    dw.view_mut(),
                )
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = sparse_benches;
    config = Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(sparse_benches);
