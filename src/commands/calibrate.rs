//! `rotor calibrate`: check the flags, print the schedule (`--dry-run`) or run the calibration
//! through the held proxy, then write the hypothesis file and the report.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use rotor_engine::{Duration, Endpoint};
use rotor_live::calibrate::{self, Calibration, Findings, Settings, Target};
use rotor_sim::plan::PlanInput;
use rotor_sim::report::html;
use rotor_sim::scenario::{HypothesisChoice, PolicyChoice};

use super::CliError;
use crate::cli::CalibrateArgs;
use crate::exit;

fn duration(flag: &str, text: &str) -> Result<Duration, CliError> {
    rotor_sim::scenario::value::parse_duration(text).map_err(|e| CliError::bad_input(format!("{flag}: {e}")))
}

/// Only the storefront's offers: the others are account-scoped or not limited per IP alone.
fn check_endpoint(name: &str) -> Result<(), CliError> {
    match name.parse::<Endpoint>() {
        Ok(Endpoint::StorefrontOffers) => Ok(()),
        Ok(e) => Err(CliError::bad_input(format!(
            "--endpoint {e}: rotor calibrate measures only `offers`, the public storefront limited per IP; \
             {e} needs a merchant's credentials, and a ban there (about 30 minutes per merchant) would stop \
             the seller's business"
        ))),
        Err(_) => Err(CliError::bad_input(format!("--endpoint {name} is not an endpoint; valid: offers"))),
    }
}

fn settings(args: &CalibrateArgs) -> Result<Settings, CliError> {
    let s = Settings {
        start_rps: args.start_rps,
        step: args.step,
        hold: duration("--hold", &args.hold)?,
        ceiling_rps: args.ceiling_rps,
        precision: args.precision,
        budget: args.budget,
        count_requests: args.count_requests,
        count_rps: args.count_rps,
        max_ban: duration("--max-ban", &args.max_ban)?,
        ..Settings::default()
    };
    s.check().map_err(CliError::bad_input)?;
    Ok(s)
}

/// The dry run's schedule, in words.
fn schedule_text(args: &CalibrateArgs, s: &Settings) -> String {
    let plan = calibrate::schedule(s);
    let rates: Vec<String> = s.ramp().iter().map(|r| format!("{r:.2}")).collect();
    let mut out = format!(
        "rotor calibrate --dry-run: nothing is sent.\n\nthrough    [[proxy]] #{} of {}\n",
        args.proxy,
        args.config.display()
    );
    let _ = writeln!(out, "endpoint   offers (the storefront; public, limited per IP)");
    if s.count_requests > 0 {
        let _ = writeln!(out, "count run  {} requests at {} per second", s.count_requests, s.count_rps);
    }
    let _ = writeln!(out, "ramp       {} requests/s, each held {}", rates.join(", "), s.hold);
    let _ = writeln!(
        out,
        "bisection  at most {} steps, to within {:.0}% of the refused rate",
        plan.bisections,
        s.precision * 100.0
    );
    let _ = writeln!(
        out,
        "at most    {} requests over {} (with every ban as long as --max-ban)",
        plan.requests,
        calibrate::findings::span(plan.duration)
    );
    let _ = writeln!(
        out,
        "worst ban  {}: a longer one ends the calibration; the proxy then rests at least that long",
        plan.worst_ban
    );
    out
}

pub(crate) fn run(args: &CalibrateArgs) -> Result<u8, CliError> {
    check_endpoint(&args.endpoint)?;
    let s = settings(args)?;
    if !(args.time_scale.is_finite() && (1.0..=1000.0).contains(&args.time_scale)) {
        return Err(CliError::bad_input(format!(
            "--time-scale is {}; valid: 1 (real time) up to 1000, for trials against the fakes",
            args.time_scale
        )));
    }
    let config = rotor_live::config::load(&args.config).map_err(CliError::bad_input)?;
    if args.dry_run {
        // Everything the run would refuse is refused here too; nothing is held or sent.
        let target = Target { proxy: args.proxy, product: args.product.clone(), settings: s };
        let name = calibrate::preflight(&config, &target).map_err(|e| {
            if e.is_input() { CliError::bad_input(e.to_string()) } else { CliError::internal(e.to_string()) }
        })?;
        print!("{}", schedule_text(args, &s));
        println!("proxy      {name}: spare now (checked in the store; not held by a dry run)");
        return Ok(exit::OK);
    }
    if (args.time_scale - 1.0).abs() > f64::EPSILON {
        rotor_live::clock::set_scale(args.time_scale);
    }
    let target = Target { proxy: args.proxy, product: args.product.clone(), settings: s };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the runtime: {e}")))?;
    let signalled = Arc::new(AtomicI32::new(0));
    let done = runtime.block_on(async {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let signalled = Arc::clone(&signalled);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| rotor_live::error::LiveError::Runtime(format!("cannot watch SIGTERM: {e}")))?;
        tokio::spawn(async move {
            let signal = tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_ok() { 2 } else { return },
                _ = term.recv() => 15,
            };
            signalled.store(signal, Ordering::Relaxed);
            let _ = stop_tx.send(true);
        });
        let mut progress =
            |c: &calibrate::Calibrator| eprint!("\r  calibrate: {:<70} {:>6} sent ", c.progress(), c.sent());
        let done = calibrate::calibrate(&config, &target, stop, &mut progress).await;
        eprint!("\r{:90}\r", "");
        done
    });
    let done = done.map_err(|e| {
        if e.is_input() { CliError::bad_input(e.to_string()) } else { CliError::internal(e.to_string()) }
    })?;
    let f = &done.findings;
    print!("{}", f.text());
    write(&args.out, &done)
        .map_err(|e| CliError::internal(format!("cannot write into {}: {e}", args.out.display())))?;
    println!(
        "\nproxy {} rests until {}; wrote {}",
        done.proxy_name,
        rotor_live::log::utc(done.rest_until.as_millis()),
        args.out.join("hypothesis.toml").display()
    );
    if let Some(skus) = args.skus {
        implied_plan(&args.out.join("hypothesis.toml"), skus, f)?;
    }
    let signal = signalled.load(Ordering::Relaxed);
    match &f.stopped {
        Some(why) if signal != 0 => Err(CliError::stopped(
            signal,
            format!("stopped early: {why}; what was learned is in {}", args.out.display()),
        )),
        None => Ok(exit::OK),
        Some(why) => Err(CliError::failed_check(format!(
            "stopped early: {why}; what was learned is in {}",
            args.out.display()
        ))),
    }
}

