//! Checkpoints in safetensors: parameters under their dotted names, optimizer state as
//! `optim.<name>.<buffer>` tensors, the optimizer's kind, step count and hyperparameters and the
//! caller's own entries as string metadata; written atomically and deterministically, read back
//! only after every tensor has been checked.
//!
//! Buffers are a model's tensors that no optimizer trains but that are part of its state (a
//! codebook's moving averages, a fitted prior): a second [`ParamStore`] whose tensors sit beside
//! the parameters under their own names, without optimizer state.
//!
//! Layout of a checkpoint (all tensors F32, row-major, in name order):
//!
//! | tensor / metadata key      | content                                                  |
//! |----------------------------|----------------------------------------------------------|
//! | `<param>`                  | the parameter, `[rows, cols]`: weights `[in, out]`, biases `[1, out]` |
//! | `optim.<param>.<buffer>`   | its optimizer buffer (`m`, `v`; `momentum_buffer`), same shape |
//! | `optim`                    | the optimizer: `adam`, `adamw` or `sgd`                   |
//! | `optim.<scalar>`           | `t` (steps taken), `lr`, `beta1`, `beta2`, `eps`, ...     |
//! | `<buffer>`                 | a buffer of the `*_with_buffers` functions, `[rows, cols]` |
//! | `optim.<key>`, `optim.<key>.<scalar>`, `optim.<key>.<param>.<buffer>` | with several optimizers ([`save_trained`]): each one's kind, scalars and buffers under its key |
//! | anything else              | the caller's metadata (epoch, RNG state, config, ...)    |

mod atomic;
mod error;
mod format;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use autodiff::Matrix;

pub use error::{CheckpointError, ErrorKind};

use crate::{Optimizer, OptimizerState, ParamStore};
use format::{File, Shape, Tensor};

/// String metadata of a checkpoint, sorted by key.
pub type Metadata = BTreeMap<String, String>;

/// The metadata key of the optimizer's kind; its scalars are `optim.<scalar>` and its buffers
/// `optim.<param>.<buffer>`. Callers' keys may not be `optim` or start with `optim.`.
const OPTIM: &str = "optim";

/// Writes the parameters, the optimizer state and `metadata` to `path`, atomically (a synced
/// temporary file renamed over the target). The same inputs give the same bytes.
///
/// Panics if a metadata key is reserved (`optim`, `optim.*`) or the optimizer was built for
/// another store.
#[track_caller]
pub fn save(
    path: impl AsRef<Path>,
    store: &ParamStore,
    optimizer: &(impl Optimizer + ?Sized),
    metadata: &Metadata,
) -> Result<(), CheckpointError> {
    save_with_buffers(path, store, optimizer, &[], metadata)
}

/// [`save`] with the tensors of the stores `buffers` beside the parameters (no optimizer state
/// for them).
///
/// Panics as [`save`] does, or if two tensors share a name.
#[track_caller]
pub fn save_with_buffers(
    path: impl AsRef<Path>,
    store: &ParamStore,
    optimizer: &(impl Optimizer + ?Sized),
    buffers: &[&ParamStore],
    metadata: &Metadata,
) -> Result<(), CheckpointError> {
    let state = optimizer.state();
    save_all(
        path.as_ref(),
        &[store],
        buffers,
        &[(OPTIM.to_string(), store, &state)],
        metadata,
    )
}

/// A parameter store and the optimizer that trains it, in a checkpoint of several such pairs
/// (a GAN's generator and discriminator): its optimizer's state sits under
/// `optim.<key>` (kind), `optim.<key>.<scalar>` and tensors `optim.<key>.<param>.<buffer>`.
#[derive(Clone, Copy)]
pub struct Trained<'a> {
    /// Its key in the checkpoint, e.g. `g` (no dots).
    pub key: &'a str,
    /// The parameters.
    pub store: &'a ParamStore,
    /// Their optimizer.
    pub optimizer: &'a dyn Optimizer,
}

