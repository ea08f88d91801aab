//! The cost of a data-parallel step's all-reduce: `mpirun -np 2 target/release/examples/allreduce`
//! (built with `cargo build --release -p vae-train --features mpi --example allreduce`). Times
//! the sum over the processes of `n` f32 values (a model's gradients) and of a handful of f64
//! (a step's metrics), as `vae::train::shared_step` does every step, for the gradient sizes of
//! the default VAE and of smaller and larger buffers. Process 0 prints one line per size.

use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::traits::{Communicator, CommunicatorCollectives};

/// f32 values summed: 1 Ki, 64 Ki, the default VAE's 669 972 parameters
/// (784·400 + 400 + 400·400 + 400 + 400·64 + 64 + 32·400 + 400 + 400·400 + 400 + 400·784 + 784),
/// and 4 Mi.
const SIZES: [usize; 4] = [1 << 10, 1 << 16, 669_972, 1 << 22];

fn main() {
    let universe = mpi::initialize().expect("MPI initialises");
    let world = universe.world();
    for n in SIZES {
        let mine = vec![1.0f32; n];
        let mut sum = vec![0.0f32; n];
        let metrics = [1.0f64; 4];
        let mut metric_sums = [0.0f64; 4];
        let repeats = (200_000_000 / (n * 4)).clamp(20, 2000);
        // Warm the buffers and the transport.
        for _ in 0..5 {
            world.all_reduce_into(&mine[..], &mut sum[..], SystemOperation::sum());
        }
        world.barrier();
        let started = Instant::now();
        for _ in 0..repeats {
            world.all_reduce_into(&mine[..], &mut sum[..], SystemOperation::sum());
            world.all_reduce_into(&metrics[..], &mut metric_sums[..], SystemOperation::sum());
        }
        let each = started.elapsed().as_secs_f64() / repeats as f64;
        assert_eq!(sum[0], world.size() as f32);
        if world.rank() == 0 {
            println!(
                "{} processes, {n:>8} f32 ({:>7.3} MB): {:>9.1} µs a step ({repeats} steps), {:.2} GB/s",
                world.size(),
                n as f64 * 4e-6,
                each * 1e6,
                n as f64 * 4.0 / each / 1e9
            );
        }
    }
}
