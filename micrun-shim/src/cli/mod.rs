//! The `micrun` command: what users type (src/bin/micrun.rs dispatches here).
//!
//! One module per subcommand; each has an argh struct and a `run` that returns the
//! exit status after printing its output or its error (one line on stderr starting
//! with `micrun: `). Only the `micrun` binary uses this module, so the shim binary
//! does not link it.

use argh::FromArgs;

pub mod check;
pub mod config;
pub mod image;
pub mod oci;
pub mod oci_layout;

/// The version printed by `micrun --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// micrun: RTOS firmware as containers. Packs firmware into OCI images and tells
/// what this host would run.
#[derive(FromArgs, Debug)]
pub struct Micrun {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    /// what to do
    #[argh(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
// Parsed once per run; argh's subcommands cannot be boxed.
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    /// `micrun image`.
    Image(image::ImageCommand),
    /// `micrun check`.
    Check(check::Check),
    /// `micrun config`.
    Config(config::ConfigCommand),
}

/// Runs the parsed command line; returns the exit status.
pub fn run(cli: Micrun) -> i32 {
    if cli.version {
        println!("micrun {VERSION}");
        return 0;
    }
    match cli.command {
        Some(Command::Image(c)) => image::run(c),
        Some(Command::Check(c)) => check::run(c),
        Some(Command::Config(c)) => config::run(c),
        None => {
            eprintln!("micrun: no command given; see `micrun --help`");
            2
        }
    }
}

/// Prints `micrun: <message>` on stderr and returns exit status 1.
pub fn fail(message: impl std::fmt::Display) -> i32 {
    eprintln!("micrun: {message}");
    1
}
