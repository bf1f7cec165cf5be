//! The exposition: names, labels, buckets, and that it parses as `OpenMetrics`.

use super::*;

fn snapshot() -> Snapshot {
    Snapshot {
        proxies: [9, 4, 3, 2],
        cooldowns: [(Endpoint::CabinetPriceUpdate, 1)].into(),
        spent_30d: Some(2.5),
        store_up: true,
        stalled: [1, 0, 0, 0],
        dead_letters: Some(2),
        webhook_backlog_s: 12.5,
        drops_waiting: Some(3),
    }
}

#[test]
fn render_counts_by_module_and_outcome_and_buckets_cycles() {
    let m = Metrics::default();
    m.request(Module::Demper, OutcomeKind::Ok, Some(200));
    m.request(Module::Demper, OutcomeKind::Ok, Some(200));
    m.request(Module::Demper, OutcomeKind::Ok, Some(404));
    m.request(Module::Orders, OutcomeKind::RateLimited, Some(429));
    m.rotation(Module::Demper);
    m.wait(Module::Orders, WaitReason::ProxiesResting);
    m.cycle(Module::Demper, 4.0);
    m.attempt(Endpoint::StorefrontOffers, 0.15);
    let text = m.render(&snapshot());
    for line in [
        "rotor_requests_total{module=\"demper\",outcome=\"ok\"} 2\n",
        "rotor_requests_total{module=\"orders\",outcome=\"rate_limited\"} 1\n",
        "rotor_requests_total{module=\"demper\",outcome=\"client_error\"} 1\n",
        "rotor_requests_total{module=\"catalog\",outcome=\"ok\"} 0\n",
        "rotor_rotations_total{module=\"demper\"} 1\n",
        "rotor_proxies{state=\"dead\"} 2\n",
        "rotor_proxies{state=\"available\"} 9\n",
        "rotor_account_cooldowns{endpoint=\"price_update\"} 1\n",
        "rotor_account_cooldowns{endpoint=\"offers\"} 0\n",
        "rotor_provider_spent_30d 2.5\n",
        "rotor_price_drops_waiting 3\n",
        "rotor_stalled_loops{module=\"demper\"} 1\n",
        "rotor_stalled_loops{module=\"orders\"} 0\n",
        "rotor_waits_total{module=\"orders\",reason=\"proxies_resting\"} 1\n",
        "rotor_cycle_duration_seconds_bucket{le=\"1.0\",module=\"demper\"} 0\n",
        "rotor_cycle_duration_seconds_bucket{le=\"5.0\",module=\"demper\"} 1\n",
        "rotor_cycle_duration_seconds_count{module=\"demper\"} 1\n",
        "rotor_request_duration_seconds_bucket{le=\"0.2\",endpoint=\"offers\"} 1\n",
        "rotor_request_duration_seconds_bucket{le=\"0.1\",endpoint=\"offers\"} 0\n",
        "# TYPE rotor_cycle_duration_seconds histogram\n",
        "# HELP rotor_requests Attempts sent, by module and outcome.\n",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn a_400_or_404_is_a_client_error_and_progress_is_per_seller() {
    let m = Metrics::default();
    m.call(Endpoint::StorefrontOffers, Some(200));
    m.call(Endpoint::StorefrontOffers, Some(404));
    m.call(Endpoint::CabinetPriceUpdate, Some(400));
    m.call(Endpoint::CabinetPriceUpdate, Some(502));
    m.call(Endpoint::CabinetPriceUpdate, None);
    assert_eq!(m.calls_ok_and_total(), (1, 5));
    let run = m.loop_started(UserId(3), Module::Orders, 1_000);
    m.cycle_done(UserId(3), Module::Orders, run, 2_500);
    m.order_stored();
    m.provider_blocked("capped", true);
    m.credentials_refused(UserId(5), "on orders: HTTP 401".into());
    m.promise(&Promises {
        intervals_s: [Some(180.0), Some(600.0), None, None],
        stall_after_s: [Some(2940.0), Some(4200.0), None, None],
        min_pool: 3,
    });
    m.webhook_pending(Some(10_000));
    let text = m.render(&Snapshot {
        dead_letters: Some(2),
        webhook_backlog_s: m.webhook_backlog_s(70_000),
        ..Snapshot::default()
    });
    for line in [
        "rotor_webhook_dead_letters 2\n",
        "rotor_webhook_backlog_seconds 60.0\n",
        "rotor_calls_total{endpoint=\"offers\",result=\"ok\"} 1\n",
        "rotor_calls_total{endpoint=\"offers\",result=\"client_error\"} 1\n",
        "rotor_calls_total{endpoint=\"price_update\",result=\"client_error\"} 1\n",
        "rotor_calls_total{endpoint=\"price_update\",result=\"server_error\"} 1\n",
        "rotor_calls_total{endpoint=\"price_update\",result=\"failed\"} 1\n",
        "rotor_orders_stored_total 1\n",
        "rotor_worker_loops{module=\"orders\"} 1\n",
        "rotor_last_success_timestamp_seconds{seller=\"u3\",module=\"orders\"} 2.5\n",
        "rotor_provider_blocked{reason=\"capped\"} 1\n",
        "rotor_provider_blocked{reason=\"refused\"} 0\n",
        "rotor_store_up 0\n",
        "rotor_sellers_credentials_refused 1\n",
        "rotor_credentials_refused_total 1\n",
        "rotor_cycle_interval_seconds{module=\"demper\"} 180.0\n",
        "rotor_stall_after_seconds{module=\"orders\"} 4200.0\n",
        "rotor_pool_minimum 3\n",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    m.loop_ended(UserId(3), Module::Orders, run, None);
    assert!(m.progress().is_empty());
    let text = m.render(&Snapshot::default());
    assert!(!text.contains("seller=\"u3\""), "an ended loop's seller leaves the exposition:\n{text}");
    assert!(text.contains("rotor_worker_loops{module=\"orders\"} 0\n"), "{text}");
}

#[test]
fn the_exposition_parses_as_openmetrics_and_a_damaged_one_does_not() {
    let m = Metrics::default();
    let run = m.loop_started(UserId(1), Module::Demper, 1_000);
    m.cycle_done(UserId(1), Module::Demper, run, 2_000);
    m.cycle(Module::Demper, 12.0);
    m.attempt(Endpoint::StorefrontOffers, 0.3);
    let text = m.render(&snapshot());
    let parsed =
        openmetrics_parser::openmetrics::parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    for family in ["rotor_requests", "rotor_cycle_duration_seconds", "rotor_last_success_timestamp_seconds"] {
        assert!(parsed.families.contains_key(family), "{family}");
    }
    let unquoted = text.replacen("module=\"demper\"", "module=demper", 1);
    assert!(openmetrics_parser::openmetrics::parse_openmetrics(&unquoted).is_err());
    let no_eof = text.replace("# EOF\n", "");
    assert!(openmetrics_parser::openmetrics::parse_openmetrics(&no_eof).is_err());
}

#[test]
fn build_info_names_the_version_and_a_commit() {
    let text = Metrics::default().render(&snapshot());
    let line = text.lines().find(|l| l.starts_with("rotor_build_info{")).expect("rotor_build_info");
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(line.contains(&version) && line.ends_with("} 1"), "{line}");
    let commit = line.split("commit=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
    assert!(!commit.is_empty(), "{line}");
    assert!(commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
}
