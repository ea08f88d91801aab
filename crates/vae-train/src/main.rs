//! `vae-train`: the command-line trainer. Parses flags into a `RunConfig`, hands it to
//! `vae::run`, and reports progress, files and figures.

mod cli;
mod progress;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vae::image;
use vae::models::{CLASSES, ModelKind};
use vae::pictures;
use vae::run::{self, RunConfig, RunError};

use cli::{Cli, Command, EvalArgs, SampleArgs, TrainArgs};

/// mimalloc instead of the system allocator: glibc's malloc hands the step's large buffers
/// (activations, gradients, GEMM packing) back to the OS when they are freed and takes them
/// again, zeroed page by page, in the next step; see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Some(Command::Train(a)) => a.threads,
        Some(Command::Eval(a)) => a.threads,
        Some(Command::Sample(_)) => None,
        None => cli.train.threads,
    };
    if let Some(n) = threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: --threads {n}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Some(Command::Train(args)) => train(args),
        Some(Command::Eval(args)) => evaluate(args),
        Some(Command::Sample(args)) => sample(args),
        None => train(cli.train),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
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
        config.dataset.name(),
        config.model,
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    ))
}

fn train(args: TrainArgs) -> Result<(), RunError> {
    let quiet = args.quiet;
    let resume = args.resume.clone();
    let explicit_out = args.out.clone();
    let config = args.into_config();
    let out = match (&explicit_out, &resume) {
        (Some(out), _) => out.clone(),
        // A resumed run continues in its own directory.
        (None, Some(ckpt)) => ckpt
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        (None, None) => default_out(&config),
    };
    if resume.is_some() && !quiet {
        eprintln!(
            "note: --resume takes the model, data, optimiser and seed settings from the checkpoint"
        );
    }
    let mut observer = progress::Terminal::new(quiet);
    let summary = run::train(config, &out, resume.as_deref(), &mut observer)?;
    drop(observer);
    println!("wrote {}:", out.display());
    for file in &summary.files {
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        println!("  {name}");
    }
    if let Some(test) = summary.test {
        println!(
            "test -ELBO {:.2} nats (recon {:.2}, KL {:.2}) after {} epochs",
            test.elbo.neg_elbo, test.elbo.recon, test.elbo.kl, summary.epochs
        );
    }
    print_final(&summary.last);
    Ok(())
}

/// The end-of-run figures, one per line.
fn print_final(last: &run::FinalTest) {
    if let Some((what, nll)) = last.nll {
        println!("test {what} {nll:.2} nats");
    }
    if let Some(error) = last.error {
        println!("test classification error {:.2}%", 100.0 * error);
    }
    if let Some(au) = &last.active_units {
        println!("active units {} of {}", au.count, au.variances.len());
    }
}

fn evaluate(args: EvalArgs) -> Result<(), RunError> {
    let config = RunConfig {
        data_dir: args.data_dir,
        iw_samples: args.iw_samples,
        ..RunConfig::default()
    };
    let loaded = run::load(&args.checkpoint, config)?;
    let mut rng = run::evaluation_rng(loaded.config.seed);
    let tested = loaded
        .model
        .epoch_test(&loaded.store, &loaded.test, &mut rng);
    println!(
        "{} test set, {} images, model {}",
        loaded.config.dataset,
        loaded.test.split.len(),
        loaded.config.model
    );
    println!(
        "test -ELBO {:.2} nats (recon {:.2}, KL {:.2})",
        tested.elbo.neg_elbo, tested.elbo.recon, tested.elbo.kl
    );
    let last = loaded
        .model
        .final_test(&loaded.store, &loaded.test, args.iw_samples, &mut rng);
    if last.nll.is_some() && args.iw_samples > 0 {
        println!("(importance-weighted, K = {})", args.iw_samples);
    }
    print_final(&last);
    Ok(())
}

fn sample(args: SampleArgs) -> Result<(), RunError> {
    let loaded = run::load(&args.checkpoint, RunConfig::default())?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let (store, test) = (&loaded.store, &loaded.test);
    let (images, cols) = match &loaded.model {
        run::Model::Vae(vae) => {
            let cols = (args.n as f64).sqrt().ceil().max(1.0) as usize;
            (pictures::samples(vae, store, args.n, &mut rng), cols)
        }
        run::Model::Cvae(_) | run::Model::M2(_) => {
            let vae = loaded.model.vae().expect("conditional VAE");
            let per_class = args.n.div_ceil(CLASSES);
            (
                pictures::classes(vae, store, per_class, &mut rng),
                per_class,
            )
        }
        run::Model::Completion(m) => {
            let samples = 6;
            let images = pictures::completions(m, store, &test.x, args.n, samples, &mut rng);
            (images, samples + 2)
        }
        run::Model::Regressor(m) => (pictures::regressions(m, store, &test.x, args.n), 3),
    };
    image::save_grid(&args.out, &images, test.split.image_shape(), cols)?;
    println!(
        "wrote {} ({} of model {})",
        args.out.display(),
        match loaded.config.model {
            ModelKind::Vae => format!("{} samples", args.n),
            ModelKind::Cvae | ModelKind::M2 => "samples under each label".to_string(),
            _ => format!(
                "completions of {} test images",
                args.n.min(test.split.len())
            ),
        },
        loaded.config.model
    );
    Ok(())
}
