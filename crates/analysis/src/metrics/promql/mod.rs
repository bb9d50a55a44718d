//! A small PromQL evaluator over a [`MetricSet`](super::MetricSet), so the
//! offline bundle backend answers the same queries a real Prometheus would.
//!
//! Supported: selectors with `=`, `!=`, `=~`, `!~` and `offset`; range
//! selectors; `rate`, `increase`, `delta`, `irate`, `idelta`, the
//! `*_over_time` family, `histogram_quantile`, math and `clamp*` functions,
//! `scalar`, `vector`, `time`, `sort*`, `absent`; the aggregations `sum`,
//! `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`, `topk`,
//! `bottomk`, `quantile` with `by`/`without`; arithmetic, comparison (with
//! `bool`) and set operators with `on`/`ignoring`. Not supported (a clear
//! [`QueryError::Unsupported`](super::QueryError::Unsupported)): subqueries,
//! `@`, `group_left`/`group_right`, native histograms.
//!
//! Semantics follow Prometheus 3.x: windows are left-open `(t - range, t]`,
//! an instant selector looks back 5 minutes, `rate` extrapolates like
//! Prometheus' `extrapolatedRate`.
//!
//! ```
//! use rootcause_analysis::metrics::{openmetrics, promql::{Engine, Value}};
//!
//! let mut text = String::from("# TYPE req_total counter\n");
//! for i in 0..=20 {
//!     // one request per second, scraped every 30 s
//!     text.push_str(&format!("req_total{{service=\"cart\"}} {} {}\n", i * 30, i * 30));
//! }
//! text.push_str("# EOF\n");
//! let set = openmetrics::parse(&text)?;
//! let engine = Engine::new(&set);
//! let Value::Vector(v) = engine.instant_query("sum by (service) (rate(req_total[5m]))", 600_000)? else {
//!     unreachable!()
//! };
//! assert!((v[0].value - 1.0).abs() < 1e-9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod ast;
pub mod eval;
pub mod parser;

pub use eval::{
    DEFAULT_LOOKBACK_MS, Element, Engine, RangeSeries, Value, bucket_quantile, extrapolated_rate,
    format_api_value, instant_api_json, range_api_json,
};
pub use parser::parse_expr;
