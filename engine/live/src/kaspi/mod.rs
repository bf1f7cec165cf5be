//! Kaspi's four APIs as live mode calls them (shapes from `shared/kaspi-api.md`): the request
//! each endpoint wants, and the parsing of its answer. Every call goes through the driver, on the
//! lane of the module that makes it.

use rotor_engine::{Endpoint, Module, RequestSpec, Secret, UserId};
use serde_json::{Value, json};

use super::config::KaspiUrls;
use super::driver::{CallError, Driver};
use super::store::NewOrder;
use super::transport::Reply;

/// Offers per storefront page (100 is refused).
pub const OFFERS_PAGE: u64 = 64;
/// Orders per Shop API page (the maximum).
pub const ORDERS_PAGE: u64 = 100;
/// Rows per cabinet offer-list page.
pub const CATALOG_PAGE: u64 = 100;

/// A failed API call, as workers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The driver gave up (or shutdown began).
    Call(CallError),
    /// Kaspi answered, but not with what was asked for.
    Answer(String),
    /// Kaspi answered with a status other than 2xx: what was asked, and the status.
    Status(&'static str, u16),
    /// Kaspi answered a list that cannot be trusted to be whole: the reason (one of
    /// [`crate::metrics::CATALOG_REFUSALS`]) and what was seen.
    Untrusted(&'static str, String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Call(e) => write!(f, "{e}"),
            ApiError::Answer(e) => f.write_str(e),
            ApiError::Status(what, status) => write!(f, "{what}: HTTP {status}"),
            ApiError::Untrusted(reason, e) => write!(f, "{e} ({reason})"),
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        ApiError::Call(e)
    }
}

/// One seller's credentials and identity, as the API calls need them.
#[derive(Clone)]
pub struct Account {
    /// The engine's user.
    pub user: UserId,
    /// The merchant uid.
    pub merchant_uid: String,
    /// Shop API token.
    pub token: Secret,
    /// Cabinet `mc-session` cookie value.
    pub session: Secret,
}

/// A 2xx answer read as `T` (`answers`); another status is [`ApiError::Status`], a field
/// missing or mistyped [`ApiError::Answer`] naming `what` and the field.
fn ok_answer<T: serde::de::DeserializeOwned>(reply: &Reply, what: &'static str) -> Result<T, ApiError> {
    if !(200..300).contains(&reply.status) {
        return Err(ApiError::Status(what, reply.status));
    }
    crate::answer::read(&reply.body, what).map_err(ApiError::Answer)
}

/// A competitor offer: (merchant id, price).
pub type OfferRow = (String, f64);

/// The storefront's offers request for `product`'s page `page` on `client`: the XHR the public
/// product page makes. The demper sends it, and `rotor probe` and `rotor calibrate` send the
/// same request, so a calibration measures what the demper will send.
pub fn offers_request(
    client: &reqwest::Client,
    urls: &KaspiUrls,
    product: &str,
    page: u64,
) -> reqwest::RequestBuilder {
    let body = json!({
        "cityId": urls.city_id, "id": product, "merchantUID": [], "limit": OFFERS_PAGE, "page": page,
        "sortOption": "PRICE", "highRating": null, "searchText": null, "isExcellentMerchant": false,
        "installationId": "-1"
    });
    client
        .post(format!("{}/yml/offer-view/offers/{product}", urls.storefront))
        .header("Accept", "application/json, text/*")
        .header("Content-Type", "application/json; charset=UTF-8")
        .header("Origin", "https://kaspi.kz")
        .header("Referer", format!("https://kaspi.kz/shop/p/-{product}/?c={}", urls.city_id))
        .header("X-KS-City", &urls.city_id)
        .header("Cookie", format!("kaspi.city={}", urls.city_id))
        .json(&body)
}

/// The cabinet's offer-list request: page `page` of `limit` rows, on sale or removed from sale.
pub fn offer_list_request(
    client: &reqwest::Client,
    urls: &KaspiUrls,
    account: &Account,
    (page, limit): (u64, u64),
    on_sale: bool,
) -> reqwest::RequestBuilder {
    let query = [
        ("m", account.merchant_uid.clone()),
        ("p", page.to_string()),
        ("l", limit.to_string()),
        ("a", on_sale.to_string()),
    ];
    cabinet(client.get(format!("{}/bff/offer-view/list", urls.cabinet)).query(&query), account)
}

