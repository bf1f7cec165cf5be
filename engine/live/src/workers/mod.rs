//! The workers, one set per seller, each on its own lane: [`demper`] reprices, [`orders`]
//! stores new orders, [`catalog`] mirrors the cabinet's offer list.

pub mod catalog;
pub mod demper;
pub mod orders;

use rotor_engine::{FailReason, Module};

use super::driver::CallError;
use super::kaspi::ApiError;
use super::log::{self, Level};

/// What a worker does after an error.
pub(crate) enum Next {
    /// Go on with the next item.
    Continue,
    /// Stop the worker: shutdown, or the seller's proxies are gone.
    Stop,
}

/// Logs `e` for `what` and says whether the worker goes on.
pub(crate) fn triage(user: rotor_engine::UserId, module: Module, what: &str, e: &ApiError) -> Next {
    match e {
        ApiError::Call(CallError::Stopped | CallError::LaneLost) => Next::Stop,
        ApiError::Call(CallError::Failed(FailReason::NotAllocated | FailReason::Deallocated, _)) => {
            log::line(Level::Info, &format!("user {user}/{module}: no proxies allocated; worker stops"));
            Next::Stop
        }
        ApiError::Call(CallError::Failed(FailReason::Unauthorized, _)) => {
            // The driver alerted once when the engine saw the refusal; the engine fails every
            // other request of this seller, so the worker stops rather than spin.
            log::line(
                Level::Info,
                &format!("user {user}/{module}: {what}: credentials refused; worker stops"),
            );
            Next::Stop
        }
        other => {
            log::line(Level::Warn, &format!("user {user}/{module}: {what}: {other}"));
            Next::Continue
        }
    }
}
