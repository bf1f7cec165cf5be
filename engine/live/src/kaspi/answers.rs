//! Kaspi's answers as the code reads them (`shared/kaspi-api.md`), through
//! [`crate::answer::read`]: what live mode relies on is a required field, so its absence is a
//! named error; what it can do without is an `Option`.

use serde::Deserialize;

use crate::answer::Text;

/// `POST /yml/offer-view/offers/{productId}`. `total` says when the pages end: without it a
/// first page would pass for every offer.
#[derive(Debug, Deserialize)]
pub(super) struct Offers {
    pub(super) offers: Vec<Offer>,
    pub(super) total: u64,
}

/// A competitor's offer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Offer {
    pub(super) merchant_id: Text,
    pub(super) price: f64,
}

/// `GET /bff/offer-view/list`. A page without `total` is refused by the catalogue's own rule
/// (`no_total`), so it is read as an `Option` here.
#[derive(Debug, Deserialize)]
pub(super) struct OfferList {
    pub(super) data: Vec<ListedOffer>,
    pub(super) total: Option<u64>,
}

/// One of the merchant's offers. A missing or blank model, or a missing price, leaves the SKU
/// unpriced (the demper does not guess them).
#[derive(Debug, Deserialize)]
pub(super) struct ListedOffer {
    pub(super) sku: String,
    pub(super) model: Option<String>,
    pub(super) price: Option<f64>,
}

/// `GET /v2/orders`: a page of orders and how many pages there are.
#[derive(Debug, Deserialize)]
pub(super) struct Orders {
    pub(super) data: Vec<Order>,
    pub(super) meta: OrdersMeta,
}

/// `meta` of `/v2/orders`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OrdersMeta {
    pub(super) page_count: u64,
}

/// `GET /v2/orders/{id}`.
#[derive(Debug, Deserialize)]
pub(super) struct OneOrder {
    pub(super) data: Order,
}

/// An order resource (JSON:API).
#[derive(Debug, Deserialize)]
pub(super) struct Order {
    pub(super) id: String,
    pub(super) attributes: OrderAttributes,
    pub(super) relationships: Option<Relationships>,
}

/// An order's attributes: its code and creation date are what an order is stored and windowed
/// by; the rest is carried along when present.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OrderAttributes {
    pub(super) code: Text,
    pub(super) creation_date: u64,
    pub(super) state: Option<String>,
    pub(super) status: Option<String>,
    pub(super) total_price: Option<f64>,
    pub(super) delivery_mode: Option<String>,
    pub(super) pickup_point_id: Option<String>,
    pub(super) planned_delivery_date: Option<u64>,
}

/// `relationships` of an order.
#[derive(Debug, Deserialize)]
pub(super) struct Relationships {
    pub(super) entries: Option<Related>,
}

/// A relationship's links.
#[derive(Debug, Deserialize)]
pub(super) struct Related {
    pub(super) links: Option<Links>,
}

/// `links.related`: where the entries are.
#[derive(Debug, Deserialize)]
pub(super) struct Links {
    pub(super) related: Option<String>,
}

/// `GET /v2/orders/{id}/entries`.
#[derive(Debug, Deserialize)]
pub(super) struct Entries {
    pub(super) data: Vec<Entry>,
}

/// An order entry.
#[derive(Debug, Deserialize)]
pub(super) struct Entry {
    pub(super) attributes: EntryAttributes,
}

/// What an entry says: the offer, how many, at what price.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EntryAttributes {
    pub(super) offer: Option<EntryOffer>,
    pub(super) quantity: Option<i64>,
    pub(super) base_price: Option<f64>,
}

/// The offer an entry is for.
#[derive(Debug, Deserialize)]
pub(super) struct EntryOffer {
    pub(super) code: Option<String>,
    pub(super) name: Option<String>,
}
