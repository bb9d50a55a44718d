//! Conformance of the PromQL evaluator with Prometheus on the behaviours the
//! bundle backend relies on: `rate`/`increase` extrapolation (zero cutoff,
//! half-interval limit), counter resets, `offset`, `irate`, `delta`,
//! `idelta`, classic-bucket `histogram_quantile` with aggregation: the
//! expected values are the ones Prometheus' own engine tests assert for the
//! same data (`promql/promqltest/testdata/functions.test`,
//! `histograms.test`). The aggregation and matching cases follow from the
//! PromQL documentation on the same kind of fixture (case-insensitive
//! keywords, `by`/`without`, `on`, `bool`, `and`, name kept or dropped).
//!
//! Notation:
//! - `load <interval>` then `name{labels} values`, where values are numbers or
//!   `a+bxn` (a, a+b, ..., n+1 values), one every interval from t = 0;
//! - `eval <time> <query>` then the expected `{labels} value` lines (none for
//!   an empty result).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rootcause_analysis::metrics::promql::{Engine, Value};
use rootcause_analysis::metrics::{Labels, openmetrics};

fn duration_ms(s: &str) -> i64 {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap());
    let n: i64 = n.parse().unwrap();
    n * match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => panic!("unit {other}"),
    }
}

fn expand(values: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for tok in values.split_whitespace() {
        if let Some((start, rest)) = tok.split_once('+') {
            let (inc, times) = rest.split_once('x').unwrap();
            let (start, inc, times): (f64, f64, usize) = (
                start.parse().unwrap(),
                inc.parse().unwrap(),
                times.parse().unwrap(),
            );
            for i in 0..=times {
                out.push(start + inc * i as f64);
            }
        } else {
            out.push(tok.parse().unwrap());
        }
    }
    out
}

/// Runs a script; panics with the query on the first mismatch.
fn run(script: &str) {
    let mut lines = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .peekable();
    let mut om = String::new();
    let mut set = None;
    while let Some(line) = lines.next() {
        if let Some(interval) = line.strip_prefix("load ") {
            let step = duration_ms(interval);
            om.clear();
            while let Some(l) = lines.peek() {
                if l.starts_with("eval ") || l.starts_with("load ") {
                    break;
                }
                let l = lines.next().unwrap();
                let split = match l.find('{') {
                    Some(_) => l.find('}').unwrap() + 1,
                    None => l.find(' ').unwrap(),
                };
                let (series, values) = l.split_at(split);
                for (i, v) in expand(values).iter().enumerate() {
                    om += &format!("{series} {v} {}\n", (i as i64 * step) / 1000);
                }
            }
            om += "# EOF\n";
            set = Some(openmetrics::parse(&om).unwrap());
        } else if let Some(rest) = line.strip_prefix("eval ") {
            let (at, query) = rest.split_once(' ').unwrap();
            let set = set.as_ref().expect("load before eval");
            let engine = Engine::new(set);
            let Value::Vector(got) = engine.instant_query(query, duration_ms(at)).unwrap() else {
                panic!("{query}: not a vector")
            };
            let mut expected: Vec<(Labels, f64)> = Vec::new();
            while let Some(l) = lines.peek() {
                if !l.starts_with('{') {
                    break;
                }
                let l = lines.next().unwrap();
                let (labels, value) = l.rsplit_once(' ').unwrap();
                let inner = labels.trim_start_matches('{').trim_end_matches('}');
                let pairs = inner.split(',').filter(|p| !p.is_empty()).map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.trim().to_owned(), v.trim().trim_matches('"').to_owned())
                });
                expected.push((Labels::new(pairs), value.parse().unwrap()));
            }
            assert_eq!(
                got.len(),
                expected.len(),
                "{query} at {at}: got {got:?}, expected {expected:?}"
            );
            for (labels, want) in &expected {
                let e = got
                    .iter()
                    .find(|e| &e.labels == labels)
                    .unwrap_or_else(|| panic!("{query} at {at}: no {labels} in {got:?}"));
                // Some expected values are printed with 10 digits only.
                let tol = 1e-9 * want.abs().max(1.0);
                assert!(
                    e.value == *want || (e.value - want).abs() <= tol,
                    "{query} at {at} {labels}: got {}, want {want}",
                    e.value
                );
            }
        } else {
            panic!("unknown line {line}");
        }
    }
}

