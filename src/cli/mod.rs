//! The command line's shape: clap structs holding fields and help text only. Each command turns
//! its arguments into a validated configuration before anything runs.

mod live;
mod sim;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub(crate) use live::{
    CalibrateArgs, CtlAction, DeadLetterArgs, ExportAction, ExportArgs, LiveArgs, MockArgs, OrdersAction,
};
pub(crate) use sim::{DiffArgs, DiffFormat, LoadArgs, PlanArgs, PolicyArg, SimArgs, SweepArgs, TestArgs};

/// rotor: proxy rotation for Kaspi.kz seller tools.
///
/// rotor decides which proxy carries each request to Kaspi and when a request must wait, so that
/// no proxy and no merchant account goes over the limits it is held to. `rotor sim` replays a
/// scenario against a model of Kaspi on a virtual clock, using the production engine, and
/// checks the safety rules.
#[derive(Debug, Parser)]
#[command(name = "rotor", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// How diagnostics on stderr are written: `text`, one line each for a terminal or the
    /// journal, or `json`, one object per line for a log shipper (with the seller, module and
    /// proxy of each event in its fields). Which ones are written is set by `RUST_LOG`,
    /// for example `RUST_LOG=rotor_live=debug`; unset, rotor writes its own info and every library's
    /// warnings. Results (tables, reports) always go to stdout.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub(crate) log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One line per event.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a scenario through the simulator and check the safety rules.
    ///
    /// Prints the run seed and a verdict table. Exit codes: 0 when every invariant and
    /// expectation holds, 3 when one fails, 2 for bad input (the message names the file, line,
    /// column and key), 1 for anything else.
    ///
    /// Examples:
    ///   rotor sim                                  # the embedded seed-500 scenario
    ///   rotor sim scenarios/seed-1000.toml --out reports/seed-1000
    ///   rotor sim scenarios/storm-429.toml --seed 7 --trace /tmp/trace.csv
    #[command(verbatim_doc_comment)]
    Sim(SimArgs),
    /// Run a scenario over a grid and find the smallest safe, on-time pool for each load.
    ///
    /// The scenario file needs a `[sweep]` table of lists (any of `skus`, `demper`, `orders`,
    /// `catalog`, `interval`, `policy`, `hypothesis`); every combination runs, in parallel on
    /// every core. Writes sweep.csv, frontier.csv, heatmaps and a self-contained report.html.
    ///
    /// Example:
    ///   rotor sweep scenarios/sweep-demper.toml --out reports/sweep-demper
    #[command(verbatim_doc_comment)]
    Sweep(SweepArgs),
    /// Run scenario files as a test suite: every file under the paths, under several seeds.
    ///
    /// Each `.toml` file is a test case: its safety invariants and its `[expect]` lines must
    /// hold in every seed (an `[expect.events]` line with `seeds = "any"` in at least one; a
    /// check named in `must_fail` must fail in at least one). Runs go in parallel on every core,
    /// the longest first. Prints the failed checks first, each with its figure per seed, the
    /// requirement and the command that replays it, then one line per file.
    ///
    /// Exit codes: 0 when every file passes, 3 when a check fails (or a run cannot finish),
    /// 2 for bad input (every file that does not load is listed with its place), 130 or 143
    /// when stopped by SIGINT (Ctrl-C) or SIGTERM.
    ///
    /// Examples:
    ///   rotor test                                   # every file under scenarios/
    ///   rotor test scenarios/ --seeds 20 --junit junit.xml --json result.json
    ///   rotor test scenarios/storm-429.toml --seeds 100..120 --figures
    #[command(verbatim_doc_comment)]
    Test(TestArgs),
    /// Compare two runs' figures: what changed, by how much, and whether it matters.
    ///
    /// BASE and NEW are each a summary.json, a `rotor sim --out` directory, or a
    /// `rotor test --json` result (every file, each figure over its seeds). Figures are matched
    /// by key (and file), safety figures first, each with its delta and percentage; keys on one
    /// side only are listed. With seeds on both sides, a change inside the seeds' spread is
    /// "not significant" (Welch's t-test at 95%) and no threshold fires on it.
    ///
    /// Exit codes: 0, or 3 when a --fail-if threshold is crossed, 2 for bad input.
    ///
    /// Examples:
    ///   rotor diff reports/seed-500 /tmp/new-run
    ///   rotor diff base.json result.json --fail-if 'demper_cycle_p99 > +10%' --fail-if 'safety.* > 0'
    ///   rotor diff base.json result.json --format markdown --changed > diff.md
    #[command(verbatim_doc_comment)]
    #[allow(clippy::doc_markdown)] // help text: the examples are commands, not code spans
    Diff(DiffArgs),
    /// How many proxies one seller needs per module, and what they cost.
    ///
    /// Shows the seed's closed-form arithmetic, a steady-state estimate (a proxy is busy for its
    /// active time plus its rest) and the smallest pool a simulation finds safe and on time,
    /// side by side, and says where they disagree.
    ///
    /// With --robust, plans for not knowing Kaspi's limits: the cheapest policy and pool safe
    /// and on time under every hypothesis at once, and what that costs over the cheapest plan
    /// under each alone (docs/robust-plan.md).
    ///
    /// Examples:
    ///   rotor plan --skus 1000 --interval 3m --policy window
    ///   rotor plan --skus 500 --robust --price-change-share 0.1
    #[command(verbatim_doc_comment)]
    Plan(PlanArgs),
    /// Check the seed plan's numeric claims against the simulator.
    ///
    /// Runs the seed's settings (several full simulated days) and prints each claim with the
    /// simulated value and a verdict; with --out, writes README.md and report.html there.
    #[command(verbatim_doc_comment)]
    SeedClaims {
        /// Where to write README.md and report.html.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Start the fake Kaspi, the fake Proxy6 and N loopback proxies, to try live mode by hand.
    ///
    /// Everything listens on 127.0.0.1. Prints the URLs and a live config that refers to the
    /// credentials by environment variable; the values go to a file readable only by you, whose
    /// path is printed. Ctrl-C stops everything.
    ///
    /// With --scenario it serves a load run's world instead (the fake Kaspi with the scenario's
    /// hypotheses and latency on a clock --time-scale times faster, one proxy per pool proxy)
    /// and prints its control URL for `rotor load --attach`.
    ///
    /// Examples:
    ///   rotor mock --proxies 5
    ///   rotor mock --scenario scenarios/load-small.toml --time-scale 200
    #[command(verbatim_doc_comment)]
    Mock(MockArgs),
    /// Run live: reprice, poll orders and sync the catalogue over real HTTP, through the pool.
    ///
    /// Reads live.toml (see docs/live.md): the store, the Kaspi hosts, the proxies, the sellers
    /// and the engine's numbers. Secrets come from environment variables or files the config
    /// names, never from the config itself. State lives in an SQLite file, so a restart (even
    /// after kill -9) keeps every budget and rest. SIGINT or SIGTERM stop it cleanly.
    /// Try it with --dry-run first: prices are decided and stored, and none is pushed.
    ///
    /// Exit codes: 0 after a clean stop, 2 for a bad config, secret or SKU file, 3 when a
    /// --once run got no call through (every one failed), 1 otherwise.
    ///
    /// Examples:
    ///   rotor live --config live.toml --dry-run --once
    ///   rotor live --config live.toml --sync-catalog
    #[command(verbatim_doc_comment)]
    Live(LiveArgs),
    /// Replay a scenario through live mode over real sockets, K times faster than real time.
    ///
    /// Starts the fake Kaspi (with the scenario's limit hypotheses and latency) and one loopback
    /// forward proxy per pool proxy in this process, then runs the scenario's users, modules and
    /// faults through live mode's driver, store and HTTP clients. Every scenario duration lasts
    /// 1/K of it: with --time-scale 200, one hour of schedule takes 18 s. It stops by itself at
    /// the scenario's end (its last cycles drained) or at --max-requests.
    ///
    /// Prints the verdicts and figures in scenario time, like `rotor sim`, and the real-time
    /// ones: throughput, latency per endpoint, decision-to-wire time, the engine's CPU share,
    /// descriptors and memory. --out writes summary.json, the CSVs, report.html and load.json.
    /// --compare also runs the simulator and puts the figures side by side (docs/performance.md
    /// gives the tolerances).
    ///
    /// Exit codes: 0 when every check holds (and, with --compare, every figure agrees), 3 when
    /// one fails, 2 for bad input, 1 otherwise.
    ///
    /// Examples:
    ///   rotor load scenarios/load-small.toml --time-scale 200 --compare
    ///   rotor load scenarios/load-1000.toml --time-scale 100 --max-requests 150000 --out /tmp/bench
    ///   rotor mock --scenario scenarios/load-1000.toml --time-scale 100 &   # prints a control URL
    ///   rotor load scenarios/load-1000.toml --time-scale 100 --attach http://127.0.0.1:PORT
    #[command(verbatim_doc_comment)]
    Load(LoadArgs),
    /// Check every configured proxy against the four Kaspi endpoints (the seed's Phase 0).
    ///
    /// One request per proxy and endpoint, straight through the proxy, one proxy at a time (the
    /// seller's credentials never go through many proxies at once); the price endpoint is
    /// checked for reachability only (GET), so no price changes. No lease counts these
    /// requests, so each probed proxy rests one rest period from the probe, recorded in the
    /// store (the store key must be set) before its first request. Proxies resting or dead in
    /// the store are skipped unless --include-resting. Prints a table; exit 3 when fewer than
    /// 80% of the probed checks pass.
    ///
    /// Example:
    ///   rotor probe --config live.toml
    #[command(verbatim_doc_comment)]
    Probe {
        /// The live config.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Probe proxies that are resting or dead in the store too (their rest is extended).
        #[arg(long)]
        include_resting: bool,
    },
    /// Measure Kaspi's limits on the storefront through one spare proxy, safely.
    ///
    /// Runs, through the --proxy entry of the config: a count run (300 requests at 1 per
    /// second, past the seed's 250 in 30 minutes), a step-up ramp with holds up to the ceiling,
    /// the length of the ban the first refusal brings (probing until answers return), and a
    /// bisection between the last clean and the first refused rate. Only the storefront's
    /// offers (public, per IP, no merchant credentials) are ever asked. The proxy must be spare;
    /// the store holds it while the calibration runs (no seller is given it) and rests it
    /// afterwards for the longest ban seen or the policy's rest. Ctrl-C stops and still writes
    /// what was learned. Writes DIR/hypothesis.toml ([[kaspi.limiter]] entries, itself a
    /// scenario for rotor sim, and the --limits of rotor plan and rotor sweep), DIR/report.md
    /// and DIR/report.html. docs/calibrate.md states the safety rules.
    ///
    /// Exit codes: 0 when it finished, 3 when it stopped early (budget, Ctrl-C, a ban past
    /// --max-ban, a broken proxy: the files say what was learned), 2 for bad input (a flag, the
    /// config, a proxy that is not spare, an account-scoped endpoint), 1 otherwise.
    ///
    /// Examples:
    ///   rotor calibrate --config live.toml --proxy 7 --dry-run
    ///   rotor calibrate --config live.toml --proxy 7 --out calibration/ --skus 500
    ///   rotor plan --skus 500 --policy rate --limits calibration/hypothesis.toml
    #[command(verbatim_doc_comment)]
    Calibrate(CalibrateArgs),
    /// See and steer a live deployment through its store, with one worker or several.
    ///
    /// Views read the store. Controls write a decision there, and every worker applies it at
    /// its next tick (within a second or so): a drained seller is handed back and claimed by no
    /// worker until resumed; a revived or retired proxy changes in every worker's engine.
    ///
    /// Exit codes: 0 when done, 2 for a bad config, an unknown proxy or seller, or a control
    /// that does not apply (reviving a live proxy, releasing a seller still served), 1 when the
    /// store fails.
    ///
    /// Examples:
    ///   rotor ctl --config live.toml status
    ///   rotor ctl --config live.toml proxies
    ///   rotor ctl --config live.toml drain 3 && rotor ctl --config live.toml release 3
    ///   rotor ctl --config live.toml confirm 3 SKU-100
    #[command(verbatim_doc_comment)]
    Ctl {
        /// The live config (the store and its key are read from it). Required; accepted before
        /// or after the action (`rotor ctl status --config live.toml`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        action: CtlAction,
    },
    /// Hand on the order log of a live deployment as JSON Lines.
    ///
    /// One line per order event (`new` when an order is first stored, `changed` when its state
    /// or status moves on: completed, cancelled, returned), with the order as stored now: its
    /// fields, delivery mode, pickup point, planned date and entries. Each line has a `seq`.
    /// With --out the lines are appended to the file and, without --since, the export resumes
    /// after the file's last line: run it on a schedule and nothing is lost or repeated.
    ///
    /// Examples:
    ///   rotor orders export --config live.toml --since 24h
    ///   rotor orders export --config live.toml --out orders.jsonl
    ///   rotor orders dead-letters --config live.toml
    #[command(verbatim_doc_comment)]
    Orders {
        /// What to do.
        #[command(subcommand)]
        action: OrdersAction,
    },
    /// Hand on the price decisions of a live deployment as JSON Lines, as `orders export` does.
    ///
    /// One line per decision: the SKU, old and new price, cheapest rival, why, and whether it
    /// was pushed. Decisions older than `[store] decisions_retention` are pruned.
    ///
    /// Example:
    ///   rotor decisions export --config live.toml --out decisions.jsonl
    #[command(verbatim_doc_comment)]
    Decisions {
        /// What to do.
        #[command(subcommand)]
        action: ExportAction,
    },
    /// List the scenarios built into this binary.
    #[command(verbatim_doc_comment)]
    Scenarios,
}
