//! The flags of a training run, generated from the typed settings: the shared groups (data,
//! optimizer and schedule) with the chosen model's defaults, then the model's own flags under a
//! heading of their own. A flag of another model is refused with one line naming the models
//! that take it ([`foreign_flag`]).

use std::path::PathBuf;

use clap::{ArgMatches, Args, Command, FromArgMatches};

use crate::data::{Binarize, Classes, Dataset, parse_class_list};
use crate::model::{
    DataSettings, LrSchedule, ModelKind, ModelSettings, OptimizerSettings, RunConfig, positive,
};
use crate::models;

/// The data flags.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Data")]
pub struct DataFlags {
    /// mnist or fashion-mnist.
    #[arg(long, default_value = "mnist")]
    pub dataset: Dataset,
    /// Train and test on these labels only, comma-separated, e.g. 0,2,3 [default: all].
    #[arg(long, value_name = "C[,C...]", conflicts_with = "exclude_class")]
    pub classes: Option<Classes>,
    /// Train and test on every label but these, comma-separated, e.g. 7.
    #[arg(long, value_name = "C[,C...]", value_parser = excluded)]
    pub exclude_class: Option<Classes>,
    /// Folder holding the four IDX gz files (default: `data/<dataset>`, then the system's copy).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N", value_parser = positive)]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only (kept by the checkpoint: a resumed run tests
    /// on the same images).
    #[arg(long, value_name = "N", value_parser = positive)]
    pub test_limit: Option<usize>,
    /// dynamic (fresh Bernoulli draws each time), static (drawn once), none (grayscale
    /// targets).
    #[arg(long, default_value = "dynamic")]
    pub binarize: Binarize,
}

/// The optimizer's and the run's flags.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Training")]
pub struct TrainingFlags {
    /// Epochs to train (in total, when resuming).
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 128, value_parser = positive)]
    pub batch_size: usize,
    /// The learning rate of every optimizer of the model.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Adam's L2 penalty λ: λ·θ added to every gradient.
    #[arg(long, value_name = "λ", default_value_t = 0.0)]
    pub weight_decay: f32,
    /// constant, or cosine (from --lr down to 1% of it over the epochs), for every optimizer.
    #[arg(long, default_value = "constant")]
    pub lr_schedule: LrSchedule,
    /// Seeds initialisation, shuffling, binarization and noise.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(..=i64::MAX as u64))]
    pub seed: u64,
    /// Importance samples for the final test log-likelihood (0: skip it).
    #[arg(long, value_name = "K", default_value_t = 1000)]
    pub iw_samples: usize,
}

/// `--exclude-class`: every class but those listed.
fn excluded(s: &str) -> Result<Classes, String> {
    let labels = parse_class_list(s).map_err(|e| e.to_string())?;
    Classes::excluding(&labels).map_err(|e| e.to_string())
}

/// `cmd` with the flags of a run of `kind`: `--model`, the shared groups with the model's own
/// defaults (shown by `--help`), and the model's flags under their heading.
pub fn add_flags(cmd: Command, kind: ModelKind) -> Command {
    let models: Vec<String> = models::all()
        .map(|k| format!("{} ({})", k.name(), k.entry().about))
        .collect();
    let names: Vec<&'static str> = models::all().map(ModelKind::name).collect();
    let cmd = cmd.arg(
        clap::Arg::new("model")
            .long("model")
            .value_name("MODEL")
            .value_parser(clap::builder::PossibleValuesParser::new(names))
            .default_value(kind.name())
            .hide_possible_values(true)
            .help(format!(
                "The model: {}. Its flags are listed under its heading: `--model NAME --help`",
                models.join(", ")
            )),
    );
    let cmd = TrainingFlags::augment_args(DataFlags::augment_args(cmd));
    let defaults = RunConfig::for_model(kind);
    let cmd = cmd
        .mut_arg("epochs", |a| a.default_value(defaults.epochs.to_string()))
        .mut_arg("batch_size", |a| {
            a.default_value(defaults.optimizer.batch_size.to_string())
        })
        .mut_arg("lr", |a| a.default_value(defaults.optimizer.lr.to_string()))
        .mut_arg("binarize", |a| {
            a.default_value(defaults.data.binarize.to_string())
        });
    (kind.entry().schema.args)(cmd.next_help_heading(format!("Model {kind}")))
}

