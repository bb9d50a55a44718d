//! Integration tests of rootcause-runtime against the real PostgreSQL,
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Redis and RabbitMQ of the machine (see DEVELOPERS.md).

mod config;
mod database;
mod health;
mod http;
mod telemetry;

use rootcause_runtime::{ServiceDefaults, Settings, Sources};

/// Defaults of a pretend service.
pub const TEST_SERVICE: ServiceDefaults = ServiceDefaults::new("test-svc", 0);

/// Settings from the compiled-in defaults plus `env`.
pub fn settings_with(env: &[(&str, &str)]) -> Settings {
    let mut sources = Sources::new(TEST_SERVICE);
    for (k, v) in env {
        sources = sources.with_env(*k, *v);
    }
    match Settings::load_from(&sources) {
        Ok(s) => s,
        Err(e) => panic!("settings should load: {e}"),
    }
}

/// A URL for a port nothing listens on: bind an ephemeral port, then free it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Where the repository's files are (config/, docs/).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
