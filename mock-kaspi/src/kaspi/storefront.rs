//! `POST /yml/offer-view/offers/{productId}`: competitor offers on the public storefront.

use crate::http::{Reply, Request};

use super::error;
use super::state::State;
use rotor_engine::Endpoint;

/// The anti-bot interstitial some IPs get instead of JSON, with status 200.
const ANTI_BOT: &str = "<!DOCTYPE html><html><head><title>Проверка</title></head><body><div id=\"captcha\">Подтвердите, что вы не робот</div></body></html>";

/// What the storefront's bot filter misses in `req`, as the real site refuses it with 403: a
/// browser's `User-Agent` (`Mozilla/…`) and a `Referer` on kaspi.kz (`shared/kaspi-api.md`:
/// "без него бывает 403"; the clients built against it send both).
fn not_a_browser(req: &Request) -> Option<&'static str> {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !header("user-agent").starts_with("Mozilla/") {
        Some("no browser User-Agent")
    } else if !header("referer").starts_with("https://kaspi.kz/") {
        Some("no Referer on kaspi.kz")
    } else {
        None
    }
}

pub(crate) fn offers(st: &mut State, req: &Request, ip: &str, product: &str) -> (u16, Reply) {
    if req.method.as_str() != "POST" {
        return (405, error(405, "Method Not Allowed").insert_header("Allow", "POST"));
    }
    if let Some(missing) = not_a_browser(req) {
        return (403, error(403, &format!("Forbidden: {missing}")));
    }
    if let Some(refused) = st.gate(ip, None, Endpoint::StorefrontOffers) {
        return super::refusal(refused);
    }
    if st.faults.anti_bot {
        return (200, Reply::new(200).set_body_raw(ANTI_BOT, "text/html; charset=utf-8"));
    }
    let body: serde_json::Value = if req.body.is_empty() {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => return (400, error(400, "request body is not JSON")),
        }
    };
    let limit = body.get("limit").and_then(serde_json::Value::as_u64).unwrap_or(64);
    let page = body.get("page").and_then(serde_json::Value::as_u64).unwrap_or(0);
    if limit == 0 || limit > 64 {
        return (400, error(400, "limit must be between 1 and 64"));
    }
    let mut offers = st.catalogue.get(product).cloned().unwrap_or_default();
    offers.sort_by(|a, b| a.price.total_cmp(&b.price));
    let total = offers.len();
    let rows: Vec<serde_json::Value> = offers
        .iter()
        .skip((page * limit) as usize)
        .take(limit as usize)
        .map(|o| {
            serde_json::json!({
                "masterSku": product,
                "masterCategory": "Master - Smartphones",
                "merchantId": o.merchant_id,
                "merchantName": o.merchant_name,
                "merchantSku": format!("{}-{}", o.merchant_id, product),
                "merchantReviewsQuantity": 231,
                "merchantRating": 4.8,
                "title": format!("Product {product}"),
                "price": o.price,
                "delivery": "2026-11-27T18:00:00.000+00:00",
                "deliveryMovedBySlot": false,
                "kaspiDelivery": true,
                "kdPoints": [format!("{}_PP1", o.merchant_id)],
                "preorder": 0,
                "locatedInPoint": format!("{}_PP1", o.merchant_id),
                "deliveryType": "TO_DOOR",
                "deliveryDuration": "TILL_5_DAYS"
            })
        })
        .collect();
    let body = serde_json::json!({ "offers": rows, "total": total, "offersCount": total, "pcmResponsePresent": false });
    (200, Reply::new(200).set_body_json(body))
}
