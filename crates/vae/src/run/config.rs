//! A run's [`RunConfig`] on disk: `config.toml` and the settings a checkpoint keeps, both
//! through serde, and the reading of checkpoints written before the settings were typed (flat
//! metadata keys).

use std::path::Path;

use nn::checkpoint::Metadata;
use serde::{Deserialize, Serialize};

use super::RunError;
use crate::data::{Classes, Dataset};
use crate::model::{
    DataSettings, LrSchedule, ModelKind, ModelSettings, OptimizerSettings, RunConfig,
};
use crate::models;

/// The checkpoint metadata key of a run's settings, as the TOML of [`RunConfig::to_toml`]
/// without the data folder.
pub const SETTINGS: &str = "settings";
/// The checkpoint metadata key of the epochs trained.
pub const EPOCH: &str = "epoch";
/// The checkpoint metadata key of the image size a model was trained on, `28x28`.
pub const IMAGE_SIZE: &str = "image_size";

impl Default for RunConfig {
    /// The defaults of `vae-train`: the first model of the registry, the VAE.
    fn default() -> Self {
        RunConfig::for_model(models::default_kind())
    }
}

impl RunConfig {
    /// The defaults of `model`: its own settings' defaults, and the shared settings with the
    /// model's own defaults (its binarization, and those of
    /// [`ModelEntry::defaults`](crate::model::ModelEntry::defaults)).
    pub fn for_model(model: ModelKind) -> RunConfig {
        let mut config = RunConfig {
            model: ModelSettings::defaults(model),
            data: DataSettings {
                dataset: Dataset::Mnist,
                classes: Classes::All,
                train_limit: None,
                test_limit: None,
                binarize: model.entry().binarize,
                dir: None,
            },
            optimizer: OptimizerSettings {
                batch_size: 128,
                lr: 1e-3,
                weight_decay: 0.0,
                lr_schedule: LrSchedule::Constant,
            },
            epochs: 30,
            seed: 0,
            iw_samples: 1000,
        };
        (model.entry().defaults)(&mut config);
        config
    }

    /// Rejects settings that cannot train: the shared ones here, the model's own by its
    /// [`Settings::check`](crate::model::Settings::check).
    pub fn validate(&self) -> Result<(), RunError> {
        let fail = |m: &str| Err(RunError::Config(m.to_string()));
        let optimizer = &self.optimizer;
        if optimizer.batch_size == 0 {
            return fail("--batch-size must be at least 1");
        }
        if !(optimizer.lr.is_finite() && optimizer.lr > 0.0) {
            return fail("--lr must be a positive number");
        }
        if !(optimizer.weight_decay.is_finite() && optimizer.weight_decay >= 0.0) {
            return fail("--weight-decay must be a non-negative number");
        }
        if self.data.test_limit == Some(0) {
            return fail("--test-limit must be at least 1");
        }
        if self.data.train_limit == Some(0) {
            return fail("--train-limit must be at least 1");
        }
        if i64::try_from(self.seed).is_err() {
            return fail("--seed must be below 2^63");
        }
        self.model.check(self).map_err(RunError::Config)
    }

    /// The configuration as TOML: `config.toml` of the run directory.
    pub fn to_toml(&self) -> String {
        let file = ConfigFile {
            model: self.kind().name().to_string(),
            epochs: self.epochs,
            seed: self.seed,
            iw_samples: self.iw_samples,
            data: self.data.clone(),
            optimizer: self.optimizer.clone(),
            settings: toml::Table::from_iter([(
                self.kind().name().to_string(),
                toml::Value::Table(self.model.to_table()),
            )]),
        };
        let text = toml::to_string(&file).expect("a run's settings serialize to TOML");
        format!("# henbun vae-train run configuration\n{text}")
    }

    /// Reads the TOML of [`to_toml`](Self::to_toml); the error says what is wrong.
    pub fn from_toml(text: &str) -> Result<RunConfig, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
        let kind = models::kind(&file.model).map_err(|e| e.to_string())?;
        let mut tables = file.settings;
        let own = match tables.remove(kind.name()) {
            Some(toml::Value::Table(own)) => own,
            Some(_) => return Err(format!("`{}` is not a table", kind.name())),
            None => toml::Table::new(),
        };
        if let Some(other) = tables.keys().next() {
            return Err(format!(
                "unknown key `{other}` (the settings of model {kind} are in [{kind}])"
            ));
        }
        let own = (kind.entry().schema.from_table)(own).map_err(|e| format!("[{kind}]: {e}"))?;
        Ok(RunConfig {
            model: ModelSettings::new(kind, own),
            data: file.data,
            optimizer: file.optimizer,
            epochs: file.epochs,
            seed: file.seed,
            iw_samples: file.iw_samples,
        })
    }

    /// The checkpoint metadata after `epoch` epochs of images of `(height, width)`: the
    /// settings (without the data folder), the epoch and the image size. Every draw of an epoch
    /// is keyed by the seed and the epoch's number, so these are all a resumed run needs to
    /// continue exactly.
    pub fn checkpoint_metadata(&self, epoch: usize, (height, width): (usize, usize)) -> Metadata {
        let mut kept = self.clone();
        kept.data.dir = None;
        Metadata::from_iter([
            (SETTINGS.to_string(), kept.to_toml()),
            (EPOCH.to_string(), epoch.to_string()),
            (IMAGE_SIZE.to_string(), format!("{height}x{width}")),
        ])
    }

    /// The settings of the checkpoint `path` with metadata `meta`, continued by the command
    /// `self`: the checkpoint's, but for `self`'s epochs, importance samples and data folder
    /// (what does not shape the trajectory). A checkpoint from before the settings were typed
    /// keeps no test limit: `self`'s is taken.
    pub fn from_checkpoint(&self, meta: &Metadata, path: &Path) -> Result<RunConfig, RunError> {
        let mut found = match meta.get(SETTINGS) {
            Some(text) => RunConfig::from_toml(text).map_err(|e| {
                RunError::Config(format!(
                    "{}: its settings are not valid: {e}",
                    path.display()
                ))
            })?,
            None => {
                let mut legacy = legacy(meta, path)?;
                legacy.data.test_limit = self.data.test_limit;
                legacy
            }
        };
        found.epochs = self.epochs;
        found.iw_samples = self.iw_samples;
        found.data.dir = self.data.dir.clone();
        found.validate()?;
        Ok(found)
    }
}

