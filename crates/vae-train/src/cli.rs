//! The command line, spelled exactly as scripts rely on it. The flags of `train` are generated
//! from the typed settings ([`vae::run::flags`]): the shared groups with the chosen model's
//! defaults, then the model's own flags under its heading, so the model is read first
//! ([`chosen_model`]).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgMatches, Args, Command, FromArgMatches, Subcommand};
use vae::commands::anomaly::Protocol;
use vae::commands::score::SplitName;
use vae::data::{Binarize, Dataset};
use vae::model::{ModelKind, RunConfig, positive};
use vae::models::{self, Likelihood};
use vae::run::flags;

/// What `vae-train` was asked to do.
#[derive(Debug)]
pub enum Invocation {
    /// Train (the default, or `train`).
    Train(TrainArgs),
    /// Another command.
    Other(Other),
}

/// `train`'s flags: the run's settings and how this process runs it.
#[derive(Debug)]
pub struct TrainArgs {
    /// The run's settings.
    pub config: RunConfig,
    /// The flags given on the command line (their ids), to check those `--resume` takes.
    pub given: Vec<String>,
    /// How the process runs.
    pub process: ProcessArgs,
}

/// The flags of `train` that are not settings of the run.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Run")]
pub struct ProcessArgs {
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = positive)]
    pub threads: Option<usize>,
    /// Run directory (default: runs/<dataset>-<model>-<timestamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue from a checkpoint with its settings: --epochs, --iw-samples, --data-dir, --out,
    /// --threads and --quiet may be given with it, any other flag only with the checkpoint's
    /// value.
    #[arg(long, value_name = "CHECKPOINT")]
    pub resume: Option<PathBuf>,
    /// No progress bar and no per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
}

/// The flags `--resume` takes besides itself whatever their value: they do not change the
/// run's trajectory. Any other is taken only with the checkpoint's own value.
pub const RESUME_TAKES: [&str; 6] = [
    "epochs",
    "iw_samples",
    "data_dir",
    "out",
    "threads",
    "quiet",
];

/// The commands other than `train`.
#[derive(Subcommand, Debug)]
pub enum Other {
    /// Evaluate a checkpoint on the test set: the model's test figures and its end-of-run
    /// figures (an importance-weighted log-likelihood where it has one). With --quality: the
    /// quality of its samples, read by the reference classifier.
    Eval(EvalArgs),
    /// Score every image of a split with a checkpoint's model (each score the model gives an
    /// image, higher meaning less expected) and its PNG size, into a CSV: the raw material of
    /// anomaly detection.
    Score(ScoreArgs),
    /// Run an anomaly-detection protocol end to end: one-class (a model per class, the others
    /// anomalous) or ood (a model per dataset, the other dataset out of distribution); writes
    /// anomaly.csv, roc.png, scores.png and the models' runs.
    Anomaly(AnomalyArgs),
    /// Draw from a checkpoint's model into a PNG grid: whatever the model draws (samples from
    /// its prior, under each label, completions of test images, or decodings of codes drawn
    /// from a density fitted to the test codes).
    Sample(SampleArgs),
}

/// The model whose flags `train` takes: `--model NAME`'s, else that of the checkpoint of
/// `--resume`, else the default (vae). A name that is not a model is left for clap to refuse.
pub fn chosen_model(args: &[String]) -> ModelKind {
    if let Ok(Some(kind)) = flags::model_named(args) {
        return kind;
    }
    let resume = args.iter().enumerate().find_map(|(i, a)| match a.as_str() {
        "--resume" => args.get(i + 1).cloned(),
        a => a.strip_prefix("--resume=").map(str::to_string),
    });
    let from_checkpoint = resume.and_then(|path| {
        let meta = vae::nn::checkpoint::read_metadata(&path).ok()?;
        let config = RunConfig::default()
            .from_checkpoint(&meta, path.as_ref())
            .ok()?;
        Some(config.kind())
    });
    from_checkpoint.unwrap_or_else(models::default_kind)
}

