//! The calibration over HTTP, through one spare proxy of the config, against the storefront's
//! offers endpoint only (public, limited per IP, no merchant credentials). The store holds the
//! proxy while it runs, so that no seller is given it, and rests it afterwards for the longest
//! ban seen or the policy's longest rest, whichever is longer. A hold is renewed every 15
//! minutes and lapses by itself 30 minutes after a crash, its rest covering the longest ban
//! the calibration may have caused.

use std::net::IpAddr;

use rotor_engine::{Duration, Instant, ProxyId};
use tokio::sync::{mpsc, watch};

use super::core::{Answer, Calibrator, Settings, Step};
use super::findings::Findings;
use crate::clock;
use crate::config::LiveConfig;
use crate::error::LiveError;
use crate::store::NotSpare;
use crate::transport::{self, ProxyEndpoint, Timeouts};

/// How long a hold lasts without a renewal.
const HOLD: Duration = Duration::from_mins(30);

/// How often a hold is renewed.
const RENEW: Duration = Duration::from_mins(15);

/// What to calibrate.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The `[[proxy]]` entry, counted from 1.
    pub proxy: usize,
    /// The product whose offers are asked for (`None`: the first seller's first SKU).
    pub product: Option<String>,
    /// What the calibration may do.
    pub settings: Settings,
}

/// A finished (or stopped) calibration.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// What it learned.
    pub findings: Findings,
    /// The proxy, as the store knows it.
    pub proxy: ProxyId,
    /// `user@host:port` (no password).
    pub proxy_name: String,
    /// The address Kaspi saw.
    pub egress: IpAddr,
    /// The product asked for.
    pub product: String,
    /// When it started.
    pub started: Instant,
    /// Until when the proxy rests.
    pub rest_until: Instant,
}

/// How an answer counts, or why the calibration cannot go on.
enum Heard {
    Answer(Answer),
    Stop(String),
}

fn classify(result: &Result<transport::Reply, rotor_engine::ProxyFailure>) -> Heard {
    match result {
        Ok(r) if (200..300).contains(&r.status) => Heard::Answer(Answer::Ok),
        Ok(r) if r.status == 403 || r.status == 429 => {
            let body: String =
                String::from_utf8_lossy(&r.body).chars().filter(|c| !c.is_control()).take(160).collect();
            Heard::Answer(Answer::Refused { status: r.status, body })
        }
        Ok(r) if (400..500).contains(&r.status) => Heard::Stop(format!(
            "the storefront answered {} to the offers request: the product or the storefront URL is wrong (give --product)",
            r.status
        )),
        Ok(_) | Err(_) => Heard::Answer(Answer::Failed),
    }
}

/// The proxy `n` (from 1) of `config`, or an error naming the valid range.
fn proxy_entry(config: &LiveConfig, n: usize) -> Result<&crate::config::ProxyConfig, LiveError> {
    let count = config.proxies.len();
    n.checked_sub(1).and_then(|i| config.proxies.get(i)).ok_or_else(|| {
        LiveError::Config(if count == 0 {
            "--proxy: the config has no [[proxy]] entry to calibrate through".into()
        } else {
            format!("--proxy {n}: the config has {count} [[proxy]] entries; valid: 1 to {count}")
        })
    })
}

/// Why a proxy cannot be held, in words.
fn refusal(name: &str, why: &NotSpare) -> String {
    let what = match why {
        NotSpare::Dead => "is dead".to_owned(),
        NotSpare::Allocated(user, module) => format!("is allocated to u{user}/{module}"),
        NotSpare::LeaseOpen => "has a lease open".to_owned(),
        NotSpare::Resting(until) => format!("is resting until {}", crate::log::utc(*until)),
        NotSpare::Held(until) => format!("is held by another calibration until {}", crate::log::utc(*until)),
        NotSpare::Unknown => "is not in the store".to_owned(),
    };
    format!(
        "proxy {name} {what}; rotor calibrate needs a spare proxy (live, unallocated, not resting): pick another, or wait"
    )
}

/// What a calibration needs before its first request, each piece checked.
struct Prepared<'a> {
    entry: &'a crate::config::ProxyConfig,
    name: String,
    product: String,
    client: reqwest::Client,
    store: crate::store::Store,
    id: ProxyId,
}

/// Checks everything a calibration of `target` needs and opens the store: the proxy entry, the
/// product, the proxy's password, its client, and its row in the store.
fn prepare<'a>(config: &'a LiveConfig, target: &Target) -> Result<Prepared<'a>, LiveError> {
    let entry = proxy_entry(config, target.proxy)?;
    let name = match &entry.user {
        Some(u) => format!("{u}@{}:{}", entry.host, entry.port),
        None => format!("{}:{}", entry.host, entry.port),
    };
    let product = match &target.product {
        Some(p) => p.clone(),
        None => first_product(config)?,
    };
    let password = match &entry.password {
        Some(s) => {
            Some(s.resolve().map_err(LiveError::secret(format!("[[proxy]] #{}: password", target.proxy)))?)
        }
        None => None,
    };
    let timeouts = Timeouts { request: config.timeout, connect: config.connect_timeout };
    let client = transport::client(
        &ProxyEndpoint { url: &entry.url, username: entry.user.as_deref(), password: password.as_ref() },
        timeouts,
    )?;
    let (store, _, ids) = crate::run::open_state(config, crate::run::Opener::Tool)?;
    // `proxy_entry` checked the index: the row is the one recorded for that entry.
    let id = ids
        .get(target.proxy - 1)
        .copied()
        .ok_or_else(|| LiveError::Config(format!("proxy {name} is not in the store")))?;
    Ok(Prepared { entry, name, product, client, store, id })
}

