//! The command line, spelled exactly as scripts rely on it.

use std::path::PathBuf;

use clap::{Arg, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use vae::data::{Binarize, Classes, Dataset, parse_class_list};
use vae::models::{CodebookUpdate, GanLoss, Likelihood, ModelKind, NoiseKind, Observe, Window};
use vae::nn::Activation;
use vae::run::anomaly::Protocol;
use vae::run::score::SplitName;
use vae::run::{LrSchedule, RunConfig};

/// Train variational autoencoders on MNIST or Fashion-MNIST, evaluate them, sample from them.
#[derive(Parser, Debug)]
#[command(name = "vae-train", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// With no subcommand: `train`.
    #[command(flatten)]
    pub train: TrainArgs,
}

impl Cli {
    /// The command line with `--model`'s help written from the model registry, so that a model
    /// added there is listed with no edit here.
    pub fn command_with_models() -> clap::Command {
        let models: Vec<String> = ModelKind::all()
            .map(|k| format!("{} ({})", k.name(), k.entry().about))
            .collect();
        let help = format!("{} [default: vae].", models.join(", "));
        let with_help = |a: Arg| a.help(help.clone());
        Cli::command()
            .mut_arg("model", with_help)
            .mut_subcommand("train", |c| c.mut_arg("model", with_help))
    }

