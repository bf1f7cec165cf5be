//! `rotor load`: a scenario through live mode over loopback sockets, optionally beside the
//! simulator.

use std::fmt::Write as _;
use std::io::IsTerminal;

use rotor::load::{self, LoadError, LoadOptions, compare};
use rotor_sim::run::RunOptions;
use rotor_sim::verdict;

use super::CliError;
use super::sim::load_scenario;
use crate::cli::LoadArgs;
use crate::exit;

/// The scenario as `args` run it: its file, with `--seed` and `--duration` applied.
fn scenario(args: &LoadArgs) -> Result<rotor_sim::scenario::Scenario, CliError> {
    let mut sc = load_scenario(&args.scenario)?;
    if let Some(seed) = args.seed {
        sc.seed = seed;
        sc.engine.seed = seed;
    }
    if let Some(text) = &args.duration {
        let span = rotor_sim::scenario::value::parse_duration(text)
            .ok()
            .filter(|d| *d > rotor_engine::Duration::ZERO && *d <= sc.duration)
            .ok_or_else(|| {
                CliError::bad_input(format!(
                    "--duration {text}: valid: a span such as 2h30m, more than 0 and at most the scenario's {}",
                    sc.duration
                ))
            })?;
        sc.duration = span;
    }
    Ok(sc)
}

pub(crate) fn run(args: &LoadArgs) -> Result<u8, CliError> {
    let sc = scenario(args)?;
    if args.max_requests == Some(0) {
        return Err(CliError::bad_input("--max-requests must be at least 1"));
    }
    let opts = LoadOptions {
        time_scale: args.time_scale,
        max_requests: args.max_requests,
        timeline_user: Some(args.timeline_user),
        progress: !args.quiet && std::io::stderr().is_terminal(),
        attach: args.attach.clone(),
    };
    if !args.quiet {
        tracing::info!(
            "rotor load: scenario {} seed={} duration={} at time scale {} ({} proxies on loopback)",
            sc.name,
            sc.seed,
            sc.duration,
            args.time_scale,
            sc.pool.initial
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the runtime: {e}")))?;
    let outcome = runtime.block_on(load::run(&sc, &opts)).map_err(|e| match e {
        LoadError::Input(m) => CliError::bad_input(m),
        LoadError::Live(e) if e.is_input() => CliError::bad_input(e.to_string()),
        LoadError::Live(e) => CliError::internal(e.to_string()),
        LoadError::Internal(m) => CliError::internal(m),
    })?;
    let report = &outcome.report;
    let verdicts = verdict::verdicts(&sc, &report.summary);
    print!("{}", verdict::table(&verdicts));
    let (line, _) = verdict::outcome(&sc, &report.summary, &verdicts);
    println!("\nverdict: {line}");
    print!("\n{}", verdict::figures(&report.summary));
    println!("\nreal time:\n{}", outcome.perf.text());
    let mut pass = verdict::all_pass(&verdicts);
    let mut compared = None;
    if args.compare {
        let sim = rotor_sim::run::run(
            &sc,
            RunOptions { timeline_user: Some(args.timeline_user), ..RunOptions::default() },
        )
        .map_err(|e| CliError::internal(format!("the simulator failed: {e}")))?;
        let path = compare::RealPath {
            attempt_ms: outcome.perf.attempt_latency_ms.module.clone(),
            wire_max_ms: outcome.perf.decision_to_wire_us.max / 1000.0,
        };
        let rows = compare::compare(&sc, &sim, report, args.time_scale, &path);
        let text = compare::table(&rows);
        println!("load against the simulator:\n{text}");
        pass &= rows.iter().all(|r| r.ok);
        compared = Some((rows, text));
    }
    if let Some(dir) = &args.out {
        let write_err = |e: String| CliError::internal(format!("cannot write into {}: {e}", dir.display()));
        rotor_sim::output::write_all(report, dir).map_err(|e| write_err(e.to_string()))?;
        let esc = rotor_sim::report::html::escape;
        let mut section = format!("<h2>Real time</h2>\n<pre>{}</pre>\n", esc(&outcome.perf.text()));
        if let Some((_, text)) = &compared {
            let _ = write!(section, "<h2>Against the simulator</h2>\n<pre>{}</pre>\n", esc(text));
        }
        let origin = rotor_sim::report::html::Origin {
            heading: format!("rotor load at time scale {}", args.time_scale),
            section,
        };
        rotor_sim::report::write_with(&sc, report, &verdicts, dir, &origin).map_err(write_err)?;
        let json = serde_json::to_string_pretty(&outcome.perf).map_err(|e| write_err(e.to_string()))?;
        std::fs::write(dir.join("load.json"), json + "\n").map_err(|e| write_err(e.to_string()))?;
        if let Some((rows, text)) = &compared {
            let json = serde_json::to_string_pretty(rows).map_err(|e| write_err(e.to_string()))?;
            std::fs::write(dir.join("compare.json"), json + "\n").map_err(|e| write_err(e.to_string()))?;
            std::fs::write(dir.join("compare.txt"), text).map_err(|e| write_err(e.to_string()))?;
        }
    }
    if !args.quiet {
        tracing::info!(
            "rotor load: {} in {:.2}s real time; seed={}",
            if pass { line } else { format!("CHECKS FAILED: {line}") },
            outcome.perf.wall_s,
            sc.seed
        );
    }
    Ok(if pass { exit::OK } else { exit::FAILED_CHECK })
}
