//! The processes of `mpirun -np N vae-train train …` as the training loop's
//! [`Collective`], over MPI (rsmpi on the system's Open MPI). Built with `--features mpi` only.

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};
use vae::parallel::Collective;

/// MPI's world communicator, MPI initialised for as long as it lives.
pub struct Mpi {
    world: SimpleCommunicator,
    _universe: Universe,
}

impl Mpi {
    /// Initialises MPI: the processes of `mpirun`, or one process when started without it.
    /// Only the main thread calls MPI (rayon's threads do the arithmetic).
    pub fn init() -> Result<Mpi, String> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or("MPI could not be initialised (it already was)")?;
        Ok(Mpi {
            world: universe.world(),
            _universe: universe,
        })
    }

    /// Ends every process of the run (`MPI_Abort`), so that none is left waiting in a
    /// collective for one that has stopped.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn ranks(&self) -> usize {
        self.world.size() as usize
    }

    fn sum_into(&self, mine: &[f32], sums: &mut [f32]) {
        self.world
            .all_reduce_into(mine, sums, SystemOperation::sum());
    }

    fn sum_f64(&self, values: &mut [f64]) {
        let mine = values.to_vec();
        self.world
            .all_reduce_into(&mine[..], values, SystemOperation::sum());
    }

    fn min_max(&self, value: u64) -> (u64, u64) {
        let (mut min, mut max) = (0u64, 0u64);
        self.world
            .all_reduce_into(&value, &mut min, SystemOperation::min());
        self.world
            .all_reduce_into(&value, &mut max, SystemOperation::max());
        (min, max)
    }
}
