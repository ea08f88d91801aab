//! Tests of checkpoints: determinism, layout, every load failure, and crash safety.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use autodiff::Tape;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use super::*;
use crate::{Activation, Adam, AdamConfig, Mlp, MlpConfig, Sgd, SgdConfig};

/// A fresh directory under the system's temporary directory, removed on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "nn-checkpoint-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TestDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A 3-4-2 tanh MLP under `m`, initialised from `seed`, after `steps` steps of `optimizer` on
/// random data.
fn model(
    seed: u64,
    steps: usize,
    optimizer: fn(&ParamStore) -> Box<dyn Optimizer>,
) -> (ParamStore, Box<dyn Optimizer>) {
    named_model("m", seed, steps, optimizer)
}

/// [`model`] with its parameters under `prefix`.
fn named_model(
    prefix: &str,
    seed: u64,
    steps: usize,
    optimizer: fn(&ParamStore) -> Box<dyn Optimizer>,
) -> (ParamStore, Box<dyn Optimizer>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut store = ParamStore::new();
    let mlp = Mlp::new(
        &mut store,
        prefix,
        &MlpConfig::new(&[3, 4, 2], Activation::Tanh),
        &mut rng,
    );
    let mut opt = optimizer(&store);
    for _ in 0..steps {
        let x = Matrix::from_shape_simple_fn((5, 3), || StandardNormal.sample(&mut rng));
        let grads = {
            let tape = Tape::new();
            let p = store.bind(&tape);
            let loss = mlp.forward(&p, p.constant(x)).square().mean();
            p.grads(tape.backward(loss))
        };
        opt.step(&mut store, &grads);
    }
    (store, opt)
}

fn adam(store: &ParamStore) -> Box<dyn Optimizer> {
    Box::new(Adam::new(store, AdamConfig::default()))
}

/// The trained model of most tests and its metadata.
fn trained() -> (ParamStore, Box<dyn Optimizer>, Metadata) {
    let (store, opt) = model(0, 2, adam);
    let metadata = BTreeMap::from([
        ("epoch".to_string(), "7".to_string()),
        ("rng".to_string(), "chacha8:42:1234".to_string()),
    ]);
    (store, opt, metadata)
}

fn values(store: &ParamStore) -> Vec<Matrix> {
    store.iter().map(|(_, _, v)| v.clone()).collect()
}

#[test]
fn save_load_save_is_byte_identical() {
    let dir = TestDir::new("identical");
    let (store, opt, metadata) = trained();
    save(dir.join("a.safetensors"), &store, opt.as_ref(), &metadata).unwrap();

    let (mut fresh, mut fresh_opt) = model(1, 0, adam);
    let loaded = load(dir.join("a.safetensors"), &mut fresh, fresh_opt.as_mut()).unwrap();
    assert_eq!(loaded, metadata);
    assert_eq!(values(&fresh), values(&store));
    assert_eq!(fresh_opt.state(), opt.state());
    assert_eq!(fresh_opt.t(), 2);

    save(
        dir.join("b.safetensors"),
        &fresh,
        fresh_opt.as_ref(),
        &loaded,
    )
    .unwrap();
    let (a, b) = (
        fs::read(dir.join("a.safetensors")).unwrap(),
        fs::read(dir.join("b.safetensors")).unwrap(),
    );
    assert_eq!(a, b);
}