/// A [`Trained`] pair to restore into.
pub struct TrainedMut<'a> {
    /// Its key in the checkpoint, as saved.
    pub key: &'a str,
    /// The parameters.
    pub store: &'a mut ParamStore,
    /// Their optimizer.
    pub optimizer: &'a mut dyn Optimizer,
}

/// [`save_with_buffers`] of several stores, each with its own optimizer ([`Trained`]); the
/// parameters of every store sit under their own names, so the names must differ across the
/// stores.
///
/// Panics as [`save_with_buffers`] does, or if a key is empty, holds a dot or repeats.
#[track_caller]
pub fn save_trained(
    path: impl AsRef<Path>,
    trained: &[Trained<'_>],
    buffers: &[&ParamStore],
    metadata: &Metadata,
) -> Result<(), CheckpointError> {
    let states: Vec<OptimizerState> = trained.iter().map(|t| t.optimizer.state()).collect();
    let roots = trained_roots(trained.iter().map(|t| t.key));
    let stores: Vec<&ParamStore> = trained.iter().map(|t| t.store).collect();
    let optimizers: Vec<_> = (roots.into_iter())
        .zip(trained)
        .zip(&states)
        .map(|((root, t), state)| (root, t.store, state))
        .collect();
    save_all(path.as_ref(), &stores, buffers, &optimizers, metadata)
}

/// Restores a checkpoint of [`save_trained`]: every store, its optimizer's state and the
/// buffers, all checked before anything is assigned (on error nothing has changed).
pub fn load_trained(
    path: impl AsRef<Path>,
    trained: &mut [TrainedMut<'_>],
    buffers: &mut [&mut ParamStore],
) -> Result<Metadata, CheckpointError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| at(path)(e.into()))?;
    let roots = trained_roots(trained.iter().map(|t| t.key));
    let mut parts: Vec<_> = (roots.into_iter())
        .zip(trained.iter_mut())
        .map(|(root, t)| (root, &mut *t.store, &mut *t.optimizer))
        .collect();
    load_bytes(&bytes, &mut parts, buffers).map_err(at(path))
}

/// `optim.<key>` for each key; panics on an empty key, a dot in one, or a repeat.
#[track_caller]
fn trained_roots<'k>(keys: impl Iterator<Item = &'k str>) -> Vec<String> {
    let mut roots: Vec<String> = Vec::new();
    for key in keys {
        assert!(
            !key.is_empty() && !key.contains('.'),
            "checkpoint: the optimizer key `{key}` is empty or holds a dot"
        );
        let root = format!("{OPTIM}.{key}");
        assert!(
            !roots.contains(&root),
            "checkpoint: two optimizers are keyed `{key}`"
        );
        roots.push(root);
    }
    roots
}

/// Writes `stores` and `buffers` (plain tensors) and the `optimizers`' states, each under its
/// root key, with `metadata`, after checking that every tensor is finite.
#[track_caller]
fn save_all(
    path: &Path,
    stores: &[&ParamStore],
    buffers: &[&ParamStore],
    optimizers: &[(String, &ParamStore, &OptimizerState)],
    metadata: &Metadata,
) -> Result<(), CheckpointError> {
    for store in stores.iter().chain(buffers) {
        check_finite(path, store)?;
    }
    let plain: Vec<&ParamStore> = stores.iter().chain(buffers).copied().collect();
    let bytes = encode(&plain, optimizers, metadata);
    write(path, &bytes)
}

/// Refuses a store with a non-finite parameter, naming the first.
fn check_finite(path: &Path, store: &ParamStore) -> Result<(), CheckpointError> {
    match store
        .iter()
        .find(|(_, _, value)| value.iter().any(|v| !v.is_finite()))
    {
        Some((_, name, _)) => Err(at(path)(ErrorKind::NonFinite(name.to_string()))),
        None => Ok(()),
    }
}

