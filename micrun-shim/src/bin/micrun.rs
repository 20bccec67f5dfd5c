//! `micrun`: the user's command (packing firmware images, inspecting them).
//! A thin dispatcher: the subcommands live in `micrun_shim::cli`.

fn main() {
    let cli: micrun_shim::cli::Micrun = argh::from_env();
    std::process::exit(micrun_shim::cli::run(cli));
}
