//! The tape (a Wengert list), the `Var` handle, the reverse pass and its `Grads`, anomaly mode.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::Location;
use std::rc::Rc;

use crate::Matrix;

/// A backward rule: given the cotangent of a node's output and, for each input, whether that input
/// needs a gradient, return one cotangent per input (`None` where none was asked for or none
/// exists). Each returned gradient has its input's shape.
pub type BackwardFn = Box<dyn FnOnce(&Matrix, &[bool]) -> Vec<Option<Matrix>>>;

struct Node {
    op: &'static str,
    value: Rc<Matrix>,
    inputs: Vec<usize>,
    requires_grad: bool,
    backward: Option<BackwardFn>,
    location: &'static Location<'static>,
}

/// A record of the forward computation: nodes in creation order, which is already topological.
///
/// Every value on the tape is a [`Matrix`]. Leaves come from [`Tape::leaf`] (they receive
/// gradients) and [`Tape::constant`] (they do not); every op pushes one node whose backward rule
/// sits next to its forward in `ops/`. [`Tape::backward`] is one reverse loop over the nodes.
#[derive(Default)]
pub struct Tape {
    nodes: RefCell<Vec<Node>>,
    anomaly_mode: bool,
    first_anomaly: RefCell<Option<Anomaly>>,
    backward_done: Cell<bool>,
}

/// A handle to a node on a tape: an index and a reference to the tape. Cheap to copy.
#[derive(Clone, Copy)]
pub struct Var<'t> {
    tape: &'t Tape,
    id: usize,
}

impl fmt::Debug for Var<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes = self.tape.nodes.borrow();
        let node = &nodes[self.id];
        write!(f, "Var#{} {} {:?}", self.id, node.op, node.value.dim())
    }
}

/// A non-finite value or gradient found under anomaly mode, with the op that produced it and the
/// source location that created that op's node.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "anomaly: {what} of op `{op}` (node #{node}, created at {location}) is not finite: {sample}"
)]
pub struct Anomaly {
    /// `"value"` when the forward produced the non-finite number, `"gradient"` when the backward did.
    pub what: &'static str,
    /// The op's name, e.g. `"log"`.
    pub op: &'static str,
    /// The node's index on the tape.
    pub node: usize,
    /// `file:line:column` of the call that created the node.
    pub location: String,
    /// The first offending element, e.g. `-inf at [0, 2]`.
    pub sample: String,
}

thread_local! {
    /// Whether [`Tape::new`] makes tapes in anomaly mode on this thread ([`detect_anomaly`]).
    static DETECT_ANOMALY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every tape that [`Tape::new`] makes on this thread in anomaly mode, as
/// [`Tape::with_anomaly_detection`] would: to replay a computation that went non-finite and name
/// the op, without threading a flag through the code that builds its tapes (the training step).
/// The previous setting is back when `f` returns or unwinds.
pub fn detect_anomaly<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            DETECT_ANOMALY.set(self.0);
        }
    }
    let _restore = Restore(DETECT_ANOMALY.replace(true));
    f()
}

impl Tape {
    /// An empty tape (in anomaly mode inside [`detect_anomaly`]).
    pub fn new() -> Self {
        Tape {
            anomaly_mode: DETECT_ANOMALY.get(),
            ..Self::default()
        }
    }

    /// An empty tape in anomaly mode: every value an op produces and every gradient its backward
    /// rule returns is checked for NaN and ±inf; the first one found is reported by
    /// [`Tape::anomaly`] and [`Tape::try_backward`], naming the op and where it was created.
    pub fn with_anomaly_detection() -> Self {
        Tape {
            anomaly_mode: true,
            ..Self::default()
        }
    }

    /// Whether this tape checks every value and gradient for non-finite numbers.
    pub fn anomaly_mode(&self) -> bool {
        self.anomaly_mode
    }

    /// The first non-finite value found in the forward pass so far (anomaly mode only).
    pub fn anomaly(&self) -> Option<Anomaly> {
        self.first_anomaly.borrow().clone()
    }

