//! The label sets of `/metrics`: each a small bounded set (module, endpoint, outcome, reason,
//! proxy state, seller), never a SKU, an order or a proxy address.

use prometheus_client::encoding::EncodeLabelSet;
use rotor_engine::{Endpoint, Module, OutcomeKind};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ModuleLabel {
    pub(super) module: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ModuleOutcome {
    pub(super) module: &'static str,
    pub(super) outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ModuleReason {
    pub(super) module: &'static str,
    pub(super) reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct EndpointLabel {
    pub(super) endpoint: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct EndpointResult {
    pub(super) endpoint: &'static str,
    pub(super) result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct SellerModule {
    pub(super) seller: String,
    pub(super) module: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct StateLabel {
    pub(super) state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ReasonLabel {
    pub(super) reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct SellerLabel {
    pub(super) seller: String,
}

pub(super) fn module(m: Module) -> ModuleLabel {
    ModuleLabel { module: m.name() }
}

pub(super) fn endpoint(e: Endpoint) -> EndpointLabel {
    EndpointLabel { endpoint: e.name() }
}

/// The label of a request's outcome: an `ok` that was a 4xx (a 400 or 404: the request was
/// wrong, not served) is a `client_error`.
pub(super) fn outcome_label(kind: OutcomeKind, status: Option<u16>) -> &'static str {
    match (kind, status) {
        (OutcomeKind::Ok, Some(400..=499)) => "client_error",
        _ => kind.name(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct BuildLabels {
    pub(super) version: &'static str,
    pub(super) commit: &'static str,
}
