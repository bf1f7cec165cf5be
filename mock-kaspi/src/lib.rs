//! rotor-mock-kaspi: fakes of the Kaspi and Proxy6 HTTP APIs, with loopback forward proxies,
//! for testing live mode end to end.
//!
//! Not built yet: it lands with the mock-kaspi issue. This crate has no items so that nothing
//! pretends to work before then.
