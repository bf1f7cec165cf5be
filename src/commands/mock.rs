//! `rotor mock`: the fakes on loopback, for trying live mode by hand.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;

use rotor_engine::Secret;
use rotor_mock_kaspi::{ForwardProxy, KaspiConfig, KaspiMock, Merchant, Proxy6Config, Proxy6Mock};

use super::CliError;
use crate::cli::MockArgs;
use crate::exit;

/// `mock.toml`: the same knobs as the flags.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MockFile {
    proxies: Option<u8>,
    stock: Option<u32>,
    seed: Option<u64>,
}

pub(crate) fn run(flags: &MockArgs) -> Result<u8, CliError> {
    if let Some(which) = &flags.scenario {
        return serve_world(which, flags.time_scale);
    }
    let mut args = MockArgs {
        config: None,
        env_file: flags.env_file.clone(),
        scenario: None,
        trial: flags.trial.clone(),
        proxies: flags.proxies,
        stock: flags.stock,
        seed: flags.seed,
        time_scale: flags.time_scale,
    };
    if let Some(path) = &flags.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::bad_input(format!("{}: cannot read: {e}", path.display())))?;
        let file: MockFile = toml::from_str(&text).map_err(|e| {
            let place = e.span().map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                format!(":{line}")
            });
            CliError::bad_input(format!("{}{}: {}", path.display(), place.unwrap_or_default(), e.message()))
        })?;
        args.proxies = file.proxies.unwrap_or(args.proxies);
        args.stock = file.stock.unwrap_or(args.stock);
        args.seed = file.seed.unwrap_or(args.seed);
    }
    let args = &args;
    if args.proxies == 0 || args.proxies > 250 {
        return Err(CliError::bad_input(format!("--proxies is {}; valid: 1 to 250", args.proxies)));
    }
    if args.stock > 2_000 {
        return Err(CliError::bad_input(format!("--stock is {}; valid: 0 to 2000", args.stock)));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(serve(args))
}

/// `rotor mock --scenario`: the world of a load run, for `rotor load --attach`.
fn serve_world(which: &str, k: f64) -> Result<u8, CliError> {
    let sc = super::sim::load_scenario(which)?;
    rotor::load::check_time_scale(k).map_err(|e| CliError::bad_input(e.to_string()))?;
    rotor::load::world::check_supported(&sc).map_err(|e| CliError::bad_input(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let world = std::sync::Arc::new(
            rotor::load::world::World::start(&sc, k).await.map_err(|e| CliError::internal(e.to_string()))?,
        );
        let control = rotor::load::world::serve(std::sync::Arc::clone(&world)).await;
        println!(
            "rotor mock: the world of scenario {} (seed {}) at time scale {k}: {} loopback proxies; Ctrl-C stops it",
            sc.name, sc.seed, sc.pool.initial
        );
        println!("control {}", control.uri());
        println!("ready");
        let _ = std::io::stdout().flush();
        tokio::signal::ctrl_c().await.map_err(|e| CliError::internal(format!("cannot wait for Ctrl-C: {e}")))?;
        tracing::info!("rotor mock: stopped");
        Ok(exit::OK)
    })
}

