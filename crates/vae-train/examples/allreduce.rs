//! The cost of a data-parallel step's all-reduces: `mpirun -np 2 target/release/examples/allreduce`
//! (built with `cargo build --release -p vae-train --features mpi --example allreduce`).
//!
//! First the step of the default VAE as `vae::train::shared_step` and the run make it: one
//! all-reduce per gradient matrix (its 8 parameters, 667 248 f32 in all), one of the step's 3
//! metrics (f64) and one of the 2 numbers by which the processes agree on a signal. Then single buffers of 1 Ki to 4 Mi f32, whose times give the latency α and the
//! bandwidth β of the scaling model in docs/mpi.md. Process 0 prints one line per case.

use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};

/// The default VAE's parameters, as `vae-train` orders them: `decoder.fc1.b` [1, 400],
/// `decoder.fc1.w` [32, 400], `decoder.fc2.b` [1, 784], `decoder.fc2.w` [400, 784],
/// `encoder.fc1.b` [1, 400], `encoder.fc1.w` [784, 400], `encoder.mu_log_var.b` [1, 64],
/// `encoder.mu_log_var.w` [400, 64].
const VAE: [usize; 8] = [400, 12_800, 784, 313_600, 400, 313_600, 64, 25_600];

/// Single buffers: 1 Ki, 64 Ki, 1 Mi and 4 Mi f32.
const SIZES: [usize; 4] = [1 << 10, 1 << 16, 1 << 20, 1 << 22];

/// Seconds per repetition of `step`, after 5 to warm the buffers and the transport.
fn time(world: &SimpleCommunicator, repeats: usize, mut step: impl FnMut()) -> f64 {
    for _ in 0..5 {
        step();
    }
    world.barrier();
    let started = Instant::now();
    for _ in 0..repeats {
        step();
    }
    started.elapsed().as_secs_f64() / repeats as f64
}

fn main() {
    let universe = mpi::initialize().expect("MPI initialises");
    let world = universe.world();
    let first = world.rank() == 0;
    let grads: Vec<Vec<f32>> = VAE.iter().map(|&n| vec![1.0; n]).collect();
    let mut sums: Vec<Vec<f32>> = VAE.iter().map(|&n| vec![0.0; n]).collect();
    let (metrics, mut metric_sums) = ([1.0f64; 3], [0.0f64; 3]);
    let (signals, mut signal_sums) = ([0.0f64; 2], [0.0f64; 2]);
    let each = time(&world, 400, || {
        for (g, s) in grads.iter().zip(&mut sums) {
            world.all_reduce_into(&g[..], &mut s[..], SystemOperation::sum());
        }
        world.all_reduce_into(&metrics[..], &mut metric_sums[..], SystemOperation::sum());
        world.all_reduce_into(&signals[..], &mut signal_sums[..], SystemOperation::sum());
    });
    assert_eq!(sums[3][0], world.size() as f32);
    let n: usize = VAE.iter().sum();
    if first {
        println!(
            "{} processes, the default VAE's step: 10 all-reduces, {n} f32 + 5 f64 ({:.3} MB): {:.1} µs",
            world.size(),
            n as f64 * 4e-6,
            each * 1e6
        );
    }
    for n in SIZES {
        let mine = vec![1.0f32; n];
        let mut sum = vec![0.0f32; n];
        let repeats = (200_000_000 / (n * 4)).clamp(20, 2000);
        let each = time(&world, repeats, || {
            world.all_reduce_into(&mine[..], &mut sum[..], SystemOperation::sum());
        });
        if first {
            println!(
                "{} processes, {n:>8} f32 ({:>7.3} MB): {:>9.1} µs ({repeats} times), {:.2} GB/s",
                world.size(),
                n as f64 * 4e-6,
                each * 1e6,
                n as f64 * 4.0 / each / 1e9
            );
        }
    }
}