#[test]
fn the_file_is_plain_safetensors_with_dotted_names() {
    let dir = TestDir::new("layout");
    let (store, opt, metadata) = trained();
    let path = dir.join("ck.safetensors");
    save(&path, &store, opt.as_ref(), &metadata).unwrap();
    let bytes = fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<_> = file.names().into_iter().map(str::to_string).collect();
    names.sort();
    let expected = [
        "m.fc1.b",
        "m.fc1.w",
        "m.fc2.b",
        "m.fc2.w",
        "optim.m.fc1.b.m",
        "optim.m.fc1.b.v",
        "optim.m.fc1.w.m",
        "optim.m.fc1.w.v",
        "optim.m.fc2.b.m",
        "optim.m.fc2.b.v",
        "optim.m.fc2.w.m",
        "optim.m.fc2.w.v",
    ];
    assert_eq!(names, expected);
    let w = file.tensor("m.fc1.w").unwrap();
    assert_eq!((w.dtype(), w.shape()), (Dtype::F32, &[3, 4][..]));
    assert_eq!(file.tensor("optim.m.fc2.b.v").unwrap().shape(), [1, 2]);
    // Row-major little-endian f32: the first element is W[0][0].
    let first = f32::from_le_bytes(w.data()[..4].try_into().unwrap());
    assert_eq!(first, store.value(store.id("m.fc1.w").unwrap())[[0, 0]]);
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    for (key, value) in [
        ("optim", "adam"),
        ("optim.t", "2"),
        ("optim.lr", "0.001"),
        ("optim.beta1", "0.9"),
        ("optim.beta2", "0.999"),
        ("optim.eps", "1e-8"),
        ("optim.weight_decay", "0.0"),
        ("epoch", "7"),
    ] {
        assert_eq!(meta[key], value, "{key}");
    }
    // Tensors in name order in the data section, as the names above.
    assert_eq!(header.offset_keys(), expected);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Permissions of any new file (0666 less the umask), not the 0600 of a private temp file.
        let reference = dir.join("reference");
        fs::write(&reference, b"").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), mode(&reference));
    }
    // Nothing but the checkpoint (and the reference) is left in the directory.
    let left: Vec<_> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter()
            .all(|n| n == "ck.safetensors" || n == "reference"),
        "{left:?}"
    );
}

#[test]
fn parameters_alone_save_and_load() {
    let dir = TestDir::new("params");
    let (store, opt, metadata) = trained();
    let full = dir.join("full.safetensors");
    let params = dir.join("params.safetensors");
    save(&full, &store, opt.as_ref(), &metadata).unwrap();
    save_params(&params, &store, &metadata).unwrap();
    let names = |p: &Path| {
        let bytes = fs::read(p).unwrap();
        SafeTensors::deserialize(&bytes).unwrap().len()
    };
    assert_eq!((names(&full), names(&params)), (12, 4));
    for path in [&full, &params] {
        let (mut fresh, _) = model(1, 0, adam);
        assert_eq!(load_params(path, &mut fresh).unwrap(), metadata);
        assert_eq!(values(&fresh), values(&store));
    }
    // A parameters-only file cannot restore an optimizer.
    let (mut fresh, mut fresh_opt) = model(1, 0, adam);
    let err = load(&params, &mut fresh, fresh_opt.as_mut()).unwrap_err();
    assert!(
        err.to_string().contains("metadata `optim`: absent"),
        "{err}"
    );
}

#[test]
fn buffers_round_trip_beside_the_parameters_without_optimizer_state() {
    let dir = TestDir::new("buffers");
    let (store, opt, metadata) = trained();
    let mut buffers = ParamStore::new();
    buffers.add("codebook.ema.count", Matrix::from_elem((1, 3), 2.5));
    buffers.add(
        "codebook.ema.sum",
        Matrix::from_shape_fn((3, 2), |(i, j)| (i * 2 + j) as f32),
    );
    let path = dir.join("b.safetensors");
    save_with_buffers(&path, &store, opt.as_ref(), &[&buffers], &metadata).unwrap();
    // 4 parameters, 8 Adam moments, 2 buffers and nothing of the optimizer for the buffers.
    let bytes = fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.len(), 14);
    assert!(file.tensor("optim.codebook.ema.sum.m").is_err());

    let fresh_buffers = || {
        let mut b = ParamStore::new();
        b.add("codebook.ema.count", Matrix::zeros((1, 3)));
        b.add("codebook.ema.sum", Matrix::zeros((3, 2)));
        b
    };
    let (mut fresh, mut fresh_opt) = model(1, 0, adam);
    let mut restored = fresh_buffers();
    let loaded = load_with_buffers(&path, &mut fresh, fresh_opt.as_mut(), &mut [&mut restored]);
    assert_eq!(loaded.unwrap(), metadata);
    assert_eq!(values(&fresh), values(&store));
    assert_eq!(values(&restored), values(&buffers));
    let (mut fresh, _) = model(1, 0, adam);
    let mut restored = fresh_buffers();
    load_params_with_buffers(&path, &mut fresh, &mut [&mut restored]).unwrap();
    assert_eq!(values(&restored), values(&buffers));

    // Without the buffers the file has tensors the model does not: an error naming one, and
    // a file without them cannot fill the buffers.
    let (mut fresh, mut fresh_opt) = model(1, 0, adam);
    let err = load(&path, &mut fresh, fresh_opt.as_mut()).unwrap_err();
    assert!(err.to_string().contains("codebook.ema.count"), "{err}");
    let plain = dir.join("plain.safetensors");
    save(&plain, &store, opt.as_ref(), &metadata).unwrap();
    let mut restored = fresh_buffers();
    let err = load_params_with_buffers(&plain, &mut fresh, &mut [&mut restored]).unwrap_err();
    assert!(err.to_string().contains("codebook.ema.count"), "{err}");
    assert_eq!(values(&restored), values(&fresh_buffers()));
}

