//! Ctrl-C and SIGTERM during training: the first asks the run to stop at the next step boundary
//! (it writes nothing half-finished and says how to resume); a second of the same signal ends
//! the process at once, for a user who does not want to wait (an end-of-run estimate, say).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use vae::run::Interrupt;

/// The two signals' flags, set by their handlers.
#[derive(Clone)]
pub struct Signals {
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers for the rest of the process.
    pub fn install() -> io::Result<Signals> {
        let signals = Signals {
            int: Arc::new(AtomicBool::new(false)),
            term: Arc::new(AtomicBool::new(false)),
        };
        for (signal, raised, interrupt) in [
            (SIGINT, &signals.int, Interrupt::Int),
            (SIGTERM, &signals.term, Interrupt::Term),
        ] {
            // Registered first, so it sees the flag as it was before this signal: set only by
            // an earlier one.
            flag::register_conditional_shutdown(
                signal,
                i32::from(interrupt.exit_code()),
                Arc::clone(raised),
            )?;
            flag::register(signal, Arc::clone(raised))?;
        }
        Ok(signals)
    }

    /// The signal received so far, if any (SIGTERM first).
    pub fn received(&self) -> Option<Interrupt> {
        if self.term.load(Ordering::Relaxed) {
            Some(Interrupt::Term)
        } else if self.int.load(Ordering::Relaxed) {
            Some(Interrupt::Int)
        } else {
            None
        }
    }
}