/// What `rotor calibrate --dry-run` checks: everything the run refuses before its first
/// request (the proxy entry, the product, the secrets, the store and its key, the proxy being
/// spare now), holding nothing and sending nothing. Returns the proxy's name.
pub fn preflight(config: &LiveConfig, target: &Target) -> Result<String, LiveError> {
    let Prepared { name, mut store, id, .. } = prepare(config, target)?;
    match store.spare_for_calibration(id, clock::now().as_millis())? {
        Ok(()) => Ok(name),
        Err(why) => Err(LiveError::Config(refusal(&name, &why))),
    }
}

/// Runs the calibration of `target` until it finishes, the budget is spent or `stop` turns
/// true; `progress` is called about once a second.
pub async fn calibrate(
    config: &LiveConfig,
    target: &Target,
    mut stop: watch::Receiver<bool>,
    progress: &mut (dyn FnMut(&Calibrator) + Send),
) -> Result<Calibration, LiveError> {
    let Prepared { entry, name, product, client, mut store, id } = prepare(config, target)?;
    let started = clock::now();
    let mut cal = Calibrator::new(target.settings, started).map_err(LiveError::Config)?;
    let max_ban = target.settings.max_ban;
    let held = |now: Instant| ((now + HOLD).as_millis(), (now + HOLD + max_ban).as_millis());
    let (until, rest) = held(started);
    if let Err(why) = store.hold_for_calibration(id, started.as_millis(), until, rest)? {
        return Err(LiveError::Config(refusal(&name, &why)));
    }
    store.journal("calibrate", &format!("{name} held for a calibration"), started.as_millis())?;
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Heard)>();
    let mut renew_at = started + RENEW;
    let mut shown = std::time::Instant::now();
    loop {
        while let Ok((id, heard)) = rx.try_recv() {
            hear(&mut cal, id, heard);
        }
        let now = clock::now();
        if now >= renew_at {
            let (until, rest) = held(now);
            store.renew_hold(id, until, rest)?;
            renew_at = now + RENEW;
        }
        if *stop.borrow() {
            cal.stop("stopped by a signal (Ctrl-C or SIGTERM)");
        }
        if shown.elapsed() >= std::time::Duration::from_secs(1) {
            progress(&cal);
            shown = std::time::Instant::now();
        }
        let wake = match cal.poll(now) {
            Step::Done => break,
            Step::Send(request) => {
                let tx = tx.clone();
                let builder = crate::kaspi::offers_request(&client, &config.kaspi, &product, 0);
                tokio::spawn(async move {
                    let result = transport::exchange(builder).await;
                    let _ = tx.send((request, classify(&result)));
                });
                continue;
            }
            Step::Wait(t) => t.min(renew_at),
            Step::Await => renew_at,
        };
        tokio::select! {
            () = clock::sleep_until(wake) => {}
            Some((id, heard)) = rx.recv() => hear(&mut cal, id, heard),
            _ = stop.changed() => {}
        }
    }
    let findings = cal.findings();
    let longest_ban = findings.bans.iter().map(|b| b.hi.unwrap_or(b.lo)).max().unwrap_or(Duration::ZERO);
    let end = clock::now();
    let rest_until = end + longest_ban.max(config.engine.policy.longest_rest());
    store.end_hold(id, rest_until.as_millis())?;
    let note = format!(
        "{name}: {} requests; rests until {}",
        findings.sent,
        crate::log::utc(rest_until.as_millis())
    );
    store.journal("calibrate", &note, end.as_millis())?;
    Ok(Calibration {
        findings,
        proxy: id,
        proxy_name: name,
        egress: entry.egress_ip,
        product,
        started,
        rest_until,
    })
}

fn hear(cal: &mut Calibrator, id: u64, heard: Heard) {
    match heard {
        Heard::Answer(a) => cal.answered(id, clock::now(), &a),
        Heard::Stop(why) => cal.stop(&why),
    }
}

/// The first seller's first SKU's product: a product the storefront lists.
fn first_product(config: &LiveConfig) -> Result<String, LiveError> {
    let user = config.users.first().ok_or_else(|| {
        LiveError::Config("give --product: the config has no [[user]] whose SKU file names one".into())
    })?;
    crate::workers::demper::load_skus(&user.skus)
        .map_err(|source| LiveError::Skus { user: user.id, source })?
        .first()
        .map(|s| s.product_id.clone())
        .ok_or_else(|| LiveError::Config("give --product: the first user's SKU file is empty".into()))
}
