//! The orchestrator service.

fn main() -> anyhow::Result<()> {
    Ok(())
}
