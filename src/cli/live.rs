//! The arguments of live mode and the fakes: `rotor live`, `rotor ctl`, the exports, `rotor mock`.

use std::path::PathBuf;

use clap::Subcommand;

/// What `rotor orders` and `rotor decisions` do.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum ExportAction {
    /// Write the log as JSON Lines, to standard output or appended to --out.
    Export(ExportArgs),
}

/// What `rotor orders` does.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum OrdersAction {
    /// Write the log as JSON Lines, to standard output or appended to --out.
    Export(ExportArgs),
    /// List the order events the webhook's receiver refused for good (set aside so later events
    /// flow), or ask for some to be delivered again once the receiver is fixed.
    ///
    /// Examples:
    ///   rotor orders dead-letters --config live.toml
    ///   rotor orders dead-letters --config live.toml --retry 412 --retry 413
    ///   rotor orders dead-letters --config live.toml --retry-all
    #[command(verbatim_doc_comment)]
    DeadLetters(DeadLetterArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DeadLetterArgs {
    /// The live config (the store and its key are read from it).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// Ask for this dead letter (its seq) to be delivered again; repeatable.
    #[arg(long, value_name = "SEQ", conflicts_with = "retry_all")]
    pub(crate) retry: Vec<u64>,
    /// Ask for every dead letter to be delivered again.
    #[arg(long)]
    pub(crate) retry_all: bool,
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
    /// Confirm the seller's price drops held by the drop guard: the SKUs named, each at the
    /// price held now, or with `--all VERSION` every drop of the held set that `rotor ctl status`
    /// showed with that version (a drop held since is not confirmed).
    Confirm {
        /// The seller's `[[user]] id`.
        user: u32,
        /// The SKUs whose held drops are confirmed.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        skus: Vec<String>,
        /// Every held drop of the seller, if the held set still has this version.
        #[arg(long, value_name = "VERSION")]
        all: Option<String>,
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
            CtlAction::Confirm { user, skus, all } => Action::Confirm(
                *user,
                match all {
                    Some(version) => rotor_live::ctl::ConfirmWhat::All(version.clone()),
                    None => rotor_live::ctl::ConfirmWhat::Skus(skus.clone()),
                },
            ),
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

    /// With --once: a call that would wait longer than this (a proxy's rest, an account's
    /// cooldown) is skipped, and the run ends by listing what it skipped and until when the
    /// lane waits, with exit 3. Default 30s.
    #[arg(long, value_name = "DURATION", requires = "once")]
    pub(crate) max_wait: Option<String>,

    /// This worker's name in lane leases, when several share one PostgreSQL store
    /// (default: `[workers] id`, else host name and process id).
    #[arg(long, value_name = "NAME")]
    pub(crate) worker_id: Option<String>,

    /// The status endpoint's address for this worker (overrides `[status] listen`), so several
    /// workers on one host each take their own; port 0 takes a free port, which the log names.
    #[arg(long, value_name = "ADDR")]
    pub(crate) status_listen: Option<std::net::SocketAddr>,
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

    /// Also write a ready trial into this directory: live.toml, skus.csv (20 of the fake's
    /// products) and credentials.env (readable only by you), then an empty `ready` file last.
    /// Then: `. DIR/credentials.env && rotor live --config DIR/live.toml --dry-run --once`.
    #[arg(long, value_name = "DIR")]
    pub(crate) trial: Option<PathBuf>,

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

/// `rotor calibrate`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CalibrateArgs {
    /// The live config: its store (and key), and the [[proxy]] entries.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,

    /// The [[proxy]] entry to measure through, counted from 1. It must be spare: live, allocated
    /// to no seller, its lease closed, not resting. The store holds it while the calibration
    /// runs and rests it afterwards.
    #[arg(long, value_name = "N")]
    pub(crate) proxy: usize,

    /// The endpoint to measure: only `offers` (the storefront: public, limited per IP). The
    /// account-scoped endpoints are refused: a ban there (about 30 minutes per merchant) would
    /// stop the seller's business.
    #[arg(long, default_value = "offers", value_name = "NAME")]
    pub(crate) endpoint: String,

    /// The product whose offers are asked for (default: the first seller's first SKU).
    #[arg(long, value_name = "ID")]
    pub(crate) product: Option<String>,

    /// Where the hypothesis file and the report go.
    #[arg(long, default_value = "calibration", value_name = "DIR")]
    pub(crate) out: PathBuf,

    /// Print the schedule (requests, duration, worst-case ban) and send nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// The ramp's first rate, requests per second.
    #[arg(long, default_value_t = 1.0, value_name = "RPS")]
    pub(crate) start_rps: f64,

    /// Each ramp step's rate over the one before.
    #[arg(long, default_value_t = 1.5, value_name = "FACTOR")]
    pub(crate) step: f64,

    /// How long each rate is held.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub(crate) hold: String,

    /// No rate above this is ever sent.
    #[arg(long, default_value_t = 20.0, value_name = "RPS")]
    pub(crate) ceiling_rps: f64,

    /// The bisection stops when the clean and the refused rate differ by less than this share.
    #[arg(long, default_value_t = 0.04, value_name = "SHARE")]
    pub(crate) precision: f64,

    /// Requests in all, at most.
    #[arg(long, default_value_t = 6_000, value_name = "N")]
    pub(crate) budget: u32,

    /// Requests of the count run, at --count-rps, before the ramp (0 skips it). The default
    /// passes the seed's 250 in 30 minutes.
    #[arg(long, default_value_t = 300, value_name = "N")]
    pub(crate) count_requests: u32,

    /// The count run's rate.
    #[arg(long, default_value_t = 1.0, value_name = "RPS")]
    pub(crate) count_rps: f64,

    /// A ban longer than this ends the calibration.
    #[arg(long, default_value = "2h", value_name = "DURATION")]
    pub(crate) max_ban: String,

    /// Then print the plan the measured limits imply for one seller with this many SKUs (as
    /// `rotor plan --skus N --limits DIR/hypothesis.toml` would).
    #[arg(long, value_name = "N")]
    pub(crate) skus: Option<u32>,

    /// Run the clock K times faster than real time: only for trials against the fakes
    /// (`rotor mock --scenario FILE --time-scale K`), never against Kaspi.
    #[arg(long, default_value_t = 1.0, value_name = "K")]
    pub(crate) time_scale: f64,
}