/// The Shop API's orders request: page `page` of `size` orders created in `[ge_ms, le_ms]`.
pub fn orders_request(
    client: &reqwest::Client,
    urls: &KaspiUrls,
    account: &Account,
    (ge_ms, le_ms): (u64, u64),
    (page, size): (u64, u64),
) -> reqwest::RequestBuilder {
    let query = [
        ("page[number]", page.to_string()),
        ("page[size]", size.to_string()),
        ("filter[orders][creationDate][$ge]", ge_ms.to_string()),
        ("filter[orders][creationDate][$le]", le_ms.to_string()),
    ];
    shop(client.get(format!("{}/orders", urls.shop_api)).query(&query), account)
}

/// The price feed's URL, where the demper posts a price.
pub fn pricefeed_url(urls: &KaspiUrls) -> String {
    format!("{}/pricefeed/upload/merchant/process", urls.cabinet)
}

/// One storefront page of offers for `product`; returns the rows and the total.
pub async fn offers_page(
    driver: &Driver,
    urls: &KaspiUrls,
    user: UserId,
    product: &str,
    page: u64,
) -> Result<(Vec<OfferRow>, u64), ApiError> {
    let spec = RequestSpec::new(user, Module::Demper, Endpoint::StorefrontOffers);
    let reply = driver.call(spec, |c| offers_request(c, urls, product, page)).await?;
    let page: answers::Offers = ok_answer(&reply, "offers")?;
    Ok((page.offers.into_iter().map(|o| (o.merchant_id.0, o.price)).collect(), page.total))
}

/// Every offer of `product`, page by page.
pub async fn all_offers(
    driver: &Driver,
    urls: &KaspiUrls,
    user: UserId,
    product: &str,
) -> Result<Vec<OfferRow>, ApiError> {
    let mut all = Vec::new();
    for page in 0.. {
        let (rows, total) = offers_page(driver, urls, user, product, page).await?;
        let n = rows.len() as u64;
        all.extend(rows);
        if n < OFFERS_PAGE || all.len() as u64 >= total {
            break;
        }
    }
    Ok(all)
}

/// Pushes a new price for `sku` through the cabinet: a price-only update in whole tenge. It
/// carries no `availabilities`, so the offer's stock and pickup points stay as the seller set
/// them (a partial list can drop the other points, kaspi-api.md).
pub async fn push_price(
    driver: &Driver,
    urls: &KaspiUrls,
    account: &Account,
    sku: &str,
    model: &str,
    price: f64,
) -> Result<(), ApiError> {
    let url = pricefeed_url(urls);
    let tenge = price.floor() as i64;
    let body = json!({
        "merchantUid": account.merchant_uid, "sku": sku, "model": model, "price": tenge,
        "cityPrices": [{ "cityId": urls.city_id, "value": tenge }]
    });
    let spec = RequestSpec::new(account.user, Module::Demper, Endpoint::CabinetPriceUpdate);
    let reply = driver.call(spec, |c| cabinet(c.post(&url), account).json(&body)).await?;
    ok_answer::<serde::de::IgnoredAny>(&reply, "price update").map(|_| ())
}

/// A cabinet request with the seller's session.
pub fn cabinet(r: reqwest::RequestBuilder, account: &Account) -> reqwest::RequestBuilder {
    r.header("x-auth-version", "3")
        .header("Origin", "https://kaspi.kz")
        .header("Referer", "https://kaspi.kz/")
        .header("Accept", "application/json, text/plain, */*")
        .header("Cookie", format!("mc-session={}", account.session.expose()))
}

/// A Shop API request with the seller's token.
pub fn shop(r: reqwest::RequestBuilder, account: &Account) -> reqwest::RequestBuilder {
    r.header("X-Auth-Token", account.token.expose())
        .header("Accept", "application/vnd.api+json")
        .header("Content-Type", "application/vnd.api+json")
}

/// A catalogue row: (sku, model, price, available).
pub type CatalogRow = (String, Option<String>, Option<f64>, bool);

/// Pages past `total` a listing may run before it is taken as broken (a server that never
/// answers an empty page).
const CATALOG_SPARE_PAGES: u64 = 2;

