//! The VQ-VAE (van den Oord et al. 2017): its networks and codebook ([`net`]), the priors over
//! its codes fitted after training ([`prior`]), and the run's glue ([`model`]).

pub mod model;
pub mod net;
pub mod prior;

pub use model::{Evaluation, MODEL, PRIOR_FIT, VqVaeModel, VqVaeSettings};
pub use net::{
    Codebook, CodebookUpdate, EMA_DECAY, EMA_EPSILON, ParseCodebookUpdateError, Quantized, Usage,
    VqConfig, VqVae, nearest, squared_distances,
};
