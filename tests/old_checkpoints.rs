//! Checkpoints written before the run's models moved behind `RunModel` (tests/fixtures, commit
//! bb8a499) still load with their model's own settings, evaluate, and resume.

use std::fs;
use std::path::{Path, PathBuf};

use henbun::vae::parallel::Alone;
use henbun::vae::random::Keys;
use henbun::vae::run::{self, Finish, RunConfig, Silent, files};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn old_checkpoints_load_with_their_settings_and_evaluate() {
    let loaded = run::load(
        &fixture("m2-before-trait.safetensors"),
        RunConfig::default(),
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(
        (c.model.name(), c.labels, c.hidden.as_slice(), c.latent_dim),
        ("m2", 20, &[2][..], 2)
    );
    let test = loaded.model.test(&loaded.test, Keys::evaluation(c.seed));
    // test_neg_elbo, test_recon, test_kl, test_error: a bound of an untrained-ish model, and
    // an error rate.
    assert_eq!(test.len(), 4);
    assert!(test[0].is_finite() && test[0] > 0.0, "{test:?}");
    assert!((0.0..=1.0).contains(&test[3]), "{test:?}");

    let path = fixture("completion-before-trait.safetensors");
    let loaded = run::load(&path, RunConfig::default()).unwrap();
    assert_eq!(loaded.config.observe.to_string(), "left-half");
    let figures = loaded
        .model
        .finish(
            &loaded.test,
            &mut Finish {
                iw_samples: 3,
                keys: Keys::evaluation(0),
                world: &Alone,
                note: &mut |_| {},
                train: &loaded.train,
            },
        )
        .unwrap();
    let nll = figures
        .iter()
        .find(|f| f.name == "-log p(x_u|x_o)")
        .unwrap();
    // Half an image of Bernoulli pixels: below 392·ln 2 ≈ 272 nats once trained a little.
    assert!(nll.value > 0.0 && nll.value < 272.0, "{nll:?}");
}

#[test]
fn an_old_checkpoint_resumes() {
    let dir = std::env::temp_dir().join(format!("henbun-old-ckpt-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join(files::CHECKPOINT);
    fs::copy(fixture("m2-before-trait.safetensors"), &checkpoint).unwrap();
    let config = RunConfig {
        epochs: 2,
        iw_samples: 0,
        ..RunConfig::default()
    };
    let summary = run::train(config, &dir, Some(&checkpoint), &mut Silent).unwrap();
    assert_eq!(summary.epochs, 2);
    assert_eq!(summary.last.unwrap().epoch, 2);
    let metrics = fs::read_to_string(dir.join(files::METRICS)).unwrap();
    assert!(metrics.starts_with("epoch,train_loss,"), "{metrics}");
    fs::remove_dir_all(&dir).unwrap();
}
