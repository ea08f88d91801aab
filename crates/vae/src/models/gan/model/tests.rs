//! The GANs' epochs, checkpoints, settings checks and warnings.
use std::ops::ControlFlow;

use super::*;
use crate::data::Split;
use crate::model::Restore;
use crate::model::all_images;

/// 40 images of 4×4 and a tiny generator; `model` is `gan` or `wgan`.
fn tiny_run(model: &str, minibatch: bool) -> (RunConfig, Split) {
    let pixels: Vec<u8> = (0..40 * 16).map(|i| ((i * 37) % 256) as u8).collect();
    let labels: Vec<u8> = (0..40).map(|i| (i % 10) as u8).collect();
    let mut config = RunConfig::for_model(crate::models::kind(model).unwrap());
    config.model.set("hidden", "6,5").unwrap();
    config.model.set("latent_dim", "3").unwrap();
    if minibatch {
        config
            .model
            .set("minibatch_discrimination", "true")
            .unwrap();
    }
    config.optimizer.batch_size = 8;
    (config, Split::new(pixels, labels, (4, 4)))
}

fn epoch(model: &mut GanModel, data: &TrainData, keys: Keys) -> (Row, usize) {
    let mut batches = 0;
    let values = model.train_epoch(
        data,
        &mut Epoch {
            keys,
            world: &crate::parallel::Alone,
            batch_size: 8,
            on_batch: &mut |_| {
                batches += 1;
                ControlFlow::Continue(())
            },
        },
    );
    (values, batches)
}

fn state(model: &GanModel) -> Vec<Matrix> {
    (model.stores().into_iter())
        .flat_map(|s| s.iter().map(|(_, _, v)| v.clone()).collect::<Vec<_>>())
        .chain(model.progress_rows())
        .collect()
}

fn build(config: &RunConfig) -> GanModel {
    GanModel::new(config, &Build::of((4, 4)))
}

fn data(config: &RunConfig, split: Split) -> TrainData {
    all_images(config, split).unwrap()
}

