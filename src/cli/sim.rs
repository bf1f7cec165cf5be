//! The arguments of the simulator's commands: `rotor sim`, `test`, `diff`, `sweep`, `plan` and
//! `load`.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    /// SKUs of the seller.
    #[arg(long)]
    pub(crate) skus: u32,

    /// The demper cycle, such as 3m or 90s.
    #[arg(long, default_value = "3m")]
    pub(crate) interval: String,

    /// The lease policy; several, comma-separated, plan each [default: rest; with --robust or
    /// --compare-hypotheses' robust section: all three]
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) policy: Vec<PolicyArg>,

    /// The limit hypotheses Kaspi is assumed to apply; several, comma-separated, plan each
    /// [default: seed; with --robust: all three]
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) hypothesis: Vec<HypothesisArg>,

    /// Plan under all three hypotheses (seed, community, measured), side by side, then the
    /// robust plan: what is safe under all three at once.
    #[arg(long, conflicts_with_all = ["hypothesis", "robust"])]
    pub(crate) compare_hypotheses: bool,

    /// Plan under the limiters of this file instead of a named hypothesis: the
    /// `[[kaspi.limiter]]` entries of a scenario, or the hypothesis.toml `rotor calibrate`
    /// writes.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["hypothesis", "robust", "compare_hypotheses"])]
    pub(crate) limits: Option<PathBuf>,

    /// Plan for not knowing which hypothesis is true: the cheapest policy and pool that are safe
    /// and on time under every --hypothesis at once (all three by default), next to the cheapest
    /// plan under each alone, and what the difference costs per seller per 30 days.
    #[arg(long)]
    pub(crate) robust: bool,

    /// The share of SKUs whose price changes each demper cycle, 0 to 1: price updates go through
    /// the merchant account's rate, which no proxy can raise.
    #[arg(long, default_value_t = 1.0, value_name = "SHARE")]
    pub(crate) price_change_share: f64,

    /// How much of each measured rate limit's safe rate the plan counts on (1.0: the rate
    /// observed safe, never the modelled threshold above it; 0.8: four fifths of it). Above 1.0
    /// only if you accept planning past what was seen safe.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    pub(crate) margin: f64,

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

    /// Sweep under the limiters of this file instead (the `[[kaspi.limiter]]` entries of a
    /// scenario, or the hypothesis.toml `rotor calibrate` writes).
    #[arg(long, value_name = "FILE", conflicts_with = "hypothesis")]
    pub(crate) limits: Option<PathBuf>,

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

    /// Play only the scenario's first SPAN (for example 2h30m): the run, the faults and, with
    /// --compare, the simulator's run all end there. At most the scenario's own duration.
    #[arg(long, value_name = "SPAN")]
    pub(crate) duration: Option<String>,

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

    /// Write the run's reports into this directory (created if missing): report.html (one
    /// self-contained page with every chart), summary.md (verdicts and key figures, to paste),
    /// summary.json (every figure; `rotor diff` reads it), cycles.csv (one row per
    /// cycle), proxies.csv (one row per proxy), minutes.csv (the per-minute timeline) and
    /// charts/*.svg and *.png.
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