    /// Number of nodes recorded.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Whether no node has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A leaf that receives a gradient (a parameter or an input to differentiate against).
    /// Passing an `Rc` shares the matrix instead of copying it.
    #[track_caller]
    pub fn leaf(&self, value: impl Into<Rc<Matrix>>) -> Var<'_> {
        self.push_node("leaf", value.into(), Vec::new(), true, None)
    }

    /// A leaf that receives no gradient (data, targets, noise).
    #[track_caller]
    pub fn constant(&self, value: impl Into<Rc<Matrix>>) -> Var<'_> {
        self.push_node("constant", value.into(), Vec::new(), false, None)
    }

    /// Records an op whose backward rule computes a gradient for every input; the engine drops
    /// those not needed. This is the usual form: `backward(g)` returns one cotangent per input.
    #[track_caller]
    pub fn push<'t>(
        &'t self,
        op: &'static str,
        value: impl Into<Rc<Matrix>>,
        inputs: &[Var<'t>],
        backward: impl FnOnce(&Matrix) -> Vec<Matrix> + 'static,
    ) -> Var<'t> {
        self.push_masked(op, value, inputs, move |g, _| {
            backward(g).into_iter().map(Some).collect()
        })
    }

    /// Records an op whose backward rule is told which inputs need a gradient, so that it can skip
    /// expensive ones (the input gradient of a matmul against data, say).
    #[track_caller]
    pub fn push_masked<'t>(
        &'t self,
        op: &'static str,
        value: impl Into<Rc<Matrix>>,
        inputs: &[Var<'t>],
        backward: impl FnOnce(&Matrix, &[bool]) -> Vec<Option<Matrix>> + 'static,
    ) -> Var<'t> {
        let ids: Vec<usize> = inputs
            .iter()
            .map(|v| {
                assert!(
                    std::ptr::eq(v.tape, self),
                    "op `{op}`: an input belongs to another tape"
                );
                v.id
            })
            .collect();
        let requires_grad = {
            let nodes = self.nodes.borrow();
            ids.iter().any(|&i| nodes[i].requires_grad)
        };
        let backward: Option<BackwardFn> = requires_grad.then(|| Box::new(backward) as BackwardFn);
        self.push_node(op, value.into(), ids, requires_grad, backward)
    }

    #[track_caller]
    fn push_node(
        &self,
        op: &'static str,
        value: Rc<Matrix>,
        inputs: Vec<usize>,
        requires_grad: bool,
        backward: Option<BackwardFn>,
    ) -> Var<'_> {
        let location = Location::caller();
        let mut nodes = self.nodes.borrow_mut();
        let id = nodes.len();
        if self.anomaly_mode
            && self.first_anomaly.borrow().is_none()
            && let Some(sample) = first_non_finite(&value)
        {
            *self.first_anomaly.borrow_mut() = Some(Anomaly {
                what: "value",
                op,
                node: id,
                location: location.to_string(),
                sample,
            });
        }
        nodes.push(Node {
            op,
            value,
            inputs,
            requires_grad,
            backward,
            location,
        });
        Var { tape: self, id }
    }

    /// Reverse pass from a scalar (1×1) loss: the gradient of the loss with respect to every leaf.
    ///
    /// Panics if `loss` is not 1×1, if backward already ran on this tape, or (anomaly mode) if a
    /// non-finite value or gradient is found; [`Tape::try_backward`] returns the latter as an error.
    #[track_caller]
    pub fn backward<'t>(&'t self, loss: Var<'t>) -> Grads {
        self.try_backward(loss).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tape::backward`], returning an anomaly (anomaly mode only) as an error.
    #[track_caller]
    pub fn try_backward<'t>(&'t self, loss: Var<'t>) -> Result<Grads, Anomaly> {
        let shape = loss.shape();
        assert!(
            shape == (1, 1),
            "backward: the loss must be 1x1, got {shape:?}; reduce it (e.g. `.mean()`) or use backward_with"
        );
        self.try_backward_with(loss, Matrix::ones((1, 1)))
    }

    /// Reverse pass seeded with the cotangent `seed` of `output` (a vector-Jacobian product):
    /// the gradient of `⟨seed, output⟩` with respect to every leaf.
    #[track_caller]
    pub fn backward_with<'t>(&'t self, output: Var<'t>, seed: Matrix) -> Grads {
        self.try_backward_with(output, seed)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tape::backward_with`], returning an anomaly (anomaly mode only) as an error.
    #[track_caller]
    pub fn try_backward_with<'t>(
        &'t self,
        output: Var<'t>,
        seed: Matrix,
    ) -> Result<Grads, Anomaly> {
        assert!(
            std::ptr::eq(output.tape, self),
            "backward: the output belongs to another tape"
        );
        assert!(
            seed.dim() == output.shape(),
            "backward: seed shape {:?} does not match output shape {:?}",
            seed.dim(),
            output.shape()
        );
        assert!(
            !self.backward_done.replace(true),
            "backward: this tape has already been differentiated (its backward rules are consumed)"
        );
        if let Some(anomaly) = self.anomaly() {
            return Err(anomaly);
        }
        let n = output.id + 1;
        let mut grads: Vec<Option<Matrix>> = (0..n).map(|_| None).collect();
        let mut leaves: Vec<Option<Matrix>> = (0..n).map(|_| None).collect();
        grads[output.id] = Some(seed);
        for i in (0..n).rev() {
            let Some(g) = grads[i].take() else { continue };
            let (backward, inputs, need) = {
                let mut nodes = self.nodes.borrow_mut();
                let node = &mut nodes[i];
                if node.inputs.is_empty() {
                    if node.requires_grad {
                        leaves[i] = Some(g);
                    }
                    continue;
                }
                let Some(backward) = node.backward.take() else {
                    continue;
                };
                let inputs = node.inputs.clone();
                let need: Vec<bool> = inputs.iter().map(|&j| nodes[j].requires_grad).collect();
                (backward, inputs, need)
            };
            let input_grads = backward(&g, &need);
            debug_assert_eq!(input_grads.len(), inputs.len());
            for ((&j, gj), needed) in inputs.iter().zip(input_grads).zip(need) {
                let Some(gj) = gj else { continue };
                if !needed {
                    continue;
                }
                if self.anomaly_mode
                    && let Some(sample) = first_non_finite(&gj)
                {
                    let nodes = self.nodes.borrow();
                    return Err(Anomaly {
                        what: "gradient",
                        op: nodes[i].op,
                        node: i,
                        location: nodes[i].location.to_string(),
                        sample: format!("{sample} (flowing into node #{j})"),
                    });
                }
                match &mut grads[j] {
                    Some(acc) => *acc += &gj,
                    slot @ None => *slot = Some(gj),
                }
            }
        }
        Ok(Grads { by_node: leaves })
    }
}

