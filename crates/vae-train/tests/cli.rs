//! The `vae-train` binary as a user runs it: every file written, the subcommands, and one clear
//! message (never a panic) for bad flags, bad data and bad checkpoints.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vae_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vae-train"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("henbun-cli-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails with exactly one `error:` line and no panic.
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "succeeded: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert!(err.contains(needle), "no `{needle}` in: {err}");
    let errors = err.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "not one `error:` line: {err}");
}

/// `eval --iw-samples 5` (with `more` flags) and `sample --n n` on `checkpoint` succeed, the
/// sample is a PNG at `png`; returns what `eval` printed.
fn eval_and_sample(checkpoint: &Path, png: &Path, n: usize, more: &[&str]) -> String {
    let checkpoint = checkpoint.to_str().unwrap();
    let mut args = vec!["eval", "--checkpoint", checkpoint, "--iw-samples", "5"];
    args.extend(more);
    let o = vae_train(&args);
    assert!(o.status.success(), "{checkpoint}: {}", stderr(&o));
    let printed = String::from_utf8_lossy(&o.stdout).into_owned();
    let n = n.to_string();
    let args = [
        "sample",
        "--checkpoint",
        checkpoint,
        "--n",
        &n,
        "--out",
        png.to_str().unwrap(),
    ];
    let o = vae_train(&args);
    assert!(o.status.success(), "{checkpoint}: {}", stderr(&o));
    assert_eq!(&fs::read(png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    printed
}

#[test]
fn train_writes_every_file_then_eval_and_sample_read_the_checkpoint() {
    let dir = scratch("train");
    let out = dir.join("run");
    let o = vae_train(&[
        "--train-limit",
        "256",
        "--epochs",
        "2",
        "--hidden",
        "32",
        "--latent-dim",
        "2",
        "--iw-samples",
        "10",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("epoch   2/2"), "{stdout}");
    assert!(stdout.contains("-log p(x)"), "{stdout}");
    for name in [
        "config.toml",
        "metrics.csv",
        "checkpoint.safetensors",
        "samples.png",
        "reconstructions.png",
        "interpolation.png",
        "manifold.png",
        "latent.png",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
        assert!(stdout.contains(name), "{name} not listed in: {stdout}");
    }
    let config = fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("hidden = [32]") && config.contains("latent_dim = 2"),
        "{config}"
    );

    let stdout = eval_and_sample(
        &out.join("checkpoint.safetensors"),
        &dir.join("s.png"),
        9,
        &[],
    );
    assert!(
        stdout.contains("test -ELBO")
            && stdout.contains("K = 5")
            && stdout.contains("active units"),
        "{stdout}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn each_conditional_model_trains_evaluates_and_samples_through_the_cli() {
    let dir = scratch("models");
    for (model, picture, figure) in [
        ("cvae", "classes.png", "-log p(x|y)"),
        ("completion", "completion.png", "-log p(x_u|x_o)"),
        ("regressor", "completion.png", "-log p(x_u|x_o)"),
        ("m2", "analogies.png", "classification error"),
    ] {
        let out = dir.join(model);
        let mut args = vec!["--model", model, "--train-limit", "200", "--epochs", "1"];
        args.extend([
            "--hidden",
            "16",
            "--iw-samples",
            "5",
            "--out",
            out.to_str().unwrap(),
        ]);
        // Each model's own flags: M2's labels, the CVAEs' latent space.
        match model {
            "m2" => args.extend(["--labels", "20", "--latent-dim", "3"]),
            "regressor" => {}
            _ => args.extend(["--latent-dim", "3"]),
        }
        let o = vae_train(&args);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(out.join(picture).is_file(), "{model}: {picture} missing");
        assert!(
            stdout.contains(figure),
            "{model}: no `{figure}` in {stdout}"
        );
        let config = fs::read_to_string(out.join("config.toml")).unwrap();
        assert!(config.contains(&format!("model = \"{model}\"")), "{config}");

        let png = dir.join(format!("{model}.png"));
        let stdout = eval_and_sample(&out.join("checkpoint.safetensors"), &png, 4, &[]);
        assert!(stdout.contains(figure), "{model} eval: {stdout}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_autoencoders_train_evaluate_and_sample_through_the_cli() {
    let dir = scratch("autoencoders");
    for (model, noise, pictures) in [
        ("ae", "mask", &["reconstructions.png", "latent.png"][..]),
        (
            "dae",
            "salt-pepper",
            &["reconstructions.png", "denoising.png", "latent.png"],
        ),
    ] {
        let out = dir.join(model);
        let mut args = vec!["--model", model, "--train-limit", "200", "--epochs", "1"];
        args.extend(["--hidden", "16", "--latent-dim", "2", "--test-limit", "500"]);
        args.extend(["--out", out.to_str().unwrap()]);
        // Only the DAE has a noise.
        if model == "dae" {
            args.extend(["--noise", noise]);
        }
        let o = vae_train(&args);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        for picture in pictures {
            assert!(out.join(picture).is_file(), "{model}: {picture} missing");
        }
        let config = fs::read_to_string(out.join("config.toml")).unwrap();
        // The autoencoders default to grayscale targets; only the DAE keeps a noise.
        assert!(config.contains("binarize = \"none\""), "{config}");
        assert_eq!(
            config.contains("noise = \"salt-pepper\""),
            model == "dae",
            "{config}"
        );
        let figures = [
            "test squared error",
            "PCA with the same 2 components",
            "salt-pepper 0.25 noise: the noisy input's squared error",
            "k-means on the codes: cluster accuracy",
            "k-means on the pixels: NMI",
        ];
        let png = dir.join(format!("{model}.png"));
        let evaluated = eval_and_sample(
            &out.join("checkpoint.safetensors"),
            &png,
            9,
            &["--test-limit", "500"],
        );
        assert!(evaluated.contains("test set, 500 images"), "{evaluated}");
        for printed in [stdout.as_ref(), evaluated.as_str()] {
            for figure in figures {
                assert!(
                    printed.contains(figure),
                    "{model}: no `{figure}` in {printed}"
                );
            }
            // The plain AE is measured on every noise, the DAE on its own.
            assert_eq!(
                printed.contains("mask 0.25 noise"),
                model == "ae",
                "{printed}"
            );
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_vqvae_trains_fits_its_priors_evaluates_and_samples_through_the_cli() {
    let dir = scratch("vqvae");
    let out = dir.join("run");
    let o = vae_train(&[
        "--model",
        "vqvae",
        "--codebook-update",
        "loss",
        "--restart-dead",
        "--codes",
        "4",
        "--code-dim",
        "2",
        "--codebook",
        "8",
        "--train-limit",
        "300",
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--test-limit",
        "300",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for picture in ["reconstructions.png", "samples.png", "codebook.png"] {
        assert!(out.join(picture).is_file(), "{picture} missing");
    }
    let config = fs::read_to_string(out.join("config.toml")).unwrap();
    for line in [
        "codebook_update = \"loss\"",
        "restart_dead = true",
        "codebook = 8",
    ] {
        assert!(config.contains(line), "{line} not in {config}");
    }
    let metrics = fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(
        metrics.starts_with(
            "epoch,train_recon,train_codebook,train_commitment,train_perplexity,\
             train_codes_used,test_recon,test_codebook,test_perplexity,test_codes_used,seconds"
        ),
        "{metrics}"
    );
    let figures = [
        "test reconstruction term -log p(x|z_q)",
        "test codes used",
        "test rate -log p(z) under the categorical prior",
        "test rate -log p(z) under the autoregressive prior",
        "(N log2 K = 12)",
        "test -log p(x) <=",
    ];
    let png = dir.join("samples.png");
    let evaluated = eval_and_sample(
        &out.join("checkpoint.safetensors"),
        &png,
        9,
        &["--test-limit", "300"],
    );
    for printed in [stdout.as_ref(), evaluated.as_str()] {
        for figure in figures {
            assert!(printed.contains(figure), "no `{figure}` in {printed}");
        }
    }
    // Its scores: rate + distortion (the bound), the distortion, the squared error.
    let csv = dir.join("scores.csv");
    let o = vae_train(&[
        "score",
        "--checkpoint",
        out.join("checkpoint.safetensors").to_str().unwrap(),
        "--limit",
        "50",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let scores = fs::read_to_string(&csv).unwrap();
    let header = scores.lines().next().unwrap();
    assert_eq!(
        header,
        "index,label,rate_distortion,recon,sq_error,png_bits"
    );
    assert_eq!(scores.lines().count(), 51);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_gans_train_resume_evaluate_and_sample_through_the_cli() {
    let dir = scratch("gan");
    let out = dir.join("run");
    let gan = |out: &Path, epochs: &str, more: &[&str]| {
        let mut args = vec![
            "--model",
            "gan",
            "--minibatch-discrimination",
            "--train-limit",
            "256",
            "--test-limit",
            "200",
            "--epochs",
            epochs,
            "--hidden",
            "16,16",
            "--latent-dim",
            "4",
            "--quality-samples",
            "0",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(more);
        vae_train(&args)
    };
    let o = gan(&out, "2", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for picture in ["samples.png", "progress.png", "curves.png"] {
        assert!(out.join(picture).is_file(), "{picture} missing");
    }
    let config = fs::read_to_string(out.join("config.toml")).unwrap();
    // The GAN's own defaults of the shared settings, and its settings.
    for line in [
        "gan_loss = \"non-saturating\"",
        "minibatch_discrimination = true",
        "batch_size = 64",
        "lr = 0.0002",
    ] {
        assert!(config.contains(line), "{line} not in {config}");
    }
    let metrics = fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(
        metrics.starts_with(
            "epoch,train_d_loss,train_g_loss,train_d_real,train_d_fake,train_d_grad_norm,\
             train_g_grad_norm,test_d_real,test_d_fake,seconds\n"
        ),
        "{metrics}"
    );
    // Resuming goes on from the checkpoint: both optimizers and the progress rows.
    let checkpoint = out.join("checkpoint.safetensors");
    let o = vae_train(&[
        "--resume",
        checkpoint.to_str().unwrap(),
        "--epochs",
        "3",
        "--test-limit",
        "200",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        fs::read_to_string(out.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        4
    );
    eval_and_sample(&checkpoint, &dir.join("samples.png"), 9, &[]);

    let wgan = dir.join("wgan");
    let o = vae_train(&[
        "--model",
        "wgan",
        "--train-limit",
        "256",
        "--test-limit",
        "200",
        "--epochs",
        "1",
        "--hidden",
        "16,16",
        "--quality-samples",
        "0",
        "--out",
        wgan.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = fs::read_to_string(wgan.join("metrics.csv")).unwrap();
    assert!(metrics.starts_with("epoch,train_critic_loss,train_g_loss,train_wasserstein,"));
    let config = fs::read_to_string(wgan.join("config.toml")).unwrap();
    assert!(config.contains("lr = 0.00005"), "{config}");
    fs::remove_dir_all(&dir).unwrap();
}

/// Flags of a small run of `epochs` into `out`.
fn small_run(out: &Path, epochs: &str) -> Vec<String> {
    let flags = [
        "--train-limit",
        "600",
        "--test-limit",
        "300",
        "--hidden",
        "32",
        "--latent-dim",
        "4",
        "--batch-size",
        "16",
        "--iw-samples",
        "0",
        "--quiet",
        "--epochs",
        epochs,
        "--out",
        out.to_str().unwrap(),
    ];
    flags.iter().map(|f| f.to_string()).collect()
}

#[test]
fn one_thread_and_two_write_the_same_checkpoint_bytes() {
    // Every GEMM element and every reduction is summed in one order whatever the threads: the
    // driver splits C into blocks, never the sum over k (docs/mpi.md).
    let dir = scratch("threads");
    let checkpoints: Vec<Vec<u8>> = ["1", "2"]
        .iter()
        .map(|threads| {
            let out = dir.join(format!("threads-{threads}"));
            let mut args = small_run(&out, "2");
            args.extend(["--threads".to_string(), threads.to_string()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = vae_train(&args);
            assert!(o.status.success(), "{}", stderr(&o));
            fs::read(out.join("checkpoint.safetensors")).unwrap()
        })
        .collect();
    assert!(checkpoints[0] == checkpoints[1], "the checkpoints differ");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_signal_stops_training_at_a_step_and_the_resumed_run_is_the_uninterrupted_one() {
    let dir = scratch("signal");
    for (signal, status) in [("-INT", 130), ("-TERM", 143)] {
        let (stopped, whole) = (dir.join(format!("stopped{signal}")), dir.join("whole"));
        let child = Command::new(env!("CARGO_BIN_EXE_vae-train"))
            .args(small_run(&stopped, "12"))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Once the first epoch is in metrics.csv, the signal lands in a later one.
        let metrics = stopped.join("metrics.csv");
        let started = std::time::Instant::now();
        while fs::read_to_string(&metrics).map_or(0, |m| m.lines().count()) < 2 {
            assert!(started.elapsed().as_secs() < 120, "no epoch finished");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let kill = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(status), "{err}");
        assert!(
            !err.contains("panicked") && !err.contains("error:"),
            "{err}"
        );
        let checkpoint = stopped.join("checkpoint.safetensors");
        let hint = format!(
            "Continue with: vae-train --resume {} --epochs 12",
            checkpoint.display()
        );
        assert!(err.contains(&hint), "{err}");
        // Every epoch in metrics.csv is complete and the checkpoint is the last of them.
        let rows = fs::read_to_string(&metrics).unwrap().lines().count() - 1;
        assert!((1..12).contains(&rows), "{rows} epochs before the signal");

        let resumed = vae_train(&[
            "--resume",
            checkpoint.to_str().unwrap(),
            "--epochs",
            "12",
            "--test-limit",
            "300",
            "--iw-samples",
            "0",
            "--quiet",
        ]);
        assert!(resumed.status.success(), "{}", stderr(&resumed));
        if !whole.exists() {
            let o = vae_train(
                &small_run(&whole, "12")
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            );
            assert!(o.status.success(), "{}", stderr(&o));
        }
        assert!(
            fs::read(&checkpoint).unwrap()
                == fs::read(whole.join("checkpoint.safetensors")).unwrap(),
            "{signal}: stopped after {rows} epochs and resumed differs from the whole run"
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_diverging_run_exits_with_one_line_naming_the_op() {
    let dir = scratch("diverge");
    let out = dir.join("run");
    let o = vae_train(&[
        "--lr",
        "1e4",
        "--epochs",
        "2",
        "--train-limit",
        "300",
        "--test-limit",
        "100",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "training diverged in epoch 1, step ");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("of op `") && err.contains(".rs:"), "{err}");
    // Nothing of the diverged epoch: no checkpoint and no row.
    assert!(!out.join("checkpoint.safetensors").exists());
    assert!(!out.join("metrics.csv").exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_model_settings_are_refused_by_name() {
    let o = vae_train(&["--model", "m2", "--labels", "15", "--epochs", "1"]);
    assert_clean_failure(&o, "--labels");
    let o = vae_train(&["--model", "completion", "--observe", "corner"]);
    assert_clean_failure(&o, "corner");
    let o = vae_train(&[
        "--model",
        "regressor",
        "--likelihood",
        "gaussian",
        "--epochs",
        "1",
    ]);
    assert_clean_failure(&o, "model regressor does not read it");
    let o = vae_train(&["--model", "dae", "--noise-level", "1.5", "--epochs", "1"]);
    assert_clean_failure(&o, "--noise-level 1.5 is out of range for --noise mask");
    let o = vae_train(&[
        "--model",
        "dae",
        "--noise",
        "gaussian",
        "--noise-level",
        "-1",
        "--epochs",
        "1",
    ]);
    assert_clean_failure(&o, "--noise-level -1 is out of range for --noise gaussian");
    let o = vae_train(&["--model", "dae", "--noise", "speckle"]);
    assert_clean_failure(&o, "speckle");
    let o = vae_train(&["--model", "ae", "--beta", "4", "--epochs", "1"]);
    assert_clean_failure(
        &o,
        "--beta is a setting of models vae, cvae, completion and m2; model ae does not read it",
    );
    for (flags, needle) in [
        (&["--codebook", "1"][..], "--codebook 1"),
        (&["--codes", "0"], "--codes"),
        (&["--code-dim", "0"], "--code-dim"),
        (&["--codebook-update", "kmeans"], "kmeans"),
        (&["--beta", "2"], "model vqvae does not read it"),
        (&["--background", "1.5"], "--background"),
    ] {
        let mut args = vec!["--model", "vqvae", "--epochs", "1"];
        args.extend(flags);
        assert_clean_failure(&vae_train(&args), needle);
    }
    for (model, flags, needle) in [
        ("gan", &["--gan-loss", "wasserstein"][..], "wasserstein"),
        (
            "wgan",
            &["--gan-loss", "minimax"],
            "--gan-loss is a setting of model gan; model wgan does not read it",
        ),
        (
            "wgan",
            &["--minibatch-discrimination"],
            "--minibatch-discrimination",
        ),
        ("gan", &["--batch-size", "1"], "--batch-size 1"),
    ] {
        let mut args = vec!["--model", model, "--epochs", "1"];
        args.extend(flags);
        assert_clean_failure(&vae_train(&args), needle);
    }
}

#[test]
fn bad_flags_are_refused_by_name() {
    let o = vae_train(&["--activation", "swish"]);
    assert_clean_failure(&o, "swish");
    let o = vae_train(&["--hidden", "400,0"]);
    assert_clean_failure(&o, "--hidden");
    let o = vae_train(&["--batch-size", "0"]);
    assert_clean_failure(&o, "--batch-size");
    let o = vae_train(&["--dataset", "cifar"]);
    assert_clean_failure(&o, "cifar");
}

#[test]
fn a_missing_or_broken_data_directory_is_an_error_naming_the_file() {
    let dir = scratch("data");
    let missing = dir.join("nowhere");
    let o = vae_train(&[
        "--data-dir",
        missing.to_str().unwrap(),
        "--out",
        dir.join("r").to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "nowhere");

    // The four files present, the images not gzip at all.
    let broken = dir.join("broken");
    fs::create_dir_all(&broken).unwrap();
    for name in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        fs::write(broken.join(name), b"not a gzip file").unwrap();
    }
    let o = vae_train(&[
        "--data-dir",
        broken.to_str().unwrap(),
        "--out",
        dir.join("r").to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "train-images-idx3-ubyte.gz");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreadable_checkpoint_is_an_error_naming_it() {
    let dir = scratch("ckpt");
    let garbage = dir.join("garbage.safetensors");
    fs::write(
        &garbage,
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all",
    )
    .unwrap();
    let o = vae_train(&["eval", "--checkpoint", garbage.to_str().unwrap()]);
    assert_clean_failure(&o, "garbage.safetensors");
    let o = vae_train(&[
        "sample",
        "--checkpoint",
        dir.join("absent.safetensors").to_str().unwrap(),
        "--out",
        "x.png",
    ]);
    assert_clean_failure(&o, "absent.safetensors");
    let o = vae_train(&["--resume", garbage.to_str().unwrap()]);
    assert_clean_failure(&o, "garbage.safetensors");

    // A zero-length file and a truncated one, to each command.
    let empty = dir.join("empty.safetensors");
    fs::write(&empty, b"").unwrap();
    let run = dir.join("run");
    let o = vae_train(
        &small_run(&run, "1")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let whole = fs::read(run.join("checkpoint.safetensors")).unwrap();
    let truncated = dir.join("truncated.safetensors");
    fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    for bad in [&empty, &truncated] {
        let name = bad.file_name().unwrap().to_str().unwrap();
        let bad = bad.to_str().unwrap();
        assert_clean_failure(&vae_train(&["eval", "--checkpoint", bad]), name);
        let png = dir.join("x.png");
        let o = vae_train(&[
            "sample",
            "--checkpoint",
            bad,
            "--out",
            png.to_str().unwrap(),
        ]);
        assert_clean_failure(&o, name);
        assert_clean_failure(&vae_train(&["--resume", bad]), name);
    }

    // A checkpoint of another model than --model names, to --resume.
    let checkpoint = run.join("checkpoint.safetensors");
    let o = vae_train(&["--resume", checkpoint.to_str().unwrap(), "--model", "ae"]);
    assert_clean_failure(&o, "a checkpoint of model vae, not ae (--model)");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_output_that_cannot_be_written_fails_before_training() {
    let dir = scratch("out");
    let file = dir.join("a-file");
    fs::write(&file, b"").unwrap();
    let o = vae_train(&["--out", file.to_str().unwrap()]);
    assert_clean_failure(&o, "exists and is not a directory");
    let o = vae_train(&["--out", file.join("run").to_str().unwrap()]);
    assert_clean_failure(&o, "a-file/run");
    // Nothing was loaded or trained: no note of the data set.
    assert!(!stderr(&o).contains("training and"), "{}", stderr(&o));
    fs::remove_dir_all(&dir).unwrap();
}

/// `train` of `model` on the first 1 200 training images (enough for `--quality`, which holds
/// out the last 1 000), 300 test images, `extra` flags, into `out`; asserts success.
fn quality_run(out: &Path, model: &str, extra: &[&str]) -> PathBuf {
    let out_str = out.to_str().unwrap();
    let mut args = vec!["train", "--model", model, "--train-limit", "1200"];
    args.extend(["--test-limit", "300", "--hidden", "32", "--epochs", "2"]);
    args.extend(["--iw-samples", "0", "--quiet", "--out", out_str]);
    if !matches!(model, "classifier" | "regressor") {
        args.extend(["--latent-dim", "4"]);
    }
    args.extend(extra);
    let o = vae_train(&args);
    assert!(o.status.success(), "{model}: {}", stderr(&o));
    out.join("checkpoint.safetensors")
}

#[test]
fn eval_quality_measures_the_samples_and_refuses_what_it_cannot_measure() {
    let dir = scratch("quality");
    let classifier = quality_run(&dir.join("classifier"), "classifier", &[]);
    let vae = quality_run(&dir.join("vae"), "vae", &[]);
    let (classifier_s, vae_s) = (classifier.to_str().unwrap(), vae.to_str().unwrap());
    let quality = |checkpoint: &str, classifier: &str, samples: &str| {
        vae_train(&[
            "eval",
            "--checkpoint",
            checkpoint,
            "--quality",
            "--samples",
            samples,
            "--classifier",
            classifier,
            "--test-limit",
            "300",
        ])
    };

    let o = quality(vae_s, classifier_s, "200");
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = String::from_utf8_lossy(&o.stdout);
    for line in [
        "reference classifier",
        "weights sha256",
        "MNIST test set (300)",
        "MNIST training images (200)",
        "vae: samples (means) (200)",
        "vae: samples (binary) (200)",
    ] {
        assert!(printed.contains(line), "no `{line}` in:\n{printed}");
    }
    let csv = fs::read_to_string(dir.join("vae").join("quality.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 5, "{csv}");
    assert_eq!(
        rows[0][..4],
        ["images", "count", "inception_score", "frechet_distance"]
    );
    for row in &rows[2..] {
        assert_eq!(row.len(), rows[0].len(), "{csv}");
        let number = |i: usize| row[i].parse::<f64>().unwrap();
        // IS in [1, 10], a non-negative distance, a σ among the candidates, a finite Parzen.
        assert!((1.0..=10.0).contains(&number(2)), "{csv}");
        assert!(
            number(3) >= 0.0 && (0.1..=1.0).contains(&number(6)),
            "{csv}"
        );
        assert!(number(7).is_finite() && number(8) > 0.0, "{csv}");
    }
    // The same seed draws the same samples: a second evaluation writes the same file.
    assert!(quality(vae_s, classifier_s, "200").status.success());
    let again = fs::read_to_string(dir.join("vae").join("quality.csv")).unwrap();
    assert_eq!(csv, again);

    // The completion CVAE is measured on its completions of training images.
    let completion = quality_run(&dir.join("completion"), "completion", &[]);
    let o = quality(completion.to_str().unwrap(), classifier_s, "200");
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains("completion: completions (binary) (200)"),
        "{printed}"
    );

    // An autoencoder is measured on decodings of codes from a Gaussian fitted to its codes.
    let ae = quality_run(&dir.join("ae"), "ae", &[]);
    let o = quality(ae.to_str().unwrap(), classifier_s, "200");
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(printed.contains("ae: samples (means) (200)"), "{printed}");

    // What it cannot measure, and classifiers that do not fit, are one error line each.
    let o = quality(vae_s, classifier_s, "0");
    assert_clean_failure(&o, "--samples");
    let regressor = quality_run(&dir.join("regressor"), "regressor", &[]);
    let o = quality(regressor.to_str().unwrap(), classifier_s, "200");
    assert_clean_failure(&o, "model regressor does not draw images");
    assert_clean_failure(&quality(vae_s, vae_s, "200"), "not a classifier");
    let png = dir.join("x.png");
    let o = vae_train(&[
        "sample",
        "--checkpoint",
        classifier_s,
        "--out",
        png.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "model classifier draws no samples");
    let doctored = dir.join("doctored.safetensors");
    let bytes = fs::read(&classifier).unwrap();
    let at = bytes.windows(5).position(|w| w == b"28x28").unwrap();
    let mut changed = bytes.clone();
    changed[at..at + 5].copy_from_slice(b"14x14");
    fs::write(&doctored, changed).unwrap();
    let o = quality(vae_s, doctored.to_str().unwrap(), "200");
    assert_clean_failure(
        &o,
        "a classifier of 14x14 images, but the model's images are 28x28",
    );
    let fashion = quality_run(
        &dir.join("fashion"),
        "classifier",
        &["--dataset", "fashion-mnist"],
    );
    let o = quality(vae_s, fashion.to_str().unwrap(), "200");
    assert_clean_failure(
        &o,
        "a classifier of Fashion-MNIST, but the model is of MNIST",
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// Writes a dataset folder of `count` random `side`×`side` images per split, valid IDX gz.
fn write_dataset(dir: &Path, count: u32, side: u32) {
    use std::io::Write;
    fs::create_dir_all(dir).unwrap();
    let gz = |magic: u32, dims: &[u32], body: &[u8]| {
        let mut raw = magic.to_be_bytes().to_vec();
        for d in dims {
            raw.extend(d.to_be_bytes());
        }
        raw.extend(body);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    };
    for prefix in ["train", "t10k"] {
        let pixels: Vec<u8> = (0..count * side * side)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
        let images = gz(0x0803, &[count, side, side], &pixels);
        fs::write(dir.join(format!("{prefix}-images-idx3-ubyte.gz")), images).unwrap();
        let labels = gz(0x0801, &[count], &labels);
        fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte.gz")), labels).unwrap();
    }
}

#[test]
fn score_writes_every_score_and_refuses_what_it_cannot_score() {
    let dir = scratch("score");
    let vae = quality_run(&dir.join("vae"), "vae", &[]);
    let vae_s = vae.to_str().unwrap();
    let csv = dir.join("scores.csv");
    let score = |more: &[&str]| {
        let mut args = vec![
            "score",
            "--checkpoint",
            vae_s,
            "--limit",
            "50",
            "--iw-samples",
            "5",
            "--recon-samples",
            "2",
            "--out",
            csv.to_str().unwrap(),
        ];
        args.extend(more);
        vae_train(&args)
    };
    for dataset in ["mnist", "fashion-mnist"] {
        let o = score(&["--dataset", dataset]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = fs::read_to_string(&csv).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "index,label,neg_elbo,neg_log_px,recon_sq_error,neg_recon_prob,png_bits"
        );
        assert_eq!(lines.len(), 51);
        for line in &lines[1..] {
            let values: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
            // A −log p(x) estimate below the one-sample −ELBO on average, all finite, a PNG
            // of at least its header's bytes.
            assert!(
                values.iter().all(|v| v.is_finite()) && values[6] > 8.0 * 60.0,
                "{line}"
            );
        }
    }
    // Images of another size, a corrupt dataset and a model without a score of its own: one
    // error line each, and the previous scores.csv untouched.
    let before = fs::read(&csv).unwrap();
    let small = dir.join("small");
    write_dataset(&small, 20, 14);
    let o = score(&["--data-dir", small.to_str().unwrap()]);
    assert_clean_failure(&o, "are 14x14");
    // The same images as the other dataset: the model is read from its own, the scored images
    // are refused.
    let o = score(&[
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        small.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "images of 14x14, but the model of");
    let broken = dir.join("broken");
    write_dataset(&broken, 20, 28);
    fs::write(broken.join("t10k-images-idx3-ubyte.gz"), b"not gzip").unwrap();
    let o = score(&["--data-dir", broken.to_str().unwrap()]);
    assert_clean_failure(&o, "t10k-images-idx3-ubyte.gz");
    let cvae = quality_run(&dir.join("cvae"), "cvae", &[]);
    let o = vae_train(&[
        "score",
        "--checkpoint",
        cvae.to_str().unwrap(),
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "model cvae gives no score of an image on its own");
    assert_eq!(fs::read(&csv).unwrap(), before);
    // An empty class list, and every class excluded.
    assert_clean_failure(&vae_train(&["--classes", ""]), "the class list is empty");
    let all = "0,1,2,3,4,5,6,7,8,9";
    assert_clean_failure(
        &vae_train(&["--exclude-class", all]),
        "would leave no class",
    );
    assert_clean_failure(&vae_train(&["--classes", "3,12"]), "`12` is not a class");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn anomaly_runs_the_one_class_protocol_end_to_end() {
    let dir = scratch("anomaly");
    let out = dir.join("one-class");
    let args = [
        "anomaly",
        "--protocol",
        "one-class",
        "--train-limit",
        "60",
        "--test-limit",
        "200",
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--latent-dim",
        "2",
        "--iw-samples",
        "3",
        "--recon-samples",
        "2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = vae_train(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains("MNIST 9") && printed.contains("mean"),
        "{printed}"
    );
    let csv = fs::read_to_string(out.join("anomaly.csv")).unwrap();
    // Ten classes × five scores, each AUROC and AUPRC in [0, 1].
    assert_eq!(csv.lines().count(), 1 + 10 * 5, "{csv}");
    for line in csv.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        for v in &fields[3..] {
            let v: f64 = v.parse().unwrap();
            assert!((0.0..=1.0).contains(&v), "{line}");
        }
    }
    for png in ["roc.png", "scores.png"] {
        let bytes = fs::read(out.join(png)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
    // Each class's model was trained on its class only, as its checkpoint records.
    let config = fs::read_to_string(out.join("class-3").join("config.toml")).unwrap();
    assert!(config.contains("classes = \"3\""), "{config}");
    // Run again, the models are reused: the same table.
    let again = vae_train(&args);
    assert_eq!(String::from_utf8_lossy(&again.stdout), printed);
    // A model the protocol cannot train is one error line.
    let o = vae_train(&["anomaly", "--protocol", "one-class", "--model", "cvae"]);
    assert_clean_failure(
        &o,
        "--model cvae: the anomaly protocols need a model that scores an image on its own",
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pixel_ar_runs_the_ood_protocol_with_its_local_background_and_is_evaluated_and_sampled() {
    let dir = scratch("pixel-ar");
    let out = dir.join("ood");
    let args = [
        "anomaly",
        "--protocol",
        "ood",
        "--model",
        "pixel-ar",
        "--dataset",
        "fashion-mnist",
        "--train-limit",
        "100",
        "--test-limit",
        "100",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--background",
        "0.1",
        "--background-weight-decay",
        "1e-4",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = vae_train(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = fs::read_to_string(out.join("anomaly.csv")).unwrap();
    // Both directions × the exact likelihood, the PNG size, the ratio and the complexity.
    assert_eq!(csv.lines().count(), 1 + 2 * 4, "{csv}");
    for score in ["neg_log_px", "likelihood_ratio", "input_complexity"] {
        assert!(
            csv.contains(&format!("Fashion-MNIST,MNIST,{score},")),
            "{csv}"
        );
    }
    // The foreground knows where a pixel is; the background, on perturbed images with an L2
    // penalty, sees only the neighbourhood and is half as wide.
    let config = |run: &str| fs::read_to_string(out.join(run).join("config.toml")).unwrap();
    let fg = config("trained-on-fashion-mnist");
    assert!(
        fg.contains("local = false") && fg.contains("hidden = [8]"),
        "{fg}"
    );
    let bg = config("background-on-fashion-mnist");
    for setting in [
        "local = true",
        "hidden = [4]",
        "background = 0.1",
        "weight_decay = 0.0001",
    ] {
        assert!(bg.contains(setting), "no `{setting}` in {bg}");
    }
    // Its checkpoint is evaluated (the exact likelihood) and sampled like any other.
    let checkpoint = out.join("trained-on-fashion-mnist/checkpoint.safetensors");
    let evaluated = eval_and_sample(&checkpoint, &dir.join("samples.png"), 4, &[]);
    assert!(evaluated.contains("nats, exact"), "{evaluated}");
    // Binarized targets and a rate out of range are refused by name.
    let o = vae_train(&["--model", "pixel-ar", "--binarize", "dynamic"]);
    assert_clean_failure(&o, "--binarize dynamic");
    let o = vae_train(&["--model", "pixel-ar", "--background", "1"]);
    assert_clean_failure(&o, "--background");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_flag_of_another_model_is_one_error_line_naming_the_models_that_take_it() {
    for (args, line) in [
        (
            &["--model", "vae", "--codes", "16"][..],
            "error: --codes is a setting of model vqvae; model vae does not read it",
        ),
        (
            &["--model", "ae", "--gan-loss", "minimax"],
            "error: --gan-loss is a setting of model gan; model ae does not read it",
        ),
        (
            &["--model", "gan", "--labels", "100"],
            "error: --labels is a setting of model m2; model gan does not read it",
        ),
        (
            &["--window", "3,3"],
            "error: --window is a setting of model pixel-ar; model vae does not read it",
        ),
        (
            &["train", "--model", "cvae", "--background", "0.1"],
            "error: --background is a setting of models vae, vqvae and pixel-ar; model cvae \
             does not read it",
        ),
    ] {
        let o = vae_train(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&o), format!("{line}\n"), "{args:?}");
    }
}

#[test]
fn help_shows_the_chosen_models_flags_with_its_own_defaults() {
    let help = |args: &[&str]| {
        let o = vae_train(args);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let vae = help(&["--help"]);
    assert!(
        vae.contains("Model vae:") && vae.contains("--background"),
        "{vae}"
    );
    assert!(!vae.contains("--codes"), "{vae}");
    let pixel_ar = help(&["train", "--model", "pixel-ar", "--help"]);
    assert!(pixel_ar.contains("Model pixel-ar:"), "{pixel_ar}");
    // pixel-ar's own defaults: 4 epochs, gray targets, a 7,7 window.
    for default in [
        "[default: 4]",
        "[default: none]",
        "[default: 7,7]",
        "[default: 128,128]",
    ] {
        assert!(pixel_ar.contains(default), "no {default} in {pixel_ar}");
    }
}

#[test]
fn a_run_with_nothing_to_train_says_so_and_lists_no_file() {
    let dir = scratch("nothing");
    let out = dir.join("run");
    let o = vae_train(&["--epochs", "0", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("nothing to train: --epochs 0"),
        "{}",
        stderr(&o)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "");
    assert!(!out.exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn started_by_mpirun_without_the_mpi_feature_it_refuses_before_touching_out() {
    if cfg!(feature = "mpi") {
        return;
    }
    let dir = scratch("mpirun");
    let out = dir.join("run");
    for variable in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
        let o = Command::new(env!("CARGO_BIN_EXE_vae-train"))
            .args(["--epochs", "1", "--out", out.to_str().unwrap()])
            .env(variable, "2")
            .output()
            .unwrap();
        assert_clean_failure(&o, "built without the mpi feature");
        assert!(stderr(&o).contains("--features mpi"), "{}", stderr(&o));
        assert!(!out.exists());
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_takes_the_checkpoints_settings_and_refuses_to_change_them() {
    let dir = scratch("resume-flags");
    let out = dir.join("run");
    let o = vae_train(
        &small_run(&out, "1")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let checkpoint = out.join("checkpoint.safetensors");
    let checkpoint = checkpoint.to_str().unwrap();
    for (flags, refused) in [
        (&["--seed", "5"][..], "--seed"),
        (&["--lr", "0.5"], "--lr"),
        (&["--hidden", "100"], "--hidden"),
        (&["--test-limit", "100"], "--test-limit"),
    ] {
        let mut args = vec!["--resume", checkpoint, "--epochs", "2"];
        args.extend(flags);
        let o = vae_train(&args);
        assert_clean_failure(
            &o,
            &format!("{refused}: --resume continues the checkpoint's run"),
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}
