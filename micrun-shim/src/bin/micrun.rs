//! `micrun`: the user's command (packing firmware images, inspecting them, telling
//! what this host offers). A thin dispatcher: the subcommands live in
//! `micrun_shim::cli`. Exit status 2 for a usage error (argh's own exit is 1).

use argh::FromArgs;

fn main() {
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
