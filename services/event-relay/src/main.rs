//! The event-relay service.

fn main() -> anyhow::Result<()> {
    Ok(())
}