/// `config.toml`'s layout: the run's own keys, the shared groups, and one table of the
/// model's settings named after it.
#[derive(Serialize, Deserialize)]
struct ConfigFile {
    model: String,
    epochs: usize,
    seed: u64,
    iw_samples: usize,
    data: DataSettings,
    optimizer: OptimizerSettings,
    #[serde(flatten)]
    settings: toml::Table,
}

/// The settings of a checkpoint written before they were typed: one metadata key per setting,
/// its value as the flag spelled it. What they did not keep (the epochs, importance samples,
/// data folder and test limit) is left at the model's defaults for the caller to set.
fn legacy(meta: &Metadata, path: &Path) -> Result<RunConfig, RunError> {
    let get = |key: &str| {
        meta.get(key).map(String::as_str).ok_or_else(|| {
            RunError::Config(format!(
                "{}: not a henbun checkpoint (no `{key}` or `{SETTINGS}` in its metadata)",
                path.display()
            ))
        })
    };
    let bad = |key: &str, value: &str| {
        RunError::Config(format!(
            "{}: metadata `{key}` = `{value}` is not valid",
            path.display()
        ))
    };
    fn parse<T: std::str::FromStr>(
        v: &str,
        key: &str,
        bad: &dyn Fn(&str, &str) -> RunError,
    ) -> Result<T, RunError> {
        v.parse().map_err(|_| bad(key, v))
    }
    let name = get("model")?;
    let kind = models::kind(name).map_err(|_| bad("model", name))?;
    let mut config = RunConfig::for_model(kind);
    for &(key, value) in kind.entry().legacy {
        config.model.set(key, value).map_err(|_| bad(key, value))?;
    }
    let set = config.model.to_table();
    for key in kind.entry().schema.keys() {
        let value = match meta.get(&key) {
            Some(value) => value.as_str(),
            // A setting that came later, or an optional one that was not set.
            None if kind.entry().legacy.iter().any(|(k, _)| *k == key) => continue,
            None if !set.contains_key(&key) => continue,
            None => get(&key)?,
        };
        config
            .model
            .set(&key, value)
            .map_err(|_| bad(&key, value))?;
    }
    config.data.dataset = parse(get("dataset")?, "dataset", &bad)?;
    // Checkpoints from before class subsets trained on every class.
    if let Some(v) = meta.get("classes") {
        config.data.classes = parse(v, "classes", &bad)?;
    }
    config.data.train_limit = match get("train_limit")? {
        "none" => None,
        v => Some(parse(v, "train_limit", &bad)?),
    };
    config.data.binarize = parse(get("binarize")?, "binarize", &bad)?;
    config.optimizer.batch_size = parse(get("batch_size")?, "batch_size", &bad)?;
    config.optimizer.lr = parse(get("lr")?, "lr", &bad)?;
    // Checkpoints from before weight decay had none, and before schedules a constant rate.
    if let Some(v) = meta.get("weight_decay") {
        config.optimizer.weight_decay = parse(v, "weight_decay", &bad)?;
    }
    if let Some(v) = meta.get("lr_schedule") {
        config.optimizer.lr_schedule = parse(v, "lr_schedule", &bad)?;
    }
    config.seed = parse(get("seed")?, "seed", &bad)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_models_config_toml_parses_and_reads_back_the_same_settings() {
        for kind in models::all() {
            let mut config = RunConfig::for_model(kind);
            config.data.test_limit = Some(100);
            config.data.dir = Some("some/where".into());
            let text = config.to_toml();
            toml::from_str::<toml::Table>(&text).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(RunConfig::from_toml(&text), Ok(config), "{kind}:\n{text}");
        }
    }

    #[test]
    fn the_default_config_toml_reads_as_a_user_would_write_it() {
        let text = RunConfig::default().to_toml();
        assert_eq!(
            text,
            "# henbun vae-train run configuration\n\
             model = \"vae\"\nepochs = 30\nseed = 0\niw_samples = 1000\n\n\
             [data]\ndataset = \"mnist\"\nclasses = \"all\"\nbinarize = \"dynamic\"\n\n\
             [optimizer]\nbatch_size = 128\nlr = 0.001\nweight_decay = 0.0\n\
             lr_schedule = \"constant\"\n\n\
             [vae]\nactivation = \"relu\"\nbackground = 0.0\nbeta = 1.0\nhidden = [400]\n\
             latent_dim = 32\nlikelihood = \"bernoulli\"\n"
        );
    }

    #[test]
    fn a_wrong_key_or_value_is_named() {
        let text = RunConfig::default().to_toml();
        let error = RunConfig::from_toml(&text.replace("[vae]", "[vae]\ncodes = 4")).unwrap_err();
        assert!(error.contains("unknown field `codes`"), "{error}");
        let error = RunConfig::from_toml(&text.replace("[vae]", "[cvae]")).unwrap_err();
        assert!(error.contains("unknown key `cvae`"), "{error}");
        let error = RunConfig::from_toml(&text.replace("\"relu\"", "\"relux\"")).unwrap_err();
        assert!(error.contains("relux"), "{error}");
    }
}