/// `"<value> at [r, c]"` for the first non-finite element, if any.
fn first_non_finite(m: &Matrix) -> Option<String> {
    m.indexed_iter()
        .find(|(_, v)| !v.is_finite())
        .map(|((r, c), v)| format!("{v} at [{r}, {c}]"))
}

/// The gradients of one reverse pass, for the leaves that received one.
#[derive(Debug)]
pub struct Grads {
    by_node: Vec<Option<Matrix>>,
}

impl Grads {
    /// The gradient of `leaf`, or `None` when the output does not depend on it.
    pub fn get(&self, leaf: Var<'_>) -> Option<&Matrix> {
        self.by_node.get(leaf.id).and_then(Option::as_ref)
    }

    /// Takes the gradient of `leaf` out (`None` when the output does not depend on it).
    pub fn take(&mut self, leaf: Var<'_>) -> Option<Matrix> {
        self.by_node.get_mut(leaf.id).and_then(Option::take)
    }

    /// The gradient of `leaf`, zeros of its shape when the output does not depend on it.
    pub fn wrt(&self, leaf: Var<'_>) -> Matrix {
        self.get(leaf)
            .cloned()
            .unwrap_or_else(|| Matrix::zeros(leaf.shape()))
    }
}

impl<'t> Var<'t> {
    /// The tape this variable lives on.
    pub fn tape(self) -> &'t Tape {
        self.tape
    }

    /// The node's index on its tape.
    pub fn id(self) -> usize {
        self.id
    }

    /// The value (shared, not copied).
    pub fn value(self) -> Rc<Matrix> {
        Rc::clone(&self.tape.nodes.borrow()[self.id].value)
    }

    /// `(rows, cols)` of the value.
    pub fn shape(self) -> (usize, usize) {
        self.tape.nodes.borrow()[self.id].value.dim()
    }

    /// The value of a 1×1 variable as a number.
    #[track_caller]
    pub fn item(self) -> f32 {
        let shape = self.shape();
        assert!(shape == (1, 1), "item: expected a 1x1 value, got {shape:?}");
        self.tape.nodes.borrow()[self.id].value[[0, 0]]
    }

    /// Whether a gradient flows back through this variable to some leaf.
    pub fn requires_grad(self) -> bool {
        self.tape.nodes.borrow()[self.id].requires_grad
    }

    /// The name of the op that created this variable.
    pub fn op(self) -> &'static str {
        self.tape.nodes.borrow()[self.id].op
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn leaves_get_gradients_and_constants_do_not() {
        let tape = Tape::new();
        let a = tape.leaf(array![[2.0f32]]);
        let c = tape.constant(array![[3.0f32]]);
        let y = a * c; // dy/da = c = 3
        let grads = tape.backward(y);
        assert_eq!(grads.get(a), Some(&array![[3.0f32]]));
        assert_eq!(grads.get(c), None);
        assert!(!c.requires_grad());
        assert!(y.requires_grad());
    }

    #[test]
    fn gradients_accumulate_over_fan_out() {
        // y = a·a + a, so dy/da = 2a + 1 = 7 at a = 3.
        let tape = Tape::new();
        let a = tape.leaf(array![[3.0f32]]);
        let y = a * a + a;
        assert_eq!(tape.backward(y).get(a), Some(&array![[7.0f32]]));
    }

    #[test]
    fn unused_leaf_has_no_gradient_and_wrt_gives_zeros() {
        let tape = Tape::new();
        let a = tape.leaf(array![[1.0f32, 2.0]]);
        let b = tape.leaf(array![[5.0f32, 6.0]]);
        let grads = tape.backward(a.sum());
        assert!(grads.get(b).is_none());
        assert_eq!(grads.wrt(b), array![[0.0f32, 0.0]]);
    }

    #[test]
    fn values_are_shared_not_copied() {
        let tape = Tape::new();
        let m = Rc::new(array![[1.0f32, 2.0]]);
        let a = tape.leaf(Rc::clone(&m));
        assert!(Rc::ptr_eq(&a.value(), &m));
    }

    #[test]
    #[should_panic(expected = "the loss must be 1x1")]
    fn backward_needs_a_scalar_loss() {
        let tape = Tape::new();
        let a = tape.leaf(array![[1.0f32, 2.0]]);
        tape.backward(a.exp());
    }

    #[test]
    #[should_panic(expected = "already been differentiated")]
    fn backward_runs_once() {
        let tape = Tape::new();
        let a = tape.leaf(array![[1.0f32]]);
        let y = a.exp();
        tape.backward(y);
        tape.backward(y);
    }

    #[test]
    fn anomaly_mode_names_the_op_and_its_call_site() {
        let tape = Tape::with_anomaly_detection();
        let x = tape.leaf(array![[1.0f32, 0.0]]);
        let line = line!() + 1;
        let y = x.log(); // log(0) = -inf
        let loss = y.sum();
        let err = tape.try_backward(loss).unwrap_err();
        assert_eq!(err.what, "value");
        assert_eq!(err.op, "log");
        assert!(
            err.location.starts_with(&format!("{}:{line}:", file!())),
            "{}",
            err.location
        );
        assert!(err.sample.starts_with("-inf at [0, 1]"), "{}", err.sample);
        let message = err.to_string();
        assert!(
            message.contains("`log`") && message.contains(file!()),
            "{message}"
        );
    }

    #[test]
    fn detect_anomaly_puts_the_tapes_made_inside_it_in_anomaly_mode() {
        assert!(!Tape::new().anomaly_mode());
        let named = detect_anomaly(|| {
            let tape = Tape::new();
            let x = tape.constant(Matrix::from_elem((1, 2), -1.0));
            let y = x.log();
            (tape.anomaly_mode(), tape.anomaly().map(|a| a.op), y.shape())
        });
        assert_eq!(named, (true, Some("log"), (1, 2)));
        assert!(
            !Tape::new().anomaly_mode(),
            "the setting outlives its scope"
        );
        // Nested scopes and a panic inside one restore the setting.
        let _ = std::panic::catch_unwind(|| detect_anomaly(|| panic!("inside")));
        assert!(!Tape::new().anomaly_mode());
    }

    #[test]
    fn anomaly_mode_catches_non_finite_gradients() {
        // sqrt(0) = 0 is finite, but its derivative 1/(2·sqrt(x)) is +inf at 0.
        let tape = Tape::with_anomaly_detection();
        let x = tape.leaf(array![[0.0f32, 4.0]]);
        let loss = x.sqrt().sum();
        let err = tape.try_backward(loss).unwrap_err();
        assert_eq!((err.what, err.op), ("gradient", "sqrt"));
    }

    #[test]
    fn without_anomaly_mode_non_finite_values_pass_through() {
        let tape = Tape::new();
        let x = tape.leaf(array![[0.0f32]]);
        let loss = x.log().sum();
        assert!(tape.anomaly().is_none());
        assert_eq!(loss.item(), f32::NEG_INFINITY);
        let grads = tape.try_backward(loss).unwrap();
        assert_eq!(grads.get(x).unwrap()[[0, 0]], f32::INFINITY);
    }
}
