//! A proxy as the pool knows it: where to connect, how to log in, and where it egresses.

use std::fmt;
use std::net::IpAddr;

use crate::secret::Secret;

/// Login for a proxy. The password is a [`Secret`], so `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The proxy user name.
    pub username: String,
    /// The proxy password.
    pub password: Secret,
}

impl Credentials {
    /// Login with `username` and `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials { username: username.into(), password: Secret::new(password) }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.username, self.password)
    }
}

/// A proxy's description: endpoint, login, and the egress address Kaspi sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySpec {
    /// Host to connect to (name or address).
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// Login, if the proxy needs one.
    pub credentials: Option<Credentials>,
    /// The address Kaspi sees requests come from.
    pub egress_ip: IpAddr,
    /// The subnet label (for example `203.0.113.0/24`), which the simulator uses to model bans
    /// that hit a whole range at once.
    pub subnet: String,
}

impl fmt::Display for ProxySpec {
    /// `user:<redacted>@host:port (egress ip)`: safe for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.credentials {
            write!(f, "{c}@")?;
        }
        write!(f, "{}:{} (egress {})", self.host, self.port, self.egress_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProxySpec {
        ProxySpec {
            host: "px.example".into(),
            port: 8080,
            credentials: Some(Credentials::new("seller7", "s3cr3t-pass")),
            egress_ip: "203.0.113.9".parse().unwrap(),
            subnet: "203.0.113.0/24".into(),
        }
    }

    #[test]
    fn debug_and_display_redact_the_password() {
        let p = spec();
        for text in [format!("{p:?}"), format!("{p:#?}"), p.to_string()] {
            assert!(!text.contains("s3cr3t-pass"), "leaked in {text}");
            assert!(text.contains("seller7"));
        }
        assert_eq!(p.to_string(), "seller7:<redacted>@px.example:8080 (egress 203.0.113.9)");
    }
}
