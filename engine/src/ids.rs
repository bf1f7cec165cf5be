//! Identifiers: proxies, users, modules, lanes and endpoint classes.

use std::fmt;
use std::str::FromStr;

/// A proxy's id in the pool. The pool hands these out densely from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProxyId(pub u32);

/// A paying user (a seller account), as the caller numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(pub u32);

impl fmt::Display for ProxyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "u{}", self.0)
    }
}

/// The part of a seller tool that sends a request. Each module of each user has its own lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Module {
    /// Repricing: competitor offers plus price updates, every few minutes.
    Demper,
    /// Order sync through the Shop API.
    Orders,
    /// Catalog sync through the cabinet offer list.
    Catalog,
    /// Spare capacity; by default it borrows from catalog when it holds no proxies.
    Reserve,
}

impl Module {
    /// Every module, in allocation order.
    pub const ALL: [Module; 4] = [Module::Demper, Module::Orders, Module::Catalog, Module::Reserve];

    /// The module's name as scenario files and logs spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Module::Demper => "demper",
            Module::Orders => "orders",
            Module::Catalog => "catalog",
            Module::Reserve => "reserve",
        }
    }

    /// Position in [`Module::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that matches no variant; the message lists the valid choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{given}`; valid choices: {choices}")]
pub struct UnknownName {
    /// What was being parsed ("module", "endpoint").
    pub kind: &'static str,
    /// The text given.
    pub given: String,
    /// The valid names, comma-separated.
    pub choices: String,
}

impl FromStr for Module {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Module::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| UnknownName {
            kind: "module",
            given: s.to_owned(),
            choices: Module::ALL.map(Module::name).join(", "),
        })
    }
}

/// A lane: the (user, module) pair that holds proxies and sends through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LaneKey {
    /// The user the lane belongs to.
    pub user: UserId,
    /// The module that sends on it.
    pub module: Module,
}

impl LaneKey {
    /// The lane of `user`'s `module`.
    pub const fn new(user: UserId, module: Module) -> Self {
        LaneKey { user, module }
    }
}

impl fmt::Display for LaneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.user, self.module)
    }
}

/// The Kaspi endpoint a request goes to. Limits differ by endpoint: storefront reads are limited
/// per IP, cabinet writes per merchant account (see kaspi-api.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// `POST /yml/offer-view/offers/{productId}`: competitor offers, public storefront.
    StorefrontOffers,
    /// `POST /pricefeed/upload/merchant/process`: the cabinet's price update.
    CabinetPriceUpdate,
    /// `GET /bff/offer-view/list`: the cabinet's own offer list.
    CabinetOfferList,
    /// `GET /shop/api/v2/orders`: the Shop API order list.
    ShopOrders,
    /// `GET /shop/api/v2/orders/{id}/entries`: one order's entries.
    ShopOrderEntries,
}

impl Endpoint {
    /// Every endpoint class.
    pub const ALL: [Endpoint; 5] = [
        Endpoint::StorefrontOffers,
        Endpoint::CabinetPriceUpdate,
        Endpoint::CabinetOfferList,
        Endpoint::ShopOrders,
        Endpoint::ShopOrderEntries,
    ];

    /// The endpoint's name as scenario files and traces spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Endpoint::StorefrontOffers => "offers",
            Endpoint::CabinetPriceUpdate => "price_update",
            Endpoint::CabinetOfferList => "offer_list",
            Endpoint::ShopOrders => "orders",
            Endpoint::ShopOrderEntries => "order_entries",
        }
    }

    /// Position in [`Endpoint::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Which Kaspi host serves it: what the seller's credentials for it are.
    pub const fn host(self) -> Host {
        match self {
            Endpoint::StorefrontOffers => Host::Storefront,
            Endpoint::CabinetPriceUpdate | Endpoint::CabinetOfferList => Host::Cabinet,
            Endpoint::ShopOrders | Endpoint::ShopOrderEntries => Host::ShopApi,
        }
    }
}

/// The Kaspi host an endpoint belongs to, and so the credentials it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// The public storefront: no credentials.
    Storefront,
    /// The merchant cabinet: the seller's session cookie.
    Cabinet,
    /// The Shop API: the seller's API token.
    ShopApi,
}

impl Host {
    /// The name logs and the gateway's paths use.
    pub const fn name(self) -> &'static str {
        match self {
            Host::Storefront => "storefront",
            Host::Cabinet => "cabinet",
            Host::ShopApi => "Shop API",
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Endpoint {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::ALL.into_iter().find(|e| e.name() == s).ok_or_else(|| UnknownName {
            kind: "endpoint",
            given: s.to_owned(),
            choices: Endpoint::ALL.map(Endpoint::name).join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Module::ALL {
            assert_eq!(m.name().parse::<Module>(), Ok(m));
            assert_eq!(Module::ALL[m.index()], m);
        }
        for e in Endpoint::ALL {
            assert_eq!(e.name().parse::<Endpoint>(), Ok(e));
            assert_eq!(Endpoint::ALL[e.index()], e);
        }
    }

    #[test]
    fn unknown_names_list_the_valid_choices() {
        let err = "dempr".parse::<Module>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown module `dempr`; valid choices: demper, orders, catalog, reserve"
        );
        let err = "offer".parse::<Endpoint>().unwrap_err();
        assert!(err.to_string().contains("offers, price_update, offer_list, orders, order_entries"));
    }

    #[test]
    fn display_forms() {
        let lane = LaneKey::new(UserId(3), Module::Orders);
        assert_eq!(lane.to_string(), "u3/orders");
        assert_eq!(ProxyId(12).to_string(), "p12");
    }
}
