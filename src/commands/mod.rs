//! The commands. Each returns the exit code to use, or an error that knows its own.

mod calibrate;
mod calibrate_chart;
mod diff;
mod live;
mod load;
mod mock;
mod plan;
mod shrink;
mod sim;
mod sweep;
mod test;

use std::fmt;

use crate::cli::{Cli, Command};
use crate::exit;

/// A failure with the exit code it deserves.
#[derive(Debug)]
pub(crate) struct CliError {
    code: u8,
    message: String,
}

impl CliError {
    pub(crate) fn bad_input(message: impl fmt::Display) -> Self {
        CliError { code: exit::BAD_INPUT, message: message.to_string() }
    }

    pub(crate) fn internal(message: impl fmt::Display) -> Self {
        CliError { code: exit::INTERNAL, message: message.to_string() }
    }

    pub(crate) fn failed_check(message: impl fmt::Display) -> Self {
        CliError { code: exit::FAILED_CHECK, message: message.to_string() }
    }

    /// A batch run stopped by `signal` (2: SIGINT, 15: SIGTERM): exit 130 or 143.
    pub(crate) fn stopped(signal: i32, message: impl fmt::Display) -> Self {
        CliError { code: exit::for_signal(signal), message: message.to_string() }
    }

    pub(crate) fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs the parsed command line.
/// For a batch run with nothing to clean up (`rotor test`, `sweep`, `load`): SIGINT or SIGTERM
/// ends the process at once with 130 or 143, saying so, instead of a death by the signal that a
/// caller reads as a crash. The handlers are in place when this returns.
pub(crate) fn exit_on_signal(what: &'static str) -> Result<(), CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let cannot = |e: std::io::Error| CliError::internal(format!("cannot watch signals: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(cannot)?;
    let (mut int, mut term) = {
        let _in = rt.enter();
        (signal(SignalKind::interrupt()).map_err(cannot)?, signal(SignalKind::terminate()).map_err(cannot)?)
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let signal = rt.block_on(async {
                tokio::select! {
                    _ = int.recv() => 2,
                    _ = term.recv() => 15,
                }
            });
            eprintln!("rotor {what}: stopped by {}", if signal == 15 { "SIGTERM" } else { "SIGINT" });
            std::process::exit(i32::from(exit::for_signal(signal)));
        })
        .map_err(cannot)?;
    Ok(())
}

pub(crate) fn run(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Sim(args) => sim::run(&sim::SimConfig::try_from(args)?),
        Command::Sweep(args) => exit_on_signal("sweep").and_then(|()| sweep::run(&args)),
        Command::Test(args) => exit_on_signal("test").and_then(|()| test::run(&args)),
        Command::Diff(args) => diff::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Mock(args) => mock::run(&args),
        Command::Live(args) => live::run(&args),
        Command::Load(args) => exit_on_signal("load").and_then(|()| load::run(&args)),
        Command::Probe { config, include_resting } => live::probe(&config, include_resting),
        Command::Calibrate(args) => calibrate::run(&args),
        Command::Ctl { config, action } => {
            let config = config.ok_or_else(|| {
                CliError::bad_input(
                    "rotor ctl needs --config FILE, the live config (before or after the action)",
                )
            })?;
            live::ctl(&config, &action.to_live())
        }
        Command::Orders { action: crate::cli::OrdersAction::Export(args) } => {
            live::export(&args, live::Log::Orders)
        }
        Command::Orders { action: crate::cli::OrdersAction::DeadLetters(args) } => live::dead_letters(&args),
        Command::Decisions { action: crate::cli::ExportAction::Export(args) } => {
            live::export(&args, live::Log::Decisions)
        }
        Command::SeedClaims { out } => {
            let claims = rotor_sim::claims::check().map_err(CliError::internal)?;
            let rows = rotor_sim::claims::hypothesis_rows().map_err(CliError::internal)?;
            let md = format!(
                "{}\n{}",
                rotor_sim::claims::markdown(&claims),
                rotor_sim::claims::hypotheses_markdown(&rows)
            );
            print!("{md}");
            if let Some(dir) = out {
                std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(dir.join("README.md"), &md))
                    .and_then(|()| std::fs::write(dir.join("report.html"), rotor_sim::claims::html(&claims)))
                    .map_err(|e| CliError::internal(format!("cannot write into {}: {e}", dir.display())))?;
            }
            Ok(exit::OK)
        }
        Command::Scenarios => {
            for (name, text) in sim::BUILTIN {
                let summary = text
                    .lines()
                    .take_while(|l| l.starts_with('#'))
                    .map(|l| l.trim_start_matches("# "))
                    .collect::<Vec<_>>()
                    .join(" ");
                println!("{name:<20} {summary}");
            }
            Ok(exit::OK)
        }
    }
}