#[test]
fn resuming_restores_both_optimizers_and_is_exact() {
    let dir = std::env::temp_dir().join(format!("henbun-gan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, minibatch) in [("gan", false), ("gan", true), ("wgan", false)] {
        let (config, split) = tiny_run(name, minibatch);
        let mut straight = build(&config);
        let data = data(&config, split.clone());
        epoch(&mut straight, &data, Keys::epoch(9, 1));
        let path = dir.join(format!("{name}-{minibatch}.safetensors"));
        straight.state().save(&path, &Metadata::new()).unwrap();
        epoch(&mut straight, &data, Keys::epoch(9, 2));

        let mut resumed = build(&config);
        assert_ne!(state(&resumed), state(&straight));
        crate::model::restore(&mut resumed, &path, Restore::Everything).unwrap();
        assert_eq!(resumed.progress_rows().len(), 1);
        epoch(&mut resumed, &data, Keys::epoch(9, 2));
        assert_eq!(state(&resumed), state(&straight), "{name} {minibatch}");
        assert_eq!(resumed.g_opt.state(), straight.g_opt.state());
        assert_eq!(resumed.d_opt.state(), straight.d_opt.state());
        assert_eq!(resumed.progress_rows().len(), 2);

        // The parameters alone, for sampling: the same images.
        let mut sampler = build(&config);
        let later = dir.join(format!("{name}-{minibatch}-2.safetensors"));
        straight.state().save(&later, &Metadata::new()).unwrap();
        crate::model::restore(&mut sampler, &later, Restore::Params).unwrap();
        let z = standard_normal(&mut ChaCha8Rng::seed_from_u64(1), (5, 3));
        assert_eq!(sampler.generate(&z), straight.generate(&z));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_gan_steps_both_networks_once_a_batch() {
    let (config, split) = tiny_run("gan", false);
    let mut model = build(&config);
    let data = data(&config, split);
    let (values, batches) = epoch(&mut model, &data, Keys::epoch(0, 1));
    assert_eq!(batches, 5);
    assert_eq!(model.steps(), (5, 5));
    assert!(values.names().eq(GAN_TRAIN));
    // D's loss is the mean of two cross-entropies, D(x) and D(G(z)) probabilities.
    assert!(
        values.get("train_d_loss") > 0.0 && values.values().all(|v| v.is_finite()),
        "{values:?}"
    );
    let (real, fake) = (values.get("train_d_real"), values.get("train_d_fake"));
    assert!((0.0..=1.0).contains(&real) && (0.0..=1.0).contains(&fake));
}

#[test]
fn the_wgan_critic_takes_100_steps_first_and_stays_clipped() {
    assert_eq!(
        (0..30).map(critic_steps).collect::<Vec<_>>()[23..27],
        [100, 100, 5, 5]
    );
    assert_eq!((critic_steps(500), critic_steps(501)), (100, 5));
    let (config, split) = tiny_run("wgan", false);
    let mut model = build(&config);
    let data = data(&config, split);
    let in_box = |m: &GanModel| {
        m.d_store
            .iter()
            .all(|(_, _, v)| v.iter().all(|w| w.abs() <= WGAN_CLIP))
    };
    assert!(in_box(&model), "the critic starts clipped");
    let (values, batches) = epoch(&mut model, &data, Keys::epoch(0, 1));
    // 5 batches: all five are critic steps of the first generator step's 100, then the
    // generator steps once.
    assert_eq!(batches, 5);
    assert_eq!(model.steps(), (1, 5));
    assert!(in_box(&model));
    assert!(values.names().eq(WGAN_TRAIN));
    // The Wasserstein estimate is the critic loss's negative.
    assert_eq!(
        values.get("train_wasserstein"),
        -values.get("train_critic_loss")
    );
}

#[test]
fn bad_settings_name_the_flag() {
    let (mut config, _) = tiny_run("wgan", false);
    config.optimizer.batch_size = 1;
    let check = |c: &RunConfig| c.model.check(c);
    assert!(check(&config).unwrap_err().starts_with("--batch-size 1"));
    config.optimizer.batch_size = 8;
    config.optimizer.weight_decay = 0.1;
    assert!(check(&config).unwrap_err().starts_with("--weight-decay"));
    let (config, _) = tiny_run("gan", true);
    assert_eq!(check(&config), Ok(()));
    assert_eq!(
        "minmax".parse::<GanLoss>().unwrap_err().to_string(),
        "unknown GAN loss `minmax` (expected non-saturating or minimax)"
    );
}

#[test]
fn the_run_sets_both_optimizers_rates() {
    for name in ["gan", "wgan"] {
        let (config, _) = tiny_run(name, false);
        let mut model = build(&config);
        model.state().set_lr(1e-5);
        assert_eq!(model.state().lrs(), [1e-5, 1e-5], "{name}");
        assert_eq!((model.g_opt.lr(), model.d_opt.lr()), (1e-5, 1e-5));
    }
}

#[test]
fn warnings_name_a_winning_discriminator_and_collapsed_classes() {
    let (config, _) = tiny_run("gan", false);
    let model = build(&config);
    // train: D loss, G loss, D(x), D(G(z)), norms; test: D(x), D(G(z)), IS, classes, KL.
    let columns = GAN_COLUMNS[1];
    let names: Vec<&'static str> = columns.names().collect();
    let row = Row::new(
        &names,
        vec![0.01, 6.0, 0.99, 0.01, 0.1, 0.1, 0.99, 0.01, 2.1, 3.0, 1.2],
    );
    let warnings = model.warnings(&row);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with("D's loss fell to 0.0100"));
    assert!(warnings[1].contains("3 of 10 classes"));
    let healthy = vec![0.6, 0.9, 0.6, 0.4, 1.0, 1.0, 0.6, 0.4, 8.9, 10.0, 0.02];
    assert!(model.warnings(&Row::new(&names, healthy)).is_empty());
}
