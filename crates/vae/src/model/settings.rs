//! A run's settings, typed: the groups every model shares ([`DataSettings`],
//! [`OptimizerSettings`], and the epochs, seed and importance samples of [`RunConfig`]) and each
//! model's own struct, declared in the model's file, that implements [`Settings`]: its flags
//! (clap `Args`, under a help heading of its own), its defaults (those of its flags) and its
//! checks. Everything is written to `config.toml` and to checkpoints through serde.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::data::{Binarize, Classes, Dataset};
use crate::model::ModelKind;

/// A model's own settings: one struct in the model's file. Its fields are its flags (clap
/// `Args` with `#[command(next_help_heading = "...")]`), their defaults are the model's
/// defaults, and serde writes them to the `[model-name]` table of `config.toml` and of the
/// checkpoint's settings.
pub trait Settings:
    clap::Args
    + clap::FromArgMatches
    + Serialize
    + DeserializeOwned
    + Clone
    + PartialEq
    + fmt::Debug
    + 'static
{
    /// Rejects settings the model cannot train with, naming the flag; `config` is the whole
    /// run (some checks need the data or the optimizer). By default all are fine.
    fn check(&self, _config: &RunConfig) -> Result<(), String> {
        Ok(())
    }

    /// Whether the model follows the quality of its samples with the sample-quality
    /// yardstick's reference classifier: the run then trains it (once per dataset, beside the
    /// run's directory) or loads it, and hands it to the model's constructor. By default not.
    fn wants_reference(&self) -> bool {
        false
    }
}

/// Any model's [`Settings`], behind a pointer: what [`ModelSettings`] holds.
pub trait AnySettings: fmt::Debug {
    /// As [`Any`], to take the typed settings back.
    fn as_any(&self) -> &dyn Any;
    /// As [`Any`], mutably.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// A copy.
    fn boxed_clone(&self) -> Box<dyn AnySettings>;
    /// Whether `other` holds the same settings.
    fn same(&self, other: &dyn AnySettings) -> bool;
    /// The settings as a TOML table.
    fn to_table(&self) -> toml::Table;
    /// [`Settings::check`].
    fn check(&self, config: &RunConfig) -> Result<(), String>;
    /// [`Settings::wants_reference`].
    fn wants_reference(&self) -> bool;
}

impl<S: Settings> AnySettings for S {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn boxed_clone(&self) -> Box<dyn AnySettings> {
        Box::new(self.clone())
    }
    fn same(&self, other: &dyn AnySettings) -> bool {
        other.as_any().downcast_ref::<S>() == Some(self)
    }
    fn to_table(&self) -> toml::Table {
        toml::Table::try_from(self).expect("a model's settings serialize to a TOML table")
    }
    fn check(&self, config: &RunConfig) -> Result<(), String> {
        Settings::check(self, config)
    }
    fn wants_reference(&self) -> bool {
        Settings::wants_reference(self)
    }
}

/// How the registry makes and reads a model's settings without knowing their type: its flags,
/// its defaults, and its TOML table. [`Schema::of`] fills it in.
#[derive(Clone, Copy)]
pub struct Schema {
    /// Adds the model's flags to a command.
    pub args: fn(clap::Command) -> clap::Command,
    /// The settings from the parsed flags.
    pub from_matches: fn(&clap::ArgMatches) -> Result<Box<dyn AnySettings>, clap::Error>,
    /// The settings from their TOML table.
    pub from_table: fn(toml::Table) -> Result<Box<dyn AnySettings>, String>,
}

impl Schema {
    /// The schema of the settings struct `S`.
    pub const fn of<S: Settings>() -> Schema {
        Schema {
            args: <S as clap::Args>::augment_args,
            from_matches: from_matches::<S>,
            from_table: from_table::<S>,
        }
    }

    /// The model's flags alone, as a command of their own (no binary name).
    pub fn command(&self) -> clap::Command {
        (self.args)(clap::Command::new("settings").no_binary_name(true))
    }

    /// The defaults: the settings of no flags.
    pub fn defaults(&self) -> Box<dyn AnySettings> {
        let matches = self
            .command()
            .try_get_matches_from(Vec::<String>::new())
            .expect("every flag of a model's settings has a default");
        (self.from_matches)(&matches).expect("a model's defaults parse")
    }