#[test]
fn increase_extrapolates_towards_zero_and_half_an_interval() {
    run(r#"
        load 5m
          http_requests_total{path="/foo"} 0+10x10
          http_requests_total{path="/bar"} 0+18x5 0+18x5
          http_requests_total{path="/dings"} 10+10x10
          http_requests_total{path="/bumms"} 1+10x10
        eval 50m increase(http_requests_total[50m])
          {path="/foo"} 100
          {path="/bar"} 160
          {path="/dings"} 100
          {path="/bumms"} 100
        eval 50m increase(http_requests_total[100m])
          {path="/foo"} 100
          {path="/bar"} 162
          {path="/dings"} 105
          {path="/bumms"} 101
        load 5m
          http_requests_total{path="/foo"} 0 1 2 3 2 3 4
        eval 30m increase(http_requests_total[30m])
          {path="/foo"} 7
    "#);
}

#[test]
fn rate_with_resets_offsets_and_zero_cutoff() {
    run(r#"
        load 5m
          testcounter_reset_middle_total 0+27x4 0+27x5
          testcounter_reset_end_total 0+10x9 0 10
        eval 50m rate(testcounter_reset_middle_total[50m])
          {} 0.08
        eval 50m rate(testcounter_reset_end_total[5m])
        eval 50m rate(testcounter_reset_end_total[6m])
          {} 0
        load 5m
          calculate_rate_offset_total{x="a"} 0+10x10
          calculate_rate_offset_total{x="b"} 0+20x10
          calculate_rate_window_total 0+80x10
        eval 50m rate(calculate_rate_window_total[50m])
          {} 0.26666666666666666
        eval 50m rate(calculate_rate_offset_total[10m] offset 5m)
          {x="a"} 0.03333333333333333
          {x="b"} 0.06666666666666667
        load 4m
          testcounter_zero_cutoff_total{start="0m"} 0+240x10
          testcounter_zero_cutoff_total{start="1m"} 60+240x10
          testcounter_zero_cutoff_total{start="2m"} 120+240x10
          testcounter_zero_cutoff_total{start="3m"} 180+240x10
          testcounter_zero_cutoff_total{start="4m"} 240+240x10
          testcounter_zero_cutoff_total{start="5m"} 300+240x10
        eval 10m rate(testcounter_zero_cutoff_total[20m])
          {start="0m"} 0.5
          {start="1m"} 0.55
          {start="2m"} 0.6
          {start="3m"} 0.6
          {start="4m"} 0.6
          {start="5m"} 0.6
        eval 50m rate(testcounter_zero_cutoff_total[20m])
          {start="0m"} 0.6
          {start="1m"} 0.6
          {start="2m"} 0.6
          {start="3m"} 0.6
          {start="4m"} 0.6
          {start="5m"} 0.6
    "#);
}

#[test]
fn irate_delta_and_idelta() {
    run(r#"
        load 5m
          http_requests_total{path="/foo"} 0+10x10
          http_requests_total{path="/bar"} 0+10x5 0+10x5
        eval 50m irate(http_requests_total[50m])
          {path="/foo"} 0.03333333333333333
          {path="/bar"} 0.03333333333333333
        eval 30m irate(http_requests_total[50m])
          {path="/foo"} 0.03333333333333333
          {path="/bar"} 0
        load 5m
          http_requests{path="/foo"} 0 50 100 150 200
          http_requests{path="/bar"} 200 150 100 50 0
        eval 20m delta(http_requests[20m])
          {path="/foo"} 200
          {path="/bar"} -200
        load 5m
          http_requests{path="/foo"} 0 50 100 150
          http_requests{path="/bar"} 0 50 100 50
        eval 20m idelta(http_requests[20m])
          {path="/foo"} 50
          {path="/bar"} -50
    "#);
}

#[test]
fn histogram_quantile_on_classic_buckets() {
    run(r#"
        load 5m
          testhistogram_bucket{le="0.1", start="positive"} 0+5x10
          testhistogram_bucket{le=".2", start="positive"} 0+7x10
          testhistogram_bucket{le="1e0", start="positive"} 0+11x10
          testhistogram_bucket{le="+Inf", start="positive"} 0+12x10
          testhistogram_bucket{le="-.2", start="negative"} 0+1x10
          testhistogram_bucket{le="-0.1", start="negative"} 0+2x10
          testhistogram_bucket{le="0.3", start="negative"} 0+2x10
          testhistogram_bucket{le="+Inf", start="negative"} 0+3x10
        eval 50m histogram_quantile(0, testhistogram_bucket)
          {start="positive"} 0
          {start="negative"} -0.2
        eval 50m histogram_quantile(1, testhistogram_bucket)
          {start="positive"} 1
          {start="negative"} 0.3
        eval 50m histogram_quantile(-0.1, testhistogram_bucket)
          {start="positive"} -Inf
          {start="negative"} -Inf
        eval 50m histogram_quantile(1.01, testhistogram_bucket)
          {start="positive"} +Inf
          {start="negative"} +Inf
        eval 50m histogram_quantile(0.2, testhistogram_bucket)
          {start="positive"} 0.048
          {start="negative"} -0.2
        eval 50m histogram_quantile(0.5, testhistogram_bucket)
          {start="positive"} 0.15
          {start="negative"} -0.15
        eval 50m histogram_quantile(0.8, rate(testhistogram_bucket[10m]))
          {start="positive"} 0.72
          {start="negative"} 0.3
        load 5m
          testhistogram2_bucket{le="0"} 0+0x10
          testhistogram2_bucket{le="2"} 0+1x10
          testhistogram2_bucket{le="4"} 0+2x10
          testhistogram2_bucket{le="6"} 0+3x10
          testhistogram2_bucket{le="+Inf"} 0+3x10
        eval 7m histogram_quantile(1./6., testhistogram2_bucket)
          {} 1
        eval 7m histogram_quantile(0.5, testhistogram2_bucket)
          {} 3
        eval 47m histogram_quantile(5./6., rate(testhistogram2_bucket[15m]))
          {} 5
        load 5m
          request_duration_seconds_bucket{job="job1", instance="ins1", le="0.1"} 0+1x10
          request_duration_seconds_bucket{job="job1", instance="ins1", le="0.2"} 0+3x10
          request_duration_seconds_bucket{job="job1", instance="ins1", le="+Inf"} 0+4x10
          request_duration_seconds_bucket{job="job1", instance="ins2", le="0.1"} 0+2x10
          request_duration_seconds_bucket{job="job1", instance="ins2", le="0.2"} 0+5x10
          request_duration_seconds_bucket{job="job1", instance="ins2", le="+Inf"} 0+6x10
          request_duration_seconds_bucket{job="job2", instance="ins1", le="0.1"} 0+3x10
          request_duration_seconds_bucket{job="job2", instance="ins1", le="0.2"} 0+4x10
          request_duration_seconds_bucket{job="job2", instance="ins1", le="+Inf"} 0+6x10
          request_duration_seconds_bucket{job="job2", instance="ins2", le="0.1"} 0+4x10
          request_duration_seconds_bucket{job="job2", instance="ins2", le="0.2"} 0+7x10
          request_duration_seconds_bucket{job="job2", instance="ins2", le="+Inf"} 0+9x10
        eval 50m histogram_quantile(0.3, sum(rate(request_duration_seconds_bucket[10m])) by (le))
          {} 0.075
        eval 50m histogram_quantile(0.5, sum(rate(request_duration_seconds_bucket[10m])) by (le))
          {} 0.1277777777777778
        eval 50m histogram_quantile(0.5, avg(rate(request_duration_seconds_bucket[10m])) by (le))
          {} 0.12777777777777778
        eval 50m histogram_quantile(0.5, sum(rate(request_duration_seconds_bucket[10m])) by (le, instance))
          {instance="ins1"} 0.1333333333
          {instance="ins2"} 0.125
        eval 50m histogram_quantile(0.3, sum(rate(request_duration_seconds_bucket[10m])) by (le, job))
          {job="job1"} 0.1
          {job="job2"} 0.0642857142857143
        eval 50m histogram_quantile(0.5, rate(request_duration_seconds_bucket[10m]))
          {instance="ins1", job="job1"} 0.15
          {instance="ins2", job="job1"} 0.13333333333333333
          {instance="ins1", job="job2"} 0.1
          {instance="ins2", job="job2"} 0.11666666666666667
    "#);
}

/// Eight counters: job × instance × group, at 50m worth 100, 200, ..., 800.
const HTTP_REQUESTS: &str = r#"
    load 5m
      http_requests{job="api-server", instance="0", group="production"} 0+10x10
      http_requests{job="api-server", instance="1", group="production"} 0+20x10
      http_requests{job="api-server", instance="0", group="canary"} 0+30x10
      http_requests{job="api-server", instance="1", group="canary"} 0+40x10
      http_requests{job="app-server", instance="0", group="production"} 0+50x10
      http_requests{job="app-server", instance="1", group="production"} 0+60x10
      http_requests{job="app-server", instance="0", group="canary"} 0+70x10
      http_requests{job="app-server", instance="1", group="canary"} 0+80x10
"#;

#[test]
fn aggregations_and_vector_matching() {
    run(&format!(
        "{HTTP_REQUESTS}{}",
        r#"
        eval 50m SUM BY (group) (http_requests{job="api-server"})
          {group="canary"} 700
          {group="production"} 300
        eval 50m sum without (instance) (http_requests{job="api-server"})
          {group="canary", job="api-server"} 700
          {group="production", job="api-server"} 300
        eval 50m avg by (job) (http_requests)
          {job="api-server"} 250
          {job="app-server"} 650
        eval 50m count by (group) (http_requests)
          {group="canary"} 4
          {group="production"} 4
        eval 50m max by (job) (http_requests) - min by (job) (http_requests)
          {job="api-server"} 300
          {job="app-server"} 300
        eval 50m topk(1, http_requests{group="canary"})
          {__name__="http_requests", job="app-server", instance="1", group="canary"} 800
        eval 50m http_requests{job="api-server", group="canary"} / on(instance) http_requests{job="api-server", group="production"}
          {instance="0"} 3
          {instance="1"} 2
        eval 50m http_requests{group="canary"} > bool 500
          {job="api-server", instance="0", group="canary"} 0
          {job="api-server", instance="1", group="canary"} 0
          {job="app-server", instance="0", group="canary"} 1
          {job="app-server", instance="1", group="canary"} 1
        eval 50m http_requests{job="app-server"} > 600 and http_requests{group="canary"}
          {__name__="http_requests", job="app-server", instance="0", group="canary"} 700
          {__name__="http_requests", job="app-server", instance="1", group="canary"} 800
        eval 50m quantile by (job) (0.5, http_requests)
          {job="api-server"} 250
          {job="app-server"} 650
    "#
    ));
}
