//! henbun (変分, "variational"): variational autoencoders on a from-scratch reverse-mode autodiff
//! engine. This facade re-exports the workspace's crates under one name.

pub use autodiff;
pub use nn;
pub use vae;