    /// The keys of its settings (their fields' names, in `config.toml`), e.g. `latent_dim`.
    pub fn keys(&self) -> Vec<String> {
        (self.command().get_arguments())
            .map(|a| a.get_id().to_string())
            .collect()
    }

    /// The long names of its flags, e.g. `hidden`, `latent-dim`.
    pub fn flags(&self) -> Vec<String> {
        (self.command().get_arguments())
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect()
    }
}

fn from_matches<S: Settings>(
    matches: &clap::ArgMatches,
) -> Result<Box<dyn AnySettings>, clap::Error> {
    Ok(Box::new(S::from_arg_matches(matches)?))
}

/// The settings of `table`; a key that no setting reads is an error (serde's
/// `deny_unknown_fields` cannot be used with the flattened groups that several models share).
fn from_table<S: Settings>(table: toml::Table) -> Result<Box<dyn AnySettings>, String> {
    let settings: S =
        (table.clone().try_into()).map_err(|e: toml::de::Error| e.message().to_string())?;
    let known = settings.to_table();
    if let Some(key) = table.keys().find(|k| !known.contains_key(*k)) {
        return Err(format!("unknown field `{key}`"));
    }
    Ok(Box::new(settings))
}

/// A whole number of at least 1 (a flag's value parser).
pub fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) | Err(_) => Err(format!("`{s}` is not a positive whole number")),
        Ok(n) => Ok(n),
    }
}

/// The chosen model and its own settings.
pub struct ModelSettings {
    kind: ModelKind,
    own: Box<dyn AnySettings>,
}

impl ModelSettings {
    /// `kind` with its default settings.
    pub fn defaults(kind: ModelKind) -> ModelSettings {
        ModelSettings {
            kind,
            own: kind.entry().schema.defaults(),
        }
    }

    /// `kind` with `own`, which must be its settings type.
    pub fn new(kind: ModelKind, own: Box<dyn AnySettings>) -> ModelSettings {
        ModelSettings { kind, own }
    }

    /// Which model.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// The settings as their type `S`; panics if the model's settings are of another type (a
    /// model reads its own).
    #[track_caller]
    pub fn get<S: Settings>(&self) -> &S {
        match self.own.as_any().downcast_ref() {
            Some(s) => s,
            None => panic!(
                "model {} has other settings than the ones asked for",
                self.kind
            ),
        }
    }

    /// [`get`](Self::get), mutably.
    #[track_caller]
    pub fn get_mut<S: Settings>(&mut self) -> &mut S {
        let kind = self.kind;
        match self.own.as_any_mut().downcast_mut() {
            Some(s) => s,
            None => panic!("model {kind} has other settings than the ones asked for"),
        }
    }

    /// The settings as a TOML table.
    pub fn to_table(&self) -> toml::Table {
        self.own.to_table()
    }

    /// [`Settings::check`] of the model's settings.
    pub fn check(&self, config: &RunConfig) -> Result<(), String> {
        self.own.check(config)
    }

    /// [`Settings::wants_reference`] of the model's settings.
    pub fn wants_reference(&self) -> bool {
        self.own.wants_reference()
    }

    /// Whether the model has a setting `key` (its field's name, e.g. `latent_dim`).
    pub fn has(&self, key: &str) -> bool {
        self.kind.entry().schema.keys().iter().any(|k| k == key)
    }

    /// Sets the setting `key` (its field's name) from `value` as a flag spells it (`400,200`
    /// for a list, `gaussian`, `0.5`). The value is read as the type the setting has.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let mut table = self.to_table();
        let bad = || format!("`{value}` is not a valid value of setting `{key}`");
        let typed = match table.get(key) {
            Some(old) => typed_like(old, value).ok_or_else(bad)?,
            // An optional setting that is not set: a number if the value reads as one.
            None if self.kind.entry().schema.keys().iter().any(|k| k == key) => {
                (value.parse().map(toml::Value::Float).ok())
                    .unwrap_or_else(|| toml::Value::String(value.to_string()))
            }
            None => return Err(format!("model {} has no setting `{key}`", self.kind)),
        };
        table.insert(key.to_string(), typed);
        self.own = (self.kind.entry().schema.from_table)(table).map_err(|_| bad())?;
        Ok(())
    }
}

