//! Checkpoints written before the settings were typed (one metadata key per setting, as the flag
//! spelled it) still load with their model's own settings, evaluate, and resume, for every model
//! kind; and the two older fixtures from before the models moved behind one trait (commit
//! bb8a499) too. `tests/fixtures/README.md` says how each was made.

use std::fs;
use std::path::{Path, PathBuf};

use henbun::vae::model::{Finish, RunConfig};
use henbun::vae::models;
use henbun::vae::models::{
    CompletionSettings, DaeSettings, GanLoss, GanSettings, M2Settings, PixelArSettings,
    VaeSettings, VqVaeSettings, Window,
};
use henbun::vae::parallel::Alone;
use henbun::vae::random::Keys;
use henbun::vae::run::{self, Silent, files};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The settings of a command given `data_dir`, `iw_samples` and `epochs`, as `eval` and
/// `--resume` pass them.
fn command(data_dir: Option<PathBuf>, epochs: usize) -> RunConfig {
    let mut config = RunConfig::default();
    (config.data.dir, config.iw_samples, config.epochs) = (data_dir, 3, epochs);
    config
}

/// A fresh, empty directory under the system's temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("henbun-old-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_kinds_flat_checkpoint_loads_with_its_settings_evaluates_and_resumes() {
    let data = fixture("data-4x4");
    for kind in models::all() {
        let path = fixture(&format!("{kind}-flat-settings.safetensors"));
        let loaded = run::load(&path, command(Some(data.clone()), 1)).unwrap();
        let c = &loaded.config;
        assert_eq!(c.kind(), kind);
        assert_eq!(
            (c.optimizer.batch_size, c.data.dataset.name()),
            (16, "mnist")
        );
        let test = loaded.model.test(&loaded.test, Keys::evaluation(c.seed));
        assert!(test.values().all(f64::is_finite), "{kind}: {test:?}");
        let figures = loaded.model.finish(
            &loaded.test,
            &mut Finish {
                iw_samples: 3,
                keys: Keys::evaluation(c.seed),
                world: &Alone,
                note: &mut |_| {},
                train: &loaded.train,
            },
        );
        assert!(figures.is_ok(), "{kind}: {:?}", figures.err());

        // Resumed for a second epoch: the run continues, in the new form.
        let dir = scratch(&format!("resume-{kind}"));
        let checkpoint = dir.join(files::CHECKPOINT);
        fs::copy(&path, &checkpoint).unwrap();
        let summary = run::train(
            command(Some(data.clone()), 2),
            &dir,
            Some(&checkpoint),
            &mut Silent,
        )
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(summary.last.unwrap().epoch, 2, "{kind}");
        let saved = fs::read_to_string(dir.join(files::CONFIG)).unwrap();
        let again = RunConfig::from_toml(&saved).unwrap();
        assert_eq!(again.model, loaded.config.model, "{kind}");
        assert!(run::load(&checkpoint, command(Some(data.clone()), 2)).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_flat_checkpoints_own_settings_are_read_back() {
    let data = Some(fixture("data-4x4"));
    let load = |kind: &str| {
        let path = fixture(&format!("{kind}-flat-settings.safetensors"));
        run::load(&path, command(data.clone(), 1)).unwrap().config
    };
    // tests/fixtures/README.md lists each fixture's flags.
    let vae = load("vae");
    let vae: &VaeSettings = vae.settings();
    assert_eq!(
        (
            vae.background,
            vae.net.hidden.as_slice(),
            vae.net.latent_dim
        ),
        (0.1, &[2][..], 2)
    );
    let completion = load("completion");
    let completion: &CompletionSettings = completion.settings();
    assert_eq!(completion.observe.to_string(), "left-half");
    let m2 = load("m2");
    let m2: &M2Settings = m2.settings();
    assert_eq!((m2.labels, m2.alpha), (20, 0.5));
    let dae = load("dae");
    let dae: &DaeSettings = dae.settings();
    assert_eq!(dae.noise().unwrap().to_string(), "salt-pepper 0.3");
    let vqvae = load("vqvae");
    let vqvae: &VqVaeSettings = vqvae.settings();
    assert_eq!(
        (
            vqvae.codes,
            vqvae.code_dim,
            vqvae.codebook,
            vqvae.restart_dead
        ),
        (2, 2, 4, true)
    );
    let pixel_ar = load("pixel-ar");
    let pixel_ar: &PixelArSettings = pixel_ar.settings();
    let window = Window {
        rows_above: 2,
        half_width: 2,
    };
    assert_eq!((pixel_ar.window, pixel_ar.local), (window, true));
    let gan = load("gan");
    assert_eq!(gan.optimizer.lr_schedule.to_string(), "cosine");
    let gan: &GanSettings = gan.settings();
    assert_eq!(
        (gan.gan_loss, gan.net.quality_samples),
        (GanLoss::Minimax, 0)
    );
}

#[test]
fn checkpoints_from_before_the_trait_load_with_their_settings_and_evaluate() {
    let loaded = run::load(&fixture("m2-before-trait.safetensors"), command(None, 1)).unwrap();
    let c = &loaded.config;
    let m2: &M2Settings = c.settings();
    assert_eq!(
        (
            c.kind().name(),
            m2.labels,
            m2.net.hidden.as_slice(),
            m2.net.latent_dim
        ),
        ("m2", 20, &[2][..], 2)
    );
    let test = loaded.model.test(&loaded.test, Keys::evaluation(c.seed));
    // test_neg_elbo, test_recon, test_kl, test_error: a bound of an untrained-ish model, and
    // an error rate.
    let bound = test.get("test_neg_elbo");
    assert!(bound.is_finite() && bound > 0.0, "{test:?}");
    assert!((0.0..=1.0).contains(&test.get("test_error")), "{test:?}");

    let path = fixture("completion-before-trait.safetensors");
    let loaded = run::load(&path, command(None, 1)).unwrap();
    let completion: &CompletionSettings = loaded.config.settings();
    assert_eq!(completion.observe.to_string(), "left-half");
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
fn a_checkpoint_from_before_the_trait_resumes() {
    let dir = scratch("before-trait");
    let checkpoint = dir.join(files::CHECKPOINT);
    fs::copy(fixture("m2-before-trait.safetensors"), &checkpoint).unwrap();
    let mut config = command(None, 2);
    config.iw_samples = 0;
    let summary = run::train(config, &dir, Some(&checkpoint), &mut Silent).unwrap();
    assert_eq!(summary.epochs, 2);
    assert_eq!(summary.last.unwrap().epoch, 2);
    let metrics = fs::read_to_string(dir.join(files::METRICS)).unwrap();
    assert!(metrics.starts_with("epoch,train_loss,"), "{metrics}");
    fs::remove_dir_all(&dir).unwrap();
}
