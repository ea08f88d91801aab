//! One forward + backward pass of the VAE's 784-400-(20 μ, 20 log σ²)-400-784 MLP at batch 128,
//! and the same step's eleven GEMMs replayed alone: their ratio is the share of the step spent
//! in GEMM. Both with every product dense (`autodiff::sparse` turned off, so that the replay
//! matches the step); `forward_backward_sparse_input` is the same pass as it runs by default,
//! with the batch's first layer through its nonzeros.

use std::hint::black_box;
use std::rc::Rc;

use autodiff::gemm::gemm;
use autodiff::{Matrix, Tape, affine, bce_with_logits, gaussian_kl, reparameterize};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::s;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The allocator `vae-train` uses (see its `main.rs`), so that the step is timed as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 128;
const IN: usize = 784;
const HIDDEN: usize = 400;
const LATENT: usize = 20;

fn normal(rng: &mut ChaCha8Rng, shape: (usize, usize), scale: f32) -> Matrix {
    Matrix::from_shape_fn(shape, |_| {
        let n: f32 = StandardNormal.sample(rng);
        scale * n
    })
}

/// Weights and biases of encoder (784→400→2·20) and decoder (20→400→784), a binary batch, noise.
struct Setup {
    params: Vec<Rc<Matrix>>,
    x: Rc<Matrix>,
    eps: Matrix,
}

fn setup() -> Setup {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let layers = [
        (IN, HIDDEN),
        (HIDDEN, 2 * LATENT),
        (LATENT, HIDDEN),
        (HIDDEN, IN),
    ];
    let mut params = Vec::new();
    for (fan_in, fan_out) in layers {
        let scale = (2.0 / fan_in as f32).sqrt();
        params.push(Rc::new(normal(&mut rng, (fan_in, fan_out), scale)));
        params.push(Rc::new(Matrix::zeros((1, fan_out))));
    }
    let x = Rc::new(Matrix::from_shape_fn((BATCH, IN), |_| {
        if rng.random::<f32>() < 0.13 { 1.0 } else { 0.0 }
    }));
    let eps = normal(&mut rng, (BATCH, LATENT), 1.0);
    Setup { params, x, eps }
}

/// The negative ELBO's forward and backward; returns the loss.
fn step(s: &Setup) -> f32 {
    let tape = Tape::new();
    let p: Vec<_> = s.params.iter().map(|w| tape.leaf(Rc::clone(w))).collect();
    let x = tape.constant(Rc::clone(&s.x));
    let h = affine(x, p[0], p[1]).relu();
    let stats = affine(h, p[2], p[3]);
    let (mu, log_var) = (
        stats.slice_cols(0..LATENT),
        stats.slice_cols(LATENT..2 * LATENT),
    );
    let z = reparameterize(mu, log_var, &s.eps);
    let logits = affine(affine(z, p[4], p[5]).relu(), p[6], p[7]);
    let loss = (bce_with_logits(logits, x) + gaussian_kl(mu, log_var)).mean_rows();
    let grads = tape.backward(loss);
    black_box(grads.get(p[0]));
    loss.item()
}

/// The eleven GEMMs of `step` (4 forward, 7 backward: the input gradient of the data is skipped),
/// into preallocated buffers.
struct GemmReplay {
    /// (a, a transposed?, b, b transposed?, c)
    calls: Vec<(Matrix, bool, Matrix, bool, Matrix)>,
}

fn replay_setup() -> GemmReplay {
    let z = |r, c| Matrix::zeros((r, c));
    let (b, i, h, l) = (BATCH, IN, HIDDEN, LATENT);
    let calls = vec![
        // forward: x·W1, h·W2, z·W3, h2·W4
        (z(b, i), false, z(i, h), false, z(b, h)),
        (z(b, h), false, z(h, 2 * l), false, z(b, 2 * l)),
        (z(b, l), false, z(l, h), false, z(b, h)),
        (z(b, h), false, z(h, i), false, z(b, i)),
        // backward, layer 4: h2ᵀ·g, g·W4ᵀ
        (z(b, h), true, z(b, i), false, z(h, i)),
        (z(b, i), false, z(h, i), true, z(b, h)),
        // layer 3: zᵀ·g, g·W3ᵀ
        (z(b, l), true, z(b, h), false, z(l, h)),
        (z(b, h), false, z(l, h), true, z(b, l)),
        // layer 2: hᵀ·g, g·W2ᵀ
        (z(b, h), true, z(b, 2 * l), false, z(h, 2 * l)),
        (z(b, 2 * l), false, z(h, 2 * l), true, z(b, h)),
        // layer 1: xᵀ·g
        (z(b, i), true, z(b, h), false, z(i, h)),
    ];
    GemmReplay { calls }
}

fn replay(r: &mut GemmReplay) {
    for (a, at, b, bt, c) in &mut r.calls {
        let a = if *at { a.t() } else { a.view() };
        let b = if *bt { b.t() } else { b.view() };
        gemm(1.0, a, b, 0.0, c.view_mut());
    }
    black_box(r.calls[0].4.slice(s![0, 0]));
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let mut r = replay_setup();
    let mut group = c.benchmark_group("vae_mlp_batch128");
    group.sample_size(40);
    autodiff::sparse::set_max_density(0.0);
    group.bench_function("forward_backward", |bench| bench.iter(|| step(&s)));
    group.bench_function("gemm_only", |bench| bench.iter(|| replay(&mut r)));
    autodiff::sparse::set_max_density(autodiff::sparse::DEFAULT_MAX_DENSITY);
    group.bench_function("forward_backward_sparse_input", |bench| {
        bench.iter(|| step(&s))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
