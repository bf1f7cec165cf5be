//! `rotor`: the command line. Parsing lives in [`cli`], each command in [`commands`]; `main`
//! maps every error to a deliberate exit code.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc malloc: a load run spends a quarter of its CPU allocating and
/// freeing request buffers otherwise (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes: what a script running rotor can rely on.
pub(crate) mod exit {
    /// Every invariant and expectation held.
    pub(crate) const OK: u8 = 0;
    /// Something went wrong that is not the input's fault (an I/O error, say).
    pub(crate) const INTERNAL: u8 = 1;
    /// Bad input: a flag, a scenario file, a config.
    pub(crate) const BAD_INPUT: u8 = 2;
    /// The run finished but an invariant or an expectation failed.
    pub(crate) const FAILED_CHECK: u8 = 3;
    /// A batch run (`rotor test`, `sweep`, `load`, `calibrate`, `live --once`) stopped by
    /// SIGINT (Ctrl-C): 128 + 2, the shell's convention. A service stopped by a signal exits 0.
    pub(crate) const INTERRUPTED: u8 = 130;
    /// A batch run stopped by SIGTERM: 128 + 15.
    pub(crate) const TERMINATED: u8 = 143;

    /// The exit code of a batch run stopped by `signal`.
    pub(crate) fn for_signal(signal: i32) -> u8 {
        if signal == 15 { TERMINATED } else { INTERRUPTED }
    }
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let format = match args.log_format {
        cli::LogFormat::Text => rotor_live::log::Format::Text,
        cli::LogFormat::Json => rotor_live::log::Format::Json,
    };
    if let Err(err) = rotor_live::log::init(format) {
        // The command's answer, not a diagnostic: written whatever RUST_LOG says.
        eprintln!("rotor: {err}");
        return ExitCode::from(exit::BAD_INPUT);
    }
    match commands::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("rotor: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
