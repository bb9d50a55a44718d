//! Properties of the template miner on generated logs: every line fits its
//! final template, parallel tokenising changes nothing, and eviction keeps
//! the live templates bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use proptest::prelude::*;
use rootcause_analysis::logs::mask::Tokenizer;
use rootcause_analysis::logs::{LineParser, MinerConfig, WILDCARD};

/// A small deterministic generator (xorshift) so a seed gives a log.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const WORDS: [&str; 12] = [
    "cache", "request", "failed", "user", "order", "timeout", "ok", "retry", "db", "shard",
    "alice", "bob",
];

/// Lines from a few event shapes with variable numbers, ids and words.
fn log(seed: u64, n: usize) -> Vec<String> {
    let mut g = Gen(seed | 1);
    (0..n)
        .map(|_| match g.next() % 6 {
            0 => format!("request {} took {}ms", g.next() % 10_000, g.next() % 900),
            1 => format!(
                "user {} logged in from 10.0.{}.{}",
                g.pick(&WORDS),
                g.next() % 255,
                g.next() % 255
            ),
            2 => format!("{} {} {}", g.pick(&WORDS), g.pick(&WORDS), g.pick(&WORDS)),
            3 => format!(
                "order id={:x} state={} shard={}",
                g.next(),
                g.pick(&WORDS),
                g.next() % 8
            ),
            4 => format!("{} connected to the primary node", g.pick(&WORDS)),
            _ => format!(
                "retry {} of {} for /api/v{}/items",
                g.next() % 5,
                5,
                g.next() % 3
            ),
        })
        .collect()
}

fn parse(lines: &[String], threads: usize, config: MinerConfig) -> Vec<(String, String)> {
    let mut p = LineParser::new(config).unwrap().with_threads(threads);
    p.push_batch(lines);
    let r = p.finish();
    r.records()
        .map(|x| (x.template_id.to_string(), x.template.to_owned()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_line_fits_its_final_template(seed in any::<u64>(), n in 1usize..600) {
        let lines = log(seed, n);
        let out = parse(&lines, 1, MinerConfig::default());
        let mut t = Tokenizer::default();
        for (line, (_, template)) in lines.iter().zip(&out) {
            t.tokenize(line, &[], &[]);
            let masked: Vec<&str> = t.tokens().collect();
            let tpl: Vec<&str> = template.split(' ').collect();
            prop_assert_eq!(masked.len(), tpl.len(), "{} vs {}", line, template);
            for (m, p) in masked.iter().zip(&tpl) {
                prop_assert!(*p == WILDCARD || p == m, "{} does not fit {}", line, template);
            }
        }
    }

    #[test]
    fn parallel_tokenising_gives_the_same_output(seed in any::<u64>()) {
        // Above the batch threshold, so chunks really go to worker threads.
        let lines = log(seed, 10_000);
        let one = parse(&lines, 1, MinerConfig::default());
        let three = parse(&lines, 3, MinerConfig::default());
        prop_assert!(one == three);
    }

    #[test]
    fn small_cluster_cap_still_assigns_every_line(seed in any::<u64>()) {
        let lines = log(seed, 3_000);
        let config = MinerConfig { max_clusters: 8, ..MinerConfig::default() };
        let mut p = LineParser::new(config).unwrap();
        for l in &lines {
            p.push(l);
        }
        let r = p.finish();
        prop_assert!(r.miner().live_templates() <= 8);
        prop_assert_eq!(r.records().len(), lines.len());
        prop_assert!(r.records().all(|x| !x.template.is_empty()));
    }
}
