//! The fleet through routine operations: a proxy's URL rewritten for the same egress IP, a probe
//! with a subset config, a proxy removed from the config and listed again.

use super::*;

/// The `[[proxy]]` blocks of a config written by [`Lab::configure`], by index, and the rest.
pub(crate) fn proxy_block(text: &str, i: usize) -> String {
    let start = text.match_indices("[[proxy]]").nth(i).unwrap().0;
    let end = text[start + 1..].find("[[").map_or(text.len(), |e| start + 1 + e);
    text[start..end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_rewritten_for_the_same_ip_is_the_same_proxy() {
    let lab = Lab::start("rewrite", 3, 5).await;
    lab.configure(3, "demper = 67\norders = 0\ncatalog = 33", "", &lab.wide_skus(5), "");
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(30), "first.log").await;
    assert_eq!(code, 0, "{log}");
    let before = lab.store().proxies().unwrap();
    let url = lab.proxies[0].url();
    let local = url.replace("127.0.0.1", "localhost");
    let path = lab.dir.join("live.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace(&format!("url = \"{url}\""), &format!("url = \"{local}\""))).unwrap();
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(30), "second.log").await;
    assert_eq!(code, 0, "a rewritten URL stopped the start:\n{log}");
    let after = lab.store().proxies().unwrap();
    assert_eq!(after.len(), 3, "no second row for one egress IP: {after:?}");
    assert_eq!(after[0].url, local);
    assert!(after.iter().all(|p| !p.dead), "{after:?}");
    assert!(after[0].lease_no >= before[0].lease_no && after[0].rest_until_ms >= before[0].rest_until_ms);
    assert_eq!(lab.store().decisions().unwrap().len(), 10, "both passes priced every SKU:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_retires_nothing_and_a_proxy_listed_again_comes_back() {
    let lab = Lab::start("subset", 4, 5).await;
    lab.configure(3, "demper = 67\norders = 0\ncatalog = 33", "", &lab.wide_skus(5), "");
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(30), "first.log").await;
    assert_eq!(code, 0, "{log}");
    let full = std::fs::read_to_string(lab.dir.join("live.toml")).unwrap();
    // A probe of one spare proxy, with a config listing only it.
    let spare = proxy_block(&full, 3);
    let head = &full[..full.find("[[proxy]]").unwrap()];
    let user = &full[full.find("[[user]]").unwrap()..];
    std::fs::write(lab.dir.join("subset.toml"), format!("{head}{spare}{user}")).unwrap();
    let (code, table) = lab.probe("subset.toml", "probe.txt").await;
    assert_eq!(code, 0, "{table}");
    let rows = lab.store().proxies().unwrap();
    assert!(rows.iter().all(|p| !p.dead), "a probe retired proxies: {rows:?}");
    // The worker's own config drops the spare: it is retired; listed again, it comes back.
    std::fs::write(lab.dir.join("live.toml"), full.replace(&spare, "")).unwrap();
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(30), "without.log").await;
    assert_eq!(code, 0, "{log}");
    let rows = lab.store().proxies().unwrap();
    assert_eq!(rows.iter().map(|p| p.dead).collect::<Vec<_>>(), [false, false, false, true], "{log}");
    std::fs::write(lab.dir.join("live.toml"), &full).unwrap();
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(30), "again.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("is listed again; it comes back after its rest"), "{log}");
    assert!(lab.store().proxies().unwrap().iter().all(|p| !p.dead));
}

/// Several workers, one store: a worker whose config carries an older `[workers]
/// config_version` than one already applied is refused at start (exit 2, naming both versions)
/// and retires nothing the newer list added; the newer list, applied, retires what it dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_config_cannot_retire_what_a_newer_one_added() {
    let lab = Lab::start("version", 4, 5).await;
    lab.configure(3, "demper = 67\norders = 0\ncatalog = 33", "", &lab.wide_skus(5), "");
    let path = lab.dir.join("live.toml");
    let full = std::fs::read_to_string(&path).unwrap();
    let versioned = |text: &str, v: u64| format!("[workers]\nconfig_version = {v}\n\n{text}");
    // Version 2 lists four proxies.
    std::fs::write(&path, versioned(&full, 2)).unwrap();
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(30), "new.log").await;
    assert_eq!(code, 0, "{log}");
    // A worker still holding version 1, which lacked the fourth proxy.
    let older = full.replace(&proxy_block(&full, 3), "");
    std::fs::write(&path, versioned(&older, 1)).unwrap();
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(30), "old.log").await;
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("config_version is 1") && log.contains("version 2"), "{log}");
    assert!(lab.store().proxies().unwrap().iter().all(|p| !p.dead), "the older list retired a proxy");
    // Version 3 drops the fourth proxy on purpose: it is retired.
    std::fs::write(&path, versioned(&older, 3)).unwrap();
    let (code, log) = lab.run(&["--once", "--dry-run"], StdDuration::from_secs(30), "newer.log").await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("is no longer listed; it is retired"), "{log}");
    assert_eq!(lab.store().proxies().unwrap().iter().filter(|p| p.dead).count(), 1);
    assert_eq!(lab.store().proxy_list_version().unwrap(), 3);
}
