//! The VAE family: the VAE of Kingma & Welling (M1, [`net`] and [`model`]), the label-conditioned
//! VAE ([`cvae`]), the completion CVAE and its deterministic baseline ([`completion`]), and
//! semi-supervised M2 ([`m2`]); with what they share in a run ([`report`]), their evaluations
//! ([`eval`]: the ELBO, the importance-weighted log-likelihood, the active units) and their
//! pictures ([`pictures`]).

pub mod completion;
pub mod cvae;
pub mod eval;
pub mod m2;
pub mod model;
pub mod net;
pub mod pictures;
pub mod report;

pub use completion::{
    Completion, CompletionModel, CompletionSettings, Mask, Observe, ParseObserveError, Regressor,
    RegressorModel, RegressorSettings,
};
pub use cvae::{Cvae, CvaeModel, CvaeSettings};
pub use m2::{Counts, M2, M2Model, M2Settings, PAPER_ALPHA, Unlabeled, balanced_subset};
pub use model::{VaeModel, VaeNet, VaeSettings};
pub use net::{Likelihood, ParseLikelihoodError, Prior, Vae, VaeConfig, bernoulli_means};
