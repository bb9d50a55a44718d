//! The `orchestrator` binary: load settings, install telemetry, build, run until
//! SIGTERM. Everything else lives in the library so tests can build it.

use std::process::ExitCode;

use anyhow::Context as _;
use rootcause_orchestrator::{DEFAULTS, Orchestrator};
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
    let service = Orchestrator::build(settings)
        .await
        .context("starting the orchestrator")?;
    let result = service
        .run_until_stopped(shutdown)
        .await
        .context("running the orchestrator");
    tracing::info!(ok = result.is_ok(), "orchestrator stopped");
    telemetry.shutdown();
    result
}
