//! `vae-train`: the command-line trainer. Parses flags into a `RunConfig`, hands it to
//! `vae::run` (or a model to `vae::commands`), and reports progress, files and figures.

mod cli;
#[cfg(feature = "mpi")]
mod mpi_world;
mod progress;
mod signals;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vae::commands::{self, quality};
use vae::image;
use vae::model::{RunConfig, ScoreSettings};
use vae::parallel::{Alone, Collective};
use vae::random::Keys;
use vae::run::{self, RunError, reference};

use cli::{AnomalyArgs, EvalArgs, Invocation, Other, SampleArgs, ScoreArgs, TrainArgs};

/// mimalloc instead of the system allocator: glibc's malloc hands the step's large buffers
/// (activations, gradients, GEMM packing) back to the OS when they are freed and takes them
/// again, zeroed page by page, in the next step; see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (`mimalloc.h`; the sys crate names only
/// some of the options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to purge freed memory (hand it back to the OS): a training step frees
/// and allocates the same large buffers every step, and after a purge each 2 MB huge page is
/// faulted and zeroed again (10 % of a GAN's step in `perf`, `clear_page_erms`; see
/// BENCHMARKS.md). The peak stays the peak: the memory kept is what the next step takes again.
fn keep_freed_memory() {
    // SAFETY: sets an option of the linked allocator; any value is valid for this option, and
    // mimalloc reads it each time it considers a purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let invocation = cli::parse_or_exit();
    let threads = match &invocation {
        Invocation::Train(a) => a.process.threads,
        Invocation::Other(Other::Eval(a)) => a.threads,
        Invocation::Other(Other::Score(a)) => a.threads,
        Invocation::Other(Other::Anomaly(a)) => a.threads,
        Invocation::Other(Other::Sample(_)) => None,
    };
    if let Some(n) = threads
        && let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
    {
        eprintln!("error: --threads {n}: {e}");
        return ExitCode::FAILURE;
    }
    let processes = match Processes::start() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match invocation {
        Invocation::Train(args) => train(args, processes.collective()),
        Invocation::Other(Other::Eval(args)) => evaluate(args),
        Invocation::Other(Other::Score(args)) => score(args),
        Invocation::Other(Other::Anomaly(args)) => anomaly(args),
        Invocation::Other(Other::Sample(args)) => sample(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => processes.fail(&e),
    }
}

/// The processes of this run: this one alone, or with `--features mpi` those `mpirun` started.
struct Processes {
    #[cfg(feature = "mpi")]
    mpi: mpi_world::Mpi,
}

/// How long a process other than 0 waits, after an error, for process 0 to report it and end
/// the run (after replaying a diverged epoch, say), before it reports the error itself (it was
/// its own: data it alone could not read) and ends the run.
#[cfg(feature = "mpi")]
const GRACE: std::time::Duration = std::time::Duration::from_secs(30);

impl Processes {
    /// One process. Refused if `mpirun` started several: without MPI they would not know
    /// each other, and each would train the whole model into the same `--out`.
    #[cfg(not(feature = "mpi"))]
    fn start() -> Result<Processes, String> {
        let started = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
            .into_iter()
            .find_map(|name| {
                let size: usize = std::env::var(name).ok()?.parse().ok()?;
                (size > 1).then_some(size)
            });
        match started {
            Some(n) => Err(format!(
                "started by mpirun as one of {n} processes, but this vae-train was built without \
                 the mpi feature; build it with `cargo build --release -p vae-train --features \
                 mpi`"
            )),
            None => Ok(Processes {}),
        }
    }

    /// Initialises MPI. A panic in one process of several ends that process at once
    /// (`abort`), which `mpirun` sees and ends the others: unwinding would finalise MPI, which
    /// waits for the processes still waiting in a collective for this one.
    #[cfg(feature = "mpi")]
    fn start() -> Result<Processes, String> {
        let mpi = mpi_world::Mpi::init()?;
        if mpi.ranks() > 1 {
            let report = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                report(info);
                std::process::abort();
            }));
        }
        Ok(Processes { mpi })
    }

    #[cfg(not(feature = "mpi"))]
    fn collective(&self) -> &dyn Collective {
        &Alone
    }

    #[cfg(feature = "mpi")]
    fn collective(&self) -> &dyn Collective {
        &self.mpi
    }

    /// Reports `e` and ends the run. Of several processes, process 0 reports (the processes
    /// meet most errors together: a bad setting, data that differ, parameters that differ, a
    /// divergence) and ends them all; another one reports only an error of its own, after
    /// [`GRACE`], and waits for process 0 however long it takes after a divergence (process 0
    /// replays the epoch to name the op).
    fn fail(&self, e: &RunError) -> ExitCode {
        let world = self.collective();
        let code = match e {
            RunError::Interrupted { signal, .. } => signal.exit_code(),
            _ => 1,
        };
        let line = match e {
            RunError::Interrupted { .. } => e.to_string(),
            _ => format!("error: {e}"),
        };
        if world.ranks() == 1 {
            eprintln!("{line}");
            return ExitCode::from(code);
        }
        #[cfg(feature = "mpi")]
        {
            if world.rank() != 0 {
                if matches!(e, RunError::Diverged { .. }) {
                    // Every process diverged at the same step: process 0 reports and ends all.
                    loop {
                        std::thread::park();
                    }
                }
                std::thread::sleep(GRACE);
            }
            if !REPORTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
                match world.rank() {
                    0 => eprintln!("{line}"),
                    r => eprintln!("{line} (process {r} of {})", world.ranks()),
                }
            }
            self.mpi.abort(i32::from(code))
        }
        #[cfg(not(feature = "mpi"))]
        unreachable!("one process without MPI")
    }
}

