//! The agent-worker service.

fn main() -> anyhow::Result<()> {
    Ok(())
}
