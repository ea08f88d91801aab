//! The parameter store: every trainable matrix of a model under its dotted name, addressed by
//! [`ParamId`].

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use autodiff::Matrix;
use ndarray::ArrayViewMut2;

/// The index of a parameter in its [`ParamStore`]. Layers hold these, never tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(usize);

impl ParamId {
    /// The position of the parameter in its store (and in every optimizer's state vectors).
    pub fn index(self) -> usize {
        self.0
    }

    /// The id at position `i` (ids are dense positions in their store).
    pub(crate) fn from_index(i: usize) -> Self {
        ParamId(i)
    }
}

/// Named parameters, in the order they were added.
///
/// Names are dotted paths fixed at construction (`encoder.fc1.w`). Values are held as
/// `Rc<Matrix>` so that [`ParamStore::bind`] makes them leaves of a tape without copying; once
/// the tape is dropped, [`ParamStore::value_mut`] updates them in place. Cloning a store is cheap:
/// the clone shares the matrices until one side writes.
#[derive(Clone, Default)]
pub struct ParamStore {
    names: Vec<String>,
    values: Vec<Rc<Matrix>>,
    by_name: HashMap<String, ParamId>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter and returns its id.
    ///
    /// Panics if the name is taken, is not a dotted path of non-empty segments without whitespace,
    /// or starts with the segment `optim` (reserved for optimizer state in checkpoints).
    #[track_caller]
    pub fn add(&mut self, name: impl Into<String>, value: Matrix) -> ParamId {
        let name = name.into();
        assert!(
            !name.is_empty()
                && name.split('.').all(|s| !s.is_empty())
                && !name.chars().any(|c| c.is_whitespace() || c.is_control()),
            "ParamStore::add: `{name}` is not a dotted path of non-empty segments"
        );
        assert!(
            name.split('.').next() != Some("optim"),
            "ParamStore::add: `{name}`: the prefix `optim` is reserved for optimizer state"
        );
        assert!(
            !self.by_name.contains_key(&name),
            "ParamStore::add: a parameter named `{name}` already exists"
        );
        let value = if value.is_standard_layout() {
            value
        } else {
            value.as_standard_layout().into_owned()
        };
        let id = ParamId(self.values.len());
        self.by_name.insert(name.clone(), id);
        self.names.push(name);
        self.values.push(Rc::new(value));
        id
    }

    /// Number of parameters (matrices, not scalars).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the store holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The id of the parameter called `name`.
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.by_name.get(name).copied()
    }

    /// The dotted name of a parameter.
    pub fn name(&self, id: ParamId) -> &str {
        &self.names[id.0]
    }

    /// The value of a parameter.
    pub fn value(&self, id: ParamId) -> &Matrix {
        &self.values[id.0]
    }

    /// The value of a parameter, writable in place. Copies it first if a tape still shares it
    /// (drop the tape before updating to avoid that copy).
    pub fn value_mut(&mut self, id: ParamId) -> ArrayViewMut2<'_, f32> {
        Rc::make_mut(&mut self.values[id.0]).view_mut()
    }

    /// Every parameter's value, writable in place, in id order; a value a tape still shares is
    /// copied first, as in [`ParamStore::value_mut`].
    pub fn values_mut(&mut self) -> impl ExactSizeIterator<Item = ArrayViewMut2<'_, f32>> {
        self.values.iter_mut().map(|v| Rc::make_mut(v).view_mut())
    }

    /// Every parameter as `(id, name, value)`, in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (ParamId, &str, &Matrix)> {
        self.names
            .iter()
            .zip(&self.values)
            .enumerate()
            .map(|(i, (name, value))| (ParamId(i), name.as_str(), value.as_ref()))
    }

    /// Every id, in order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = ParamId> + use<> {
        (0..self.values.len()).map(ParamId)
    }

    /// The shared value, for binding to a tape.
    pub(crate) fn shared(&self, id: ParamId) -> &Rc<Matrix> {
        &self.values[id.0]
    }

    /// Replaces a value by one of the same shape (checked by the caller).
    pub(crate) fn replace(&mut self, id: ParamId, value: Matrix) {
        debug_assert_eq!(value.dim(), self.values[id.0].dim());
        self.values[id.0] = Rc::new(value);
    }
}

impl fmt::Debug for ParamStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(_, name, value)| (name, value.dim())))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn parameters_are_found_by_name_and_id() {
        let mut store = ParamStore::new();
        let w = store.add("enc.fc1.w", array![[1.0f32, 2.0]]);
        let b = store.add("enc.fc1.b", array![[0.0f32]]);
        assert_eq!((w.index(), b.index()), (0, 1));
        assert_eq!(store.id("enc.fc1.b"), Some(b));
        assert_eq!(store.id("enc.fc2.b"), None);
        assert_eq!(store.name(w), "enc.fc1.w");
        assert_eq!(store.value(w), &array![[1.0f32, 2.0]]);
        assert_eq!(store.len(), 2);
        assert_eq!(
            format!("{store:?}"),
            r#"{"enc.fc1.w": (1, 2), "enc.fc1.b": (1, 1)}"#
        );
    }

    #[test]
    #[should_panic(expected = "a parameter named `enc.w` already exists")]
    fn duplicate_names_panic() {
        let mut store = ParamStore::new();
        store.add("enc.w", Matrix::zeros((1, 1)));
        store.add("enc.w", Matrix::zeros((2, 2)));
    }

    #[test]
    #[should_panic(expected = "is not a dotted path")]
    fn empty_segments_panic() {
        ParamStore::new().add("enc..w", Matrix::zeros((1, 1)));
    }

    #[test]
    #[should_panic(expected = "the prefix `optim` is reserved")]
    fn the_optim_prefix_is_reserved() {
        ParamStore::new().add("optim.w", Matrix::zeros((1, 1)));
    }

    #[test]
    fn transposed_values_are_stored_in_standard_layout() {
        let mut store = ParamStore::new();
        let w = store.add("w", array![[1.0f32, 2.0], [3.0, 4.0]].reversed_axes());
        assert!(store.value(w).is_standard_layout());
        assert_eq!(store.value(w), &array![[1.0f32, 3.0], [2.0, 4.0]]);
    }

    #[test]
    fn clones_share_values_until_written() {
        let mut store = ParamStore::new();
        let w = store.add("w", array![[1.0f32]]);
        let snapshot = store.clone();
        assert!(Rc::ptr_eq(store.shared(w), snapshot.shared(w)));
        store.value_mut(w)[[0, 0]] = 5.0;
        assert_eq!(snapshot.value(w), &array![[1.0f32]]);
        assert_eq!(store.value(w), &array![[5.0f32]]);
    }
}
