//! The orders webhook: every order event, in log order, posted as one JSON object (the export's
//! line) with `Idempotency-Key: rotor-<store id>-order-event-<seq>-<digest>` (see
//! [`idempotency_key`]). An event that fails (no answer, or
//! any status but 2xx) is tried again with backoff, for as long as it takes; the next waits for
//! it. The store's cursor moves after each accepted event, so a restart resends at most the one
//! event whose answer was lost, under the same key. With several workers, one delivers at a
//! time (`Store::hold_outbox`).

use std::sync::Arc;

use rotor_engine::Secret;
use tokio::sync::watch;

use crate::config::Webhook;
use crate::driver::Driver;
use crate::export::order_line;

/// The store's name for the webhook's cursor into the order log.
pub const CURSOR: &str = "orders_webhook";

/// The first wait after a failed attempt, and the longest.
const BACKOFF_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const BACKOFF_LONGEST: std::time::Duration = std::time::Duration::from_secs(300);
/// How often the log is looked at when it has nothing new, or when another worker delivers.
const IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The idempotency key of the event `seq` of the store `store_id`, about order `order_id` at
/// `at_ms`: the same on every attempt, in every process. The store's id keeps two stores' keys
/// apart, and the event's own order and time keep a store restored from a backup (same id,
/// numbers counted again from the backup's) from reusing a key for another event.
pub fn idempotency_key(store_id: u64, seq: u64, order_id: &str, at_ms: u64) -> String {
    // FNV-1a of what the event is about.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in order_id.bytes().chain(at_ms.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("rotor-{store_id:016x}-order-event-{seq}-{h:016x}")
}

/// Delivers order events until shutdown.
pub async fn run(driver: Arc<Driver>, hook: Webhook, token: Option<Secret>, mut stop: watch::Receiver<bool>) {
    crate::transport::init_tls();
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(hook.timeout.as_millis()))
        .build()
    {
        Ok(c) => c,
        Err(e) => return tracing::error!("orders webhook: cannot build its client: {e}"),
    };
    let mut known_id = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let store_id = match known_id {
            Some(id) => id,
            None => match driver.store_call(crate::store::Store::store_id) {
                Ok(id) => *known_id.insert(id),
                Err(e) => {
                    tracing::error!("orders webhook: cannot read the store's id: {e}");
                    tokio::select! {
                        () = tokio::time::sleep(IDLE) => continue,
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            },
        };
        let batch = driver.store_call(|s| {
            if !s.hold_outbox()? {
                return Ok(Vec::new());
            }
            let cursor = s.outbox_cursor(CURSOR)?;
            s.order_events(cursor, 0, 100)
        });
        let events = match batch {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("orders webhook: cannot read the order log: {e}");
                Vec::new()
            }
        };
        if events.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(IDLE) => continue,
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        for e in events {
            let key = idempotency_key(store_id, e.seq, &e.order.id, e.at_ms);
            if !deliver(&driver, &client, &hook, token.as_ref(), (e.seq, &key), &order_line(&e), &mut stop)
                .await
            {
                return;
            }
            if let Err(err) = driver.store_call(|s| s.set_outbox_cursor(CURSOR, e.seq)) {
                // The event went; on a restart it goes again under the same key.
                tracing::error!("orders webhook: cannot record event {}: {err}", e.seq);
            }
        }
    }
}

/// Posts one event until the webhook accepts it; false if shutdown came first.
async fn deliver(
    driver: &Driver,
    client: &reqwest::Client,
    hook: &Webhook,
    token: Option<&Secret>,
    (seq, key): (u64, &str),
    line: &serde_json::Value,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut wait = BACKOFF_FIRST;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let mut request = client.post(&hook.url).header("Idempotency-Key", key).json(line);
        if let Some(t) = token {
            request = request.bearer_auth(t.expose());
        }
        let failure = tokio::select! {
            sent = request.send() => match sent {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!("HTTP {}", r.status().as_u16())),
                Err(e) => Some(e.without_url().to_string()),
            },
            _ = stop.wait_for(|s| *s) => return false,
        };
        driver.metrics.webhook(failure.is_none());
        let Some(why) = failure else {
            if attempt > 1 {
                tracing::info!("orders webhook: event {seq} delivered after {attempt} attempts");
            }
            return true;
        };
        if attempt == 1 || attempt.is_multiple_of(10) {
            tracing::warn!(
                "orders webhook: event {seq}: {why} (attempt {attempt}); trying again in {} s",
                wait.as_secs()
            );
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return false,
        }
        wait = (wait * 2).min(BACKOFF_LONGEST);
    }
}

#[cfg(test)]
mod tests {
    use super::idempotency_key;

    #[test]
    fn a_key_names_the_store_the_number_and_what_the_event_is_about() {
        let key = idempotency_key(0xabc, 7, "o1", 1_000);
        assert!(key.starts_with("rotor-0000000000000abc-order-event-7-"), "{key}");
        assert_eq!(key, idempotency_key(0xabc, 7, "o1", 1_000), "the same on every attempt");
        // Another store, or a restored backup numbering another event 7: another key.
        assert_ne!(key, idempotency_key(0xabd, 7, "o1", 1_000));
        assert_ne!(key, idempotency_key(0xabc, 7, "o2", 1_000));
        assert_ne!(key, idempotency_key(0xabc, 7, "o1", 1_001));
    }
}
