//! `rotor live` and `rotor probe`: load the config, start a runtime, map errors to exit codes.

use std::path::Path;

use rotor_live as live;
use rotor_live::run::{LiveError, RunOptions};

use super::CliError;
use crate::cli::LiveArgs;
use crate::exit;

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the runtime: {e}")))
}

/// Exit 2 when the operator's input is at fault, 1 otherwise.
fn exit_for(e: &LiveError) -> CliError {
    if e.is_input() { CliError::bad_input(e.to_string()) } else { CliError::internal(e.to_string()) }
}

pub(crate) fn run(args: &LiveArgs) -> Result<u8, CliError> {
    let config = live::config::load(&args.config).map_err(CliError::bad_input)?;
    let run_for = match &args.run_for {
        Some(text) => Some(
            rotor_sim::scenario::value::parse_duration(text)
                .map_err(|e| CliError::bad_input(format!("--run-for: {e}")))?,
        ),
        None => None,
    };
    let max_wait = match &args.max_wait {
        Some(text) => rotor_sim::scenario::value::parse_duration(text)
            .map_err(|e| CliError::bad_input(format!("--max-wait: {e}")))?,
        None => rotor_engine::Duration::from_secs(30),
    };
    let options = RunOptions {
        dry_run: args.dry_run,
        sync_catalog: args.sync_catalog,
        once: args.once,
        run_for,
        max_wait: args.once.then_some(max_wait),
        worker_id: args.worker_id.clone(),
        status_listen: args.status_listen,
        config_path: Some(args.config.clone()),
    };
    match runtime()?.block_on(live::run::run(config, options)) {
        // A check by hand that was stopped did not finish its batch; a service stopped is done.
        Ok(s) if args.once && s.signal.is_some() => Err(CliError::stopped(
            s.signal.unwrap_or(2),
            "stopped by a signal before the batch finished; what was sent is recorded",
        )),
        // A batch that skipped calls rather than idle past --max-wait did not do its work.
        Ok(s) if args.once && !s.skipped.is_empty() => {
            let calls: u64 = s.skipped.iter().map(|k| k.calls).sum();
            let lanes: Vec<String> = s.skipped.iter().map(ToString::to_string).collect();
            Err(CliError::failed_check(format!(
                "{calls} calls skipped rather than wait past --max-wait {max_wait}:\n  {}",
                lanes.join("\n  ")
            )))
        }
        // A check by hand (`--once`) that got nothing through must not look like success.
        Ok(s) if args.once && s.calls > 0 && s.calls_ok == 0 => Err(CliError::failed_check(format!(
            "every call failed ({} calls, none answered 2xx); the log says why",
            s.calls
        ))),
        Ok(_) => Ok(exit::OK),
        Err(e) => Err(exit_for(&e)),
    }
}

pub(crate) fn probe(path: &Path, include_resting: bool) -> Result<u8, CliError> {
    let config = live::config::load(path).map_err(CliError::bad_input)?;
    let rows = runtime()?.block_on(live::probe::probe(&config, include_resting)).map_err(|e| exit_for(&e))?;
    let (table, share) = live::probe::render(&rows);
    print!("{table}");
    Ok(if share < 80.0 { exit::FAILED_CHECK } else { exit::OK })
}

pub(crate) fn ctl(path: &Path, action: &live::ctl::Action) -> Result<u8, CliError> {
    let config = live::config::load(path).map_err(CliError::bad_input)?;
    let out = live::ctl::run(&config, action).map_err(|e| exit_for(&e))?;
    print!("{out}");
    Ok(exit::OK)
}

pub(crate) fn dead_letters(args: &crate::cli::DeadLetterArgs) -> Result<u8, CliError> {
    use live::webhook::Retry;
    let config = live::config::load(&args.config).map_err(CliError::bad_input)?;
    let mut store = live::ctl::open(&config).map_err(|e| exit_for(&e))?;
    let retry = match (args.retry_all, args.retry.as_slice()) {
        (true, _) => Some(Retry::All),
        (false, []) => None,
        (false, seqs) => Some(Retry::These(seqs.to_vec())),
    };
    let out = live::webhook::dead_letters(&mut store, retry).map_err(|e| exit_for(&e))?;
    print!("{out}");
    Ok(exit::OK)
}

/// Which log an export hands on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Log {
    Orders,
    Decisions,
}

pub(crate) fn export(args: &crate::cli::ExportArgs, log: Log) -> Result<u8, CliError> {
    use live::export::{self, Since};
    let config = live::config::load(&args.config).map_err(CliError::bad_input)?;
    let now = live::clock::now().as_millis();
    let since = match (&args.since, &args.out) {
        (Some(text), _) => export::parse_since(text, now).map_err(CliError::bad_input)?,
        (None, Some(path)) => Since::After(export::last_seq(path).map_err(|e| exit_for(&e))?.unwrap_or(0)),
        (None, None) => Since::After(0),
    };
    let mut store = live::ctl::open(&config).map_err(|e| exit_for(&e))?;
    let mut sink: Box<dyn std::io::Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| CliError::bad_input(format!("{}: cannot append: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let n = match log {
        Log::Orders => export::orders(&mut store, since, &mut sink),
        Log::Decisions => export::decisions(&mut store, since, &mut sink),
    }
    .map_err(|e| exit_for(&e))?;
    sink.flush().map_err(|e| CliError::internal(format!("cannot write the export: {e}")))?;
    if let Some(path) = &args.out {
        tracing::info!("{n} lines appended to {}", path.display());
    }
    Ok(exit::OK)
}