/// The merchant's whole offer list from the cabinet: the offers on sale (`a=true`) and those
/// removed from sale (`a=false`), each list read page by page to an empty page and checked
/// against its `total`. A page without `total`, or a list whose rows do not add up to it, is an
/// error: a partial list is never taken for the whole.
pub async fn catalog(
    driver: &Driver,
    urls: &KaspiUrls,
    account: &Account,
) -> Result<Vec<CatalogRow>, ApiError> {
    let mut rows = Vec::new();
    for on_sale in [true, false] {
        let mut listed: Vec<CatalogRow> = Vec::new();
        let mut expected = None;
        for page in 0.. {
            let (data, total) = catalog_page(driver, urls, account, page, on_sale).await?;
            let Some(total) = total else {
                return Err(ApiError::Untrusted(
                    "no_total",
                    format!("offer list (a={on_sale}) page {page}: no `total`"),
                ));
            };
            if expected.is_some_and(|t| t != total) {
                return Err(ApiError::Untrusted(
                    "count_mismatch",
                    format!(
                        "offer list (a={on_sale}): `total` moved from {} to {total} between pages",
                        expected.unwrap_or(0)
                    ),
                ));
            }
            expected = Some(total);
            if data.is_empty() {
                break;
            }
            listed.extend(data);
            if page > total / CATALOG_PAGE + CATALOG_SPARE_PAGES {
                break;
            }
        }
        let total = expected.unwrap_or(0);
        if listed.len() as u64 != total {
            return Err(ApiError::Untrusted(
                "count_mismatch",
                format!("offer list (a={on_sale}): read {} offers, `total` says {total}", listed.len()),
            ));
        }
        rows.extend(listed.into_iter().map(|(sku, model, price, _)| (sku, model, price, on_sale)));
    }
    Ok(rows)
}

/// One page of the merchant's offer list, on sale or removed from sale; returns the rows and
/// the `total` the page states, if it states one.
pub async fn catalog_page(
    driver: &Driver,
    urls: &KaspiUrls,
    account: &Account,
    page: u64,
    on_sale: bool,
) -> Result<(Vec<CatalogRow>, Option<u64>), ApiError> {
    let spec = RequestSpec::new(account.user, Module::Catalog, Endpoint::CabinetOfferList);
    let reply =
        driver.call(spec, |c| offer_list_request(c, urls, account, (page, CATALOG_PAGE), on_sale)).await?;
    let list: answers::OfferList = ok_answer(&reply, "offer list")?;
    let rows = list
        .data
        .into_iter()
        .map(|o| {
            (
                o.sku,
                o.model.filter(|m| !m.trim().is_empty()),
                o.price.filter(|p| p.is_finite() && *p > 0.0),
                on_sale,
            )
        })
        .collect();
    Ok((rows, list.total))
}

/// An order as listed: its JSON:API id, attributes, and where its entries are.
#[derive(Debug, Clone)]
pub struct ListedOrder {
    /// The order, without entries yet.
    pub order: NewOrder,
    /// `relationships.entries.links.related`.
    pub entries_url: String,
}

/// One page of orders created in `[ge_ms, le_ms]`; returns the orders and the page count.
pub async fn orders_page(
    driver: &Driver,
    urls: &KaspiUrls,
    account: &Account,
    ge_ms: u64,
    le_ms: u64,
    page: u64,
) -> Result<(Vec<ListedOrder>, u64), ApiError> {
    let spec = RequestSpec::new(account.user, Module::Orders, Endpoint::ShopOrders);
    let reply =
        driver.call(spec, |c| orders_request(c, urls, account, (ge_ms, le_ms), (page, ORDERS_PAGE))).await?;
    let page: answers::Orders = ok_answer(&reply, "orders")?;
    let out = page.data.into_iter().map(|o| listed_order(o, urls)).collect::<Result<Vec<_>, _>>()?;
    Ok((out, page.meta.page_count))
}

/// An order of the Shop API as it stands now (`GET /v2/orders/{id}`): what a poll uses to
/// follow an order created before its window until the order is final.
pub async fn order_by_id(
    driver: &Driver,
    urls: &KaspiUrls,
    account: &Account,
    id: &str,
) -> Result<ListedOrder, ApiError> {
    let url = format!("{}/orders/{id}", urls.shop_api);
    let spec = RequestSpec::new(account.user, Module::Orders, Endpoint::ShopOrders);
    let reply = driver.call(spec, |c| shop(c.get(&url), account)).await?;
    let answer: answers::OneOrder = ok_answer(&reply, "order")?;
    let order = listed_order(answer.data, urls)?;
    if order.order.id != id {
        return Err(ApiError::Answer(format!("order {id}: the answer is about order {}", order.order.id)));
    }
    Ok(order)
}

/// One order resource of a Shop API answer. Its entries link must stay on the Shop API's own
/// origin: the token goes with that call.
fn listed_order(o: answers::Order, urls: &KaspiUrls) -> Result<ListedOrder, ApiError> {
    let id = o.id.as_str();
    let related = o.relationships.and_then(|r| r.entries?.links?.related);
    let related = related.as_deref();
    let entries_url = match related {
        Some(u) if u.contains("://") => {
            // The token goes with this call: only to the Shop API's own scheme, host and port.
            if origin(u) != origin(&urls.shop_api) {
                return Err(ApiError::Answer(format!(
                    "orders: order {id}'s entries link points to {}, not the Shop API ({}); \
                     refused, the token goes only to Kaspi",
                    origin(u),
                    origin(&urls.shop_api)
                )));
            }
            u.to_owned()
        }
        Some(u) if u.starts_with('/') => format!("{}{}", origin(&urls.shop_api), u),
        Some(u) => {
            return Err(ApiError::Answer(format!("orders: order {id}'s entries link `{u}` is not a URL")));
        }
        None => format!("{}/orders/{id}/entries", urls.shop_api),
    };
    let a = o.attributes;
    Ok(ListedOrder {
        order: NewOrder {
            id: o.id,
            code: a.code.0,
            state: a.state,
            status: a.status,
            total_price: a.total_price,
            creation_ms: a.creation_date,
            delivery_mode: a.delivery_mode,
            pickup_point: a.pickup_point_id,
            planned_delivery_ms: a.planned_delivery_date,
            entries: Vec::new(),
        },
        entries_url,
    })
}