#[test]
#[should_panic(expected = "two tensors are named `m.fc1.w`")]
fn a_buffer_may_not_share_a_parameters_name() {
    let dir = TestDir::new("clash");
    let (store, opt, metadata) = trained();
    let mut buffers = ParamStore::new();
    buffers.add("m.fc1.w", Matrix::zeros((3, 4)));
    let _ = save_with_buffers(dir.join("c"), &store, opt.as_ref(), &[&buffers], &metadata);
}

fn rmsprop(store: &ParamStore) -> Box<dyn Optimizer> {
    Box::new(crate::Rmsprop::new(store, crate::RmspropConfig::default()))
}

#[test]
fn two_stores_with_their_own_optimizers_round_trip_and_a_bad_one_changes_nothing() {
    let dir = TestDir::new("trained");
    let (g, g_opt) = named_model("g", 0, 3, adam);
    let (d, d_opt) = named_model("d", 1, 2, rmsprop);
    let mut bn = ParamStore::new();
    bn.add("g.bn.running_mean", Matrix::from_elem((1, 4), 0.5));
    let metadata = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
    let path = dir.join("gan.safetensors");
    let trained = [
        Trained {
            key: "g",
            store: &g,
            optimizer: g_opt.as_ref(),
        },
        Trained {
            key: "d",
            store: &d,
            optimizer: d_opt.as_ref(),
        },
    ];
    save_trained(&path, &trained, &[&bn], &metadata).unwrap();
    let bytes = fs::read(&path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    assert!(
        file.tensor("optim.g.g.fc1.w.m").is_ok()
            && file.tensor("optim.d.d.fc1.w.square_avg").is_ok()
    );

    let fresh = || {
        let (g, g_opt) = named_model("g", 5, 0, adam);
        let (d, d_opt) = named_model("d", 6, 0, rmsprop);
        let mut bn = ParamStore::new();
        bn.add("g.bn.running_mean", Matrix::zeros((1, 4)));
        (g, g_opt, d, d_opt, bn)
    };
    let (mut g2, mut g2_opt, mut d2, mut d2_opt, mut bn2) = fresh();
    let loaded = load_trained(
        &path,
        &mut [
            TrainedMut {
                key: "g",
                store: &mut g2,
                optimizer: g2_opt.as_mut(),
            },
            TrainedMut {
                key: "d",
                store: &mut d2,
                optimizer: d2_opt.as_mut(),
            },
        ],
        &mut [&mut bn2],
    )
    .unwrap();
    assert_eq!(loaded, metadata);
    assert_eq!(
        (values(&g2), values(&d2), values(&bn2)),
        (values(&g), values(&d), values(&bn))
    );
    assert_eq!(
        (g2_opt.state(), d2_opt.state()),
        (g_opt.state(), d_opt.state())
    );
    // The same file written again is the same bytes.
    let again = dir.join("again.safetensors");
    let trained = [
        Trained {
            key: "g",
            store: &g2,
            optimizer: g2_opt.as_ref(),
        },
        Trained {
            key: "d",
            store: &d2,
            optimizer: d2_opt.as_ref(),
        },
    ];
    save_trained(&again, &trained, &[&bn2], &metadata).unwrap();
    assert_eq!(fs::read(&again).unwrap(), bytes);
    // The parameters alone load as stores and buffers.
    let (mut g3, _, mut d3, _, mut bn3) = fresh();
    load_params_with_buffers(&path, &mut g3, &mut [&mut d3, &mut bn3]).unwrap();
    assert_eq!(values(&d3), values(&d));

    // A bad scalar of the second optimizer: the first, already checked, is not left changed.
    let edited = rewritten_from(&bytes, |_, meta| {
        meta.insert("optim.d.alpha".into(), "7".into());
    });
    let edited_path = dir.join("bad.safetensors");
    fs::write(&edited_path, edited).unwrap();
    let (mut g4, mut g4_opt, mut d4, mut d4_opt, mut bn4) = fresh();
    let before = (g4_opt.state(), d4_opt.state(), values(&g4));
    let err = load_trained(
        &edited_path,
        &mut [
            TrainedMut {
                key: "g",
                store: &mut g4,
                optimizer: g4_opt.as_mut(),
            },
            TrainedMut {
                key: "d",
                store: &mut d4,
                optimizer: d4_opt.as_mut(),
            },
        ],
        &mut [&mut bn4],
    )
    .unwrap_err();
    assert!(err.to_string().contains("alpha"), "{err}");
    assert_eq!((g4_opt.state(), d4_opt.state(), values(&g4)), before);

    // A single-optimizer load of it names the missing key.
    let (mut m, mut m_opt) = named_model("g", 0, 0, adam);
    let err = load(&path, &mut m, m_opt.as_mut()).unwrap_err();
    assert!(err.to_string().contains("`optim`"), "{err}");
}

#[test]
fn sgd_momentum_buffers_round_trip() {
    let dir = TestDir::new("sgd");
    let sgd = |store: &ParamStore| -> Box<dyn Optimizer> {
        Box::new(Sgd::new(
            store,
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                ..SgdConfig::default()
            },
        ))
    };
    let (store, opt) = model(0, 3, sgd);
    let path = dir.join("sgd.safetensors");
    save(&path, &store, opt.as_ref(), &Metadata::new()).unwrap();
    let bytes = fs::read(&path).unwrap();
    assert!(
        SafeTensors::deserialize(&bytes)
            .unwrap()
            .tensor("optim.m.fc1.w.momentum_buffer")
            .is_ok()
    );
    let (mut fresh, mut fresh_opt) = model(1, 0, sgd);
    assert!(
        load(&path, &mut fresh, fresh_opt.as_mut())
            .unwrap()
            .is_empty()
    );
    assert_eq!(fresh_opt.state(), opt.state());
    // Into Adam: refused by kind, before any tensor is looked at.
    let (mut other, mut other_adam) = model(1, 0, adam);
    let err = load(&path, &mut other, other_adam.as_mut()).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("metadata `optim`: the file holds `sgd` state, the optimizer is `adam`"),
        "{err}"
    );
}

