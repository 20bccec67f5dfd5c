//! `micrun`: the user's command (packing firmware images, inspecting them).
//! A thin dispatcher: the subcommands live in `micrun_shim::cli`.

fn main() {
    // runc's command line (podman, conmon, CRI-O): `micrun [global flags] create ...`.
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if let Some(code) = micrun_shim::cli::oci::dispatch(&args) {
        std::process::exit(code);
    }
    let cli: micrun_shim::cli::Micrun = argh::from_env();
    std::process::exit(micrun_shim::cli::run(cli));
}
