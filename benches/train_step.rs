//! End to end: one whole training step (batch in, Adam update out) on the committed MNIST, for
//! the PyTorch-example network (784-400-20, grayscale targets) and for `vae-train`'s defaults.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use henbun::autodiff::sparse::{DEFAULT_MAX_DENSITY, set_max_density};
use henbun::nn::{Adam, AdamConfig, ParamStore};
use henbun::vae::data::{Binarize, Classes, Dataset, TrainSet};
use henbun::vae::model::RunConfig;
use henbun::vae::models::VaeSettings;
use henbun::vae::models::{Prior, Vae, VaeConfig};
use henbun::vae::random::Keys;
use henbun::vae::train;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The allocator `vae-train` uses (see its `main.rs`), so that the step is timed as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let splits = Dataset::Mnist
        .load(None, &Classes::All, Some(2048))
        .expect("committed MNIST");
    let defaults = RunConfig::default();
    let net = &defaults.settings::<VaeSettings>().net;
    let setups = [
        ("pytorch_example_784_400_20", vec![400], 20, Binarize::None),
        (
            "defaults",
            net.hidden.clone(),
            net.latent_dim,
            defaults.data.binarize,
        ),
    ];
    let mut group = c.benchmark_group("train_step_batch128");
    group.sample_size(30);
    for (name, hidden, latent_dim, binarize) in setups {
        let train_set = TrainSet::new(splits.train.clone(), binarize);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut store = ParamStore::new();
        let config = VaeConfig {
            input_dim: 784,
            hidden,
            latent_dim,
            activation: net.activation,
            likelihood: net.likelihood,
            beta: 1.0,
            cond_dim: 0,
            prior: Prior::Standard,
        };
        let vae = Vae::new(&mut store, config, &mut rng);
        let mut opt = Adam::new(&store, AdamConfig::default());
        let mut number = 1;
        let mut epoch = train_set.epoch(128, Keys::epoch(0, number));
        for (path, max_density) in [("dense", 0.0), ("sparse_input", DEFAULT_MAX_DENSITY)] {
            set_max_density(max_density);
            group.bench_function(format!("{name}/{path}"), |b| {
                b.iter(|| {
                    let batch = match epoch.next_batch() {
                        Some(batch) => batch,
                        None => {
                            number += 1;
                            epoch = train_set.epoch(128, Keys::epoch(0, number));
                            epoch.next_batch().expect("non-empty")
                        }
                    };
                    let draws = Keys::epoch(0, number).draws(&batch.indices);
                    black_box(train::step(&mut store, &mut opt, |p| {
                        vae.loss(p, p.constant(batch.images), None, &draws)
                    }))
                })
            });
        }
    }
    set_max_density(DEFAULT_MAX_DENSITY);
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