/// Writes the parameters and `metadata` only (for evaluation and sampling), atomically.
///
/// Panics if a metadata key is reserved (`optim`, `optim.*`).
#[track_caller]
pub fn save_params(
    path: impl AsRef<Path>,
    store: &ParamStore,
    metadata: &Metadata,
) -> Result<(), CheckpointError> {
    save_all(path.as_ref(), &[store], &[], &[], metadata)
}

/// Restores the parameters and the optimizer state written by [`save`] and returns the caller's
/// metadata.
///
/// Every tensor name, shape and dtype and the optimizer's kind and scalars are checked before
/// anything is assigned: on error the store and the optimizer are unchanged, and the error names
/// the file and the first mismatch.
pub fn load(
    path: impl AsRef<Path>,
    store: &mut ParamStore,
    optimizer: &mut (impl Optimizer + ?Sized),
) -> Result<Metadata, CheckpointError> {
    load_with_buffers(path, store, optimizer, &mut [])
}

/// [`load`] of a file of [`save_with_buffers`]: the buffers too (the same checks; on error
/// nothing has changed).
pub fn load_with_buffers(
    path: impl AsRef<Path>,
    store: &mut ParamStore,
    optimizer: &mut (impl Optimizer + ?Sized),
    buffers: &mut [&mut ParamStore],
) -> Result<Metadata, CheckpointError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| at(path)(e.into()))?;
    load_bytes(
        &bytes,
        &mut [(OPTIM.to_string(), store, optimizer)],
        buffers,
    )
    .map_err(at(path))
}

/// [`load`] of a checkpoint's bytes already in memory (the same checks; on error nothing has
/// changed).
pub fn load_from_bytes(
    bytes: &[u8],
    store: &mut ParamStore,
    optimizer: &mut (impl Optimizer + ?Sized),
) -> Result<Metadata, ErrorKind> {
    load_bytes(bytes, &mut [(OPTIM.to_string(), store, optimizer)], &mut [])
}

/// [`load_with_buffers`] and [`load_trained`] of a checkpoint's bytes: `parts` are the stores
/// and their optimizers, each with the root key of its state (`optim` in a file of [`save`],
/// `optim.<key>` in one of [`save_trained`]).
fn load_bytes(
    bytes: &[u8],
    parts: &mut [(String, &mut ParamStore, &mut (impl Optimizer + ?Sized))],
    buffers: &mut [&mut ParamStore],
) -> Result<Metadata, ErrorKind> {
    let file = File::parse(bytes)?;
    let metadata = file.metadata();
    let mut expected = BTreeMap::new();
    let mut currents = Vec::with_capacity(parts.len());
    for (root, store, optimizer) in parts.iter() {
        let current = optimizer.state();
        check_kind(&metadata, root, &current.kind)?;
        expected.extend(param_shapes(store));
        for buffer in current.buffers.keys() {
            for (_, name, value) in store.iter() {
                expected.insert(buffer_name(root, name, buffer), value.dim());
            }
        }
        currents.push(current);
    }
    for buffers in buffers.iter() {
        expected.extend(param_shapes(buffers));
    }
    let mut tensors = file.tensors(&expected, |_| false)?;
    let states: Vec<OptimizerState> = (currents.into_iter())
        .zip(parts.iter())
        .map(|(current, (root, store, _))| {
            take_state(current, root, &metadata, &mut tensors, store)
        })
        .collect();
    // An optimizer checks a state before taking it; if a later one refuses its state, those
    // before it get their own back, so that on error nothing has changed.
    let previous: Vec<OptimizerState> = parts.iter().map(|(_, _, o)| o.state()).collect();
    for (i, state) in states.into_iter().enumerate() {
        if let Err(e) = parts[i].2.set_state(state) {
            for (part, state) in parts.iter_mut().zip(previous).take(i) {
                part.2
                    .set_state(state)
                    .expect("an optimizer takes its own state back");
            }
            return Err(e.into());
        }
    }
    for (_, store, _) in parts.iter_mut() {
        assign(store, &mut tensors);
    }
    for buffers in buffers.iter_mut() {
        assign(buffers, &mut tensors);
    }
    Ok(callers(metadata))
}

