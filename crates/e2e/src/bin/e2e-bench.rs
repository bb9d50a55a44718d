//! Throughput of the back end: N concurrent offline diagnoses through an
//! orchestrator and agent-workers running as processes on this machine.
//! Prints diagnoses per minute, p50/p99 time to conclusion (from the
//! `created` event to the `concluded` one, as stored), and the resident
//! memory of each process: idle before the load, and its peak.
//!
//! ```text
//! cargo run --release -p rootcause-e2e --bin e2e-bench -- --bundles examples --diagnoses 50 --workers 2
//! ```
//! The service binaries must be built in the same profile first
//! (`cargo build --release --bins`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rootcause_diagnosis::{AgentArm, DiagnosisOptions, EventKind, Status};
use rootcause_e2e::{System, rss_kib};

struct Args {
    bundles: PathBuf,
    diagnoses: usize,
    workers: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        bundles: PathBuf::from("examples"),
        diagnoses: 50,
        workers: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bundles" => out.bundles = PathBuf::from(value),
            "--diagnoses" => out.diagnoses = value.parse().context("--diagnoses")?,
            "--workers" => out.workers = value.parse().context("--workers")?,
            other => bail!("unknown flag {other}; use --bundles DIR --diagnoses N --workers N"),
        }
    }
    Ok(out)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round();
    sorted[rank as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let root = std::fs::canonicalize(&args.bundles)
        .with_context(|| format!("bundle directory {}", args.bundles.display()))?;
    let mut bundles: Vec<PathBuf> = std::fs::read_dir(&root)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("incident.json").is_file())
        .collect();
    bundles.sort();
    if bundles.is_empty() {
        bail!(
            "no bundle (a directory with incident.json) under {}",
            root.display()
        );
    }
    let system = System::up(
        1,
        args.workers,
        &[
            (
                "ROOTCAUSE__AGENTS__BUNDLE_ROOTS",
                root.display().to_string(),
            ),
            ("ROOTCAUSE__TELEMETRY__FILTER", "warn".to_owned()),
        ],
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle: Vec<(String, Option<(u64, u64)>)> = system
        .orchestrators
        .iter()
        .map(|p| ("orchestrator".to_owned(), rss_kib(p.pid())))
        .chain(
            system
                .workers
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("agent-worker-{i}"), rss_kib(p.pid()))),
        )
        .collect();

    let started = Instant::now();
    let mut sessions = Vec::with_capacity(args.diagnoses);
    for i in 0..args.diagnoses {
        let bundle = &bundles[i % bundles.len()];
        let options =
            DiagnosisOptions::bundle(bundle.display().to_string()).with_arm(AgentArm::Offline);
        sessions.push(system.submit(bundle, options).await?);
    }
    let mut latencies_ms = Vec::new();
    let mut concluded = 0;
    for session in &sessions {
        let state = system
            .wait_ended(*session, Duration::from_secs(600))
            .await?;
        if state.status() == Status::Completed {
            concluded += 1;
        }
        let events = system.events(*session).await?;
        let created = events.first().map(|e| e.occurred_at);
        let ended = events
            .iter()
            .rev()
            .find(|e| matches!(e.kind, EventKind::Concluded { .. }))
            .map(|e| e.occurred_at);
        if let (Some(c), Some(e)) = (created, ended) {
            latencies_ms.push((e - c).num_milliseconds() as f64);
        }
    }
    let wall = started.elapsed();
    latencies_ms.sort_by(f64::total_cmp);

    println!(
        "diagnoses: {} submitted, {concluded} concluded, {} bundles, {} workers",
        args.diagnoses,
        bundles.len(),
        args.workers
    );
    println!(
        "throughput: {:.1} diagnoses/min (wall {:.1} s)",
        args.diagnoses as f64 / wall.as_secs_f64() * 60.0,
        wall.as_secs_f64()
    );
    println!(
        "time to conclusion: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&latencies_ms, 50.0),
        percentile(&latencies_ms, 99.0),
        latencies_ms.last().copied().unwrap_or(f64::NAN)
    );
    let peak: Vec<Option<(u64, u64)>> = system
        .orchestrators
        .iter()
        .chain(system.workers.iter())
        .map(|p| rss_kib(p.pid()))
        .collect();
    for ((name, idle), now) in idle.iter().zip(peak) {
        let fmt = |v: Option<u64>| {
            v.map_or("n/a".to_owned(), |k| {
                format!("{:.1} MiB", k as f64 / 1024.0)
            })
        };
        println!(
            "memory {name}: idle {}, peak {}",
            fmt(idle.map(|(rss, _)| rss)),
            fmt(now.map(|(_, hwm)| hwm))
        );
    }
    system.down().await?;
    Ok(())
}
