//! The merchant cabinet: `GET /bff/offer-view/list` and `POST /pricefeed/upload/merchant/process`.
//! Both need the session cookie (`mc-session`) and `x-auth-version: 3`; otherwise 401.

use crate::http::{Reply, Request};
use rotor_engine::Endpoint;

use super::error;
use super::state::{CatalogFault, PriceUpdate, State};

/// The merchant whose session the request carries.
fn session(st: &State, req: &Request) -> Option<usize> {
    if req.headers.get("x-auth-version").and_then(|v| v.to_str().ok()) != Some("3") {
        return None;
    }
    let cookies = req.headers.get("cookie").and_then(|v| v.to_str().ok())?;
    let session = cookies.split(';').find_map(|c| c.trim().strip_prefix("mc-session="))?;
    st.merchant_by_session(session).map(|(i, _)| i)
}

fn query(req: &Request, name: &str) -> Option<String> {
    req.url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

pub(crate) fn offer_list(st: &mut State, req: &Request, ip: &str) -> (u16, Reply) {
    if req.method.as_str() != "GET" {
        return (405, error(405, "Method Not Allowed"));
    }
    let Some(account) = session(st, req) else { return (401, error(401, "Unauthorized")) };
    if let Some(refused) = st.gate(ip, Some(account), Endpoint::CabinetOfferList) {
        return super::refusal(refused);
    }
    let uid = st.config.merchants[account].uid.clone();
    let Some(m) = query(req, "m") else { return (400, error(400, "parameter m (merchantUid) is required")) };
    if m != uid {
        return (403, error(403, "Forbidden"));
    }
    let page: usize = query(req, "p").and_then(|v| v.parse().ok()).unwrap_or(0);
    let size: usize = query(req, "l").and_then(|v| v.parse().ok()).unwrap_or(10);
    if size == 0 || size > 100 {
        return (400, error(400, "l must be between 1 and 100"));
    }
    let active = query(req, "a").is_none_or(|a| a == "true");
    let n = st.config.merchants.len();
    // The merchant's offers: every `n`th product, at the last price pushed, else the price a
    // test listed, else the first storefront offer's; those a test removed from sale are listed
    // under `a=false` only.
    let mut mine: Vec<(String, Option<f64>)> = st
        .catalogue
        .iter()
        .enumerate()
        .filter(|(i, _)| i % n == account)
        .filter_map(|(_, (product, offers))| {
            let own = st.own.get(&(uid.clone(), product.clone()));
            if own.is_none_or(|o| o.available) != active {
                return None;
            }
            let recorded = st
                .price_updates
                .iter()
                .rev()
                .find(|u| u.merchant_uid == uid && u.sku == *product)
                .map(|u| u.price);
            let listed = own.map_or_else(|| offers.first().map(|o| o.price), |o| o.price);
            Some((product.clone(), recorded.or(listed)))
        })
        .collect();
    let fault = st.faults.catalog;
    match fault {
        CatalogFault::Empty => mine.clear(),
        CatalogFault::Shrunk(share) => mine.truncate((mine.len() as f64 * share.clamp(0.0, 1.0)) as usize),
        CatalogFault::None | CatalogFault::NoTotal => {}
    }
    let data: Vec<serde_json::Value> = mine
        .iter()
        .skip(page * size)
        .take(size)
        .map(|(sku, price)| {
            serde_json::json!({
                "sku": sku,
                "offerId": format!("{uid}_{sku}"),
                "masterSku": sku,
                "masterTitle": format!("Product {sku}"),
                "model": format!("Product {sku}"),
                "title": format!("Product {sku}"),
                "brand": "Generic",
                "masterCategory": "Smartphones",
                "available": active,
                "price": price,
                "minPrice": price,
                "availabilities": [{ "storeId": format!("{uid}_PP1"), "available": if active { "yes" } else { "no" }, "preOrder": 0, "stockSpecified": true, "stockCount": 4 }],
                "shopLink": format!("/shop/p/-{sku}/")
            })
        })
        .collect();
    let body = if fault == CatalogFault::NoTotal {
        serde_json::json!({ "data": data })
    } else {
        serde_json::json!({ "total": mine.len(), "data": data })
    };
    (200, Reply::new(200).set_body_json(body))
}

/// Fields a price update must carry. `availabilities` is optional: without it the update is
/// price-only and the offer's stock stays as it was.
pub(crate) const PRICE_UPDATE_FIELDS: [&str; 5] = ["merchantUid", "sku", "model", "price", "cityPrices"];

pub(crate) fn price_update(st: &mut State, req: &Request, ip: &str) -> (u16, Reply) {
    if req.method.as_str() != "POST" {
        return (405, error(405, "Method Not Allowed"));
    }
    let Some(account) = session(st, req) else { return (401, error(401, "Unauthorized")) };
    if let Some(refused) = st.gate(ip, Some(account), Endpoint::CabinetPriceUpdate) {
        return super::refusal(refused);
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&req.body) else {
        return (400, error(400, "request body is not JSON"));
    };
    if let Some(missing) = PRICE_UPDATE_FIELDS.iter().find(|f| body.get(**f).is_none()) {
        return (400, error(400, &format!("field `{missing}` is required")));
    }
    let uid = st.config.merchants[account].uid.clone();
    if body["merchantUid"].as_str() != Some(uid.as_str()) {
        return (403, error(403, "merchantUid does not match the session"));
    }
    let Some(price) = body["price"].as_f64() else { return (400, error(400, "price must be a number")) };
    if st.faults.refuse_price_updates {
        return (400, error(400, "the price is outside the range allowed for this product"));
    }
    let sku = body["sku"].as_str().unwrap_or_default().to_owned();
    st.price_updates.push(PriceUpdate { merchant_uid: uid, sku, price, body });
    let id = format!("job-{}", st.price_updates.len());
    (200, Reply::new(200).set_body_json(serde_json::json!({ "id": id })))
}
