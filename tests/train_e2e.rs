//! End to end on the committed MNIST: a few hundred steps make the test −ELBO fall, and a run is
//! reproducible to the byte, including across a resume.

use std::fs;
use std::path::{Path, PathBuf};

use henbun::autodiff::Matrix;
use henbun::vae::chart;
use henbun::vae::model::RunConfig;
use henbun::vae::models;
use henbun::vae::parallel::Collective;
use henbun::vae::random::Keys;
use henbun::vae::run::{self, RunError, Silent, files, flags};

/// A fresh, empty directory under the system's temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("henbun-e2e-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The settings of `vae-train` with `args`; a flag given twice takes its last value.
fn with(args: &[&str]) -> RunConfig {
    let mut kept: Vec<&str> = Vec::new();
    let mut rest = args;
    while let [flag, tail @ ..] = rest {
        let takes_value = tail.first().is_some_and(|v| !v.starts_with("--"));
        let word = if takes_value { 2 } else { 1 };
        let later = args[args.len() - rest.len() + word..].contains(flag);
        if !later {
            kept.extend(&rest[..word]);
        }
        rest = &rest[word..];
    }
    flags::parse(kept).unwrap()
}

/// A small, quick configuration with `more` flags.
fn small_with(epochs: usize, more: &[&str]) -> RunConfig {
    let epochs = epochs.to_string();
    let mut args = vec![
        "--train-limit",
        "1024",
        "--hidden",
        "64",
        "--latent-dim",
        "4",
    ];
    args.extend([
        "--batch-size",
        "32",
        "--epochs",
        &epochs,
        "--iw-samples",
        "0",
    ]);
    args.extend(more);
    with(&args)
}

/// A small, quick configuration.
fn small(epochs: usize) -> RunConfig {
    small_with(epochs, &[])
}

/// `curves.png` of the run in `dir` is a PNG of the size its `metrics.csv` columns call for.
fn assert_curves(dir: &Path) {
    let bytes = fs::read(dir.join(files::CURVES)).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", dir.display());
    // The IHDR chunk opens the file: width and height, big-endian, at bytes 16 and 20.
    let side = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let metrics = fs::read_to_string(dir.join(files::METRICS)).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let expected = chart::curves_size(chart::panels(&header).len());
    assert_eq!((side(16), side(20)), expected, "{}", dir.display());
}

/// `a` holds a run of 3 epochs of `config(3)`: 2 epochs of `config(2)` in `b`, a resume and 1
/// more give the same checkpoint bytes and metrics; then both directories go.
fn resumes_exactly(a: &Path, b: &Path, config: impl Fn(usize) -> RunConfig) {
    let model = config(3).kind();
    run::train(config(2), b, None, &mut Silent).unwrap();
    let checkpoint = b.join(files::CHECKPOINT);
    run::train(config(3), b, Some(&checkpoint), &mut Silent).unwrap();
    let bytes = |d: &Path| fs::read(d.join(files::CHECKPOINT)).unwrap();
    assert!(
        bytes(a) == bytes(b),
        "{model}: 3 epochs differ from 2 + resume + 1"
    );
    assert_eq!(metrics_without_timing(a), metrics_without_timing(b));
    for dir in [a, b] {
        fs::remove_dir_all(dir).unwrap();
    }
}

fn metrics_without_timing(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join(files::METRICS))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

