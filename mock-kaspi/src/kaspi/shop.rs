//! The Shop API: `GET /shop/api/v2/orders` and `GET /shop/api/v2/orders/{id}/entries`, JSON:API
//! with `X-Auth-Token`.

use crate::http::{Reply, Request};
use rotor_engine::Endpoint;

use super::error;
use super::state::State;

const MEDIA: &str = "application/vnd.api+json";
const FOURTEEN_DAYS_MS: u64 = 14 * 86_400_000;
const STATES: [&str; 6] = ["NEW", "SIGN_REQUIRED", "PICKUP", "DELIVERY", "KASPI_DELIVERY", "ARCHIVE"];

fn token(st: &State, req: &Request) -> Option<usize> {
    let t = req.headers.get("x-auth-token").and_then(|v| v.to_str().ok())?;
    st.merchant_by_token(t).map(|(i, _)| i)
}

fn json_api(status: u16, body: &serde_json::Value) -> Reply {
    Reply::new(status).set_body_raw(body.to_string(), MEDIA)
}

fn query(req: &Request, name: &str) -> Option<String> {
    req.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The base URL links point at: the `Host` the client addressed (wiremock's parsed URL does not
/// carry the real port).
fn base(req: &Request) -> String {
    let host = req.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}

pub(crate) fn orders(st: &mut State, req: &Request, ip: &str) -> (u16, Reply) {
    if req.method.as_str() != "GET" {
        return (405, error(405, "Method Not Allowed"));
    }
    let Some(account) = token(st, req) else { return (401, error(401, "Unauthorized")) };
    if let Some(refused) = st.gate(ip, Some(account), Endpoint::ShopOrders) {
        return super::refusal(refused);
    }
    let num = |name: &str| query(req, name).map(|v| v.parse::<u64>().map_err(|_| name.to_owned()));
    let (Some(Ok(page)), Some(Ok(size))) = (num("page[number]"), num("page[size]")) else {
        return (400, error(400, "page[number] and page[size] are required numbers"));
    };
    if size == 0 || size > 100 {
        return (400, error(400, "page[size] must be between 1 and 100"));
    }
    let (Some(Ok(ge)), Some(Ok(le))) =
        (num("filter[orders][creationDate][$ge]"), num("filter[orders][creationDate][$le]"))
    else {
        return (
            400,
            error(400, "filter[orders][creationDate][$ge] and [$le] are required, in epoch milliseconds"),
        );
    };
    if le < ge || le - ge > FOURTEEN_DAYS_MS {
        return (400, error(400, "the creationDate window must be at most 14 days"));
    }
    let state = query(req, "filter[orders][state]");
    if let Some(s) = &state
        && !STATES.contains(&s.as_str())
    {
        return (400, error(400, &format!("unknown state {s}; valid: {}", STATES.join(", "))));
    }
    let uid = st.config.merchants[account].uid.clone();
    let mut matching: Vec<_> = st
        .orders
        .iter()
        .filter(|o| {
            o.merchant == uid
                && (ge..=le).contains(&o.creation_ms)
                && state.as_deref().is_none_or(|s| s == o.state)
        })
        .collect();
    matching.sort_by_key(|o| std::cmp::Reverse((o.creation_ms, o.code.clone())));
    let total = matching.len() as u64;
    let base = base(req);
    let entries_base = st.faults.entries_origin.clone().unwrap_or_else(|| base.clone());
    let data: Vec<serde_json::Value> = matching
        .iter()
        .skip((page * size) as usize)
        .take(size as usize)
        .map(|o| resource(o, &base, &entries_base))
        .collect();
    let body = serde_json::json!({ "data": data, "meta": { "pageCount": total.div_ceil(size), "totalCount": total } });
    (200, json_api(200, &body))
}

/// One order as a JSON:API resource, its entries linked on `entries_base`.
fn resource(o: &super::state::Order, base: &str, entries_base: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "orders",
        "id": o.id,
        "attributes": {
            "code": o.code,
            "totalPrice": o.total_price,
            "paymentMode": "PAY_WITH_CREDIT",
            "creationDate": o.creation_ms,
            "deliveryCostForSeller": 0,
            "isKaspiDelivery": o.state == "KASPI_DELIVERY",
            "deliveryMode": "DELIVERY_PICKUP",
            "signatureRequired": o.state == "SIGN_REQUIRED",
            "preOrder": false,
            "state": o.state,
            "status": o.status,
            "pickupPointId": o.pickup_point_id,
            "plannedDeliveryDate": o.planned_delivery_ms,
            "customer": { "id": "c1", "name": "Customer", "firstName": "A", "lastName": "B" },
            "deliveryCost": 0
        },
        "relationships": { "entries": { "links": {
            "self": format!("{base}/shop/api/v2/orders/{}/relationships/entries", o.id),
            "related": format!("{entries_base}/shop/api/v2/orders/{}/entries", o.id)
        } } },
        "links": { "self": format!("{base}/shop/api/v2/orders/{}", o.id) }
    })
}

/// `GET /v2/orders/{id}`: one order of the token's merchant, as the list shows it.
pub(crate) fn order(st: &mut State, req: &Request, ip: &str, id: &str) -> (u16, Reply) {
    if req.method.as_str() != "GET" {
        return (405, error(405, "Method Not Allowed"));
    }
    let Some(account) = token(st, req) else { return (401, error(401, "Unauthorized")) };
    if let Some(refused) = st.gate(ip, Some(account), Endpoint::ShopOrders) {
        return super::refusal(refused);
    }
    let uid = st.config.merchants[account].uid.clone();
    let Some(o) = st.orders.iter().find(|o| o.id == id && o.merchant == uid) else {
        return (404, error(404, "Not Found"));
    };
    let base = base(req);
    let entries_base = st.faults.entries_origin.clone().unwrap_or_else(|| base.clone());
    (200, json_api(200, &serde_json::json!({ "data": resource(o, &base, &entries_base) })))
}

pub(crate) fn entries(st: &mut State, req: &Request, ip: &str, id: &str) -> (u16, Reply) {
    if req.method.as_str() != "GET" {
        return (405, error(405, "Method Not Allowed"));
    }
    let Some(account) = token(st, req) else { return (401, error(401, "Unauthorized")) };
    if let Some(refused) = st.gate(ip, Some(account), Endpoint::ShopOrderEntries) {
        return super::refusal(refused);
    }
    let uid = st.config.merchants[account].uid.clone();
    let Some(order) = st.orders.iter().find(|o| o.id == id && o.merchant == uid) else {
        return (404, error(404, "Not Found"));
    };
    let data: Vec<serde_json::Value> = order
        .entries
        .iter()
        .enumerate()
        .map(|(i, (sku, name, qty, price))| {
            serde_json::json!({
                "type": "orderentries",
                "id": format!("{}-{i}", order.id),
                "attributes": {
                    "entryNumber": i,
                    "quantity": qty,
                    "basePrice": price,
                    "totalPrice": u64::from(*qty) * price,
                    "deliveryCost": 0,
                    "category": { "code": "Smartphones", "title": "Смартфоны" },
                    "offer": { "code": sku, "name": name }
                }
            })
        })
        .collect();
    (200, json_api(200, &serde_json::json!({ "data": data })))
}
