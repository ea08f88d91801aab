//! `mpirun -np 2 vae-train train …` against one process (built and run with `--features mpi`
//! and Open MPI's `mpirun` on the path; `.ci/run` installs both): the same parameters up to
//! the order of summation, the same test curve, checkpoints that resume on either number of
//! processes, and failures that end every process with one `error:` line.
#![cfg(feature = "mpi")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use vae::model::RunConfig;
use vae::run::{self, files};

const BIN: &str = env!("CARGO_BIN_EXE_vae-train");

/// The flags of the runs compared: 3 000 training images, 2 epochs, one thread each.
const SMALL: [&str; 10] = [
    "--train-limit",
    "3000",
    "--test-limit",
    "1000",
    "--threads",
    "1",
    "--iw-samples",
    "0",
    "--quiet",
    "--epochs",
];

/// `mpirun -np 2` (as root too, two processes on however many cores) with `args`.
fn mpirun(args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["-q", "--oversubscribe"])
        .args(args);
    c
}

fn run(mut c: Command) -> Output {
    let o = c.output().expect("the command runs");
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn train(out: &Path, epochs: &str, more: &[&str]) -> Command {
    let mut args = vec!["train", "--out", out.to_str().unwrap()];
    args.extend(SMALL);
    args.push(epochs);
    args.extend(more);
    let mut c = Command::new(BIN);
    c.args(args);
    c
}

fn on_two(single: Command) -> Command {
    let mut args = vec!["-np", "2", BIN];
    let rest: Vec<&str> = single.get_args().map(|a| a.to_str().unwrap()).collect();
    args.extend(rest);
    mpirun(&args)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("henbun-mpi-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every parameter of a checkpoint, by name.
fn params(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let mut loaded = run::load(&dir.join(files::CHECKPOINT), RunConfig::default()).unwrap();
    let state = loaded.model.state();
    assert!(state.data_parallel, "a data-parallel model");
    (state.trained.iter())
        .flat_map(|(_, store, _)| store.iter())
        .map(|(_, name, v)| (name.to_string(), v.iter().copied().collect()))
        .collect()
}

/// The test −ELBO of each epoch of `metrics.csv`.
fn test_curve(dir: &Path) -> Vec<f64> {
    let csv = fs::read_to_string(dir.join(files::METRICS)).unwrap();
    (csv.lines().skip(1))
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn two_processes_train_the_parameters_of_one_and_resume_on_either() {
    let dir = scratch("parity");
    // The default VAE, and M2 (its batches of two halves, 100 labeled and 128 unlabeled
    // images, shared between the processes). The same batches and draws; only the order of the
    // gradient sums differs (two halves of each batch added, against one sum). The VAE's
    // tensors stay within 1e-4 of their largest value; M2's classifier amplifies those last
    // bits through Adam where its gradients are nearly zero (measured after 2 epochs: 817 of
    // its first layer's 313 600 weights differ by more than 1e-4, the tensor by 3.9e-4 in
    // norm), so M2 is held to 1e-2 of each tensor's norm, and both to the same test curve.
    let models = [
        ("vae", &[][..], 1e-4),
        ("m2", &["--model", "m2", "--labels", "100"][..], 1e-2),
    ];
    for (model, flags, tolerance) in models {
        let (one, two) = (
            dir.join(format!("{model}-one")),
            dir.join(format!("{model}-two")),
        );
        run(train(&one, "2", flags));
        let o = run(on_two(train(&two, "2", flags)));
        assert!(String::from_utf8_lossy(&o.stdout).contains("trained on 2 processes"));
        for ((name, a), (other, b)) in params(&one).iter().zip(&params(&two)) {
            assert_eq!(name, other);
            let difference = if model == "vae" {
                let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
                a.iter().zip(b).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
            } else {
                let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| x * x).sum::<f32>().sqrt();
                norm(&mut a.iter().zip(b).map(|(a, b)| a - b)) / norm(&mut a.iter().copied())
            };
            assert!(difference <= tolerance, "{model} {name}: {difference}");
        }
        let (c1, c2) = (test_curve(&one), test_curve(&two));
        assert_eq!(c1.len(), 2);
        for (a, b) in c1.iter().zip(&c2) {
            assert!(
                (a - b).abs() <= 0.01,
                "{model}: test -ELBO {c1:?} against {c2:?}"
            );
        }
    }
    let c1 = test_curve(&dir.join("vae-one"));

    // One epoch on one process, the second on two; and the reverse. Each ends where the
    // straight runs do.
    let (a, b) = (dir.join("one-then-two"), dir.join("two-then-one"));
    run(train(&a, "1", &[]));
    let resume_a = a.join(files::CHECKPOINT);
    let resume_a = resume_a.to_str().unwrap();
    let cont = ["--test-limit", "1000", "--iw-samples", "0", "--quiet"];
    let mut args = vec![
        "-np", "2", BIN, "train", "--resume", resume_a, "--epochs", "2",
    ];
    args.extend(cont);
    args.extend(["--threads", "1"]);
    run(mpirun(&args));
    run(on_two(train(&b, "1", &[])));
    let resume_b = b.join(files::CHECKPOINT);
    let mut single = Command::new(BIN);
    single.args([
        "train",
        "--resume",
        resume_b.to_str().unwrap(),
        "--epochs",
        "2",
    ]);
    single.args(cont).args(["--threads", "1"]);
    run(single);
    for resumed in [&a, &b] {
        let curve = test_curve(resumed);
        assert_eq!(curve.len(), 2, "{}", resumed.display());
        for (x, y) in curve.iter().zip(&c1) {
            assert!((x - y).abs() <= 0.01, "{curve:?} against {c1:?}");
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// `mpirun` of two programs: one process with `first`'s extra flags, the other with
/// `second`'s, each a run of 1 epoch into `out`.
fn two_programs(out: &str, first: &[&str], second: &[&str]) -> Output {
    let mut args = vec!["-np", "1", BIN, "train", "--out", out];
    args.extend(SMALL);
    args.push("1");
    args.extend(first);
    args.extend([":", "-np", "1", BIN, "train", "--out", out]);
    args.extend(SMALL);
    args.push("1");
    args.extend(second);
    mpirun(&args).output().unwrap()
}

/// Failed with one `error:` line holding `needle`, and wrote no checkpoint into `out`.
fn assert_stopped_unsaved(o: &Output, needle: &str, out: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains(needle), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(!Path::new(out).join(files::CHECKPOINT).exists());
}

#[test]
fn processes_with_different_data_or_settings_stop_before_training_with_one_error_line() {
    let dir = scratch("data");
    // Another data set under MNIST's file names: the same settings, other pixels.
    let other = dir.join("other-data");
    fs::create_dir_all(&other).unwrap();
    let fashion = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fashion-mnist");
    for file in fs::read_dir(&fashion).unwrap() {
        let file = file.unwrap().path();
        if file.extension().is_some_and(|e| e == "gz") {
            fs::copy(&file, other.join(file.file_name().unwrap())).unwrap();
        }
    }
    let out = dir.join("run");
    let out = out.to_str().unwrap();
    let o = two_programs(out, &[], &["--data-dir", other.to_str().unwrap()]);
    assert_stopped_unsaved(&o, "different data", out);
    let o = two_programs(out, &[], &["--seed", "7"]);
    assert_stopped_unsaved(&o, "different settings", out);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_process_that_dies_ends_the_run_in_bounded_time_and_the_checkpoint_survives() {
    let dir = scratch("dies");
    let out = dir.join("run");
    let mut c = on_two(train(&out, "200", &[]));
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for a finished epoch (and its checkpoint).
    let metrics = out.join(files::METRICS);
    let started = Instant::now();
    while fs::read_to_string(&metrics).map_or(0, |m| m.lines().count()) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no epoch ends"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The newest vae-train process is one of the run's: kill it.
    let pids = Command::new("pgrep")
        .args(["-n", "-f", out.to_str().unwrap()])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pids.stdout).trim().to_string();
    assert!(!pid.is_empty(), "no process of the run");
    run({
        let mut kill = Command::new("kill");
        kill.args(["-9", &pid]);
        kill
    });
    let killed = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the other process still runs"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The last finished epoch's checkpoint loads.
    let mut loaded = run::load(&out.join(files::CHECKPOINT), RunConfig::default()).unwrap();
    assert!(loaded.model.state().data_parallel);
    fs::remove_dir_all(&dir).unwrap();
}
