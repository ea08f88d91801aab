//! `vae-train`: the command-line trainer.

fn main() {
    eprintln!("vae-train: training is not available yet in this build (see the open issues)");
    std::process::exit(2);
}
