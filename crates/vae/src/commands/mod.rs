//! The commands that take trained models rather than train one: scoring every image of a split
//! ([`score`]), the anomaly and out-of-distribution protocols ([`anomaly`]), and the quality of a
//! model's samples ([`quality`]). Each takes a model by what it can do (its
//! [`Abilities`](crate::model::Abilities)), never by its name.

pub mod anomaly;
pub mod quality;
pub mod score;
