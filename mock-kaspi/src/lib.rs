//! rotor-mock-kaspi: fakes of Kaspi and Proxy6 for live-mode tests. Not built yet; it lands
//! with the mock-kaspi issue.
