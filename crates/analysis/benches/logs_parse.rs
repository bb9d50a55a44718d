//! Log template mining on the eight labelled Loghub samples (16,000 lines,
//! read from `$ROOTCAUSE_SHARED_DIR/data/loghub`): prints the grouping and
//! parsing accuracy table once, then measures `LineParser` throughput per
//! system and on all samples together, through the code path of
//! `rootcause logs parse`.
//!
//! `cargo bench -p rootcause-analysis --bench logs_parse`
//!
//! The 1,000,000-line comparison with Python drain3 is
//! `scripts/bench-logs.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rootcause_analysis::logs::{LineParser, MinerConfig};

#[path = "../tests/support/loghub.rs"]
mod loghub;

fn parse_all(lines: &[String]) -> usize {
    let mut p = LineParser::new(MinerConfig::default()).unwrap();
    for l in lines {
        p.push(l);
    }
    p.finish().templates().len()
}

fn bench(c: &mut Criterion) {
    let config = MinerConfig::default();
    let samples: Vec<loghub::Sample> = loghub::SYSTEMS.iter().map(|s| loghub::load(s)).collect();
    let results: Vec<_> = samples
        .iter()
        .map(|s| loghub::evaluate(s, &config))
        .collect();
    println!(
        "Loghub accuracy, default configuration:\n{}",
        loghub::table(&results)
    );

    let mut group = c.benchmark_group("logs_parse");
    for s in &samples {
        group.throughput(Throughput::Elements(s.content.len() as u64));
        group.bench_function(s.system, |b| b.iter(|| parse_all(&s.content)));
    }
    let all: Vec<String> = samples
        .iter()
        .flat_map(|s| s.content.iter().cloned())
        .collect();
    group.throughput(Throughput::Elements(all.len() as u64));
    group.bench_function("all_16k", |b| b.iter(|| parse_all(&all)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
