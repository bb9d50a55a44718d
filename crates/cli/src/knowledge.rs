//! `rootcause knowledge ingest`: loads a directory of markdown runbooks
//! (first line `# <title>`) and, optionally, a `past_incidents.jsonl` into
//! the knowledge base that `knowledge_search` reads.
//!
//! Re-running is safe: documents are upserted on (tenant, kind, source), the
//! source being the runbook's file name or the incident's id.

use std::path::PathBuf;

use anyhow::Context;
use rootcause_diagnosis::TenantId;
use rootcause_tools::knowledge::{IngestReport, ingest_past_incidents, ingest_runbooks};
use secrecy::{ExposeSecret, SecretString};

/// Arguments of `rootcause knowledge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KnowledgeCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KnowledgeCommand {
    /// Ingest runbooks (and past incidents) for a tenant.
    Ingest(IngestArgs),
}

#[derive(Debug, clap::Args)]
struct IngestArgs {
    /// Directory of runbooks, one markdown file each, first line "# <title>".
    #[arg(long, value_name = "DIR")]
    runbooks: PathBuf,
    /// A past_incidents.jsonl file (one incident per line: id, title,
    /// symptoms, root_cause, category, resolution).
    #[arg(long, value_name = "FILE")]
    past_incidents: Option<PathBuf>,
    /// Tenant the documents belong to; only its diagnoses will see them.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// PostgreSQL URL of the Rootcause database.
    #[arg(
        long,
        env = "ROOTCAUSE__DATABASE__URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/rootcause"
    )]
    database_url: SecretString,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let KnowledgeCommand::Ingest(args) = args.command;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (runbooks, incidents) = rt.block_on(ingest(&args))?;
    print_report("runbook", &runbooks);
    if let Some(r) = &incidents {
        print_report("past incident", r);
    }
    Ok(())
}

async fn ingest(args: &IngestArgs) -> anyhow::Result<(IngestReport, Option<IngestReport>)> {
    anyhow::ensure!(
        args.runbooks.is_dir(),
        "--runbooks {} is not a directory",
        args.runbooks.display()
    );
    let tenant = TenantId::new(args.tenant.trim());
    anyhow::ensure!(!tenant.as_str().is_empty(), "--tenant must not be blank");
    let pool = rootcause_diagnosis::db::pool(args.database_url.expose_secret(), 1)
        .context("building the database pool")?;
    let mut conn = pool.get().await.with_context(|| {
        format!(
            "connecting to {}",
            rootcause_redact::url(args.database_url.expose_secret())
        )
    })?;
    let runbooks = ingest_runbooks(&mut conn, &tenant, &args.runbooks)
        .await
        .with_context(|| format!("ingesting runbooks from {}", args.runbooks.display()))?;
    let incidents = match &args.past_incidents {
        None => None,
        Some(file) => Some(
            ingest_past_incidents(&mut conn, &tenant, file)
                .await
                .with_context(|| format!("ingesting past incidents from {}", file.display()))?,
        ),
    };
    Ok((runbooks, incidents))
}

fn print_report(what: &str, r: &IngestReport) {
    println!("{} {what}(s) ingested", r.upserted);
    for s in &r.skipped {
        println!("  skipped: {s}");
    }
}

#[cfg(test)]
mod tests {

    use clap::Parser;
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        source: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        title: String,
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: super::KnowledgeCommand,
    }

    #[test]
    fn ingest_loads_runbooks_and_past_incidents_idempotently() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let db = rt.block_on(rootcause_test_db::TestDatabase::new()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("disk-full.md"),
            "# Disk full\nClean /var/log.\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.md"), "no heading here\n").unwrap();
        let incidents = dir.path().join("past.jsonl");
        std::fs::write(
            &incidents,
            r#"{"id": "INC-1", "title": "disk full on db", "symptoms": "writes fail", "root_cause": "logs", "category": "resource_exhaustion", "resolution": "rotate"}"#,
        )
        .unwrap();
        let argv = [
            "x",
            "ingest",
            "--runbooks",
            dir.path().to_str().unwrap(),
            "--past-incidents",
            incidents.to_str().unwrap(),
            "--tenant",
            "acme",
            "--database-url",
            db.url(),
        ];
        for _ in 0..2 {
            let cli = Cli::try_parse_from(argv).unwrap();
            super::run(super::Args {
                command: cli.command,
            })
            .unwrap();
        }
        let rows: Vec<Row> = rt.block_on(async {
            let mut conn = db.connect().await.unwrap();
            diesel::sql_query(
                "SELECT kind, source, title FROM knowledge_documents WHERE tenant = 'acme' ORDER BY kind, source",
            )
            .load(&mut conn)
            .await
            .unwrap()
        });
        let got: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.kind.as_str(), r.source.as_str(), r.title.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("past_incident", "INC-1", "disk full on db"),
                ("runbook", "disk-full.md", "Disk full"),
            ]
        );
        let missing = Cli::try_parse_from(["x", "ingest", "--runbooks", "/no/such/dir"]).unwrap();
        let err = super::run(super::Args {
            command: missing.command,
        })
        .unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
