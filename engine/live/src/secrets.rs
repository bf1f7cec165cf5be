//! Secrets: where they come from (an environment variable or a file, never the config itself),
//! and the store's at-rest encryption (AES-256-GCM, key from the environment).

use std::fmt;
use std::path::PathBuf;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rotor_engine::Secret;

/// Why a secret could not be had. Messages name the source, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable ${0} is not set")]
    Unset(String),
    /// The file could not be read.
    #[error("cannot read secret file {path}: {message}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The source holds nothing.
    #[error("{0} is empty")]
    Empty(String),
    /// The store key is not a 32-byte key in hex or base64.
    #[error("{0}")]
    BadKey(String),
    /// A sealed value does not open under this key.
    #[error("{0}")]
    Undecryptable(&'static str),
}

/// Where a secret's value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The named environment variable.
    Env(String),
    /// The file's contents, trailing newline trimmed.
    File(PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(v) => write!(f, "env ${v}"),
            SecretSource::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl SecretSource {
    /// Reads the value now. The error names the source, never a value.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let value = match self {
            SecretSource::Env(var) => std::env::var(var).map_err(|_| SecretError::Unset(var.clone()))?,
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| SecretError::Unreadable {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        };
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(Secret::new(value))
    }
}

/// Encrypts and decrypts the store's secret columns.
pub struct Cipher {
    aead: Aes256Gcm,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(<key redacted>)")
    }
}

/// The prefix of every encrypted value: format version 1, then base64(nonce ‖ ciphertext ‖ tag).
const PREFIX: &str = "v1:";

impl Cipher {
    /// A cipher from a 32-byte key written as 64 hex digits or as base64.
    pub fn from_key_text(key: &Secret) -> Result<Self, SecretError> {
        let text = key.expose().trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0)).collect::<Vec<u8>>()
        } else {
            B64.decode(text).map_err(|_| {
                SecretError::BadKey("the store key is neither 64 hex digits nor base64".to_owned())
            })?
        };
        if bytes.len() != 32 {
            return Err(SecretError::BadKey(format!(
                "the store key is {} bytes; valid: exactly 32 (AES-256)",
                bytes.len()
            )));
        }
        Ok(Cipher { aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)) })
    }

    /// A cipher under a fresh random key (for a store that lives only as long as a run).
    pub fn random() -> Self {
        Cipher { aead: Aes256Gcm::new(&Aes256Gcm::generate_key(&mut OsRng)) }
    }

    /// Encrypts `plain` under a fresh random nonce.
    pub fn seal(&self, plain: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Encryption of an in-memory buffer only fails on absurd lengths (> 64 GiB).
        let sealed = self.aead.encrypt(&nonce, plain.as_bytes()).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Decrypts a value [`Cipher::seal`] produced. Fails on a wrong key or a damaged value.
    pub fn open(&self, sealed: &str) -> Result<Secret, SecretError> {
        use SecretError::Undecryptable;
        let body =
            sealed.strip_prefix(PREFIX).ok_or(Undecryptable("an encrypted value lacks its v1: prefix"))?;
        let bytes = B64.decode(body).map_err(|_| Undecryptable("an encrypted value is not base64"))?;
        if bytes.len() < 12 + 16 {
            return Err(Undecryptable("an encrypted value is too short"));
        }
        let (nonce, ct) = bytes.split_at(12);
        let plain = self.aead.decrypt(Nonce::from_slice(nonce), ct).map_err(|_| {
            Undecryptable("cannot decrypt a stored secret: wrong ROTOR_STORE_KEY, or the store is damaged")
        })?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| Undecryptable("a decrypted secret is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(hexbyte: &str) -> Secret {
        Secret::new(hexbyte.repeat(32))
    }

    #[test]
    fn sealed_values_hide_the_plaintext_and_round_trip() {
        let c = Cipher::from_key_text(&key("ab")).unwrap();
        let sealed = c.seal("proxy-password-123");
        assert!(!sealed.contains("proxy-password-123"));
        assert_ne!(sealed, c.seal("proxy-password-123"), "a fresh nonce each time");
        assert_eq!(c.open(&sealed).unwrap().expose(), "proxy-password-123");
    }

    #[test]
    fn a_wrong_key_or_damaged_value_is_an_error_not_garbage() {
        let sealed = Cipher::from_key_text(&key("ab")).unwrap().seal("x");
        let other = Cipher::from_key_text(&key("cd")).unwrap();
        assert!(other.open(&sealed).unwrap_err().to_string().contains("wrong ROTOR_STORE_KEY"));
        let c = Cipher::from_key_text(&key("ab")).unwrap();
        assert!(c.open("x").is_err());
        assert!(c.open("v1:AAAA").is_err());
    }

    #[test]
    fn keys_must_be_32_bytes() {
        assert!(Cipher::from_key_text(&Secret::new("abcd")).unwrap_err().to_string().contains("bytes"));
        let b64 = B64.encode([7u8; 32]);
        assert!(Cipher::from_key_text(&Secret::new(b64)).is_ok());
    }

    #[test]
    fn sources_name_themselves_without_values() {
        let s = SecretSource::Env("ROTOR_TEST_UNSET_VARIABLE_XYZ".into());
        assert_eq!(
            s.resolve().unwrap_err().to_string(),
            "environment variable $ROTOR_TEST_UNSET_VARIABLE_XYZ is not set"
        );
    }
}
