//! The orders webhook: every order event, in log order, posted as one JSON object (the export's
//! line) with `Idempotency-Key: rotor-<store id>-order-event-<seq>-<digest>` (see
//! [`idempotency_key`]). An event that fails (no answer, a 5xx, a 408 or a 429) is tried again
//! with backoff, for as long as it takes; the next waits for it. An event the receiver refuses
//! for good (any other 4xx, [`REFUSALS_BEFORE_DEAD`] times) is set aside as a dead letter, with
//! an alert, and the next goes: `rotor orders dead-letters` lists them and `--retry` asks for
//! them again. The store's cursor moves after each accepted event, so a restart resends at most
//! the one event whose answer was lost, under the same key. With several workers, one delivers
//! at a time (`Store::hold_outbox`).

use std::sync::Arc;

use rotor_engine::Secret;
use tokio::sync::watch;

use crate::config::Webhook;
use crate::driver::Driver;
use crate::export::order_line;
use crate::run::LiveError;

/// The store's name for the webhook's cursor into the order log.
pub const CURSOR: &str = "orders_webhook";

/// The first wait after a failed attempt, and the longest.
const BACKOFF_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const BACKOFF_LONGEST: std::time::Duration = std::time::Duration::from_secs(300);
/// How often the log is looked at when it has nothing new, or when another worker delivers.
const IDLE: std::time::Duration = std::time::Duration::from_secs(2);
/// A receiver that refuses an event for good this many times sets it aside.
pub const REFUSALS_BEFORE_DEAD: u32 = 5;

/// Whether an HTTP status refuses an event for good: a 4xx, except 408 (timeout) and 429
/// (slow down), which ask for the same event later.
fn refused_for_good(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

/// How one event's delivery ended.
enum Delivery {
    /// The receiver answered 2xx.
    Accepted,
    /// It refused the event for good: its last status and answer, and the attempts made.
    Refused { status: u16, message: String, tries: u64 },
    /// Shutdown came first.
    Stopped,
}

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
        if !retry_asked(&driver, &client, &hook, token.as_ref(), store_id, &mut stop).await {
            return;
        }
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
            driver.metrics.webhook_pending(None);
            tokio::select! {
                () = tokio::time::sleep(IDLE) => continue,
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        for e in events {
            driver.metrics.webhook_pending(Some(e.at_ms));
            let key = idempotency_key(store_id, e.seq, &e.order.id, e.at_ms);
            let line = order_line(&e);
            let written =
                match deliver(&driver, &client, &hook, token.as_ref(), (e.seq, &key), &line, &mut stop).await
                {
                    Delivery::Stopped => return,
                    Delivery::Accepted => driver.store_call(|s| s.set_outbox_cursor(CURSOR, e.seq)),
                    Delivery::Refused { status, message, tries } => {
                        set_aside(&driver, (e.seq, &e.order.code), (status, &message), tries)
                    }
                };
            if let Err(err) = written {
                // The event went (or was refused); on a restart it goes again under the same key.
                tracing::error!("orders webhook: cannot record event {}: {err}", e.seq);
            }
        }
    }
}

/// Sets event `seq` (of order `code`) aside as a dead letter, moves the cursor past it, and
/// alerts.
fn set_aside(
    driver: &Driver,
    (seq, code): (u64, &str),
    (status, message): (u16, &str),
    tries: u64,
) -> Result<(), crate::store::StoreError> {
    let now = crate::clock::now().as_millis();
    driver.store_call(|s| s.dead_letter(CURSOR, seq, (status, message), tries, now))?;
    driver.alert(&format!(
        "orders webhook: the receiver refused event {seq} (order {code}) for good: HTTP {status} after {tries} \
         attempts ({message}); it is set aside as a dead letter and later events go on. \
         `rotor orders dead-letters` lists it; fix the receiver, then `--retry {seq}`"
    ));
    Ok(())
}

/// Delivers the dead letters an operator asked to retry (`rotor orders dead-letters --retry`),
/// each once more under its own key: accepted, it is dropped; refused again, set aside again.
/// False if shutdown came first.
async fn retry_asked(
    driver: &Driver,
    client: &reqwest::Client,
    hook: &Webhook,
    token: Option<&Secret>,
    store_id: u64,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let asked = driver.store_call(|s| if s.hold_outbox()? { s.retries_asked() } else { Ok(Vec::new()) });
    let asked = asked.unwrap_or_else(|e| {
        tracing::error!("orders webhook: cannot read the dead letters to retry: {e}");
        Vec::new()
    });
    for seq in asked {
        let event = driver.store_call(|s| s.order_events(seq.saturating_sub(1), 0, 1));
        let Some(e) = event.ok().and_then(|mut v| v.pop()).filter(|e| e.seq == seq) else {
            tracing::warn!("orders webhook: dead letter {seq} has no event left in the log; dropped");
            let _ = driver.store_call(|s| s.dead_letter_delivered(seq));
            continue;
        };
        let key = idempotency_key(store_id, e.seq, &e.order.id, e.at_ms);
        let written = match deliver(driver, client, hook, token, (seq, &key), &order_line(&e), stop).await {
            Delivery::Stopped => return false,
            Delivery::Accepted => {
                tracing::info!(
                    "orders webhook: dead letter {seq} (order {}) delivered on retry",
                    e.order.code
                );
                driver.store_call(|s| s.dead_letter_delivered(seq))
            }
            Delivery::Refused { status, message, tries } => {
                set_aside(driver, (seq, &e.order.code), (status, &message), tries)
            }
        };
        if let Err(err) = written {
            tracing::error!("orders webhook: cannot record dead letter {seq}: {err}");
        }
    }
    true
}