/// The bytes of `trained()`'s checkpoint.
fn checkpoint_bytes() -> Vec<u8> {
    let (store, opt, metadata) = trained();
    encode(
        &[&store],
        &[(OPTIM.to_string(), &store, &opt.state())],
        &metadata,
    )
}

/// A tensor as the `safetensors` crate lists it: name, dtype, shape, bytes.
type Entry = (String, Dtype, Vec<usize>, Vec<u8>);

/// The string metadata as the `safetensors` crate holds it.
type HashMapMeta = std::collections::HashMap<String, String>;

/// `checkpoint_bytes()` re-serialized by the `safetensors` crate after `edit`.
fn rewritten(edit: impl FnOnce(&mut Vec<Entry>, &mut HashMapMeta)) -> Vec<u8> {
    rewritten_from(&checkpoint_bytes(), edit)
}

/// The checkpoint `bytes` with its tensors and metadata edited.
fn rewritten_from(bytes: &[u8], edit: impl FnOnce(&mut Vec<Entry>, &mut HashMapMeta)) -> Vec<u8> {
    let file = SafeTensors::deserialize(bytes).unwrap();
    let mut entries: Vec<Entry> = file
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    edit(&mut entries, &mut meta);
    let views: Vec<_> = entries
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views.iter().map(|(n, v)| (n.clone(), v)), Some(meta)).unwrap()
}

