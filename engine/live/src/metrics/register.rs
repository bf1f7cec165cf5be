//! Every metric's name and HELP text, registered once: the names are the contract of `deploy/`.

use super::Metrics;

impl Metrics {
    /// The request flow: requests, waits, rotations, loops, durations, calls.
    pub(super) fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "rotor_build_info",
            "Always 1: the version and commit this rotor was built from",
            self.build_info.clone(),
        );
        r.register("rotor_requests", "Attempts sent, by module and outcome", self.requests.clone());
        r.register("rotor_requests_failed", "Requests that failed for good, by module", self.failed.clone());
        r.register("rotor_waits", "Requests told to wait, by module and reason", self.waits.clone());
        r.register("rotor_rotations", "Leases started on a new proxy, by module", self.rotations.clone());
        r.register("rotor_proxies_died", "Proxies the dead rule retired, by module", self.died.clone());
        r.register(
            "rotor_tickets_revoked",
            "Sends the engine called off between its grant and the wire (the proxy died or was penalised, the circuit opened, the account began a cooldown), by reason; each request asked again",
            self.revoked.clone(),
        );
        r.register(
            "rotor_worker_loops",
            "Worker loops running now, by module (one per served seller)",
            self.loops.clone(),
        );
        r.register(
            "rotor_credentials_refused",
            "Times Kaspi refused a seller's credentials (each stops the seller until renewed)",
            self.credentials_refused.clone(),
        );
        r.register(
            "rotor_cycle_duration_seconds",
            "Duration of demper passes, orders polls and catalogue syncs",
            self.cycles.clone(),
        );
        r.register(
            "rotor_request_duration_seconds",
            "Send to answer of each attempt, by endpoint",
            self.attempts.clone(),
        );
        r.register(
            "rotor_calls",
            "Calls by endpoint and how they ended: ok (2xx/3xx), client_error (4xx, 400 and 404 included), server_error (5xx), failed (no answer)",
            self.calls.clone(),
        );
        self.register_business()
    }

    /// The business outcomes: prices, orders, catalogues, the store's errors, the webhook.
    fn register_business(mut self) -> Self {
        let r = &mut self.registry;
        r.register("rotor_price_pushes", "Prices pushed to the cabinet", self.pushes.clone());
        r.register(
            "rotor_price_decisions",
            "Repricing decisions made, pushed or not",
            self.decisions.clone(),
        );
        r.register(
            "rotor_price_drops_held",
            "Large drops held for an operator's confirmation",
            self.drops_held.clone(),
        );
        r.register(
            "rotor_price_drops_waiting",
            "Large drops held now, waiting for an operator's confirmation (rotor ctl confirm)",
            self.drops_waiting.clone(),
        );
        r.register("rotor_orders_stored", "New orders stored", self.orders_stored.clone());
        r.register(
            "rotor_catalog_refused",
            "Catalogue answers not stored because they could not be trusted (no total, a count that does not add up, empty or shrunk against the stored one), by reason",
            self.catalogs_refused.clone(),
        );
        r.register(
            "rotor_skus_not_priced",
            "SKUs of a seller the demper does not price: not in the synced catalogue, removed from sale, or without a model there",
            self.not_priced.clone(),
        );
        r.register("rotor_store_errors", "Store reads and writes that failed", self.store_errors.clone());
        r.register(
            "rotor_webhook_deliveries",
            "Order events the webhook accepted",
            self.webhook_deliveries.clone(),
        );
        r.register(
            "rotor_webhook_failures",
            "Webhook attempts that failed (each is retried)",
            self.webhook_failures.clone(),
        );
        r.register(
            "rotor_webhook_dead_letters",
            "Order events the webhook's receiver refused for good, set aside (rotor orders dead-letters)",
            self.webhook_dead_letters.clone(),
        );
        r.register(
            "rotor_webhook_backlog_seconds",
            "How long the oldest order event not yet delivered has waited (0: none waiting)",
            self.webhook_backlog.clone(),
        );
        self.register_state()
    }

    /// What the scrape reads now: progress, the pool, the provider, the store, and what the
    /// configuration promises.
    fn register_state(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "rotor_last_success_timestamp_seconds",
            "When each seller's worker last finished a cycle (a demper pass, an orders poll, a catalogue sync), as a Unix time",
            self.last_success.clone(),
        );
        r.register("rotor_proxies", "Proxies in this worker's pool now, by state", self.proxies.clone());
        r.register(
            "rotor_account_cooldowns",
            "Seller accounts cooling down after a 429 now, by endpoint",
            self.cooldowns.clone(),
        );
        r.register(
            "rotor_provider_blocked",
            "1 while the proxy provider refuses to sell (no money, no stock) or a spending cap stops buying",
            self.provider_blocked.clone(),
        );
        r.register(
            "rotor_provider_spent_30d",
            "Spent at the proxy provider over the last 30 days, in its currency (the pool's cost)",
            self.provider_spent.clone(),
        );
        r.register(
            "rotor_store_up",
            "1 when the store answered a write transaction at this scrape",
            self.store_up.clone(),
        );
        r.register(
            "rotor_stalled_loops",
            "Worker loops that finished no cycle for longer than rotor_stall_after_seconds, by module (what /health reports)",
            self.stalled.clone(),
        );
        r.register(
            "rotor_sellers_credentials_refused",
            "Sellers whose credentials Kaspi refuses now (each is stopped until renewed)",
            self.sellers_refused.clone(),
        );
        r.register(
            "rotor_cycle_interval_seconds",
            "Each module's configured interval between cycles",
            self.intervals.clone(),
        );
        r.register(
            "rotor_stall_after_seconds",
            "Seconds without a finished cycle after which /health calls a worker loop stalled, by module",
            self.stall_after.clone(),
        );
        r.register(
            "rotor_pool_minimum",
            "The free pool's configured minimum ([proxy6] min_pool; 0 without a provider)",
            self.min_pool.clone(),
        );
        self
    }
}
