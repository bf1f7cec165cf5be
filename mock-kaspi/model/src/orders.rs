//! The order lifecycle as the Shop API reports it (`attributes.status`): which statuses are
//! final, after which an order never changes again (kaspi-api.md §1, `filter[orders][status]`).

/// The statuses an order ends in: delivered, cancelled, or sent back.
pub const ORDER_FINAL_STATUSES: [&str; 3] = ["COMPLETED", "CANCELLED", "RETURNED"];

/// Whether an order with `status` may still change (no status yet counts as open).
pub fn order_is_open(status: Option<&str>) -> bool {
    status.is_none_or(|s| !ORDER_FINAL_STATUSES.contains(&s))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_completed_cancelled_and_returned_orders_are_final() {
        for s in ["COMPLETED", "CANCELLED", "RETURNED"] {
            assert!(!super::order_is_open(Some(s)), "{s}");
        }
        for s in ["APPROVED_BY_BANK", "ACCEPTED_BY_MERCHANT", "CANCELLING", "KASPI_DELIVERY_RETURN_REQUESTED"]
        {
            assert!(super::order_is_open(Some(s)), "{s}");
        }
        assert!(super::order_is_open(None));
    }
}
