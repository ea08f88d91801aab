//! Work sharing over the rayon pool: the calling thread and the pool's workers take blocks of
//! one job from a shared queue. The GEMM driver uses it, and so can any element-wise loop big
//! enough to pay for a second thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long [`await_helpers`] busy-waits before it starts yielding the core: about as long as
/// the cross-core wake-up it saves (20–150 µs on this VM), and a fraction of one large
/// product's block (≈ 1.1 ms: half of 128×784×400 on one core).
const SPIN_BEFORE_YIELD: Duration = Duration::from_micros(50);

/// Runs `work` on every block, on the calling thread plus up to `threads − 1` rayon workers
/// (`threads = rayon::current_num_threads()`), each taking the next block until none is left;
/// returns when every block is done. With one block or one thread it is a plain loop on the
/// calling thread. The order in which blocks run is unspecified.
///
/// The calling thread works too (`rayon::in_place_scope`) instead of handing both halves of a
/// `rayon::join` to the pool: called from outside the pool (a training loop on `main`), `join`
/// parks the caller, queues the whole job and needs extra cross-core wake-ups, so three threads
/// take turns on two cores. Measured for GEMM against the single-thread baseline, interleaved,
/// on the 2-vCPU VM: 128×784×400 ×1.89 vs ×1.44, 784×128×400 ×1.96 vs ×1.82, 128×20×400 ×1.25
/// vs ×0.82 (caller-participates vs `join`; this figure and the next predate the spinning wait
/// below).
///
/// Taking blocks from a shared queue rather than assigning one to each thread means that a
/// worker which has not woken up by the time the caller finishes its block leaves no block
/// waiting for it: the caller takes the next one itself (the scope then only waits for the late
/// helper to start and find the queue empty). For GEMM that beat fixed assignment in 36 of 37
/// paired comparisons (shapes from 10⁶ to 4·10⁷), typically by 5–15%.
///
/// When the caller runs out of blocks while a helper is still at work, it spins, then yields
/// ([`await_helpers`]), until every helper that started has left, rather than sleeping in the
/// scope's wait on a condition variable, which would need a cross-core wake-up (tens of µs on
/// this VM) once the helper is done. Inside a pool it does not spin: the scope's own wait lets
/// the worker run other jobs meanwhile.
///
/// Called from inside a pool, idle workers steal the helpers, and a helper nobody stole runs on
/// the caller at the end of the scope and finds the queue empty. A panic in `work` is passed on
/// to the caller once every started block has ended.
pub fn for_each_block<T: Send>(blocks: Vec<T>, work: impl Fn(T) + Sync) {
    let helpers = rayon::current_num_threads()
        .min(blocks.len())
        .saturating_sub(1);
    if helpers == 0 {
        blocks.into_iter().for_each(work);
        return;
    }
    let queue = Mutex::new(blocks);
    let drain = || {
        while let Some(block) = pop(&queue) {
            work(block);
        }
    };
    let (started, left) = (AtomicUsize::new(0), AtomicUsize::new(0));
    rayon::in_place_scope(|scope| {
        for _ in 0..helpers {
            scope.spawn(|_| {
                started.fetch_add(1, Ordering::AcqRel);
                let _leaving = CountOnDrop(&left);
                drain();
            });
        }
        drain();
        if rayon::current_thread_index().is_none() {
            await_helpers(&started, &left);
        }
    });
}

/// Spins, then yields, until every helper that has started has also left.
///
/// The queue is empty when this runs, so a helper still counted is finishing its last block:
/// the wait is bounded by one block's time. A helper that has not started by then finds the
/// queue empty and is left to the scope's wait.
fn await_helpers(started: &AtomicUsize, left: &AtomicUsize) {
    let start = Instant::now();
    while left.load(Ordering::Acquire) < started.load(Ordering::Acquire) {
        if start.elapsed() < SPIN_BEFORE_YIELD {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Counts one helper as left when dropped, also when a block's work unwinds, so that
/// [`await_helpers`] returns and the scope can pass the panic on.
struct CountOnDrop<'a>(&'a AtomicUsize);

impl Drop for CountOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// Takes the next block; the lock is released before the block is worked on.
fn pop<T>(queue: &Mutex<Vec<T>>) -> Option<T> {
    queue.lock().unwrap_or_else(PoisonError::into_inner).pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
    }

    #[test]
    fn every_block_runs_exactly_once_on_pools_of_one_to_four_threads() {
        for threads in 1..=4 {
            let counts: Vec<AtomicUsize> = (0..37).map(|_| AtomicUsize::new(0)).collect();
            pool(threads).install(|| {
                for_each_block((0..37).collect(), |i: usize| {
                    counts[i].fetch_add(1, Ordering::Relaxed);
                });
            });
            let counts: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            assert_eq!(counts, vec![1; 37], "{threads} threads");
        }
    }

    #[test]
    fn blocks_may_borrow_mutably_from_the_caller() {
        let mut data = vec![0u32; 1000];
        let blocks: Vec<&mut [u32]> = data.chunks_mut(64).collect();
        pool(2).install(|| {
            for_each_block(blocks, |chunk| chunk.iter_mut().for_each(|x| *x += 1));
        });
        assert!(data.iter().all(|&x| x == 1));
    }

    #[test]
    fn blocks_may_share_out_their_own_work_inside_a_pool() {
        let total = AtomicUsize::new(0);
        pool(2).install(|| {
            for_each_block((0..6).collect(), |i: usize| {
                for_each_block((0..10).collect(), |j: usize| {
                    total.fetch_add(i * 10 + j, Ordering::Relaxed);
                });
            });
        });
        // Σ over i < 6, j < 10 of 10·i + j = 10·10·15 + 6·45
        assert_eq!(total.into_inner(), 1500 + 270);
    }

    #[test]
    fn a_panicking_block_reaches_the_caller_instead_of_hanging_the_wait() {
        let result = std::panic::catch_unwind(|| {
            pool(2).install(|| {
                for_each_block((0..8).collect(), |i: usize| {
                    assert!(i != 3, "block 3 fails");
                });
            });
        });
        let payload = result.expect_err("the panic reaches the caller");
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        assert_eq!(message, Some("block 3 fails"));
    }
}
