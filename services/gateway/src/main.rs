//! The `gateway` binary: load settings, install telemetry, build, run until
//! SIGTERM. Everything else lives in the library so tests can build it.

use std::process::ExitCode;

use anyhow::Context as _;
use rootcause_gateway::{DEFAULTS, Gateway};
use rootcause_runtime::{Settings, Shutdown, exit_status, telemetry};

fn main() -> ExitCode {
    exit_status(DEFAULTS.name, run())
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let settings = Settings::load(DEFAULTS).context("loading configuration")?;
    let telemetry = telemetry::init(&settings.service.name, &settings.telemetry)
        .context("installing telemetry")?;
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    let service = Gateway::build(settings)
        .await
        .context("starting the gateway")?;
    let result = service
        .run_until_stopped(shutdown)
        .await
        .context("running the gateway");
    tracing::info!(ok = result.is_ok(), "gateway stopped");
    telemetry.shutdown();
    result
}
