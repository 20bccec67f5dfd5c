//! `micrun`: the user's command (packing firmware images, inspecting them, telling
//! what this host offers) and an OCI runtime with runc's command line. A thin
//! dispatcher: the subcommands live in `micrun_shim::cli` (the runc surface in
//! `cli::oci`). Exit status 2 for a usage error (argh's own exit is 1).

use argh::FromArgs;

fn main() {
    // runc's command line (podman, conmon, CRI-O): `micrun [global flags] create ...`.
    let raw: Vec<_> = std::env::args_os().skip(1).collect();
    if let Some(code) = micrun_shim::cli::oci::dispatch(&raw) {
        std::process::exit(code);
    }
    // `micrun image inspect ... | head`: end quietly at a closed pipe, as other CLI
    // tools do (Rust ignores SIGPIPE, and println! would panic on the broken pipe).
    // Not for the OCI runtime above: its monitor relays the console and must see
    // EPIPE from a caller that went away, not die of the signal.
    // SAFETY: at the start of main, before any thread exists.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let args: Vec<String> = match std::env::args_os().map(|a| a.into_string()).collect() {
        Ok(args) => args,
        Err(bad) => {
            eprintln!(
                "micrun: argument {} is not UTF-8",
                micrun_shim::error::quote(&bad.to_string_lossy())
            );
            std::process::exit(2);
        }
    };
    let cmd = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("micrun");
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match micrun_shim::cli::Micrun::from_args(&[cmd], &rest) {
        Ok(cli) => std::process::exit(micrun_shim::cli::run(cli)),
        Err(exit) => match exit.status {
            Ok(()) => {
                println!("{}", exit.output);
                std::process::exit(0)
            }
            Err(()) => {
                eprintln!("{}\nRun {cmd} --help for more information.", exit.output);
                std::process::exit(2)
            }
        },
    }
}