/// The caller's metadata of a checkpoint, without loading its tensors (to learn, say, which
/// model to build before [`load`]). The file's header is fully validated.
pub fn read_metadata(path: impl AsRef<Path>) -> Result<Metadata, CheckpointError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| at(path)(e.into()))?;
    metadata_from_bytes(&bytes).map_err(at(path))
}

/// [`read_metadata`] of a checkpoint's bytes already in memory.
pub fn metadata_from_bytes(bytes: &[u8]) -> Result<Metadata, ErrorKind> {
    Ok(callers(File::parse(bytes)?.metadata()))
}

/// Restores the parameters only (from a file of [`save`] or [`save_params`], ignoring any
/// optimizer state) and returns the caller's metadata. On error the store is unchanged.
pub fn load_params(
    path: impl AsRef<Path>,
    store: &mut ParamStore,
) -> Result<Metadata, CheckpointError> {
    load_params_with_buffers(path, store, &mut [])
}

/// [`load_params`] of a file of [`save_with_buffers`]: the buffers too. On error neither store
/// has changed.
pub fn load_params_with_buffers(
    path: impl AsRef<Path>,
    store: &mut ParamStore,
    buffers: &mut [&mut ParamStore],
) -> Result<Metadata, CheckpointError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| at(path)(e.into()))?;
    load_params_bytes(&bytes, store, buffers).map_err(at(path))
}

/// [`load_params`] of a checkpoint's bytes already in memory.
pub fn load_params_from_bytes(bytes: &[u8], store: &mut ParamStore) -> Result<Metadata, ErrorKind> {
    load_params_bytes(bytes, store, &mut [])
}

/// [`load_params_with_buffers`] of a checkpoint's bytes.
fn load_params_bytes(
    bytes: &[u8],
    store: &mut ParamStore,
    buffers: &mut [&mut ParamStore],
) -> Result<Metadata, ErrorKind> {
    let file = File::parse(bytes)?;
    let prefix = format!("{OPTIM}.");
    let mut expected = param_shapes(store);
    for buffers in buffers.iter() {
        expected.extend(param_shapes(buffers));
    }
    let mut tensors = file.tensors(&expected, |name| name.starts_with(&prefix))?;
    assign(store, &mut tensors);
    for buffers in buffers.iter_mut() {
        assign(buffers, &mut tensors);
    }
    Ok(callers(file.metadata()))
}

/// The bytes of a checkpoint: the tensors of `stores`, and each optimizer's state under its
/// root key for the parameters of its store.
#[track_caller]
fn encode(
    stores: &[&ParamStore],
    optimizers: &[(String, &ParamStore, &OptimizerState)],
    metadata: &Metadata,
) -> Vec<u8> {
    if let Some(key) = metadata.keys().find(|k| is_reserved(k)) {
        panic!("checkpoint: the metadata key `{key}` is reserved for the optimizer");
    }
    let mut tensors: BTreeMap<String, Tensor<'_>> = BTreeMap::new();
    for (_, name, value) in stores.iter().flat_map(|b| b.iter()) {
        let clash = tensors.insert(name.to_string(), (value.dim(), as_slice(value)));
        assert!(
            clash.is_none(),
            "checkpoint: two tensors are named `{name}`"
        );
    }
    let mut metadata = metadata.clone();
    for (root, store, state) in optimizers {
        metadata.insert(root.clone(), state.kind.clone());
        for (key, value) in &state.scalars {
            metadata.insert(format!("{root}.{key}"), value.clone());
        }
        for (buffer, per_param) in &state.buffers {
            assert!(
                per_param.len() == store.len(),
                "checkpoint: the optimizer's `{buffer}` covers {} parameters, the store {}",
                per_param.len(),
                store.len()
            );
            for ((_, name, value), data) in store.iter().zip(per_param) {
                assert!(
                    data.len() == value.len(),
                    "checkpoint: the optimizer's `{buffer}` of `{name}` has {} elements, the parameter {:?}",
                    data.len(),
                    value.dim()
                );
                tensors.insert(
                    buffer_name(root, name, buffer),
                    (value.dim(), data.as_slice()),
                );
            }
        }
    }
    format::encode(&tensors, &metadata)
}