/// `runs/<dataset>-<model>-<UTC yyyymmdd-hhmmss>`.
fn default_out(config: &RunConfig) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    PathBuf::from("runs").join(format!(
        "{}-{}-{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        config.data.dataset.name(),
        config.kind(),
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    ))
}

fn train(args: TrainArgs, world: &dyn Collective) -> Result<(), RunError> {
    // Process 0 alone shows progress and writes.
    let process = args.process;
    let (quiet, first) = (process.quiet || world.rank() != 0, world.rank() == 0);
    if let Some(checkpoint) = &process.resume {
        check_resumed(checkpoint, &args.given, &args.config)?;
    }
    let out = match (&process.out, &process.resume) {
        (Some(out), _) => out.clone(),
        // A resumed run continues in its own directory.
        (None, Some(ckpt)) => ckpt
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        (None, None) => default_out(&args.config),
    };
    let signals = signals::Signals::install().map_err(|e| RunError::Io {
        path: "signal handlers".into(),
        source: e,
    })?;
    #[cfg(feature = "mpi")]
    if world.ranks() > 1 {
        watch_for_a_stop(signals.clone(), world.rank(), &out);
    }
    let mut observer = progress::Terminal::new(quiet, Some(signals));
    let resume = process.resume.as_deref();
    let summary = run::train_shared(args.config, &out, resume, &mut observer, world)?;
    drop(observer);
    if !first {
        return Ok(());
    }
    if world.ranks() > 1 {
        println!("trained on {} processes", world.ranks());
    }
    if !summary.files.is_empty() {
        println!("wrote {}:", out.display());
    }
    for file in &summary.files {
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        println!("  {name}");
    }
    if let Some(test) = &summary.test_line {
        println!("{test} after {} epochs", summary.epochs);
    }
    print_figures(&summary.figures);
    Ok(())
}