/// Prints the plan the written hypothesis file implies for `skus` SKUs: the rate policy when a
/// rate limit was measured, the window policy otherwise.
fn implied_plan(file: &Path, skus: u32, f: &Findings) -> Result<(), CliError> {
    if skus == 0 || skus > 100_000 {
        return Err(CliError::bad_input(format!("--skus is {skus}; valid: 1 to 100000")));
    }
    let sc = rotor_sim::scenario::Scenario::load(file).map_err(CliError::internal)?;
    let policy = match f.rate {
        Some(calibrate::RateFinding::Refused { .. } | calibrate::RateFinding::NoneUpTo { .. }) => {
            PolicyChoice::Rate
        }
        _ => PolicyChoice::Window,
    };
    let input = PlanInput {
        skus,
        interval: Duration::from_mins(3),
        policy,
        hypothesis: HypothesisChoice::File,
        duration: Duration::from_mins(360),
        seed: 1,
        price_change_share: 1.0,
        margin: 1.0,
    };
    tracing::info!(
        "rotor calibrate: planning {skus} SKUs under the measured limits ({} policy)",
        policy.name()
    );
    let plan = rotor_sim::plan::plan_with(&input, sc.kaspi.hypotheses)
        .map_err(|e| CliError::internal(e.to_string()))?;
    println!(
        "
the plan these limits imply for {skus} SKUs every 3m, {} policy:",
        policy.name()
    );
    super::plan::table(&plan);
    Ok(())
}

/// The hypothesis file, the Markdown report and the HTML report with the ramp chart.
fn write(dir: &Path, c: &Calibration) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let f = &c.findings;
    let header = format!(
        "rotor calibrate, {} to {}\nthrough {} (egress {}), storefront offers of product {}",
        rotor_live::log::utc(c.started.as_millis()),
        rotor_live::log::utc(f.samples.last().map_or(c.started, |s| s.at).as_millis()),
        c.proxy_name,
        c.egress,
        c.product
    );
    std::fs::write(dir.join("hypothesis.toml"), f.hypothesis_toml(Endpoint::StorefrontOffers, &header))?;
    let md = format!(
        "# Calibration\n\n{}\n\n```text\n{}```\n\n## The count run and the rates held\n\n{}\n",
        header.replace('\n', "  \n"),
        f.text(),
        holds_table(f)
    );
    std::fs::write(dir.join("report.md"), &md)?;
    let chart = super::calibrate_chart::svg(f, c.started)
        .unwrap_or_else(|e| format!("<p>no chart: {}</p>", html::escape(&e)));
    let page = format!(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>rotor calibrate</title>\n<h1>Calibration</h1>\n<p>{}</p>\n<pre>{}</pre>\n<h2>Rate sent and answers per second</h2>\n{}\n<h2>The count run and the rates held</h2>\n<pre>{}</pre>\n",
        html::escape(&header).replace('\n', "<br>"),
        html::escape(&f.text()),
        html::inline_svg(&chart),
        html::escape(&holds_table(f))
    );
    std::fs::write(dir.join("report.html"), page)
}

/// The count run, then per rate held: requests, answered, refused, no answer.
fn holds_table(f: &Findings) -> String {
    let mut runs: Vec<(bool, f64)> = Vec::new();
    for s in &f.samples {
        let run = (s.count_run, s.rate_sent);
        if s.rate_sent > 0.0 && !runs.iter().any(|&(c, r)| c == run.0 && (r - run.1).abs() < 1e-9) {
            runs.push(run);
        }
    }
    let mut out = format!(
        "{:<9} {:>8} {:>9} {:>9} {:>8} {:>9}\n",
        "run", "rate/s", "requests", "answered", "refused", "no answer"
    );
    for (count_run, r) in runs {
        let of: Vec<_> =
            f.samples.iter().filter(|s| s.count_run == count_run && (s.rate_sent - r).abs() < 1e-9).collect();
        let count = |want: fn(&calibrate::Answer) -> bool| {
            of.iter().filter(|s| s.answer.as_ref().is_some_and(want)).count()
        };
        let _ = writeln!(
            out,
            "{:<9} {r:>8.2} {:>9} {:>9} {:>8} {:>9}",
            if count_run { "count" } else { "held" },
            of.len(),
            count(|a| *a == calibrate::Answer::Ok),
            count(|a| matches!(a, calibrate::Answer::Refused { .. })),
            count(|a| *a == calibrate::Answer::Failed)
        );
    }
    out
}
