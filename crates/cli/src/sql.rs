//! `rootcause sql check "<query>"`: whether the free-form SQL guard accepts
//! a query, and why not.
//!
//! For operators who enable free-form SQL for the `sql_diagnostics` tool:
//! they can try the queries they expect a model (or themselves) to run
//! before they rely on them. Exit 0 when accepted (the query as it would
//! run is printed), 1 when refused (the reason is printed).

/// Arguments of `rootcause sql`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: SqlCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SqlCommand {
    /// Check a query against the free-form SQL guard (exit 0 accepted, 1 refused).
    Check {
        /// The SQL to check.
        query: String,
    },
}

/// Runs the subcommand; `Ok(false)` when the query is refused.
pub fn run(args: Args) -> anyhow::Result<bool> {
    let SqlCommand::Check { query } = args.command;
    match rootcause_tools::sql::guard::check_select(&query) {
        Ok(checked) => {
            println!("accepted: {checked}");
            Ok(true)
        }
        Err(rootcause_tools::ToolError::QueryRefused { reason }) => {
            println!("refused: {reason}");
            Ok(false)
        }
        Err(other) => Err(other.into()),
    }
}
