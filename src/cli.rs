//! The command line's shape: clap structs holding fields and help text only. Each command turns
//! its arguments into a validated configuration before anything runs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// 2 for bad input (every file that does not load is listed with its place).
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
    /// Example:
    ///   rotor plan --skus 1000 --interval 3m --policy window
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
        /// The live config (the store and its key are read from it).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
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
    #[command(verbatim_doc_comment)]
    Orders {
        /// What to do.
        #[command(subcommand)]
        action: ExportAction,
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

/// What `rotor orders` and `rotor decisions` do.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum ExportAction {
    /// Write the log as JSON Lines, to standard output or appended to --out.
    Export(ExportArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ExportArgs {
    /// The live config (the store and its key are read from it).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// Where to start: a seq from an earlier export (the lines after it), a span back from now
    /// (`24h`, `7d`), or a UTC instant (`2026-11-24T02:50:00Z`). Default: after --out's last
    /// line, or the start of the log.
    #[arg(long, value_name = "SEQ|SPAN|INSTANT")]
    pub(crate) since: Option<String>,
    /// Append to this file instead of writing to standard output.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

/// `rotor ctl` actions.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum CtlAction {
    /// Workers alive, each seller (served by, drained or freed, proxies), held price drops and
    /// the pool's counts.
    Status,
    /// Every proxy: id, egress IP, lane, state, rest-until, leases so far and why it is dead.
    Proxies,
    /// Bring a dead proxy back: it rests a full rest after its last request, then carries.
    Revive {
        /// The proxy's id (see `proxies`).
        proxy: u32,
    },
    /// Take a proxy out of service for good; its lane replaces it from the free pool.
    Retire {
        /// The proxy's id (see `proxies`).
        proxy: u32,
    },
    /// Stop serving a seller: its worker lets its requests end and hands its lanes back, and no
    /// worker claims it until `resume`.
    Drain {
        /// The seller's `[[user]] id`.
        user: u32,
    },
    /// End a drain: a worker claims the seller at its next tick.
    Resume {
        /// The seller's `[[user]] id`.
        user: u32,
    },
    /// Give a drained seller's proxies back to the pool (a lease left open is spent first).
    Release {
        /// The seller's `[[user]] id`.
        user: u32,
    },
    /// Confirm the seller's price drops held as larger than `[demper] max_drop_percent`.
    Confirm {
        /// The seller's `[[user]] id`.
        user: u32,
        /// Only this SKU (default: every held drop of the seller).
        sku: Option<String>,
    },
}

impl CtlAction {
    pub(crate) fn to_live(&self) -> rotor_live::ctl::Action {
        use rotor_live::ctl::Action;
        match self {
            CtlAction::Status => Action::Status,
            CtlAction::Proxies => Action::Proxies,
            CtlAction::Revive { proxy } => Action::Revive(*proxy),
            CtlAction::Retire { proxy } => Action::Retire(*proxy),
            CtlAction::Drain { user } => Action::Drain(*user),
            CtlAction::Resume { user } => Action::Resume(*user),
            CtlAction::Release { user } => Action::Release(*user),
            CtlAction::Confirm { user, sku } => Action::Confirm(*user, sku.clone()),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LiveArgs {
    /// The live config (TOML).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,

    /// Decide and store every price, log it, and push nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Sync each seller's catalogue from the cabinet at start.
    #[arg(long)]
    pub(crate) sync_catalog: bool,

    /// One demper pass and one orders poll per seller, then stop.
    #[arg(long)]
    pub(crate) once: bool,

    /// Stop by itself after this long, such as `90s` or `8h`.
    #[arg(long, value_name = "DURATION")]
    pub(crate) run_for: Option<String>,

    /// This worker's name in lane leases, when several share one PostgreSQL store
    /// (default: `[workers] id`, else host name and process id).
    #[arg(long, value_name = "NAME")]
    pub(crate) worker_id: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct MockArgs {
    /// A TOML file with any of `proxies`, `stock` and `seed`; its values replace the flags'.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Loopback proxies to start (egress 127.0.0.2 upwards), besides the Proxy6 stock.
    #[arg(long, default_value_t = 10)]
    pub(crate) proxies: u8,

    /// Proxies the fake Proxy6 has in stock to sell.
    #[arg(long, default_value_t = 20)]
    pub(crate) stock: u32,

    /// Seed of the fake catalogue and orders.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,

    /// Where to write the credentials (created readable only by you). Defaults to a file in
    /// the system's temporary directory.
    #[arg(long, value_name = "FILE")]
    pub(crate) env_file: Option<PathBuf>,

    /// Serve the world of this scenario for `rotor load --attach` instead: the fake Kaspi with
    /// its hypotheses and latency, one loopback proxy per pool proxy, and a control URL.
    #[arg(long, value_name = "SCENARIO")]
    pub(crate) scenario: Option<String>,

    /// With --scenario: the clock's scale, as `rotor load --time-scale` will use.
    #[arg(long, default_value_t = 100.0, value_name = "K")]
    pub(crate) time_scale: f64,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    /// SKUs of the seller.
    #[arg(long)]
    pub(crate) skus: u32,

    /// The demper cycle, such as 3m or 90s.
    #[arg(long, default_value = "3m")]
    pub(crate) interval: String,

    /// The lease policy; several, comma-separated, plan each.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "rest")]
    pub(crate) policy: Vec<PolicyArg>,

    /// The limit hypotheses Kaspi is assumed to apply; several, comma-separated, plan each.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "seed")]
    pub(crate) hypothesis: Vec<HypothesisArg>,

    /// Plan under all three hypotheses (seed, community, measured), side by side.
    #[arg(long, conflicts_with = "hypothesis")]
    pub(crate) compare_hypotheses: bool,

    /// The share of SKUs whose price changes each demper cycle, 0 to 1: price updates go through
    /// the merchant account's rate, which no proxy can raise.
    #[arg(long, default_value_t = 1.0, value_name = "SHARE")]
    pub(crate) price_change_share: f64,

    /// Print the plan as JSON (docs/plan-json.md) instead of tables.
    #[arg(long)]
    pub(crate) json: bool,

    /// How long each simulated run lasts; long enough for several rests.
    #[arg(long, default_value = "6h")]
    pub(crate) duration: String,

    /// Seed of the simulated runs.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

/// `--policy` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum PolicyArg {
    /// 249 requests per lease, then 40 minutes of rest.
    Rest,
    /// At most 249 requests in any 30 minutes.
    Window,
    /// At most 8 requests per second per IP, one at a time; no count limit.
    Rate,
}

/// `--hypothesis` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum HypothesisArg {
    /// 250 requests per 30 minutes per IP, then 429.
    Seed,
    /// Offers 8 rps per IP (403 ban), price updates 1.5 rps per account (429, 30-minute ban),
    /// Shop API for Kazakh IPs only.
    Community,
    /// As measured by the seed's authors: offers ~12.5 rps per IP (403, 10 s ban), price
    /// updates ~2.5 rps per account (429, 30-minute ban), no count limit (docs/limits.md).
    Measured,
}

impl HypothesisArg {
    /// The scenario's name for the same set.
    pub(crate) fn choice(self) -> rotor_sim::scenario::HypothesisChoice {
        use rotor_sim::scenario::HypothesisChoice;
        match self {
            HypothesisArg::Seed => HypothesisChoice::Seed,
            HypothesisArg::Community => HypothesisChoice::Community,
            HypothesisArg::Measured => HypothesisChoice::Measured,
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct SweepArgs {
    /// A scenario file with a `[sweep]` table.
    pub(crate) scenario: PathBuf,

    /// Where to write the sweep's files.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,

    /// Stop any one run with an error after this many events.
    #[arg(long, default_value_t = 500_000_000, value_name = "N")]
    pub(crate) max_steps: u64,

    /// Sweep these limit hypotheses instead of the `[sweep] hypothesis` list (comma-separated:
    /// seed, community, measured).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SET")]
    pub(crate) hypothesis: Vec<HypothesisArg>,

    /// No progress bar.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Scenario files, or directories searched for `*.toml` files.
    #[arg(default_value = "scenarios", value_name = "PATHS")]
    pub(crate) paths: Vec<PathBuf>,

    /// The seeds: a count N (each file's own seed and the next N - 1), or a range used for
    /// every file, `A..B` (B excluded) or `A..=B`.
    #[arg(long, default_value = "1", value_name = "N|A..B")]
    pub(crate) seeds: String,

    /// Write a JUnit XML report here: a test suite per file, a test case per check.
    #[arg(long, value_name = "FILE")]
    pub(crate) junit: Option<PathBuf>,

    /// Write the result as JSON here (docs/schemas/test-result.schema.json): every check and
    /// every figure as a distribution over the seeds.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,

    /// Also print, for every file, each check's figure over the seeds (mean, min, max and the
    /// 95% interval of the mean).
    #[arg(long)]
    pub(crate) figures: bool,

    /// For each failed file, shrink its first failed check on its first failing seed to a
    /// smaller scenario that still fails it, written as SCENARIO.seedN.shrunk.toml beside the
    /// --json or --junit file (else here), with the command that replays it.
    #[arg(long)]
    pub(crate) shrink: bool,

    /// Stop any one run with an error after this many events.
    #[arg(long, default_value_t = 500_000_000, value_name = "N")]
    pub(crate) max_steps: u64,

    /// No progress bar.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {
    /// The baseline: a summary.json, a directory holding one, or a `rotor test --json` file.
    pub(crate) base: PathBuf,

    /// The run to judge, in any of the same forms.
    pub(crate) new: PathBuf,

    /// Exit 3 when a figure's change crosses this: FIGURE OP CHANGE, where FIGURE is a key
    /// (`cycles.demper.p99_ms`), an [expect] metric (`demper_cycle_p99`) or a prefix ending in
    /// `*` (`safety.*`), OP is >, >=, < or <=, and CHANGE is a percentage (`+10%`) or an amount
    /// (`0`, `+5000`). Repeatable.
    #[arg(long = "fail-if", value_name = "EXPR")]
    pub(crate) fail_if: Vec<String>,

    /// How to print the comparison.
    #[arg(long, value_enum, default_value_t = DiffFormat::Table)]
    pub(crate) format: DiffFormat,

    /// Show only the figures that changed (keys on one side only and thresholds are always
    /// shown).
    #[arg(long)]
    pub(crate) changed: bool,
}

/// `rotor diff --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DiffFormat {
    /// An aligned table.
    Table,
    /// A Markdown table, for a pull request.
    Markdown,
    /// JSON (docs/schemas/diff.schema.json).
    Json,
}

#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {
    /// A scenario file (TOML, see docs/scenarios.md), or the name of a built-in scenario.
    pub(crate) scenario: String,

    /// How many times faster than real time the run goes (1 to 100000).
    #[arg(long, default_value_t = 100.0, value_name = "K")]
    pub(crate) time_scale: f64,

    /// Stop after this many requests have been sent.
    #[arg(long, value_name = "N")]
    pub(crate) max_requests: Option<u64>,

    /// Also run the simulator on the scenario and compare; exit 3 when a figure differs beyond
    /// its tolerance.
    #[arg(long)]
    pub(crate) compare: bool,

    /// Write summary.json, the CSVs, report.html and load.json (and compare.txt) here.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,

    /// Override the scenario's seed.
    #[arg(long)]
    pub(crate) seed: Option<u64>,

    /// Whose proxies the proxy-timeline chart shows.
    #[arg(long, default_value_t = 1, value_name = "USER")]
    pub(crate) timeline_user: u32,

    /// Use the world (fake Kaspi and proxies) that `rotor mock --scenario` serves at this
    /// control URL instead of starting one in this process, so that this process holds only
    /// the client side. Same scenario, seed and --time-scale on both; a fresh world per run.
    #[arg(long, value_name = "URL")]
    pub(crate) attach: Option<String>,

    /// No progress line.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SimArgs {
    /// A scenario file (TOML, see docs/scenarios.md), or the name of a built-in scenario
    /// (`rotor scenarios` lists them). Defaults to the built-in seed-500.
    pub(crate) scenario: Option<String>,

    /// Override the scenario's seed.
    #[arg(long)]
    pub(crate) seed: Option<u64>,

    /// Write summary.json, cycles.csv and proxies.csv into this directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,

    /// Write one CSV row per request attempt to this file (it can be large: about 60 bytes a
    /// row, millions of rows for a day).
    #[arg(long, value_name = "FILE")]
    pub(crate) trace: Option<PathBuf>,

    /// Stop with an error after this many events, so that a run that never settles fails loudly.
    #[arg(long, default_value_t = 500_000_000, value_name = "N")]
    pub(crate) max_steps: u64,

    /// Whose proxies the proxy-timeline chart shows.
    #[arg(long, default_value_t = 1, value_name = "USER")]
    pub(crate) timeline_user: u32,

    /// Print only the verdict table: no progress, no seed line.
    #[arg(long, short)]
    pub(crate) quiet: bool,

    /// When a check fails, search for a smaller scenario that still fails it under the same
    /// seed (fewer users, SKUs, proxies and faults, a shorter run, workloads off, a fixed
    /// latency), write it as SCENARIO.seedN.shrunk.toml (in --out's directory, else here) and
    /// print the command that replays it.
    #[arg(long)]
    pub(crate) shrink: bool,

    /// With --out, compare the run with this baseline (a summary.json, a `rotor sim --out`
    /// directory or a `rotor test --json` file) in report.html and diff.md.
    #[arg(long, value_name = "PATH", requires = "out")]
    pub(crate) baseline: Option<PathBuf>,
}
