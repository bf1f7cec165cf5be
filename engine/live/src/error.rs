//! Why a live run (or `rotor probe`) could not start or went wrong, by cause. The CLI maps
//! [`LiveError::is_input`] to exit 2 (fix the config, a secret or a file) and the rest to 1.

use rotor_engine::UserId;

use crate::secrets::SecretError;
use crate::store::StoreError;
use crate::transport::ClientError;
use crate::workers::demper::SkuError;

/// Why a live run could not start or went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// A secret named by the config could not be had; `place` says which.
    #[error("{place}: {source}")]
    Secret {
        /// Which secret: `store key`, `user 3: token`, `[[proxy]] #2 (http://…): password`.
        place: String,
        /// Why.
        source: SecretError,
    },
    /// A seller's SKU file is wrong.
    #[error("user {user}: {source}")]
    Skus {
        /// Whose file.
        user: UserId,
        /// What is wrong, with `file:line`.
        source: SkuError,
    },
    /// The configuration does not hold together (what the parser cannot see alone).
    #[error("{0}")]
    Config(String),
    /// A proxy's HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The store failed or holds what this build cannot use.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The process could not set itself up (a listener, a signal handler, a task).
    #[error("{0}")]
    Runtime(String),
}

impl LiveError {
    /// Whether the operator's input is at fault (exit 2), not the machine (exit 1).
    pub fn is_input(&self) -> bool {
        match self {
            LiveError::Secret { .. } | LiveError::Skus { .. } | LiveError::Config(_) => true,
            LiveError::Client(e) => e.is_input(),
            LiveError::Store(_) | LiveError::Runtime(_) => false,
        }
    }

    /// A secret's error at `place`.
    pub(crate) fn secret(place: impl Into<String>) -> impl FnOnce(SecretError) -> LiveError {
        let place = place.into();
        move |source| LiveError::Secret { place, source }
    }
}
