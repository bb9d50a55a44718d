//! The `rootcause` command line.

fn main() -> anyhow::Result<()> {
    Ok(())
}