/// Writes `bytes` to `path` atomically.
fn write(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    atomic::write(path, bytes).map_err(|e| at(path)(e.into()))
}

/// Attaches the path to an error.
fn at(path: &Path) -> impl Fn(ErrorKind) -> CheckpointError + '_ {
    move |kind| CheckpointError {
        path: path.to_path_buf(),
        kind,
    }
}

/// Checks that the file's optimizer under `root` is `kind`.
fn check_kind(metadata: &Metadata, root: &str, kind: &str) -> Result<(), ErrorKind> {
    let detail = match metadata.get(root) {
        Some(found) if found == kind => return Ok(()),
        Some(found) => format!("the file holds `{found}` state, the optimizer is `{kind}`"),
        None => format!("absent (a parameters-only file?), the optimizer is `{kind}`"),
    };
    Err(ErrorKind::Metadata {
        key: root.to_string(),
        detail,
    })
}

/// The optimizer state under `root` of a checked file: its `<root>.<scalar>` entries (those
/// without a further dot, so that `optim.t` is not read from `optim.g.t`) and, for each buffer
/// of the `current` state, the tensors `<root>.<param>.<buffer>` (taken out of `tensors`).
fn take_state(
    current: OptimizerState,
    root: &str,
    metadata: &Metadata,
    tensors: &mut BTreeMap<String, Vec<f32>>,
    store: &ParamStore,
) -> OptimizerState {
    let prefix = format!("{root}.");
    let scalars = metadata
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(&prefix).filter(|key| !key.contains('.'))?;
            Some((key.to_string(), v.clone()))
        })
        .collect();
    let buffers = current
        .buffers
        .into_keys()
        .map(|buffer| {
            let per_param = store
                .iter()
                .map(|(_, name, _)| {
                    let tensor = tensors.remove(&buffer_name(root, name, &buffer));
                    tensor.expect("checked by File::tensors")
                })
                .collect();
            (buffer, per_param)
        })
        .collect();
    OptimizerState {
        kind: current.kind,
        scalars,
        buffers,
    }
}

/// The elements of a parameter, row-major (the store keeps standard layout).
fn as_slice(value: &Matrix) -> &[f32] {
    value
        .as_slice()
        .expect("the store keeps parameters in standard layout")
}

/// The tensor name of an optimizer buffer, under the optimizer's root key.
fn buffer_name(root: &str, param: &str, buffer: &str) -> String {
    format!("{root}.{param}.{buffer}")
}

fn is_reserved(key: &str) -> bool {
    key == OPTIM || key.starts_with(&format!("{OPTIM}."))
}

/// Every parameter's name and shape.
fn param_shapes(store: &ParamStore) -> BTreeMap<String, Shape> {
    store
        .iter()
        .map(|(_, name, value)| (name.to_string(), value.dim()))
        .collect()
}

/// Assigns checked parameter values (one per parameter, of its shape), taking them out of
/// `tensors`.
fn assign(store: &mut ParamStore, tensors: &mut BTreeMap<String, Vec<f32>>) {
    let ids: Vec<_> = store.ids().collect();
    for id in ids {
        let data = tensors.remove(store.name(id)).expect("checked");
        let value = Matrix::from_shape_vec(store.value(id).dim(), data).expect("checked");
        store.replace(id, value);
    }
}

/// The caller's entries: all but the optimizer's.
fn callers(mut metadata: Metadata) -> Metadata {
    metadata.retain(|k, _| !is_reserved(k));
    metadata
}

#[cfg(test)]
mod tests;
