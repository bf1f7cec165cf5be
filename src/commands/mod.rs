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
pub(crate) fn run(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Sim(args) => sim::run(&sim::SimConfig::try_from(args)?),
        Command::Sweep(args) => sweep::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Mock(args) => mock::run(&args),
        Command::Live(args) => live::run(&args),
        Command::Load(args) => load::run(&args),
        Command::Probe { config, include_resting } => live::probe(&config, include_resting),
        Command::Calibrate(args) => calibrate::run(&args),
        Command::Ctl { config, action } => live::ctl(&config, &action.to_live()),
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
