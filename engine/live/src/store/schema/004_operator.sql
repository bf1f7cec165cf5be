-- rotor live store, schema 4: what an operator decides, kept where every worker sees it.
-- A price drop larger than [demper] max_drop in one pass waits here for `rotor ctl confirm`.
CREATE TABLE held_drops (
    user_id      BIGINT NOT NULL,
    sku          TEXT NOT NULL,
    from_price   DOUBLE PRECISION NOT NULL,
    to_price     DOUBLE PRECISION NOT NULL,   -- the lowest price the demper asked for
    since_ms     BIGINT NOT NULL,
    confirmed_ms BIGINT,                      -- set by `rotor ctl confirm`
    PRIMARY KEY (user_id, sku)
);
-- A seller an operator drained (`rotor ctl drain`): no worker serves it until `rotor ctl resume`.
CREATE TABLE seller_controls (
    user_id    BIGINT PRIMARY KEY,
    drained    BIGINT NOT NULL DEFAULT 0,
    changed_ms BIGINT NOT NULL
);
-- Commands for the workers' engines (revive, retire), applied by each worker in id order.
CREATE TABLE operator_commands (
    id     {serial},
    at_ms  BIGINT NOT NULL,
    kind   TEXT NOT NULL,                     -- revive | retire
    target BIGINT NOT NULL                    -- a proxy id
);