/// Loads `bytes` into a fresh model, expects failure, checks that the message names the path and
/// holds `expected`, and that neither the parameters nor the optimizer changed.
#[track_caller]
fn assert_load_fails(bytes: &[u8], expected: &str) -> CheckpointError {
    let dir = TestDir::new("bad");
    let path = dir.join("bad.safetensors");
    fs::write(&path, bytes).unwrap();
    let (mut store, mut opt) = model(1, 1, adam);
    let (before, before_state) = (values(&store), opt.state());
    let err = load(&path, &mut store, opt.as_mut()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("checkpoint {}: ", path.display())),
        "{message}"
    );
    assert!(
        message.contains(expected),
        "{message}\n  does not contain: {expected}"
    );
    assert_eq!(
        values(&store),
        before,
        "parameters changed by a failed load"
    );
    assert_eq!(
        opt.state(),
        before_state,
        "optimizer changed by a failed load"
    );
    err
}

#[test]
fn a_missing_tensor_is_named() {
    let bytes = rewritten(|e, _| e.retain(|(n, ..)| n != "m.fc2.b"));
    let err = assert_load_fails(&bytes, "tensor `m.fc2.b` is missing");
    assert!(matches!(err.kind, ErrorKind::MissingTensor(_)));
    let bytes = rewritten(|e, _| e.retain(|(n, ..)| n != "optim.m.fc1.w.v"));
    assert_load_fails(&bytes, "tensor `optim.m.fc1.w.v` is missing");
}

#[test]
fn an_extra_tensor_is_named() {
    let bytes = rewritten(|e, _| e.push(("m.fc3.w".into(), Dtype::F32, vec![1, 1], vec![0; 4])));
    assert_load_fails(&bytes, "unexpected tensor `m.fc3.w`");
}

#[test]
fn a_transposed_shape_is_named() {
    let bytes = rewritten(|e, _| {
        let w = e.iter_mut().find(|(n, ..)| n == "m.fc1.w").unwrap();
        w.2 = vec![4, 3];
    });
    assert_load_fails(
        &bytes,
        "tensor `m.fc1.w` has shape [4, 3], expected [3, 4] (transposed?)",
    );
}

#[test]
fn an_f64_tensor_is_named() {
    let bytes = rewritten(|e, _| {
        let b = e.iter_mut().find(|(n, ..)| n == "m.fc2.b").unwrap();
        b.1 = Dtype::F64;
        b.3.extend_from_slice(&[0; 8]); // 2 elements of 8 bytes
    });
    assert_load_fails(&bytes, "tensor `m.fc2.b` has dtype F64, expected F32");
}

#[test]
fn truncated_files_are_reported() {
    let bytes = checkpoint_bytes();
    let header_len = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // Inside the data, inside the header, inside the length prefix, empty.
    // The data of the last tensor cut by 10 bytes.
    let data_len = bytes.len() - header_len;
    assert_load_fails(
        &bytes[..bytes.len() - 10],
        &format!(
            "truncated: the header declares {data_len} bytes of tensor data, but only {} follow it",
            data_len - 10
        ),
    );
    assert_load_fails(&bytes[..header_len / 2], "truncated: the header declares");
    assert_load_fails(
        &bytes[..5],
        "truncated: 5 bytes, shorter than the 8-byte header length",
    );
    assert_load_fails(&[], "truncated: 0 bytes");
}

#[test]
fn garbage_bytes_are_reported() {
    let mut garbage = vec![0u8; 4096];
    ChaCha8Rng::seed_from_u64(3).fill_bytes(&mut garbage);
    assert_load_fails(&garbage, "not a safetensors file: the header length");
    // A valid length followed by bytes that are not UTF-8, then not JSON.
    let mut bytes = checkpoint_bytes();
    bytes[8..16].fill(0xff);
    assert_load_fails(&bytes, "not a safetensors file: the header is not UTF-8");
    let mut bytes = checkpoint_bytes();
    bytes[8..16].copy_from_slice(b"garbage!");
    assert_load_fails(
        &bytes,
        "not a safetensors file: the header is not safetensors JSON",
    );
}

