//! The gateway service.

fn main() -> anyhow::Result<()> {
    Ok(())
}