/// Posts one event until the webhook accepts it or refuses it for good.
async fn deliver(
    driver: &Driver,
    client: &reqwest::Client,
    hook: &Webhook,
    token: Option<&Secret>,
    (seq, key): (u64, &str),
    line: &serde_json::Value,
    stop: &mut watch::Receiver<bool>,
) -> Delivery {
    let mut wait = BACKOFF_FIRST;
    let mut attempt = 0u32;
    let mut refusals = 0u32;
    loop {
        attempt += 1;
        let mut request = client.post(&hook.url).header("Idempotency-Key", key).json(line);
        if let Some(t) = token {
            request = request.bearer_auth(t.expose());
        }
        let attempt_made = async {
            match request.send().await {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body = r.text().await.unwrap_or_default();
                    let body: String = body.chars().filter(|c| !c.is_control()).take(200).collect();
                    Some((Some(status), format!("HTTP {status} {body}").trim_end().to_owned()))
                }
                Err(e) => Some((None, e.without_url().to_string())),
            }
        };
        let failure = tokio::select! {
            failure = attempt_made => failure,
            _ = stop.wait_for(|s| *s) => return Delivery::Stopped,
        };
        driver.metrics.webhook(failure.is_none());
        let Some((status, why)) = failure else {
            if attempt > 1 {
                tracing::info!("orders webhook: event {seq} delivered after {attempt} attempts");
            }
            return Delivery::Accepted;
        };
        let refused = status.filter(|&s| refused_for_good(s));
        if let Some(status) = refused {
            refusals += 1;
            if refusals >= REFUSALS_BEFORE_DEAD {
                return Delivery::Refused { status, message: why, tries: u64::from(attempt) };
            }
        }
        if attempt == 1 || attempt.is_multiple_of(10) {
            tracing::warn!(
                "orders webhook: event {seq}: {why} (attempt {attempt}); trying again in {} s",
                wait.as_secs()
            );
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return Delivery::Stopped,
        }
        // A refusal is asked again soon, a few times, before the event is set aside; only a
        // failure that may heal by waiting backs off further.
        if refused.is_none() {
            wait = (wait * 2).min(BACKOFF_LONGEST);
        }
    }
}

/// Which dead letters an operator asks to deliver again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Every one.
    All,
    /// These seqs.
    These(Vec<u64>),
}

/// `rotor orders dead-letters`: the table of dead letters, after asking for `retry` if given.
/// A seq that is no dead letter is bad input naming the ones there are, and nothing is asked.
pub fn dead_letters(store: &mut crate::store::Store, retry: Option<Retry>) -> Result<String, LiveError> {
    use std::fmt::Write as _;
    let letters = store.dead_letters()?;
    let mut out = String::new();
    if let Some(retry) = retry {
        let seqs = match &retry {
            Retry::All => None,
            Retry::These(seqs) => {
                let unknown: Vec<String> = seqs
                    .iter()
                    .filter(|s| !letters.iter().any(|l| l.seq == **s))
                    .map(u64::to_string)
                    .collect();
                if !unknown.is_empty() {
                    let there: Vec<String> = letters.iter().map(|l| l.seq.to_string()).collect();
                    return Err(LiveError::Config(format!(
                        "--retry {}: not a dead letter; the dead letters are: {}",
                        unknown.join(", "),
                        if there.is_empty() { "none".to_owned() } else { there.join(", ") }
                    )));
                }
                Some(seqs.as_slice())
            }
        };
        let asked = store.ask_retry(seqs)?;
        let _ = writeln!(
            out,
            "asked {asked} dead letters to be delivered again: the worker delivering the webhook tries them \
             at its next round, under their own idempotency keys"
        );
        return Ok(out);
    }
    if letters.is_empty() {
        out.push_str("no dead letters: every order event was delivered or is on its way\n");
        return Ok(out);
    }
    let _ = writeln!(
        out,
        "{:>8}  {:<14} {:>6} {:>6}  {:<24} {:<5}  answer",
        "seq", "order", "status", "tries", "set aside", "retry"
    );
    for l in &letters {
        let _ = writeln!(
            out,
            "{:>8}  {:<14} {:>6} {:>6}  {:<24} {:<5}  {}",
            l.seq,
            l.order_code.as_deref().unwrap_or("(pruned)"),
            l.status,
            l.tries,
            crate::log::utc(l.dead_ms),
            if l.retry_asked { "asked" } else { "-" },
            l.message
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{idempotency_key, refused_for_good};

    #[test]
    fn only_a_4xx_that_does_not_ask_for_later_refuses_for_good() {
        for s in [400, 401, 403, 404, 409, 410, 413, 422] {
            assert!(refused_for_good(s), "{s}");
        }
        for s in [200, 301, 408, 429, 500, 502, 503] {
            assert!(!refused_for_good(s), "{s}");
        }
    }

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