#[test]
fn a_bad_optimizer_scalar_leaves_everything_untouched() {
    // Every tensor is valid, so only the optimizer's own validation can catch this.
    let bytes = rewritten(|_, meta| {
        meta.insert("optim.beta1".into(), "0.9x".into());
    });
    let err = assert_load_fails(
        &bytes,
        r#"optimizer state: scalar `beta1` = "0.9x" is not a valid number"#,
    );
    assert!(matches!(err.kind, ErrorKind::Optimizer(_)));
    let bytes = rewritten(|_, meta| {
        meta.remove("optim.t");
    });
    assert_load_fails(&bytes, "optimizer state: scalar `t` is missing");
}

#[test]
fn a_crash_before_the_rename_keeps_the_previous_checkpoint() {
    let dir = TestDir::new("crash");
    let path = dir.join("ck.safetensors");
    let (store, opt, metadata) = trained();
    save(&path, &store, opt.as_ref(), &metadata).unwrap();
    let previous = fs::read(&path).unwrap();

    // The next checkpoint gets as far as a complete, synced temporary file; then the process dies.
    let (newer, newer_opt) = model(5, 3, adam);
    let temp = atomic::write_temp(
        &path,
        &encode(
            &[&newer],
            &[(OPTIM.to_string(), &newer, &newer_opt.state())],
            &metadata,
        ),
    )
    .unwrap();
    assert_eq!(temp.parent(), path.parent());
    assert!(temp.exists());

    assert_eq!(fs::read(&path).unwrap(), previous);
    let (mut fresh, mut fresh_opt) = model(1, 0, adam);
    load(&path, &mut fresh, fresh_opt.as_mut()).unwrap();
    assert_eq!(values(&fresh), values(&store));
    assert_eq!(fresh_opt.t(), 2);

    // A later save is unaffected by the stale temporary file.
    save(&path, &newer, newer_opt.as_ref(), &metadata).unwrap();
    load(&path, &mut fresh, fresh_opt.as_mut()).unwrap();
    assert_eq!(values(&fresh), values(&newer));
    assert_eq!(fresh_opt.t(), 3);
}

#[test]
fn io_errors_name_the_path() {
    let dir = TestDir::new("io");
    let path = dir.join("no/such/dir/ck.safetensors");
    let (mut store, mut opt, metadata) = trained();
    let err = save(&path, &store, opt.as_ref(), &metadata).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Io(_)));
    assert!(
        err.to_string()
            .starts_with(&format!("checkpoint {}: ", path.display())),
        "{err}"
    );
    assert!(load(&path, &mut store, opt.as_mut()).is_err());
}

#[test]
#[should_panic(expected = "the metadata key `optim.t` is reserved")]
fn reserved_metadata_keys_panic() {
    let (store, opt, _) = trained();
    let metadata = BTreeMap::from([("optim.t".to_string(), "9".to_string())]);
    encode(
        &[&store],
        &[(OPTIM.to_string(), &store, &opt.state())],
        &metadata,
    );
}

#[test]
fn a_non_finite_parameter_is_never_written() {
    let dir = TestDir::new("non-finite");
    let path = dir.join("ck.safetensors");
    let (mut store, opt, metadata) = trained();
    save(&path, &store, opt.as_ref(), &metadata).unwrap();
    let previous = fs::read(&path).unwrap();
    let (id, name) = {
        let (id, name, _) = store.iter().nth(1).unwrap();
        (id, name.to_string())
    };
    for bad in [f32::NAN, f32::INFINITY] {
        store.value_mut(id)[[0, 0]] = bad;
        let e = save(&path, &store, opt.as_ref(), &metadata).unwrap_err();
        assert!(
            matches!(&e.kind, ErrorKind::NonFinite(n) if *n == name),
            "{e}"
        );
        assert!(e.to_string().contains(&name), "{e}");
        let e = save_params(&path, &store, &metadata).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::NonFinite(_)), "{e}");
        // The good checkpoint before it is untouched.
        assert_eq!(fs::read(&path).unwrap(), previous);
    }
}