/// `value` as a TOML value of the type of `like`.
fn typed_like(like: &toml::Value, value: &str) -> Option<toml::Value> {
    use toml::Value;
    Some(match like {
        Value::Integer(_) => Value::Integer(value.parse().ok()?),
        Value::Float(_) => Value::Float(value.parse().ok()?),
        Value::Boolean(_) => Value::Boolean(value.parse().ok()?),
        Value::String(_) => Value::String(value.to_string()),
        Value::Array(items) => {
            let first = items.first().cloned().unwrap_or(Value::Integer(0));
            let parts = value.split(',').map(|part| typed_like(&first, part.trim()));
            Value::Array(parts.collect::<Option<_>>()?)
        }
        _ => return None,
    })
}

impl Clone for ModelSettings {
    fn clone(&self) -> Self {
        ModelSettings {
            kind: self.kind,
            own: self.own.boxed_clone(),
        }
    }
}

impl PartialEq for ModelSettings {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.own.same(&*other.own)
    }
}

impl fmt::Debug for ModelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.kind, self.own)
    }
}

/// The data a run trains and tests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// Which data set.
    #[serde(with = "dataset_name")]
    pub dataset: Dataset,
    /// The labels trained and tested on (`--classes`, `--exclude-class`).
    #[serde(with = "by_str")]
    pub classes: Classes,
    /// Train on the first N training images only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// Test on the first N test images only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    /// How targets are binarized.
    #[serde(with = "by_str")]
    pub binarize: Binarize,
    /// Where the data set's files are (`None`: the usual places). Not part of a checkpoint's
    /// settings: the same data may be elsewhere on another machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
}

/// How every optimizer of a run steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSettings {
    /// Examples per step.
    pub batch_size: usize,
    /// The learning rate (of every optimizer of the model).
    #[serde(with = "short_f32")]
    pub lr: f32,
    /// Adam's L2 penalty `λ`, `λ·θ` added to every gradient (0: none).
    #[serde(with = "short_f32")]
    pub weight_decay: f32,
    /// How the learning rate changes from epoch to epoch.
    #[serde(with = "by_str")]
    pub lr_schedule: LrSchedule,
}

/// Everything that defines a run: the model with its own settings, and the shared groups.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Which model, with its own settings.
    pub model: ModelSettings,
    /// The data.
    pub data: DataSettings,
    /// The optimizers' settings and their schedule.
    pub optimizer: OptimizerSettings,
    /// Total epochs (a resumed run continues up to this number).
    pub epochs: usize,
    /// Seeds initialisation, shuffling, binarization and noise.
    pub seed: u64,
    /// Importance samples of the final log-likelihood estimate (0: skip it).
    pub iw_samples: usize,
}

impl RunConfig {
    /// Which model.
    pub fn kind(&self) -> ModelKind {
        self.model.kind()
    }

    /// The model's own settings, as their type `S`.
    #[track_caller]
    pub fn settings<S: Settings>(&self) -> &S {
        self.model.get()
    }

    /// The RNG of a model's initialisation: the run's seed on stream 0.
    pub fn init_rng(&self) -> rand_chacha::ChaCha8Rng {
        use rand::SeedableRng;
        rand_chacha::ChaCha8Rng::seed_from_u64(self.seed)
    }
}

/// The learning rate of each epoch (`--lr-schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LrSchedule {
    /// `--lr` throughout.
    #[default]
    Constant,
    /// `--lr` in epoch 1, then down a half cosine over the run's `--epochs` to 1% of it in the
    /// last (epoch `e` of `E` trains at `lr·(0.01 + 0.99·½(1 + cos(π(e − 1)/(E − 1))))`). A run
    /// resumed with a larger `--epochs` stretches the rest of the curve to the new end.
    Cosine,
}

impl LrSchedule {
    /// The rate of `epoch` (from 1) of `epochs`, for the base rate `lr`.
    pub fn lr(self, lr: f32, epoch: usize, epochs: usize) -> f32 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => nn::Schedule::WarmupCosine {
                lr,
                warmup: 0,
                total: epochs.saturating_sub(1).max(1) as u64,
                min_lr: 0.01 * lr,
            }
            .lr(epoch.saturating_sub(1) as u64),
        }
    }
}

