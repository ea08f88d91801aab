//! Checkpoints in safetensors.