/// Whether `url` (`scheme://host[:port]/...`) names a loopback host: 127.0.0.0/8, `[::1]` or
/// `localhost`.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().map_or(host, |h| h.trim_start_matches('['))
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    url[after..].find('/').map_or(url, |i| &url[..after + i])
}

/// The entries of one order.
pub async fn order_entries(
    driver: &Driver,
    account: &Account,
    listed: &ListedOrder,
) -> Result<NewOrder, ApiError> {
    let spec = RequestSpec::new(account.user, Module::Orders, Endpoint::ShopOrderEntries);
    let reply = driver.call(spec, |c| shop(c.get(&listed.entries_url), account)).await?;
    let answer: answers::Entries = ok_answer(&reply, "order entries")?;
    let mut order = listed.order.clone();
    order.entries = answer
        .data
        .into_iter()
        .map(|e| {
            let a = e.attributes;
            let (code, name) = a.offer.map_or((None, None), |o| (o.code, o.name));
            (code, name, a.quantity, a.base_price)
        })
        .collect();
    Ok(order)
}

/// The login block a cabinet login answer carries, if it carries one: Kaspi's
/// `breakTimeSeconds` (kaspi-api.md §1.2), at the top level or under `error` or `data`. Whoever
/// sees a login answer (the gateway forwarding a seller tool's login) hands the block to the
/// engine's `block_logins`, so that seller's cabinet calls wait it out; rotor never logs in.
pub fn login_block(reply: &Reply) -> Option<rotor_engine::Duration> {
    let v = reply.json().ok()?;
    [&v, &v["error"], &v["data"]]
        .into_iter()
        .find_map(|o| o.get("breakTimeSeconds").and_then(Value::as_f64))
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| rotor_engine::Duration::from_millis((s * 1_000.0).ceil().min(u64::MAX as f64) as u64))
}

mod answers;

#[cfg(test)]
mod tests {
    #[test]
    fn a_login_block_is_read_wherever_kaspi_puts_it() {
        let reply = |body: &str| super::Reply {
            status: 400,
            content_type: "application/json".into(),
            retry_after: None,
            location: None,
            body: body.as_bytes().to_vec(),
        };
        let secs = |s| Some(rotor_engine::Duration::from_secs(s));
        assert_eq!(super::login_block(&reply(r#"{"breakTimeSeconds": 900}"#)), secs(900));
        assert_eq!(
            super::login_block(&reply(
                r#"{"error": {"code": "CREDENTIALS_INVALID", "breakTimeSeconds": 60}}"#
            )),
            secs(60)
        );
        assert_eq!(
            super::login_block(&reply(r#"{"data": {"breakTimeSeconds": 0.5}}"#))
                .map(rotor_engine::Duration::as_millis),
            Some(500)
        );
        for none in
            [r#"{"error": {"code": "CREDENTIALS_INVALID"}}"#, r#"{"breakTimeSeconds": -5}"#, "<html>", ""]
        {
            assert_eq!(super::login_block(&reply(none)), None, "{none}");
        }
    }

    #[test]
    fn origin_keeps_scheme_host_and_port() {
        assert_eq!(super::origin("https://kaspi.kz/shop/api/v2"), "https://kaspi.kz");
        assert_eq!(super::origin("http://127.0.0.1:4000/shop/api/v2"), "http://127.0.0.1:4000");
        assert_eq!(super::origin("http://h"), "http://h");
    }

    #[test]
    fn only_loopback_hosts_count_as_loopback() {
        for yes in ["http://127.0.0.1:4000/x", "http://127.9.9.9", "http://localhost:1/", "http://[::1]:80/a"]
        {
            assert!(super::is_loopback_url(yes), "{yes}");
        }
        for no in ["http://kaspi.kz", "http://10.0.0.1:80", "http://127.0.0.1.evil.com/", "http://u@8.8.8.8/"]
        {
            assert!(!super::is_loopback_url(no), "{no}");
        }
    }
}