impl std::str::FromStr for LrSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(LrSchedule::Constant),
            "cosine" => Ok(LrSchedule::Cosine),
            _ => Err(format!(
                "unknown schedule `{s}` (expected constant or cosine)"
            )),
        }
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
        })
    }
}

/// Serde of a value as the string its `Display` writes and its `FromStr` reads (the flag's
/// spelling): `#[serde(with = "by_str")]`.
pub mod by_str {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `value` as its `Display` string.
    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    /// Reads a value from its string.
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde of a [`Dataset`] as its flag's spelling (`mnist`, `fashion-mnist`).
mod dataset_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::data::Dataset;

    pub fn serialize<S: Serializer>(value: &Dataset, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Dataset, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Serde of an `f32` as the shortest decimal that reads back as it (`0.001`, not the `f64`
/// `0.0010000000474974513`): `#[serde(with = "short_f32")]`.
pub mod short_f32 {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `value` as the `f64` of its shortest decimal.
    pub fn serialize<S: Serializer>(value: &f32, s: S) -> Result<S::Ok, S::Error> {
        let short: f64 = value.to_string().parse().unwrap_or(f64::from(*value));
        s.serialize_f64(short)
    }

    /// Reads an `f64` (or an integer) and rounds it to the nearest `f32`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        Ok(f64::deserialize(d)? as f32)
    }

    /// The same for an optional `f32` (with `default` and
    /// `skip_serializing_if = "Option::is_none"`: absent when `None`).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `Some(value)` as [`serialize`](super::serialize) does.
        pub fn serialize<S: Serializer>(value: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        /// Reads a present value as [`deserialize`](super::deserialize) does.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
            Ok(Option::<f64>::deserialize(d)?.map(|v| v as f32))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_f32_reads_back_every_rate() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Rate {
            #[serde(with = "short_f32")]
            lr: f32,
        }
        for lr in [1e-3, 2e-4, 5e-5, 0.1, 1.0, 0.0, 3.4e38, 1e-45] {
            let text = toml::to_string(&Rate { lr }).unwrap();
            assert_eq!(
                toml::from_str::<Rate>(&text).unwrap(),
                Rate { lr },
                "{text}"
            );
        }
        assert_eq!(toml::to_string(&Rate { lr: 1e-3 }).unwrap(), "lr = 0.001\n");
    }

    #[test]
    fn a_list_or_a_number_is_set_as_the_type_it_has() {
        use toml::Value;
        let list = Value::Array(vec![Value::Integer(400)]);
        assert_eq!(
            typed_like(&list, "512, 256"),
            Some(Value::Array(vec![Value::Integer(512), Value::Integer(256)]))
        );
        assert_eq!(
            typed_like(&Value::Float(1.0), "0.5"),
            Some(Value::Float(0.5))
        );
        assert_eq!(typed_like(&Value::Integer(1), "x"), None);
        assert_eq!(
            typed_like(&Value::Boolean(false), "true"),
            Some(Value::Boolean(true))
        );
    }

    #[test]
    fn cosine_schedule_runs_from_lr_to_a_hundredth() {
        let s = LrSchedule::Cosine;
        // Epoch 1 of 5 at the full rate, epoch 3 halfway down the cosine:
        // 0.01 + 0.99·½(1 + cos(π/2)) = 0.505; epoch 5 at 1%.
        assert!((s.lr(1e-3, 1, 5) - 1e-3).abs() < 1e-9);
        assert!((s.lr(1e-3, 3, 5) - 0.505e-3).abs() < 1e-9);
        assert!((s.lr(1e-3, 5, 5) - 1e-5).abs() < 1e-9);
        // A one-epoch run trains at the full rate.
        assert!((s.lr(1e-3, 1, 1) - 1e-3).abs() < 1e-9);
        assert_eq!(LrSchedule::Constant.lr(1e-3, 4, 5), 1e-3);
        for s in [LrSchedule::Constant, LrSchedule::Cosine] {
            assert_eq!(s.to_string().parse::<LrSchedule>(), Ok(s));
        }
    }
}