/// The command line for a run of `kind`: `train`'s flags on the command itself (no subcommand
/// means `train`) and on `train`, and the other commands.
pub fn command(kind: ModelKind) -> Command {
    let train = |cmd: Command| ProcessArgs::augment_args(flags::add_flags(cmd, kind));
    let others: Vec<String> = models::all()
        .filter(|&k| k != kind)
        .map(|k| k.name().to_string())
        .collect();
    let after = format!(
        "The flags under \"Model {kind}\" are those of --model {kind}; another model's are listed \
         by `vae-train --model NAME --help` ({}).",
        others.join(", ")
    );
    let root = Command::new("vae-train")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Train generative models on MNIST or Fashion-MNIST, evaluate them, sample from them.",
        )
        .args_conflicts_with_subcommands(true)
        .after_help(after.clone());
    let root = train(root).subcommand(
        train(Command::new("train"))
            .about("Train a model (the default).")
            .after_help(after),
    );
    // The subcommands' derive would name the command after the enum's doc comment.
    Other::augment_subcommands(root).about(
        "Train generative models on MNIST or Fashion-MNIST, evaluate them, sample from them.",
    )
}

/// Parses `args` (with the binary's name first).
pub fn parse(args: Vec<String>) -> Result<Invocation, clap::Error> {
    let kind = chosen_model(&args);
    let matches = command(kind).try_get_matches_from(args.iter().map(OsString::from))?;
    match matches.subcommand() {
        Some(("train", sub)) => train_args(kind, sub).map(Invocation::Train),
        Some(_) => Other::from_arg_matches(&matches).map(Invocation::Other),
        None => train_args(kind, &matches).map(Invocation::Train),
    }
}

