-- rotor live store, schema 12: history pruned by age in batches (see store/prune.rs), and the
-- queries of the hot paths (a claim, a release, a shrink) served by indexes that stay small
-- however long the usage log grows: open leases are few.
CREATE INDEX leases_open_by_user ON leases (user_id) WHERE finished_ms IS NULL;
CREATE INDEX leases_open_by_proxy ON leases (proxy_id) WHERE finished_ms IS NULL;
CREATE INDEX leases_by_finish ON leases (finished_ms);
CREATE INDEX journal_by_time ON journal (at_ms);
CREATE INDEX operator_commands_by_time ON operator_commands (at_ms);
CREATE INDEX orders_by_stored ON orders (stored_ms);
CREATE INDEX order_events_by_order ON order_events (order_id);
