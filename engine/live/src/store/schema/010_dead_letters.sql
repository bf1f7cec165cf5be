-- rotor live store, schema 10: order events the webhook's receiver refused for good (an HTTP
-- 4xx other than 408 and 429, several times over), set aside so that later events flow.
-- `rotor orders dead-letters --retry` asks the delivering worker to try one again.
CREATE TABLE webhook_dead_letters (
    seq         BIGINT PRIMARY KEY,      -- the event (order_events.seq)
    status      BIGINT NOT NULL,         -- the receiver's last HTTP status
    message     TEXT NOT NULL,           -- what it answered, cut short
    tries       BIGINT NOT NULL,         -- attempts so far, retries included
    dead_ms     BIGINT NOT NULL,         -- when it was last set aside
    retry_asked BIGINT NOT NULL DEFAULT 0 -- 1: try again at the next round
);
