//! `rotor test`: scenario files as a test suite, over several seeds, with JUnit and JSON.

use std::fmt::Write as _;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rotor_sim::suite::{self, CaseResult, Seeds, SuiteResult, junit};
use rotor_sim::verdict::fmt_ms;

use super::CliError;
use crate::cli::TestArgs;
use crate::exit;

/// Runs the suite, prints its result, writes the reports; returns 0 or 3.
pub(crate) fn run(args: &TestArgs) -> Result<u8, CliError> {
    let seeds = Seeds::parse(&args.seeds).map_err(CliError::bad_input)?;
    if args.max_steps == 0 {
        return Err(CliError::bad_input("--max-steps must be at least 1"));
    }
    let files = suite::discover(&args.paths).map_err(CliError::bad_input)?;
    // A file that does not load is reported, and written as a case in error; the rest run.
    let (cases, unloaded) = suite::load(&files);
    for case in &unloaded {
        tracing::error!("{}", case.load_error.as_deref().unwrap_or_default());
    }
    let runs: u64 = cases.iter().map(|c| seeds.for_file(c.scenario.seed).len() as u64).sum();
    if !args.quiet {
        tracing::info!(
            "rotor test: {} files under {}, {} = {runs} runs on {} threads",
            cases.len(),
            args.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            seeds.describe(),
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        );
    }
    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(runs), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(runs)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut result = suite::run_suite(&cases, seeds, args.max_steps, &|_| bar.inc(1));
    bar.finish_and_clear();
    let not_loaded = unloaded.len();
    result.add_unloaded(unloaded);
    print!("{}", text(&result, args.figures));
    if args.shrink {
        shrink_failures(args, &cases, &result)?;
    }
    if let Some(path) = &args.junit {
        write(path, &junit::render(&result))?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&result)
            .map_err(|e| CliError::internal(format!("cannot serialise the result: {e}")))?;
        write(path, &(json + "\n"))?;
    }
    if not_loaded > 0 {
        return Err(CliError::bad_input(format!(
            "{not_loaded} of {} scenario files do not load (each is above, and a case in error in the reports)",
            files.len()
        )));
    }
    Ok(if result.passed { exit::OK } else { exit::FAILED_CHECK })
}

/// Shrinks each failed file's first failed check on its first failing seed.
fn shrink_failures(args: &TestArgs, cases: &[suite::Case], result: &SuiteResult) -> Result<(), CliError> {
    let dir = args
        .json
        .as_ref()
        .or(args.junit.as_ref())
        .and_then(|p| p.parent())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let mut shown = false;
    for (case, res) in cases.iter().zip(&result.cases) {
        let Some((check, seed)) = res
            .checks
            .iter()
            .filter(|c| c.status.failed())
            .find_map(|c| c.against.first().map(|s| (c, s.seed)))
        else {
            continue;
        };
        if !shown {
            println!("\nShrunk");
            shown = true;
        }
        if !args.quiet {
            tracing::info!("rotor test: shrinking {} while `{}` fails (seed={seed})", res.file, check.id);
        }
        let path = super::shrink::shrunk_path(&dir, &case.scenario.name, seed);
        let replay = super::shrink::shrink_to_file(
            &case.scenario,
            seed,
            &check.id,
            &path,
            args.max_steps,
            args.quiet,
        )?;
        println!("  {}  `{}`: {}\n         replay: {replay}", res.file, check.id, path.display());
    }
    Ok(())
}

fn write(path: &std::path::Path, text: &str) -> Result<(), CliError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::internal(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, text)
        .map_err(|e| CliError::internal(format!("cannot write {}: {e}", path.display())))
}

/// Large counts readably: 1.2M, 64.2k, 950.
fn human(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.1}G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Scenario time readably: `24.1h` from two hours on, else as the verdicts show durations.
fn simulated(ms: f64) -> String {
    if ms >= 7_200_000.0 { format!("{:.1}h", ms / 3_600_000.0) } else { fmt_ms(ms as u64) }
}

/// The failed checks first, then a line per file, then the totals.
fn text(result: &SuiteResult, figures: bool) -> String {
    let mut out = String::new();
    let failed: Vec<&CaseResult> = result.failed().collect();
    if !failed.is_empty() {
        out.push_str("Failed checks\n");
        for case in &failed {
            for (seed, error) in &case.errors {
                let _ = writeln!(out, "  ERROR  {}  seed {seed}: {error}", case.file);
                let _ = writeln!(out, "         replay: {}", suite::replay_command(&case.file, *seed));
            }
            for check in case.checks.iter().filter(|c| c.status.failed()) {
                let id = if check.id == check.name { String::new() } else { format!("  ({})", check.id) };
                let _ = writeln!(out, "  {:<5}  {}  {}{id}", check.status.mark(), case.file, check.name);
                let _ = writeln!(out, "         {}", junit::failure_message(case, check));
                if let Some(d) = check.distribution.filter(|d| d.n > 1) {
                    let _ = writeln!(out, "         figure over the seeds: {}", d.describe(check.unit));
                }
            }
        }
        out.push('\n');
    }
    out.push_str("Files\n");
    let width = result.cases.iter().map(|c| c.file.chars().count()).max().unwrap_or(0);
    for case in &result.cases {
        let mark = if case.passed { "PASS" } else { "FAIL" };
        let stated = case.checks.iter().filter(|c| c.must_fail).count();
        let simulated_ms = case.simulated_s_per_wall_s * case.wall_s * 1000.0;
        let _ = writeln!(
            out,
            "  {mark:<5}  {:<width$}  {:>3} seeds  {:>3} checks{}  {} simulated in {:.2}s ({}x), {} req/s",
            case.file,
            case.seeds.len(),
            case.checks.len(),
            if stated > 0 { format!(" ({stated} stated to fail)") } else { String::new() },
            simulated(simulated_ms),
            case.wall_s,
            human(case.simulated_s_per_wall_s),
            human(case.requests_per_s)
        );
        if figures {
            for check in &case.checks {
                let shown =
                    check.distribution.map_or_else(|| "no figure".to_owned(), |d| d.describe(check.unit));
                let _ = writeln!(
                    out,
                    "         {:<5} {:<40} {shown}; required {}",
                    check.status.mark(),
                    check.id,
                    check.requirement
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{} file{}: {} passed, {} failed; {} runs, {} requests in {:.1}s wall ({} requests/s, {} simulated s per wall s)",
        result.cases.len(),
        if result.cases.len() == 1 { "" } else { "s" },
        result.cases.len() - failed.len(),
        failed.len(),
        result.runs,
        human(result.requests as f64),
        result.wall_s,
        human(result.requests_per_s),
        human(result.simulated_s_per_wall_s)
    );
    out
}