async fn serve(args: &MockArgs) -> Result<u8, CliError> {
    let config = KaspiConfig { seed: args.seed, ..KaspiConfig::default() };
    let merchant = config.merchants[0].clone();
    let kaspi = KaspiMock::start(config)
        .await
        .map_err(|e| CliError::internal(format!("cannot start the fake Kaspi: {e}")))?;
    let proxy6 = Proxy6Mock::start(Proxy6Config { stock: args.stock, ..Proxy6Config::default() })
        .await
        .map_err(|e| CliError::internal(format!("cannot start the Proxy6 fake: {e}")))?;
    let mut proxies = Vec::new();
    let mut env = String::new();
    for i in 0..args.proxies {
        let password = format!("mock-{}-{i}", args.seed);
        let p = ForwardProxy::start(
            Ipv4Addr::new(127, 0, 0, 2 + i),
            Some((format!("px{i}"), Secret::new(password.clone()))),
        )
        .await
        .map_err(|e| CliError::internal(format!("cannot start proxy {i}: {e}")))?;
        let _ = writeln!(env, "export ROTOR_PROXY_{i}_PASSWORD='{password}'");
        proxies.push(p);
    }
    let _ = writeln!(env, "export ROTOR_KASPI_TOKEN='{}'", merchant.token.expose());
    let _ = writeln!(env, "export ROTOR_KASPI_SESSION='{}'", merchant.session.expose());
    let _ = writeln!(env, "export ROTOR_PROXY6_KEY='test-key'");
    // A throwaway store key for trials: 32 bytes derived from the seed, as hex.
    let store_key = (0..32u8).fold(String::new(), |mut k, i| {
        let _ = write!(k, "{:02x}", (args.seed as u8).wrapping_mul(31).wrapping_add(i.wrapping_mul(7)));
        k
    });
    let _ = writeln!(env, "export ROTOR_STORE_KEY='{store_key}'");
    let env_path = args
        .env_file
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("rotor-mock-{}.env", std::process::id())));
    write_private(&env_path, &env)
        .map_err(|e| CliError::internal(format!("cannot write {}: {e}", env_path.display())))?;

    println!("rotor mock: everything on loopback; Ctrl-C stops it.\n");
    println!("fake Kaspi      {}", kaspi.uri());
    println!("fake Proxy6 API {}  (key in $ROTOR_PROXY6_KEY)", proxy6.api_base());
    println!("credentials     source {}\n", env_path.display());
    let config = live_toml(&kaspi, &proxy6, &proxies, &merchant);
    if let Some(dir) = &args.trial {
        write_trial(dir, &config, &kaspi.products(), &env)
            .map_err(|e| CliError::internal(format!("cannot write the trial into {}: {e}", dir.display())))?;
        println!("trial           {}: live.toml, skus.csv, credentials.env", dir.display());
        println!(
            "  . {0}/credentials.env && rotor live --config {0}/live.toml --dry-run --once\n",
            dir.display()
        );
    }
    println!("# A live config for these fakes (docs/live.md); save it as live.toml, put a");
    println!("# skus.csv beside it (sku,product_id,floor,ceiling), and source the credentials file.");
    print!("{config}");
    if let Some(dir) = &args.trial {
        // Last: a script waiting for the trial starts once every file is in place.
        std::fs::write(dir.join("ready"), "")
            .map_err(|e| CliError::internal(format!("cannot write {}: {e}", dir.join("ready").display())))?;
    }
    println!("ready");
    let _ = std::io::stdout().flush();
    tokio::signal::ctrl_c().await.map_err(|e| CliError::internal(format!("cannot wait for Ctrl-C: {e}")))?;
    drop(proxies);
    let _ = std::fs::remove_file(&env_path);
    if let Some(dir) = &args.trial {
        let _ = std::fs::remove_file(dir.join("ready"));
    }
    tracing::info!("rotor mock: stopped");
    Ok(exit::OK)
}

/// A live config for the fakes: the store beside it, one `[[proxy]]` per loopback proxy, one
/// seller with every proxy and `skus.csv` beside it.
fn live_toml(
    kaspi: &KaspiMock,
    proxy6: &Proxy6Mock,
    proxies: &[ForwardProxy],
    merchant: &Merchant,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "[store]\npath = \"rotor-mock-state.db\"\n");
    let _ = writeln!(out, "[status]\nlisten = \"{}\"\n", rotor_live::config::defaults::STATUS_LISTEN);
    let _ = writeln!(
        out,
        "[kaspi]\nstorefront = \"{0}\"\ncabinet = \"{0}\"\nshop_api = \"{0}/shop/api/v2\"\n",
        kaspi.uri()
    );
    let _ = writeln!(
        out,
        "[proxy6]\napi = \"{}\"\nkey_env = \"ROTOR_PROXY6_KEY\"\nmin_pool = 0\n",
        proxy6.api_base()
    );
    // The default split needs 3 proxies (one per module); fewer get a split that still works.
    match proxies.len() {
        1 => out.push_str(
            "# One proxy: too few for the demper and its catalogue; orders only.\n[split]\ndemper = 0\norders = 100\ncatalog = 0\n\n",
        ),
        2 => out.push_str(
            "# Two proxies: the demper and its catalogue; orders are off.\n[split]\ndemper = 50\norders = 0\ncatalog = 50\n\n",
        ),
        _ => {}
    }
    for (i, p) in proxies.iter().enumerate() {
        let _ = writeln!(
            out,
            "[[proxy]]\nurl = \"{}\"\nuser = \"px{i}\"\npassword_env = \"ROTOR_PROXY_{i}_PASSWORD\"\negress_ip = \"{}\"\n",
            p.url(),
            p.egress()
        );
    }
    let _ = writeln!(
        out,
        "[[user]]\nid = 1\nmerchant_uid = \"{}\"\nproxies = {}\ntoken_env = \"ROTOR_KASPI_TOKEN\"\nsession_env = \"ROTOR_KASPI_SESSION\"\nskus = \"skus.csv\"\n",
        merchant.uid,
        proxies.len()
    );
    out
}

/// How many of the fake's products a trial's skus.csv lists.
const TRIAL_SKUS: usize = 20;

/// A ready trial directory: live.toml, a skus.csv of the fake's first products (floor 1,
/// ceiling 10 million, so every decision is the demper's own) and the credentials.
fn write_trial(dir: &std::path::Path, config: &str, products: &[String], env: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let _ = std::fs::remove_file(dir.join("ready"));
    std::fs::write(dir.join("live.toml"), config)?;
    let mut skus = String::from("sku,product_id,floor,ceiling\n");
    for p in products.iter().take(TRIAL_SKUS) {
        let _ = writeln!(skus, "{p},{p},1,10000000");
    }
    std::fs::write(dir.join("skus.csv"), skus)?;
    write_private(&dir.join("credentials.env"), env)
}

/// Writes `text` to `path`, readable and writable by the owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}
