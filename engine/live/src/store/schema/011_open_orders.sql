-- rotor live store, schema 11: when each order was last looked at by itself (`GET
-- /v2/orders/{id}`), so that the orders created before a poll's window that are not final yet
-- are followed in turn, least recently looked at first, until each is final.
ALTER TABLE orders ADD COLUMN checked_ms BIGINT;
CREATE INDEX orders_by_user_and_creation ON orders (user_id, creation_ms);
