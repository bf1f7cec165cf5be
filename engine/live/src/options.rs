//! How a run was asked to behave: the flags of `rotor live`, shared by the run loop and the
//! claim loop that starts each seller's workers.

use rotor_engine::Duration;

/// How a run was asked to behave.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Decide and store prices, push nothing.
    pub dry_run: bool,
    /// Sync each seller's catalogue at start (besides any schedule).
    pub sync_catalog: bool,
    /// One demper pass, one orders poll (and the catalogue sync if asked) per seller, then stop.
    pub once: bool,
    /// Stop after this long.
    pub run_for: Option<Duration>,
    /// With `once`: a call that would wait longer than this is skipped and reported, so a
    /// batch never idles on a rest (`None`: wait as long as it takes).
    pub max_wait: Option<Duration>,
    /// This worker's name in lane leases (overrides `[workers] id`).
    pub worker_id: Option<String>,
    /// The status endpoint's address (overrides `[status] listen`).
    pub status_listen: Option<std::net::SocketAddr>,
    /// The config file, read again on SIGHUP (`None`: SIGHUP is ignored).
    pub config_path: Option<std::path::PathBuf>,
}