#[test]
fn a_few_hundred_steps_lower_the_test_neg_elbo() {
    let dir = scratch("falls");
    // 1024 images in batches of 32: 32 steps an epoch, 320 in all.
    let summary = run::train(small(10), &dir, None, &mut Silent).unwrap();
    let rows: Vec<Vec<f64>> = fs::read_to_string(dir.join(files::METRICS))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 10);
    let (first, last) = (rows[0][2], rows[9][2]);
    // An untrained decoder scores about 784·ln 2 ≈ 543 nats; after 320 steps the model is far
    // better, and the test −ELBO fell by at least 20% over the run.
    assert!(last < 0.8 * first, "test -ELBO {first} → {last}");
    assert!(last < 250.0, "test -ELBO {last}");
    let row = summary.last.unwrap().row;
    assert_eq!(row.get("test_neg_elbo").round(), last.round());
    for name in [
        files::CONFIG,
        files::CHECKPOINT,
        files::CURVES,
        files::SAMPLES,
        files::RECONSTRUCTIONS,
        files::INTERPOLATION,
    ] {
        assert!(dir.join(name).is_file(), "{name} missing");
    }
    assert_curves(&dir);
    // Only 2-D latent spaces get a manifold and a scatter.
    assert!(!dir.join(files::MANIFOLD).exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn same_seed_same_bytes_and_a_resume_continues_exactly() {
    let (a, b, c) = (scratch("straight"), scratch("resumed"), scratch("again"));
    // The RNG drives batches, binarization and noise.
    let config = small_with(4, &["--binarize", "dynamic"]);
    run::train(config.clone(), &a, None, &mut Silent).unwrap();
    run::train(config.clone(), &c, None, &mut Silent).unwrap();
    run::train(small(2), &b, None, &mut Silent).unwrap();
    let checkpoint = b.join(files::CHECKPOINT);
    run::train(small(4), &b, Some(&checkpoint), &mut Silent).unwrap();

    let bytes = |d: &Path| fs::read(d.join(files::CHECKPOINT)).unwrap();
    assert!(bytes(&a) == bytes(&c), "two runs of one seed differ");
    assert!(
        bytes(&a) == bytes(&b),
        "4 epochs differ from 2 + resume + 2"
    );
    assert_eq!(metrics_without_timing(&a), metrics_without_timing(&c));
    assert_eq!(metrics_without_timing(&a), metrics_without_timing(&b));
    assert_eq!(metrics_without_timing(&a).len(), 5); // header + 4 epochs

    // A different seed gives a different model.
    let d = scratch("other-seed");
    run::train(small_with(1, &["--seed", "1"]), &d, None, &mut Silent).unwrap();
    assert!(bytes(&d) != bytes(&a));
    for dir in [a, b, c, d] {
        fs::remove_dir_all(dir).unwrap();
    }
}

/// `small` for the model `name`, with 600 training and 2000 test images and `more` flags (for
/// M2, 50 labels; for the GANs, no per-epoch yardstick, which would train the reference
/// classifier on all of MNIST). A setting the model does not have is left out.
fn small_model_with(name: &str, epochs: usize, more: &[&str]) -> RunConfig {
    let kind = models::kind(name).unwrap();
    let has = |key: &str| RunConfig::for_model(kind).model.has(key);
    let epochs = epochs.to_string();
    let mut args = vec![
        "--model",
        name,
        "--train-limit",
        "600",
        "--test-limit",
        "2000",
    ];
    args.extend([
        "--batch-size",
        "32",
        "--epochs",
        &epochs,
        "--iw-samples",
        "20",
    ]);
    for (key, flag, value) in [
        ("hidden", "--hidden", "64"),
        ("latent_dim", "--latent-dim", "4"),
        ("labels", "--labels", "50"),
        ("quality_samples", "--quality-samples", "0"),
    ] {
        if has(key) {
            args.extend([flag, value]);
        }
    }
    args.extend(more);
    with(&args)
}

/// [`small_model_with`] and no more flags.
fn small_model(name: &str, epochs: usize) -> RunConfig {
    small_model_with(name, epochs, &[])
}

#[test]
fn every_conditional_model_trains_writes_its_pictures_and_resumes_exactly() {
    for (model, pictures, nll) in [
        (
            "cvae",
            &[files::CLASSES, files::ANALOGIES][..],
            Some("-log p(x|y)"),
        ),
        ("completion", &[files::COMPLETION], Some("-log p(x_u|x_o)")),
        ("regressor", &[files::COMPLETION], Some("-log p(x_u|x_o)")),
        ("m2", &[files::CLASSES, files::ANALOGIES], None),
    ] {
        let (a, b) = (
            scratch(&format!("{model}-a")),
            scratch(&format!("{model}-b")),
        );
        let summary = run::train(small_model(model, 3), &a, None, &mut Silent).unwrap();
        for name in pictures {
            assert!(a.join(name).is_file(), "{model}: {name} missing");
        }
        assert_curves(&a);
        let estimated = summary
            .figures
            .iter()
            .find(|f| f.name.starts_with("-log p"));
        assert_eq!(estimated.map(|f| f.name.as_str()), nll, "{model}");
        let rows = fs::read_to_string(a.join(files::METRICS)).unwrap();
        let header = rows.lines().next().unwrap();
        assert_eq!(header.contains("test_error"), model == "m2", "{header}");
        // The test bound falls from the first epoch to the last.
        let test: Vec<f64> = rows
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
            .collect();
        assert!(test[2] < test[0], "{model}: test {test:?}");

        resumes_exactly(&a, &b, |epochs| small_model(model, epochs));
    }
}

#[test]
fn the_autoencoders_train_write_their_pictures_and_resume_exactly() {
    for (model, pictures) in [
        ("ae", &[files::RECONSTRUCTIONS][..]),
        ("dae", &[files::RECONSTRUCTIONS, files::DENOISING]),
    ] {
        // 500 test images: the end-of-run figures cluster the pixels too, 5 × 10 k-means fits.
        let config = |epochs| {
            small_model_with(
                model,
                epochs,
                &["--binarize", "none", "--test-limit", "500"],
            )
        };
        let (a, b) = (
            scratch(&format!("{model}-a")),
            scratch(&format!("{model}-b")),
        );
        let summary = run::train(config(3), &a, None, &mut Silent).unwrap();
        for name in pictures {
            assert!(a.join(name).is_file(), "{model}: {name} missing");
        }
        assert_curves(&a);
        // The test squared error (the last column before `seconds`) falls epoch by epoch.
        let errors: Vec<f64> = metrics_without_timing(&a)
            .iter()
            .skip(1)
            .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
            .collect();
        assert!(
            errors[2] < errors[1] && errors[1] < errors[0],
            "{model}: {errors:?}"
        );
        let figure = |name: &str| summary.figure(name).unwrap().value;
        // metrics.csv keeps four decimals.
        let error = figure("squared error");
        assert!(
            (error - errors[2]).abs() < 1e-3,
            "{model}: {error} vs {errors:?}"
        );
        // PCA's 4 components, fitted to the same 600 images, leave an error well below the
        // untrained network's and above zero.
        let pca = figure("PCA squared error");
        assert!(pca > 1.0 && pca < errors[0], "{model}: PCA {pca}");
        for what in ["codes", "pixels"] {
            let accuracy = figure(&format!("k-means accuracy, {what}"));
            // Ten clusters of ten roughly balanced digits: chance is about 0.11.
            assert!(
                accuracy > 0.15 && accuracy <= 1.0,
                "{model} {what}: {accuracy}"
            );
        }

        // The DAE's noise included.
        resumes_exactly(&a, &b, config);
    }
}

#[test]
fn the_vqvae_trains_fits_its_priors_and_resumes_exactly() {
    for update in ["loss", "ema"] {
        let config = |epochs| {
            let flags = ["--codes", "4", "--code-dim", "4", "--codebook", "16"];
            let mut flags = flags.to_vec();
            flags.extend([
                "--codebook-update",
                update,
                "--restart-dead",
                "--test-limit",
                "500",
            ]);
            small_model_with("vqvae", epochs, &flags)
        };
        let (a, b) = (
            scratch(&format!("vqvae-{update}-a")),
            scratch(&format!("vqvae-{update}-b")),
        );
        let summary = run::train(config(3), &a, None, &mut Silent).unwrap();
        for name in [files::RECONSTRUCTIONS, files::SAMPLES, files::CODEBOOK] {
            assert!(a.join(name).is_file(), "{update}: {name} missing");
        }
        assert_curves(&a);
        // The test reconstruction term (the first test column, after five of training) falls.
        let recon: Vec<f64> = metrics_without_timing(&a)
            .iter()
            .skip(1)
            .map(|l| l.split(',').nth(6).unwrap().parse().unwrap())
            .collect();
        assert!(recon[2] < recon[0], "{update}: {recon:?}");
        let figure = |name: &str| summary.figure(name).unwrap().value;
        assert!((figure("reconstruction term") - recon[2]).abs() < 1e-3);
        assert!(figure("codes used") > 1.0, "{update}");
        // Each bound is the reconstruction term plus the rate, reported in bits.
        for prior in ["categorical", "autoregressive"] {
            let rate = figure(&format!("rate, {prior} prior"));
            assert!(rate > 0.0 && rate.is_finite(), "{update} {prior}: {rate}");
            let bound = figure(&format!("-log p(x) bound, {prior} prior"));
            let sum = figure("reconstruction term") + rate * std::f64::consts::LN_2;
            assert!(
                (bound - sum).abs() < 1e-9,
                "{update} {prior}: {bound} vs {sum}"
            );
        }
        // The priors are fitted after the last epoch of both runs, from the same seed.
        resumes_exactly(&a, &b, config);
    }
}

#[test]
fn a_diverging_resume_names_the_op_and_keeps_the_last_good_checkpoint() {
    let dir = scratch("diverge");
    run::train(small(2), &dir, None, &mut Silent).unwrap();
    let checkpoint = dir.join(files::CHECKPOINT);
    // A resume takes the learning rate from the checkpoint's settings: raised there from 1e-3
    // to 100 (a string of the same length, so the safetensors header's offsets still hold).
    let good = fs::read(&checkpoint).unwrap();
    let (from, to) = (b"lr = 0.001", b"lr = 100.0");
    let at = good.windows(from.len()).position(|w| w == from).unwrap();
    let mut doctored = good.clone();
    doctored[at..at + from.len()].copy_from_slice(to);
    fs::write(&checkpoint, &doctored).unwrap();
    let metrics = fs::read_to_string(dir.join(files::METRICS)).unwrap();

    let error = run::train(small(4), &dir, Some(&checkpoint), &mut Silent).unwrap_err();
    match &error {
        RunError::Diverged {
            epoch,
            step,
            anomaly,
            checkpoint: kept,
        } => {
            assert_eq!((*epoch, kept.as_deref()), (3, Some(checkpoint.as_path())));
            assert!(*step >= 1, "{error}");
            // The replay under anomaly detection names the op and where it was created.
            let anomaly = anomaly
                .as_deref()
                .unwrap_or_else(|| panic!("no op named: {error}"));
            assert!(
                anomaly.contains("of op `") && anomaly.contains(".rs:"),
                "{anomaly}"
            );
        }
        other => panic!("not a divergence: {other}"),
    }
    assert!(error.to_string().contains("is unchanged"), "{error}");
    // Nothing of the diverged epoch was written.
    assert_eq!(fs::read(&checkpoint).unwrap(), doctored);
    assert_eq!(
        fs::read_to_string(dir.join(files::METRICS)).unwrap(),
        metrics
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn m2_learns_to_classify_from_a_few_labels() {
    // 2000 images, 100 of them labeled, 6 epochs: chance is 90% error. A small network on
    // little data learns from the labels mostly through the classification term, so it is
    // weighted up here (α = 1) to test that the labels train q(y|x) at all.
    let dir = scratch("m2-learns");
    let more = ["--labels", "100", "--alpha", "1", "--train-limit", "2000"];
    let config = small_model_with("m2", 6, &more);
    let summary = run::train(config, &dir, None, &mut Silent).unwrap();
    let error = summary.figure("classification error").unwrap().value;
    assert!(error < 0.4, "test error {error}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_model_that_samples_or_scores_does_so_sensibly() {
    let mut sampled = Vec::new();
    let mut scored = Vec::new();
    for kind in models::all() {
        let dir = scratch(&format!("abilities-{kind}"));
        run::train(small_model(kind.name(), 3), &dir, None, &mut Silent).unwrap();
        let loaded = run::load(&dir.join(files::CHECKPOINT), RunConfig::default()).unwrap();
        let (abilities, test) = (loaded.model.abilities(), &loaded.test);
        let mut rng = run::evaluation_rng(0);
        if let Some(sampler) = abilities.sample {
            let samples = sampler.sample(25, &mut rng);
            assert_eq!(samples.images.dim(), (25, 784), "{kind}");
            assert!(
                samples.images.iter().all(|v| (0.0..=1.0).contains(v)),
                "{kind}: pixels outside [0, 1]"
            );
            if let Some(labels) = &samples.labels {
                assert_eq!(labels.len(), 25, "{kind}");
                assert!(labels.iter().all(|&y| y < 10), "{kind}");
            }
            sampled.push(kind.name());
        }
        if let Some(scorer) = abilities.score {
            // 200 test images against 200 images of uniform noise: the model has seen digits,
            // so it scores the noise as far less likely (higher) on average.
            let n = 200;
            let x = test
                .x
                .slice(henbun::autodiff::ndarray::s![..n, ..])
                .to_owned();
            let noise =
                Matrix::from_shape_fn((n, 784), |(i, j)| ((i * 7919 + j * 104_729) % 2) as f32);
            let mean = |v: Vec<f64>| {
                assert_eq!(v.len(), n, "{kind}");
                assert!(v.iter().all(|s| s.is_finite()), "{kind}");
                v.iter().sum::<f64>() / n as f64
            };
            let (digits, noise) = (
                mean(scorer.score(&x, Keys::evaluation(0))),
                mean(scorer.score(&noise, Keys::evaluation(0))),
            );
            assert!(
                digits < noise,
                "{kind}: {} digits {digits}, noise {noise}",
                scorer.score_name()
            );
            scored.push(kind.name());
        }
        fs::remove_dir_all(&dir).unwrap();
    }
    assert_eq!(
        sampled,
        ["vae", "cvae", "m2", "vqvae", "pixel-ar", "gan", "wgan"]
    );
    assert_eq!(scored, ["vae", "m2", "ae", "dae", "vqvae", "pixel-ar"]);
}

/// Counts the epochs a run trains.
#[derive(Default)]
struct EpochCounter(usize);

impl run::Observer for EpochCounter {
    fn epoch_end(&mut self, _row: &run::EpochRow) {
        self.0 += 1;
    }
}

#[test]
fn the_classifier_learns_deterministically_and_the_reference_is_trained_once() {
    let dir = scratch("classifier");
    let config = |epochs: usize| {
        let epochs = epochs.to_string();
        let mut args = vec!["--model", "classifier", "--train-limit", "2000"];
        args.extend([
            "--test-limit",
            "500",
            "--hidden",
            "64",
            "--batch-size",
            "32",
        ]);
        with(&[&args[..], &["--epochs", &epochs, "--iw-samples", "0"]].concat())
    };
    // Two epochs on 2 000 images classify most of the test images; the same seed gives the
    // same bytes.
    let (a, b) = (dir.join("a"), dir.join("b"));
    let summary = run::train(config(2), &a, None, &mut Silent).unwrap();
    let accuracy = summary.figure("accuracy").unwrap().value;
    assert!(accuracy > 0.8, "test accuracy {accuracy}");
    assert!(a.join("mistakes.png").is_file());
    run::train(config(2), &b, None, &mut Silent).unwrap();
    let bytes = |d: &Path| fs::read(d.join(files::CHECKPOINT)).unwrap();
    assert!(
        bytes(&a) == bytes(&b),
        "the same seed trained different weights"
    );

    // The reference is trained where it is missing, finished where it is short of its epochs,
    // and used as it is where it is complete.
    let reference = dir.join("reference");
    let mut counter = EpochCounter::default();
    let path = run::reference::ensure_reference(&reference, config(2), &mut counter).unwrap();
    assert_eq!((counter.0, bytes(&reference)), (2, bytes(&a)));
    let mut counter = EpochCounter::default();
    run::reference::ensure_reference(&reference, config(2), &mut counter).unwrap();
    assert_eq!(counter.0, 0);
    let short = dir.join("short");
    run::train(config(1), &short, None, &mut Silent).unwrap();
    let mut counter = EpochCounter::default();
    run::reference::ensure_reference(&short, config(2), &mut counter).unwrap();
    assert_eq!((counter.0, bytes(&short)), (1, bytes(&a)));
    // A checkpoint of other settings in its place is refused, not overwritten.
    let mut other = config(2);
    other.model.set("hidden", "32").unwrap();
    let err = run::reference::ensure_reference(&reference, other, &mut Silent).unwrap_err();
    assert!(
        err.to_string()
            .contains("not the run of the reference classifier"),
        "{err}"
    );
    assert_eq!(path, reference.join(files::CHECKPOINT));
    assert!(bytes(&reference) == bytes(&a));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pixel_ar_learns_writes_its_samples_and_resumes_exactly_with_and_without_a_background() {
    for (background, local) in [("0", "false"), ("0.05", "true")] {
        let config = |epochs| {
            let mut config = small_model_with("pixel-ar", epochs, &["--test-limit", "200"]);
            config.model.set("hidden", "16,16").unwrap();
            config.model.set("background", background).unwrap();
            config.model.set("local", local).unwrap();
            config
        };
        let (a, b) = (scratch("pixel-ar-a"), scratch("pixel-ar-b"));
        let summary = run::train(config(3), &a, None, &mut Silent).unwrap();
        assert!(a.join(files::SAMPLES).is_file());
        assert_curves(&a);
        // The exact test −log p(x) falls epoch by epoch, and the end-of-run figure is the
        // last epoch's (metrics.csv keeps four decimals).
        let nll: Vec<f64> = metrics_without_timing(&a)
            .iter()
            .skip(1)
            .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
            .collect();
        assert!(nll[2] < nll[1] && nll[1] < nll[0], "{nll:?}");
        let figure = summary.figure("-log p(x)").unwrap().value;
        assert!((figure - nll[2]).abs() < 1e-3, "{figure} {nll:?}");
        resumes_exactly(&a, &b, config);
    }
}

/// Process 0 of two whose twin does just what it does: every sum is twice its own value.
/// The checks come in order: the settings' checksum, the data's, then the parameters' after
/// each epoch; `data_differ` and `params_differ` make the twin's differ.
struct Twin {
    data_differ: bool,
    params_differ: bool,
    checks: std::cell::Cell<usize>,
}

impl Collective for Twin {
    fn rank(&self) -> usize {
        0
    }

    fn ranks(&self) -> usize {
        2
    }

    fn sum_into(&self, mine: &[f32], sums: &mut [f32]) {
        sums.iter_mut().zip(mine).for_each(|(s, v)| *s = 2.0 * v);
    }

    fn sum_f64(&self, values: &mut [f64]) {
        values.iter_mut().for_each(|v| *v *= 2.0);
    }

    fn min_max(&self, value: u64) -> (u64, u64) {
        let check = self.checks.get();
        self.checks.set(check + 1);
        let differ = match check {
            0 => false,
            1 => self.data_differ,
            _ => self.params_differ,
        };
        (value, value + u64::from(differ))
    }
}

#[test]
fn processes_that_disagree_on_the_data_or_the_parameters_stop_the_run_unsaved() {
    let dir = scratch("twin");
    let twin = |data_differ, params_differ| Twin {
        data_differ,
        params_differ,
        checks: std::cell::Cell::new(0),
    };
    let e = run::train_shared(small(2), &dir, None, &mut Silent, &twin(true, false)).unwrap_err();
    assert!(e.to_string().contains("different data"), "{e}");
    assert!(!dir.join(files::CHECKPOINT).exists());
    let e = run::train_shared(small(2), &dir, None, &mut Silent, &twin(false, true)).unwrap_err();
    assert!(
        e.to_string().contains("parameters differ after epoch 1"),
        "{e}"
    );
    assert!(
        !dir.join(files::CHECKPOINT).exists(),
        "saved after a mismatch"
    );
    // Agreeing, the run trains on its share of each batch and writes as process 0.
    let summary = run::train_shared(small(2), &dir, None, &mut Silent, &twin(false, false));
    assert_eq!(summary.unwrap().epochs, 2);
    assert!(dir.join(files::CHECKPOINT).exists());
    // A model that trains as one process is refused by name.
    // Refused before anything else: the reference classifier it follows its samples with
    // (--quality-samples, 2000 by default) is not trained first.
    let gan = with(&["--model", "gan", "--epochs", "1"]);
    let out = dir.join("gan");
    let e = run::train_shared(gan, &out, None, &mut Silent, &twin(false, false)).unwrap_err();
    assert!(
        e.to_string().contains("does not train data-parallel"),
        "{e}"
    );
    assert!(!dir.join("reference-classifier-mnist").exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_default_runs_first_epoch_prints_the_readmes_figures() {
    // README.md, "cargo run -p vae-train --release": the default run's first line,
    // `epoch 1/30  train -ELBO 164.935  test -ELBO 128.721 (recon 105.187, KL 23.533)`. Every
    // draw is keyed by (seed, purpose, epoch, image), so these figures are those of any
    // machine, thread count or number of processes, up to float rounding.
    let dir = scratch("default-epoch-1");
    let config = with(&["--epochs", "1", "--iw-samples", "0"]);
    let summary = run::train(config, &dir, None, &mut Silent).unwrap();
    let values: Vec<f64> = summary.last.unwrap().row.values().collect();
    let readme = [164.935, 128.721, 105.187, 23.533];
    for (got, want) in values.iter().zip(readme) {
        assert!((got - want).abs() < 2e-3, "{values:?} against {readme:?}");
    }
    fs::remove_dir_all(&dir).unwrap();
}
