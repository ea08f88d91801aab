//! Progress on the terminal: a bar per epoch (indicatif, hidden when stderr is not a terminal)
//! and one summary line per epoch.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vae::run::{EpochRow, Interrupt, Observer};
use vae::train::Metrics;

use crate::signals::Signals;

/// Reports to stderr (bar, notes) and stdout (epoch lines); `quiet` silences all but errors.
/// Passes on Ctrl-C and SIGTERM to the run, when given the signals.
pub struct Terminal {
    quiet: bool,
    bar: Option<ProgressBar>,
    epochs: usize,
    signals: Option<Signals>,
}

impl Terminal {
    pub fn new(quiet: bool, signals: Option<Signals>) -> Self {
        Terminal {
            quiet,
            bar: None,
            epochs: 0,
            signals,
        }
    }
}

impl Observer for Terminal {
    fn interrupted(&mut self) -> Option<Interrupt> {
        let signal = self.signals.as_ref()?.received()?;
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
        Some(signal)
    }

    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        self.epochs = epochs;
        if self.quiet {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        self.bar = Some(bar);
    }

    fn batch(&mut self, metrics: &Metrics) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if bar.position() % 20 == 0 {
                bar.set_message(format!("loss {:.2}", metrics.loss));
            }
        }
    }

    fn epoch_end(&mut self, row: &EpochRow) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            println!(
                "epoch {:>3}/{}  {}  {:6.2} s",
                row.epoch, self.epochs, row.line, row.seconds
            );
        }
    }

    fn note(&mut self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
