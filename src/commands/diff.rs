//! `rotor diff`: two runs' figures compared, with thresholds on the change.

use rotor_sim::diff::{self, Diff};

use super::CliError;
use crate::cli::{DiffArgs, DiffFormat};
use crate::exit;

/// Compares BASE with NEW and prints the comparison; returns 0, or 3 when a threshold is
/// crossed.
pub(crate) fn run(args: &DiffArgs) -> Result<u8, CliError> {
    let thresholds = args
        .fail_if
        .iter()
        .map(|e| diff::parse_threshold(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::bad_input)?;
    let mut d = compare(&args.base, &args.new)?;
    diff::apply(&mut d, &thresholds).map_err(CliError::bad_input)?;
    match args.format {
        DiffFormat::Table => print!("{}", d.table(args.changed)),
        DiffFormat::Markdown => print!("{}", d.markdown(args.changed)),
        DiffFormat::Json => {
            let json = serde_json::to_string_pretty(&d)
                .map_err(|e| CliError::internal(format!("cannot serialise the comparison: {e}")))?;
            println!("{json}");
        }
    }
    Ok(if d.passed { exit::OK } else { exit::FAILED_CHECK })
}

/// Reads both sides and compares them.
pub(crate) fn compare(base: &std::path::Path, new: &std::path::Path) -> Result<Diff, CliError> {
    let base = diff::read_side(base).map_err(CliError::bad_input)?;
    let new = diff::read_side(new).map_err(CliError::bad_input)?;
    Ok(diff::compare(&base, &new))
}