    /// Parses the process's arguments (exiting with clap's message on a bad one).
    pub fn parse_with_models() -> Cli {
        let matches = Cli::command_with_models().get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model (the default).
    Train(TrainArgs),
    /// Evaluate a checkpoint on the test set: -ELBO, importance-weighted log-likelihood, active
    /// units, k-means of the posterior means (M2: the classification error; ae and dae: the
    /// squared error against PCA's, denoising, k-means of the codes against raw pixels; vqvae:
    /// the reconstruction term, code usage, the rate under each prior and the -log p(x) bound).
    /// With --quality: the quality of its samples, read by the reference classifier.
    Eval(EvalArgs),
    /// Score every image of a split with a checkpoint's model (-ELBO, importance-weighted
    /// -log p(x), reconstruction error, reconstruction probability, or an autoencoder's
    /// squared error) and its PNG size, into a CSV: the raw material of anomaly detection.
    Score(ScoreArgs),
    /// Run an anomaly-detection protocol end to end: one-class (a model per class, the others
    /// anomalous) or ood (a model per dataset, the other dataset out of distribution); writes
    /// anomaly.csv, roc.png, scores.png and the models' runs.
    Anomaly(AnomalyArgs),
    /// Decode samples of a checkpoint into a PNG grid: from the prior (vae), under each label
    /// (cvae, m2), completions of test images (completion, regressor), codes drawn from a
    /// Gaussian fitted to the test codes (ae, dae), or codes drawn from the autoregressive prior
    /// (vqvae).
    Sample(SampleArgs),
}

/// `--exclude-class`: every class but those listed.
fn excluded(s: &str) -> Result<Classes, String> {
    let labels = parse_class_list(s).map_err(|e| e.to_string())?;
    Classes::excluding(&labels).map_err(|e| e.to_string())
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) | Err(_) => Err(format!("`{s}` is not a positive whole number")),
        Ok(n) => Ok(n),
    }
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// The model: its help lists the registry's entries (see `Cli::command_with_models`).
    /// (With --resume, the checkpoint's; naming another is an error.)
    #[arg(long)]
    pub model: Option<ModelKind>,
    /// completion and regressor: the part seen, left-half, top-half or quadrant (top-left).
    #[arg(long, default_value = "quadrant")]
    pub observe: Observe,
    /// m2: training images that keep their label (a multiple of 10, the same number per class).
    #[arg(long, value_name = "N", default_value_t = RunConfig::default().labels, value_parser = positive)]
    pub labels: usize,
    /// m2: weight α of the classification term (0.1 in the paper).
    #[arg(long, default_value_t = RunConfig::default().alpha)]
    pub alpha: f32,
    /// dae: how the input is corrupted, mask, salt-pepper or gaussian.
    #[arg(long, default_value = "mask")]
    pub noise: NoiseKind,
    /// dae: the fraction of pixels masked or salt-and-peppered, in [0, 1], or the Gaussian's σ
    /// [default: 0.25, 0.25, 0.5].
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub noise_level: Option<f32>,
    /// vae: replace each training pixel with noise at this rate, in [0, 1) (Ren et al.'s
    /// background model for likelihood-ratio OOD detection).
    #[arg(long, value_name = "RATE", default_value_t = RunConfig::default().background)]
    pub background: f32,
    /// classifier: the dropout probability after each hidden layer, in [0, 1).
    #[arg(long, value_name = "P", default_value_t = RunConfig::default().dropout)]
    pub dropout: f32,
    /// vqvae: code vectors per image, N.
    #[arg(long, value_name = "N", default_value_t = RunConfig::default().codes)]
    pub codes: usize,
    /// vqvae: dimensions of each code vector, D.
    #[arg(long, value_name = "D", default_value_t = RunConfig::default().code_dim)]
    pub code_dim: usize,
    /// vqvae: embeddings in the codebook, K (at least 2).
    #[arg(long, value_name = "K", default_value_t = RunConfig::default().codebook)]
    pub codebook: usize,
    /// vqvae: the weight β of the commitment term (0.25 in the paper).
    #[arg(long, value_name = "β", default_value_t = RunConfig::default().commitment)]
    pub commitment: f32,
    /// vqvae: how the codebook learns, ema (moving averages of the encoder outputs assigned to
    /// each code, decay 0.99) or loss (its term of the loss).
    #[arg(long, default_value_t = RunConfig::default().codebook_update)]
    pub codebook_update: CodebookUpdate,
    /// vqvae: re-seed every code unused over an epoch from an encoder output of the epoch's
    /// last batch.
    #[arg(long)]
    pub restart_dead: bool,
    /// gan: the generator's loss, non-saturating (−ln D(G(z))) or minimax (ln(1 − D(G(z))))
    /// [default: non-saturating].
    #[arg(long)]
    pub gan_loss: Option<GanLoss>,
    /// gan: minibatch discrimination in the discriminator (100 kernels of 5 dimensions).
    #[arg(long)]
    pub minibatch_discrimination: bool,
    /// gan, wgan: samples scored every epoch by the sample-quality yardstick's reference
    /// classifier (trained once into runs/reference-classifier-<dataset>); 0: none.
    #[arg(long, value_name = "N", default_value_t = RunConfig::default().quality_samples)]
    pub quality_samples: usize,
    /// pixel-ar: predict each pixel from its neighbourhood only, without its row and column
    /// (what a likelihood ratio's background model does).
    #[arg(long)]
    pub local: bool,
    /// pixel-ar: the neighbourhood each pixel is predicted from, ROWS,HALF_WIDTH (the rows
    /// above it, the columns on each side) [default: 7,7].
    #[arg(long, value_name = "ROWS,HALF_WIDTH")]
    pub window: Option<Window>,
    /// mnist or fashion-mnist.
    #[arg(long, default_value = "mnist")]
    pub dataset: Dataset,
    /// Train and test on these labels only, comma-separated, e.g. 0,2,3 [default: all].
    #[arg(long, value_name = "C[,C...]", conflicts_with = "exclude_class")]
    pub classes: Option<Classes>,
    /// Train and test on every label but these, comma-separated, e.g. 7.
    #[arg(long, value_name = "C[,C...]", value_parser = excluded)]
    pub exclude_class: Option<Classes>,
    /// Folder holding the four IDX gz files (default: data/<dataset>, then the system's copy).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Epochs to train (in total, when resuming) [default: 30].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Examples per step [default: 128; 64 for gan and wgan].
    #[arg(long, value_parser = positive)]
    pub batch_size: Option<usize>,
    /// The optimizer's learning rate [default: 1e-3; 2e-4 for gan, 5e-5 for wgan].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Adam's L2 penalty λ: λ·θ added to every gradient.
    #[arg(long, value_name = "λ", default_value_t = RunConfig::default().weight_decay)]
    pub weight_decay: f32,
    /// constant, or cosine (from --lr down to 1% of it over the epochs).
    #[arg(long, default_value = "constant")]
    pub lr_schedule: LrSchedule,
    /// Dimensions of z [default: 32; 100 for gan and wgan].
    #[arg(long, value_parser = positive)]
    pub latent_dim: Option<usize>,
    /// Encoder hidden widths, comma-separated (the decoder mirrors them); the generator's for
    /// gan and wgan [default: 400; 128,256,512,1024 for gan and wgan].
    #[arg(long, value_name = "W[,W...]", value_delimiter = ',', value_parser = positive)]
    pub hidden: Option<Vec<usize>>,
    /// relu, tanh, softplus (also leaky_relu:SLOPE, sigmoid).
    #[arg(long, default_value = "relu")]
    pub activation: Activation,
    /// dynamic (fresh Bernoulli draws each time), static (drawn once), none (grayscale targets)
    /// [default: dynamic; none for ae and dae].
    #[arg(long)]
    pub binarize: Option<Binarize>,
    /// bernoulli, or gaussian (unit variance: a squared error).
    #[arg(long, default_value = "bernoulli")]
    pub likelihood: Likelihood,
    /// Weight of the KL term (1: the ELBO).
    #[arg(long, default_value_t = 1.0)]
    pub beta: f32,
    /// Seeds initialisation, shuffling, binarization and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = positive)]
    pub threads: Option<usize>,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N", value_parser = positive)]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_name = "N", value_parser = positive)]
    pub test_limit: Option<usize>,
    /// Importance samples for the final test log-likelihood (0: skip it).
    #[arg(long, value_name = "K", default_value_t = RunConfig::default().iw_samples)]
    pub iw_samples: usize,
    /// Run directory (default: runs/<dataset>-<model>-<timestamp>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue from a checkpoint (its model, data and optimiser settings are used).
    #[arg(long, value_name = "CHECKPOINT")]
    pub resume: Option<PathBuf>,
    /// No progress bar and no per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    pub fn into_config(self) -> RunConfig {
        let defaults = RunConfig::for_model(self.model.unwrap_or_default());
        RunConfig {
            model: self.model.unwrap_or_default(),
            observe: self.observe,
            labels: self.labels,
            alpha: self.alpha,
            noise: self.noise,
            noise_level: self.noise_level.unwrap_or(self.noise.default_level()),
            dropout: self.dropout,
            background: self.background,
            codes: self.codes,
            code_dim: self.code_dim,
            codebook: self.codebook,
            commitment: self.commitment,
            codebook_update: self.codebook_update,
            restart_dead: self.restart_dead,
            gan_loss: self.gan_loss,
            minibatch_discrimination: self.minibatch_discrimination,
            quality_samples: self.quality_samples,
            local: self.local,
            window: self.window.unwrap_or(defaults.window),
            dataset: self.dataset,
            classes: (self.classes.or(self.exclude_class)).unwrap_or_default(),
            data_dir: self.data_dir,
            train_limit: self.train_limit,
            test_limit: self.test_limit,
            binarize: (self.binarize).unwrap_or(self.model.unwrap_or_default().entry().binarize),
            hidden: self.hidden.unwrap_or(defaults.hidden),
            latent_dim: self.latent_dim.unwrap_or(defaults.latent_dim),
            activation: self.activation,
            likelihood: self.likelihood,
            beta: self.beta,
            epochs: self.epochs.unwrap_or(defaults.epochs),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            lr: self.lr.unwrap_or(defaults.lr),
            weight_decay: self.weight_decay,
            lr_schedule: self.lr_schedule,
            seed: self.seed,
            iw_samples: self.iw_samples,
        }
    }
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
    #[arg(long, value_name = "N", default_value_t = vae::run::quality::SAMPLES, value_parser = positive, requires = "quality")]
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
    /// The model to train: vae, ae, dae, vqvae or pixel-ar (one with a score of its own).
    #[arg(long, default_value = "vae")]
    pub model: ModelKind,
    /// mnist or fashion-mnist (ood: trained on it, then on the other).
    #[arg(long, default_value = "mnist")]
    pub dataset: Dataset,
    /// Folder holding the dataset's files.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Epochs per model [default: the model's, 30 for vae].
    #[arg(long, value_parser = positive)]
    pub epochs: Option<usize>,
    /// Hidden widths, comma-separated (a decoder mirrors them) [default: the model's, 400 for
    /// vae].
    #[arg(long, value_name = "W[,W...]", value_delimiter = ',', value_parser = positive)]
    pub hidden: Option<Vec<usize>>,
    /// Dimensions of z.
    #[arg(long, default_value_t = RunConfig::default().latent_dim, value_parser = positive)]
    pub latent_dim: usize,
    /// dynamic, static or none, as for train [default: the model's].
    #[arg(long)]
    pub binarize: Option<Binarize>,
    /// bernoulli or gaussian.
    #[arg(long, default_value = "bernoulli")]
    pub likelihood: Likelihood,
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
    /// ood with vae, vqvae or pixel-ar: the noise rate of the background models of the likelihood
    /// ratio
    /// (0: none).
    #[arg(long, value_name = "RATE", default_value_t = 0.2)]
    pub background: f32,
    /// ood with vae, vqvae or pixel-ar: the background models' L2 penalty λ (Ren et al. add one).
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

    #[test]
    fn no_flags_means_the_library_defaults() {
        let cli = Cli::try_parse_from(["vae-train"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.train.into_config(), RunConfig::default());
    }

    #[test]
    fn model_flags_reach_the_config() {
        let cli = Cli::try_parse_from([
            "vae-train",
            "--model",
            "m2",
            "--labels",
            "600",
            "--alpha",
            "0.5",
        ])
        .unwrap();
        let config = cli.train.into_config();
        assert_eq!(
            (config.model, config.labels, config.alpha),
            ("m2".parse().unwrap(), 600, 0.5)
        );
        let cli = Cli::try_parse_from([
            "vae-train",
            "--model",
            "completion",
            "--observe",
            "left-half",
        ])
        .unwrap();
        assert_eq!(cli.train.into_config().observe, Observe::LeftHalf);
        assert!(Cli::try_parse_from(["vae-train", "--model", "gn"]).is_err());
        assert!(Cli::try_parse_from(["vae-train", "--observe", "corner"]).is_err());
        let cli = Cli::try_parse_from(["vae-train", "--model", "dae", "--noise", "gaussian"]);
        let config = cli.unwrap().train.into_config();
        assert_eq!(
            (config.noise, config.noise_level),
            (NoiseKind::Gaussian, 0.5)
        );
        assert!(Cli::try_parse_from(["vae-train", "--noise", "speckle"]).is_err());
        let cli = Cli::try_parse_from([
            "vae-train",
            "--background",
            "0.2",
            "--weight-decay",
            "0.01",
            "--exclude-class",
            "7",
        ]);
        let config = cli.unwrap().train.into_config();
        assert_eq!((config.background, config.weight_decay), (0.2, 0.01));
        assert_eq!(config.classes.to_string(), "0,1,2,3,4,5,6,8,9");
        let both = ["vae-train", "--classes", "1", "--exclude-class", "7"];
        assert!(Cli::try_parse_from(both).is_err());
    }

    #[test]
    fn binarization_defaults_to_the_models_own() {
        let config = |args: &[&str]| Cli::try_parse_from(args).unwrap().train.into_config();
        assert_eq!(config(&["vae-train"]).binarize, Binarize::Dynamic);
        for model in ["ae", "dae", "gan", "wgan"] {
            let c = config(&["vae-train", "--model", model]);
            assert_eq!(c, RunConfig::for_model(model.parse().unwrap()));
            assert_eq!(c.binarize, Binarize::None);
            let c = config(&["vae-train", "--model", model, "--binarize", "dynamic"]);
            assert_eq!(c.binarize, Binarize::Dynamic);
        }
    }

    #[test]
    fn a_model_s_own_defaults_give_way_to_the_flags() {
        let config = |args: &[&str]| Cli::try_parse_from(args).unwrap().train.into_config();
        let vae = config(&["vae-train"]);
        assert_eq!((vae.batch_size, vae.lr, vae.latent_dim), (128, 1e-3, 32));
        assert_eq!((vae.hidden, vae.epochs), (vec![400], 30));
        let gan = config(&["vae-train", "--model", "gan"]);
        assert_eq!((gan.batch_size, gan.lr, gan.latent_dim), (64, 2e-4, 100));
        assert_eq!(gan.hidden, [128, 256, 512, 1024]);
        assert_eq!(config(&["vae-train", "--model", "wgan"]).lr, 5e-5);
        let flags = [
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
        ];
        let gan = config(&flags);
        assert_eq!((gan.batch_size, gan.lr, gan.latent_dim), (32, 1e-4, 8));
        assert_eq!((gan.hidden, gan.epochs), (vec![64], 3));
    }

    #[test]
    fn the_model_help_lists_every_registered_model() {
        let help = Cli::command_with_models().render_long_help().to_string();
        for kind in ModelKind::all() {
            assert!(
                help.contains(&format!("{} ({})", kind.name(), kind.entry().about)),
                "{kind} missing from: {help}"
            );
        }
        Cli::command_with_models().debug_assert();
    }

    #[test]
    fn hidden_takes_a_comma_separated_list() {
        let cli = Cli::try_parse_from(["vae-train", "train", "--hidden", "512,256"]).unwrap();
        match cli.command {
            Some(Command::Train(args)) => assert_eq!(args.hidden, Some(vec![512, 256])),
            other => panic!("{other:?}"),
        }
    }
}