/// The [`RunConfig`] of `kind` from flags parsed by a command of [`add_flags`].
pub fn config_from(kind: ModelKind, matches: &ArgMatches) -> Result<RunConfig, clap::Error> {
    let data = DataFlags::from_arg_matches(matches)?;
    let training = TrainingFlags::from_arg_matches(matches)?;
    let own = (kind.entry().schema.from_matches)(matches)?;
    Ok(RunConfig {
        model: ModelSettings::new(kind, own),
        data: DataSettings {
            dataset: data.dataset,
            classes: (data.classes.or(data.exclude_class)).unwrap_or_default(),
            train_limit: data.train_limit,
            test_limit: data.test_limit,
            binarize: data.binarize,
            dir: data.data_dir,
        },
        optimizer: OptimizerSettings {
            batch_size: training.batch_size,
            lr: training.lr,
            weight_decay: training.weight_decay,
            lr_schedule: training.lr_schedule,
        },
        epochs: training.epochs,
        seed: training.seed,
        iw_samples: training.iw_samples,
    })
}

/// The [`RunConfig`] of a command line's flags (no binary name), as `vae-train train` reads
/// them: for tests and for programs that build runs from flags.
pub fn parse<I, T>(args: I) -> Result<RunConfig, String>
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let kind = model_named(&args)
        .map_err(|e| e.to_string())?
        .unwrap_or_else(models::default_kind);
    let cmd = add_flags(Command::new("train").no_binary_name(true), kind);
    let matches = cmd
        .try_get_matches_from(&args)
        .map_err(|e| foreign_flag(kind, &e).unwrap_or_else(|| e.to_string()))?;
    config_from(kind, &matches).map_err(|e| e.to_string())
}

/// The model that `--model NAME` (or `--model=NAME`) in `args` names, if any: the flags a
/// command takes depend on it, so it is read before the rest.
pub fn model_named(
    args: &[String],
) -> Result<Option<ModelKind>, crate::models::ParseModelKindError> {
    let mut named = None;
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if word == "--model" {
            named = words.next().cloned();
        } else if let Some(name) = word.strip_prefix("--model=") {
            named = Some(name.to_string());
        }
    }
    named.map(|name| models::kind(&name)).transpose()
}

/// Whether the flag `id` (clap's id: the setting's key, e.g. `latent_dim`) has another value in
/// `given` than in `found` (a checkpoint's settings): what `--resume` refuses.
pub fn changes(given: &RunConfig, found: &RunConfig, id: &str) -> bool {
    let tables = |c: &RunConfig| -> toml::Table {
        let mut c = c.clone();
        c.data.dir = None;
        toml::from_str(&c.to_toml()).expect("a run's settings read back")
    };
    let key = match id {
        "exclude_class" => "classes",
        other => other,
    };
    let value = |t: &toml::Table| -> Option<toml::Value> {
        let groups = ["data", "optimizer", given.kind().name()];
        (t.get(key).cloned()).or_else(|| {
            groups
                .iter()
                .find_map(|g| t.get(*g)?.as_table()?.get(key).cloned())
        })
    };
    value(&tables(given)) != value(&tables(found))
}

/// For clap's error about an unknown flag that is another model's: one line naming the flag,
/// the models that take it and the model that does not, e.g. `--codes is a setting of vqvae;
/// model vae does not read it`.
pub fn foreign_flag(kind: ModelKind, error: &clap::Error) -> Option<String> {
    if error.kind() != clap::error::ErrorKind::UnknownArgument {
        return None;
    }
    let given = match error.get(clap::error::ContextKind::InvalidArg)? {
        clap::error::ContextValue::String(s) => s.clone(),
        _ => return None,
    };
    let long = given.strip_prefix("--")?.split('=').next()?.to_string();
    let takers: Vec<&str> = models::all()
        .filter(|k| k.entry().schema.flags().contains(&long))
        .map(ModelKind::name)
        .collect();
    if takers.is_empty() {
        return None;
    }
    let of = match takers.split_last() {
        Some((last, [])) => format!("model {last}"),
        Some((last, rest)) => format!("models {} and {last}", rest.join(", ")),
        None => unreachable!("not empty"),
    };
    Some(format!(
        "--{long} is a setting of {of}; model {kind} does not read it"
    ))
}