/// Whether this process has reported why it stops: its main thread and the watchdog of
/// [`watch_for_a_stop`] report once between them.
#[cfg(feature = "mpi")]
static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long a process of several waits, after SIGINT or SIGTERM, for its run to stop at a step
/// boundary before it ends at once (`mpirun` sends SIGTERM to the others when one process
/// dies, and they may be waiting in a collective for it).
#[cfg(feature = "mpi")]
const STOP_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// A thread that ends this process, [`STOP_WAIT`] after a signal, if the run has not stopped
/// by then; process 0 says so in one line.
#[cfg(feature = "mpi")]
fn watch_for_a_stop(signals: signals::Signals, rank: usize, out: &Path) {
    let checkpoint = out.join(run::files::CHECKPOINT);
    std::thread::spawn(move || {
        loop {
            if let Some(signal) = signals.received() {
                std::thread::sleep(STOP_WAIT);
                let first = !REPORTED.swap(true, std::sync::atomic::Ordering::SeqCst);
                if rank == 0 && first {
                    eprintln!(
                        "error: {signal} and the processes did not stop together (one of them \
                         ended, or they were waiting for each other); {} holds the last \
                         finished epoch",
                        checkpoint.display()
                    );
                }
                std::process::exit(i32::from(signal.exit_code()));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
}

/// Refuses, with `--resume`, a flag that would change the checkpoint's run (one of
/// [`cli::RESUME_TAKES`] may take any value, any other only the checkpoint's), and a `--model`
/// naming another model than the checkpoint's.
fn check_resumed(checkpoint: &Path, given: &[String], config: &RunConfig) -> Result<(), RunError> {
    let meta = vae::nn::checkpoint::read_metadata(checkpoint)?;
    let found = config.from_checkpoint(&meta, checkpoint)?;
    if found.kind() != config.kind() {
        return Err(RunError::Config(format!(
            "{}: a checkpoint of model {}, not {} (--model); --resume continues the \
             checkpoint's own model",
            checkpoint.display(),
            found.kind(),
            config.kind()
        )));
    }
    let refused: Vec<String> = (given.iter())
        .filter(|id| !cli::RESUME_TAKES.contains(&id.as_str()))
        .filter(|id| !matches!(id.as_str(), "resume" | "model"))
        .filter(|id| vae::run::flags::changes(config, &found, id))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let takes: Vec<String> = (cli::RESUME_TAKES.iter())
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    Err(RunError::Config(format!(
        "{}: --resume continues the checkpoint's run with its settings, and {} another value \
         than the checkpoint's (it takes {} with any value, any other flag with the \
         checkpoint's)",
        refused.join(", "),
        if refused.len() == 1 {
            "this gives it"
        } else {
            "these give it"
        },
        takes.join(", ")
    )))
}

/// The end-of-run figures, one per line.
fn print_figures(figures: &[vae::model::Figure]) {
    for figure in figures {
        println!("{}", figure.line);
    }
}

fn evaluate(args: EvalArgs) -> Result<(), RunError> {
    if args.quality {
        return quality(args);
    }
    let mut config = RunConfig::default();
    (config.data.dir, config.data.test_limit) = (args.data_dir, args.test_limit);
    config.iw_samples = args.iw_samples;
    let loaded = run::load(&args.checkpoint, config)?;
    let (model, test) = (&loaded.model, &loaded.test);
    let keys = Keys::evaluation(loaded.config.seed);
    let tested = model.test(test, keys);
    println!(
        "{} test set, {} images, model {}",
        loaded.config.data.dataset,
        test.split.len(),
        loaded.config.kind()
    );
    println!("{}", model.describe_test(&tested));
    let figures = model.finish(
        test,
        &mut vae::model::Finish {
            iw_samples: args.iw_samples,
            keys,
            world: &Alone,
            note: &mut |m| eprintln!("{m}"),
            train: &loaded.train,
        },
    )?;
    if let Some(k) = figures.iter().find_map(|f| f.importance_samples) {
        println!("(importance-weighted, K = {k})");
    }
    print_figures(&figures);
    Ok(())
}

/// `eval --quality`: the sample-quality rows of the checkpoint's model, printed and written to
/// `quality.csv` beside it.
fn quality(args: EvalArgs) -> Result<(), RunError> {
    let mut config = RunConfig::default();
    (config.data.dir, config.data.test_limit) = (args.data_dir.clone(), args.test_limit);
    let loaded = run::load(&args.checkpoint, config)?;
    let source = quality::source(&loaded, &args.checkpoint)?;
    let classifier = match args.classifier {
        Some(path) => path,
        None => {
            let dataset = loaded.config.data.dataset;
            let dir = reference::reference_dir(&args.checkpoint, dataset);
            let reference = reference::reference_config(dataset, args.data_dir.clone());
            let signals = signals::Signals::install().map_err(|e| RunError::Io {
                path: "signal handlers".into(),
                source: e,
            })?;
            let mut observer = progress::Terminal::new(false, Some(signals));
            reference::ensure_reference(&dir, reference, &mut observer)?
        }
    };
    let reference =
        reference::Reference::load(&classifier, &loaded, args.data_dir, args.test_limit)?;
    println!(
        "reference classifier {}: test accuracy {:.2}%, weights sha256 {}",
        reference.path.display(),
        100.0 * reference.accuracy,
        reference.sha256
    );
    let mut rng = run::evaluation_rng(loaded.config.seed);
    let rows = quality::measure(
        &loaded,
        source,
        &reference,
        args.samples,
        &mut rng,
        &mut |m| eprintln!("{m}"),
    )?;
    print!("{}", quality::table(&rows));
    let csv = args
        .checkpoint
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(run::files::QUALITY);
    quality::write_csv(&csv, &rows)?;
    println!("wrote {}", csv.display());
    Ok(())
}

/// `score`: every score of every image of a split, written to `--out`.
fn score(args: ScoreArgs) -> Result<(), RunError> {
    let meta = vae::nn::checkpoint::read_metadata(&args.checkpoint)?;
    let own = RunConfig::default()
        .from_checkpoint(&meta, &args.checkpoint)?
        .data
        .dataset;
    let dataset = args.dataset.unwrap_or(own);
    // --data-dir is the scored dataset's; the model's own is found there only if it is the same.
    let mut config = RunConfig::default();
    config.data.dir = args.data_dir.clone().filter(|_| own == dataset);
    config.data.test_limit = Some(1);
    let loaded = run::load(&args.checkpoint, config)?;
    let (split, file) =
        commands::score::load_scored(dataset, args.data_dir.as_deref(), args.split, args.limit)?;
    let settings = ScoreSettings {
        iw_samples: args.iw_samples,
        recon_samples: args.recon_samples,
    };
    let table = commands::score::score_split(
        &loaded,
        &args.checkpoint,
        (&split, &file),
        &settings,
        Keys::evaluation(loaded.config.seed),
    )?;
    commands::score::write_csv(&args.out, &table)?;
    let columns: Vec<&str> = table.scores.iter().map(|s| s.column).collect();
    println!(
        "wrote {}: {} images of {} ({}), columns {}",
        args.out.display(),
        split.len(),
        dataset,
        file.display(),
        columns.join(", ")
    );
    Ok(())
}

/// `anomaly`: a protocol end to end, its table printed and its files written.
fn anomaly(args: AnomalyArgs) -> Result<(), RunError> {
    if !args.model.entry().scores {
        let scorers: Vec<&str> = (vae::models::all())
            .filter(|k| k.entry().scores)
            .map(|k| k.name())
            .collect();
        return Err(RunError::Config(format!(
            "--model {}: the anomaly protocols need a model that scores an image on its own \
             ({})",
            args.model,
            scorers.join(", ")
        )));
    }
    let mut base = RunConfig::for_model(args.model);
    base.data.dataset = args.dataset;
    base.data.dir = args.data_dir.clone();
    base.data.train_limit = args.train_limit;
    base.data.test_limit = args.test_limit;
    if let Some(binarize) = args.binarize {
        base.data.binarize = binarize;
    }
    base.epochs = args.epochs.unwrap_or(base.epochs);
    base.seed = args.seed;
    let hidden = args.hidden.as_ref().map(|h| {
        let widths: Vec<String> = h.iter().map(usize::to_string).collect();
        widths.join(",")
    });
    let network = [
        ("hidden", hidden),
        ("latent_dim", args.latent_dim.map(|n| n.to_string())),
        ("likelihood", args.likelihood.map(|l| l.to_string())),
    ];
    for (key, value) in network {
        if let Some(value) = value {
            if !base.model.has(key) {
                return Err(RunError::Config(format!(
                    "--{}: model {} has no such setting",
                    key.replace('_', "-"),
                    args.model
                )));
            }
            base.model.set(key, &value).map_err(RunError::Config)?;
        }
    }
    base.validate()?;
    let protocol = match args.protocol {
        commands::anomaly::Protocol::OneClass => "one-class",
        commands::anomaly::Protocol::Ood => "ood",
    };
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("anomaly-{protocol}-{}", args.dataset.name()))
    });
    let settings = ScoreSettings {
        iw_samples: args.iw_samples,
        recon_samples: args.recon_samples,
    };
    let signals = signals::Signals::install().map_err(|e| RunError::Io {
        path: "signal handlers".into(),
        source: e,
    })?;
    let mut observer = progress::Terminal::new(args.quiet, Some(signals));
    let rows = commands::anomaly::run(
        args.protocol,
        (&base, (args.background, args.background_weight_decay)),
        &settings,
        &out,
        &mut observer,
    )?;
    drop(observer);
    print!("{}", commands::anomaly::table(&rows));
    println!(
        "wrote {}: {}, {}, {}",
        out.display(),
        commands::anomaly::ANOMALY_CSV,
        commands::anomaly::ROC_PNG,
        commands::anomaly::SCORES_PNG
    );
    Ok(())
}

fn sample(args: SampleArgs) -> Result<(), RunError> {
    let loaded = run::load(&args.checkpoint, RunConfig::default())?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let test = &loaded.test;
    let picture = (loaded.model.sample_picture(test, args.n, &mut rng))
        .map_err(|why| RunError::Config(format!("{}: {why}", args.checkpoint.display())))?;
    image::save_grid(
        &args.out,
        &picture.images,
        test.split.image_shape(),
        picture.cols,
    )?;
    println!(
        "wrote {} ({} of model {})",
        args.out.display(),
        picture.what,
        loaded.config.kind()
    );
    Ok(())
}
