//! Measures how fast a call fails once a provider's circuit breaker is open.

fn main() {}