fn train_args(kind: ModelKind, matches: &ArgMatches) -> Result<TrainArgs, clap::Error> {
    let command = command(kind);
    let is_flag = |id: &str| command.get_arguments().any(|a| a.get_id() == id);
    let given = (matches.ids())
        .map(|id| id.as_str())
        .filter(|id| is_flag(id))
        .filter(|id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(str::to_string)
        .collect();
    Ok(TrainArgs {
        config: flags::config_from(kind, matches)?,
        given,
        process: ProcessArgs::from_arg_matches(matches)?,
    })
}

/// Parses the process's arguments; a flag of another model is one `error:` line naming the
/// models that take it, and any other mistake clap's message (both exit with status 2).
pub fn parse_or_exit() -> Invocation {
    let args: Vec<String> = std::env::args().collect();
    let kind = chosen_model(&args);
    parse(args).unwrap_or_else(|e| match flags::foreign_flag(kind, &e) {
        Some(line) => {
            eprintln!("error: {line}");
            std::process::exit(2)
        }
        None => e.exit(),
    })
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint written by `vae-train train`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Importance samples (5000 is the papers' protocol; 0 skips the estimate).
    #[arg(long, value_name = "K", default_value_t = 1000)]
    pub iw_samples: usize,
    /// Folder holding the data set's files.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_name = "N", value_parser = positive)]
    pub test_limit: Option<usize>,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = positive)]
    pub threads: Option<usize>,
    /// Instead of the likelihood figures, the quality of the model's samples: classifier
    /// Inception Score, Fréchet distance, mode coverage and Parzen log-likelihood, printed and
    /// written to quality.csv beside the checkpoint.
    #[arg(long, conflicts_with = "iw_samples")]
    pub quality: bool,
    /// --quality: how many samples to draw.
    #[arg(long, value_name = "N", default_value_t = vae::commands::quality::SAMPLES, value_parser = positive, requires = "quality")]
    pub samples: usize,
    /// --quality: the classifier's checkpoint (default: the reference classifier in
    /// reference-classifier-<dataset> beside the run's directory, trained there if absent).
    #[arg(long, value_name = "CHECKPOINT", requires = "quality")]
    pub classifier: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// A checkpoint written by `vae-train train`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The dataset to score, mnist or fashion-mnist (default: the checkpoint's).
    #[arg(long)]
    pub dataset: Option<Dataset>,
    /// train or test.
    #[arg(long, default_value = "test")]
    pub split: SplitName,
    /// Folder holding the scored dataset's files.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Score the first N images only.
    #[arg(long, value_name = "N", value_parser = positive)]
    pub limit: Option<usize>,
    /// Importance samples of -log p(x) (0: skip it).
    #[arg(long, value_name = "K", default_value_t = 100)]
    pub iw_samples: usize,
    /// Samples of z in the reconstruction probability (0: skip it).
    #[arg(long, value_name = "L", default_value_t = 10)]
    pub recon_samples: usize,
    /// The CSV to write.
    #[arg(long, value_name = "FILE.csv")]
    pub out: PathBuf,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = positive)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct AnomalyArgs {
    /// one-class or ood.
    #[arg(long)]
    pub protocol: Protocol,
    /// The model to train: any that scores an image on its own (vae, m2, ae, dae, vqvae,
    /// pixel-ar).
    #[arg(long, default_value = "vae", value_parser = models::kind)]
    pub model: ModelKind,
    /// mnist or fashion-mnist (ood: trained on it, then on the other).
    #[arg(long, default_value = "mnist")]
    pub dataset: Dataset,
    /// Folder holding the dataset's files.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Epochs per model [default: the model's].
    #[arg(long, value_parser = positive)]
    pub epochs: Option<usize>,
    /// Hidden widths, comma-separated (a decoder mirrors them) [default: the model's].
    #[arg(long, value_name = "W[,W...]", value_delimiter = ',', value_parser = positive)]
    pub hidden: Option<Vec<usize>>,
    /// Dimensions of z, for a model that has them [default: the model's].
    #[arg(long, value_parser = positive)]
    pub latent_dim: Option<usize>,
    /// dynamic, static or none, as for train [default: the model's].
    #[arg(long)]
    pub binarize: Option<Binarize>,
    /// bernoulli or gaussian, for a model that has a likelihood [default: the model's].
    #[arg(long)]
    pub likelihood: Option<Likelihood>,
    /// Seeds every model's training and the scores' noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train each model on the first N of its training images only.
    #[arg(long, value_name = "N", value_parser = positive)]
    pub train_limit: Option<usize>,
    /// Score the first N test images only.
    #[arg(long, value_name = "N", value_parser = positive)]
    pub test_limit: Option<usize>,
    /// Importance samples of -log p(x) (0: skip it).
    #[arg(long, value_name = "K", default_value_t = 100)]
    pub iw_samples: usize,
    /// Samples of z in the reconstruction probability (0: skip it).
    #[arg(long, value_name = "L", default_value_t = 10)]
    pub recon_samples: usize,
    /// ood, with a model that has --background: the noise rate of the background models of the
    /// likelihood ratio (0: none).
    #[arg(long, value_name = "RATE", default_value_t = 0.2)]
    pub background: f32,
    /// ood, with a model that has --background: the background models' L2 penalty λ (Ren et
    /// al. add one).
    #[arg(long, value_name = "λ", default_value_t = 0.0)]
    pub background_weight_decay: f32,
    /// The protocol's folder (default: runs/anomaly-<protocol>-<dataset>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = positive)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// A checkpoint written by `vae-train train`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// How many samples.
    #[arg(long, default_value_t = 64, value_parser = positive)]
    pub n: usize,
    /// The PNG to write.
    #[arg(long, value_name = "FILE.png")]
    pub out: PathBuf,
    /// Seed of the prior draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Invocation, clap::Error> {
        parse(args.iter().map(|a| a.to_string()).collect())
    }

    fn config(args: &[&str]) -> RunConfig {
        match parsed(args).unwrap() {
            Invocation::Train(t) => t.config,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_flags_means_the_library_defaults() {
        assert_eq!(config(&["vae-train"]), RunConfig::default());
        assert_eq!(config(&["vae-train", "train"]), RunConfig::default());
    }

    #[test]
    fn model_flags_reach_the_settings() {
        let c = config(&[
            "vae-train",
            "--model",
            "m2",
            "--labels",
            "600",
            "--alpha",
            "0.5",
        ]);
        let m2: &vae::models::M2Settings = c.settings();
        assert_eq!((c.kind().name(), m2.labels, m2.alpha), ("m2", 600, 0.5));
        let c = config(&[
            "vae-train",
            "train",
            "--model=completion",
            "--observe",
            "left-half",
        ]);
        let completion: &vae::models::CompletionSettings = c.settings();
        assert_eq!(completion.observe, vae::models::Observe::LeftHalf);
        assert!(parsed(&["vae-train", "--model", "gn"]).is_err());
        assert!(parsed(&["vae-train", "--model", "completion", "--observe", "corner"]).is_err());
        let c = config(&["vae-train", "--model", "dae", "--noise", "gaussian"]);
        let dae: &vae::models::DaeSettings = c.settings();
        assert_eq!(dae.noise().unwrap().to_string(), "gaussian 0.5");
        let c = config(&[
            "vae-train",
            "--background",
            "0.2",
            "--weight-decay",
            "0.01",
            "--exclude-class",
            "7",
        ]);
        let vae: &vae::models::VaeSettings = c.settings();
        assert_eq!((vae.background, c.optimizer.weight_decay), (0.2, 0.01));
        assert_eq!(c.data.classes.to_string(), "0,1,2,3,4,5,6,8,9");
        assert!(parsed(&["vae-train", "--classes", "1", "--exclude-class", "7"]).is_err());
    }

    #[test]
    fn a_flag_of_another_model_is_one_line_naming_the_models_that_take_it() {
        let cases = [
            (
                &["--model", "vae", "--codes", "16"][..],
                "--codes is a setting of model vqvae; model vae does not read it",
            ),
            (
                &["--model", "ae", "--gan-loss", "minimax"],
                "--gan-loss is a setting of model gan; model ae does not read it",
            ),
            (
                &["--model", "gan", "--labels", "100"],
                "--labels is a setting of model m2; model gan does not read it",
            ),
            (
                &["--noise", "gaussian"],
                "--noise is a setting of model dae; model vae does not read it",
            ),
            (
                &["--window", "3,3"],
                "--window is a setting of model pixel-ar; model vae does not read it",
            ),
            (
                &["--dropout", "0.5"],
                "--dropout is a setting of model classifier; model vae does not read it",
            ),
            (
                &["--observe", "left-half"],
                "--observe is a setting of models completion and regressor; model vae does not read it",
            ),
            (
                &["--model", "cvae", "--background", "0.1"],
                "--background is a setting of models vae, vqvae and pixel-ar; model cvae does not read it",
            ),
            (
                &["--model", "gan", "--activation", "tanh"],
                "--activation is a setting of models vae, cvae, completion, regressor, m2, ae, dae, vqvae, pixel-ar and classifier; model gan does not read it",
            ),
            (
                &["--model", "ae", "--beta", "2"],
                "--beta is a setting of models vae, cvae, completion and m2; model ae does not read it",
            ),
            (
                &["--model", "classifier", "--beta", "3"],
                "--beta is a setting of models vae, cvae, completion and m2; model classifier does not read it",
            ),
            (
                &["--model", "wgan", "--minibatch-discrimination"],
                "--minibatch-discrimination is a setting of model gan; model wgan does not read it",
            ),
        ];
        for (flags, line) in cases {
            let mut args = vec!["vae-train".to_string()];
            args.extend(flags.iter().map(|f| f.to_string()));
            let kind = chosen_model(&args);
            let error = parse(args).unwrap_err();
            assert_eq!(
                flags::foreign_flag(kind, &error).as_deref(),
                Some(line),
                "{flags:?}"
            );
        }
        // A flag of no model is clap's own error.
        let args: Vec<String> = ["vae-train", "--codez", "3"].map(String::from).to_vec();
        let error = parse(args).unwrap_err();
        assert_eq!(flags::foreign_flag(models::default_kind(), &error), None);
    }

    #[test]
    fn a_model_s_own_defaults_give_way_to_the_flags() {
        let vae = config(&["vae-train"]);
        let net = &vae.settings::<vae::models::VaeSettings>().net;
        assert_eq!(
            (vae.optimizer.batch_size, vae.optimizer.lr, net.latent_dim),
            (128, 1e-3, 32)
        );
        assert_eq!((net.hidden.clone(), vae.epochs), (vec![400], 30));
        let gan = config(&["vae-train", "--model", "gan"]);
        let net = &gan.settings::<vae::models::GanSettings>().net;
        assert_eq!(
            (gan.optimizer.batch_size, gan.optimizer.lr, net.latent_dim),
            (64, 2e-4, 100)
        );
        assert_eq!(net.hidden, [128, 256, 512, 1024]);
        assert_eq!(gan.data.binarize, Binarize::None);
        assert_eq!(config(&["vae-train", "--model", "wgan"]).optimizer.lr, 5e-5);
        assert_eq!(config(&["vae-train", "--model", "pixel-ar"]).epochs, 4);
        let gan = config(&[
            "vae-train",
            "--model",
            "gan",
            "--lr",
            "1e-4",
            "--batch-size",
            "32",
            "--hidden",
            "64",
            "--latent-dim",
            "8",
            "--epochs",
            "3",
            "--binarize",
            "dynamic",
        ]);
        let net = &gan.settings::<vae::models::GanSettings>().net;
        assert_eq!(
            (gan.optimizer.batch_size, gan.optimizer.lr, net.latent_dim),
            (32, 1e-4, 8)
        );
        assert_eq!((net.hidden.clone(), gan.epochs), (vec![64], 3));
        assert_eq!(gan.data.binarize, Binarize::Dynamic);
        for model in models::all() {
            let c = config(&["vae-train", "--model", model.name()]);
            assert_eq!(c, RunConfig::for_model(model), "{model}");
        }
    }

    #[test]
    fn help_lists_the_chosen_models_flags_with_its_defaults() {
        let help = command(models::default_kind())
            .render_long_help()
            .to_string();
        for kind in models::all() {
            assert!(
                help.contains(&format!("{} ({})", kind.name(), kind.entry().about)),
                "{kind} missing from: {help}"
            );
        }
        assert!(
            help.contains("Model vae:") && help.contains("[default: 400]"),
            "{help}"
        );
        let gan = models::kind("gan").unwrap();
        let help = command(gan).render_long_help().to_string();
        assert!(help.contains("Model gan:"), "{help}");
        assert!(help.contains("[default: 128,256,512,1024]"), "{help}");
        assert!(
            help.contains("[default: 0.0002]") && help.contains("[default: 64]"),
            "{help}"
        );
        let pixel_ar = models::kind("pixel-ar").unwrap();
        let help = command(pixel_ar).render_long_help().to_string();
        assert!(
            help.contains("[default: 7,7]") && help.contains("[default: none]"),
            "{help}"
        );
        for kind in models::all() {
            command(kind).debug_assert();
        }
    }

    #[test]
    fn the_help_opens_with_what_the_program_does() {
        let help = command(models::default_kind()).render_help().to_string();
        assert!(help.starts_with("Train generative models"), "{help}");
    }

    #[test]
    fn hidden_takes_a_comma_separated_list() {
        let c = config(&["vae-train", "train", "--hidden", "512,256"]);
        assert_eq!(
            c.settings::<vae::models::VaeSettings>().net.hidden,
            [512, 256]
        );
    }
}
