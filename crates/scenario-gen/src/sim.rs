//! The simulation every story shares: services that serve requests under a
//! story's conditions, writing access logs in their stack's style and the
//! RED and resource metrics a Prometheus would have scraped.
//!
//! A story says what the world looks like at each moment (a [`Cond`] per
//! service and route, the memory of each pod) and what a failing request
//! logs; the engine does the sampling, so every story gets background
//! traffic, baseline noise and consistent counters for free.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::files::BundleFiles;
use crate::json::J;
use crate::metrics::Metrics;
use crate::rng::Rng;

/// How a service writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Spring Boot: logger and thread fields, Java stack traces.
    Spring {
        /// The Java package of the service (`com.example.fares`).
        package: &'static str,
    },
    /// A Go service logging one line per request.
    Go,
    /// A Python service behind gunicorn.
    Python,
    /// Envoy at the edge, in its default access-log format.
    Envoy,
}

/// A route a service serves.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path; `{id}` parts are filled with a random identifier.
    pub path: &'static str,
    /// Share of the traffic, relative to the other routes.
    pub weight: f64,
    /// For the edge: the upstream cluster the route goes to.
    pub upstream: &'static str,
}

impl Route {
    /// A route with weight 1 and no upstream.
    #[must_use]
    pub const fn new(method: &'static str, path: &'static str) -> Self {
        Self {
            method,
            path,
            weight: 1.0,
            upstream: "",
        }
    }

    /// The same route with another weight.
    #[must_use]
    pub const fn weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }

    /// The same route, forwarded to `upstream` (edge routes).
    #[must_use]
    pub const fn to(mut self, upstream: &'static str) -> Self {
        self.upstream = upstream;
        self
    }
}

/// A service of a story.
#[derive(Debug, Clone)]
pub struct Service {
    /// `service.name` and the `service` label.
    pub name: &'static str,
    /// Log style.
    pub style: Style,
    /// Pod names before any rollout.
    pub pods: Vec<String>,
    /// A rollout: from this time on, these pods serve instead.
    pub rollout: Option<(DateTime<Utc>, Vec<String>)>,
    /// Routes served.
    pub routes: Vec<Route>,
    /// Requests per second at normal load (metrics).
    pub rps: f64,
    /// Median latency at normal load, ms.
    pub p50_ms: f64,
    /// Access-log lines written per minute (logs are sampled; metrics are not).
    pub logs_per_min: f64,
    /// CPU used at normal load, cores.
    pub cpu_cores: f64,
    /// Working-set memory of a pod at normal load, MiB.
    pub mem_mib: f64,
}

/// Pod names as Kubernetes makes them for a Deployment's ReplicaSet.
pub fn pod_names(rng: &mut Rng, service: &str, n: usize) -> Vec<String> {
    let rs = rng.hex(10);
    (0..n)
        .map(|_| format!("{service}-{rs}-{}", alnum(rng, 5)))
        .collect()
}

fn alnum(rng: &mut Rng, n: usize) -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n).map(|_| char::from(*rng.pick(CHARS))).collect()
}

impl Service {
    /// The pods serving at `t`.
    #[must_use]
    pub fn pods_at(&self, t: DateTime<Utc>) -> &[String] {
        match &self.rollout {
            Some((at, pods)) if t >= *at => pods,
            _ => &self.pods,
        }
    }

    /// Every pod the service had in the bundle's time range.
    #[must_use]
    pub fn all_pods(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.pods.iter().map(String::as_str).collect();
        if let Some((_, p)) = &self.rollout {
            v.extend(p.iter().map(String::as_str));
        }
        v
    }
}

/// The state of a service's route at a moment, as the story dictates.
#[derive(Debug, Clone, Copy)]
pub struct Cond {
    /// Fraction of requests that fail with `status`.
    pub err: f64,
    /// The status of failing requests.
    pub status: u16,
    /// Latency multiplier over the service's normal latency.
    pub latency: f64,
    /// Traffic multiplier over the service's normal load.
    pub load: f64,
    /// CPU multiplier.
    pub cpu: f64,
    /// How long a failing request takes, ms (a timeout); 0: as long as a
    /// successful one.
    pub fail_ms: f64,
}

impl Default for Cond {
    fn default() -> Self {
        Self {
            err: 0.0,
            status: 500,
            latency: 1.0,
            load: 1.0,
            cpu: 1.0,
            fail_ms: 0.0,
        }
    }
}

/// A request the engine sampled, handed to the story when it fails.
#[derive(Debug, Clone)]
pub struct Req {
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// The route.
    pub route: Route,
    /// The path with its identifiers filled in.
    pub path: String,
    /// The pod that served it.
    pub pod: String,
    /// W3C trace id.
    pub trace_id: String,
    /// Status returned.
    pub status: u16,
    /// Duration, ms.
    pub ms: f64,
}

/// One log record being built: a time and ECS fields in order.
#[derive(Debug, Clone)]
pub struct Rec {
    /// `@timestamp`.
    pub at: DateTime<Utc>,
    fields: Vec<(String, J)>,
}

/// An ECS timestamp with milliseconds.
#[must_use]
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An RFC 3339 timestamp in whole seconds (incident windows, changes).
#[must_use]
pub fn ts_s(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Rec {
    /// A record with the required and usual ECS fields.
    #[must_use]
    pub fn new(at: DateTime<Utc>, service: &str, host: &str, level: &str, message: &str) -> Self {
        Self {
            at,
            fields: vec![
                ("@timestamp".to_owned(), J::from(ts(at))),
                ("service.name".to_owned(), service.into()),
                ("log.level".to_owned(), level.into()),
                ("host.name".to_owned(), host.into()),
                ("message".to_owned(), message.into()),
            ],
        }
    }

    /// Adds a field.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<J>) -> Self {
        self.fields.push((key.to_owned(), value.into()));
        self
    }

    /// The record as a JSON object.
    #[must_use]
    pub fn json(&self) -> J {
        J::Obj(self.fields.clone())
    }
}

/// Log records by service, written as `logs/<service>.jsonl`.
#[derive(Debug, Default)]
pub struct Logs {
    by_service: BTreeMap<String, Vec<Rec>>,
}

impl Logs {
    /// Adds records to `service`'s file.
    pub fn add(&mut self, service: &str, recs: impl IntoIterator<Item = Rec>) {
        self.by_service
            .entry(service.to_owned())
            .or_default()
            .extend(recs);
    }

    /// Moves `service`'s records out, appending them to `out`.
    pub fn drain_into(&mut self, service: &str, out: &mut Vec<Rec>) {
        if let Some(recs) = self.by_service.remove(service) {
            out.extend(recs);
        }
    }

    /// Writes every file, each oldest first (equal times keep their order).
    pub fn write(mut self, files: &mut BundleFiles) {
        for (service, recs) in &mut self.by_service {
            recs.sort_by_key(|r| r.at);
            let lines: Vec<J> = recs.iter().map(Rec::json).collect();
            files.put_jsonl(&format!("logs/{service}.jsonl"), &lines);
        }
    }
}

/// The time grid of a story: data from `start` to `end`, scraped every
/// `step`.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// First moment with data.
    pub start: DateTime<Utc>,
    /// End of the data (exclusive).
    pub end: DateTime<Utc>,
    /// Scrape interval.
    pub step: Duration,
}

impl Span {
    /// Scrape times, `start` included, `end` excluded.
    #[must_use]
    pub fn scrapes(&self) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = self.start;
        while t < self.end {
            out.push(t);
            t += self.step;
        }
        out
    }

    /// Minutes from `start` to `end`.
    #[must_use]
    pub fn minutes(&self) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = self.start;
        while t < self.end {
            out.push(t);
            t += Duration::minutes(1);
        }
        out
    }
}

/// A count drawn around `mean` (normal approximation of Poisson).
pub fn count(rng: &mut Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    let v = (mean + mean.sqrt() * rng.normal()).round().max(0.0);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "rounded and clamped to >= 0; request counts fit u64"
    )]
    let n = v as u64;
    n
}

/// A random moment within the minute starting at `t`.
pub fn within_minute(rng: &mut Rng, t: DateTime<Utc>) -> DateTime<Utc> {
    #[expect(clippy::cast_possible_wrap, reason = "below 60000")]
    let ms = rng.below(60_000) as i64;
    t + Duration::milliseconds(ms)
}

fn fill_path(rng: &mut Rng, path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').map_or(rest.len(), |j| i + j + 1);
        let what = &rest[i + 1..end.saturating_sub(1)];
        out.push_str(&match what {
            "flight" => format!(
                "{}{}",
                rng.pick(&["LX", "OS", "SK", "AY", "EI", "TP"]),
                100 + rng.below(8900)
            ),
            "pnr" => alnum(rng, 6).to_uppercase(),
            "member" => format!("M{:08}", rng.below(100_000_000)),
            _ => rng.hex(12),
        });
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "TravelApp/6.12.0 (Android 14; Pixel 8)",
    "TravelApp/6.12.0 (iOS 17.4; iPhone15,3)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
];

/// The access-log line of a request in the service's style.
fn access_record(svc: &Service, rng: &mut Rng, r: &Req) -> Rec {
    let level = if r.status >= 500 { "ERROR" } else { "INFO" };
    let ms = (r.ms * 10.0).round() / 10.0;
    let bytes = if r.status >= 500 {
        120 + rng.below(200)
    } else {
        800 + rng.below(7000)
    };
    let rec = match svc.style {
        Style::Spring { package } => Rec::new(
            r.at,
            svc.name,
            &r.pod,
            level,
            &format!(
                "{} {} -> {} {} in {:.0} ms",
                r.route.method,
                r.path,
                r.status,
                reason(r.status),
                ms
            ),
        )
        .with("log.logger", format!("{package}.web.AccessLogFilter"))
        .with(
            "process.thread.name",
            format!("http-nio-8080-exec-{}", 1 + rng.below(200)),
        ),
        Style::Go => Rec::new(
            r.at,
            svc.name,
            &r.pod,
            level,
            &format!(
                "served {} {} status={} took={ms}ms size={bytes}",
                r.route.method, r.path, r.status
            ),
        )
        .with("log.logger", "httpserver"),
        Style::Python => Rec::new(
            r.at,
            svc.name,
            &r.pod,
            level,
            &format!(
                "10.{}.{}.{} \"{} {} HTTP/1.1\" {} {bytes} {:.3}s",
                rng.below(4) + 40,
                rng.below(256),
                rng.below(256),
                r.route.method,
                r.path,
                r.status,
                ms / 1000.0
            ),
        )
        .with("log.logger", "gunicorn.access"),
        Style::Envoy => {
            let flags = match r.status {
                504 => "UT",
                503 => "UF",
                _ => "-",
            };
            let upstream_ms = if flags == "UF" {
                "-".to_owned()
            } else {
                format!("{:.0}", (ms - 1.0).max(0.0))
            };
            Rec::new(
                r.at,
                svc.name,
                &r.pod,
                level,
                &format!(
                    "[{}] \"{} {} HTTP/2\" {} {flags} 0 {bytes} {:.0} {upstream_ms} \"{}\" \"{}\" \"{}\" \"{}\"",
                    ts(r.at),
                    r.route.method,
                    r.path,
                    r.status,
                    ms,
                    format_args!(
                        "{}.{}.{}.{}",
                        rng.below(200) + 20,
                        rng.below(256),
                        rng.below(256),
                        rng.below(256)
                    ),
                    rng.pick(USER_AGENTS),
                    rng.hex(32),
                    r.route.upstream,
                ),
            )
            .with("log.logger", "envoy.access")
            .with("url.path", r.path.clone())
            .with("http.request.method", r.route.method)
        }
    };
    rec.with("http.response.status_code", r.status)
        .with("event.duration", {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "a duration in ns of a request fits i64"
            )]
            let ns = (r.ms * 1e6).round() as i64;
            ns
        })
        .with("trace.id", r.trace_id.clone())
}

/// What a story does with a failing request: the records it logs besides
/// the access line (exception, warning, retry), oldest first.
pub type OnFail<'a> = dyn FnMut(&mut Rng, &Req) -> Vec<Rec> + 'a;

/// Samples `svc`'s requests minute by minute and writes its access logs
/// (plus the story's records for failing requests) into `logs`.
pub fn serve(
    svc: &Service,
    span: &Span,
    rng: &mut Rng,
    cond: &dyn Fn(DateTime<Utc>, &Route) -> Cond,
    on_fail: &mut OnFail<'_>,
    logs: &mut Logs,
) {
    let Some(first_route) = svc.routes.first().copied() else {
        return;
    };
    let total_weight: f64 = svc.routes.iter().map(|r| r.weight).sum();
    let mut recs = Vec::new();
    for minute in span.minutes() {
        let load = cond(minute, &first_route).load;
        let n = count(rng, svc.logs_per_min * load);
        let mut reqs: Vec<Req> = Vec::new();
        for _ in 0..n {
            let at = within_minute(rng, minute);
            let mut pick = rng.f64() * total_weight;
            let mut route = first_route;
            for r in &svc.routes {
                if pick < r.weight {
                    route = *r;
                    break;
                }
                pick -= r.weight;
            }
            let c = cond(at, &route);
            let failing = rng.chance(c.err);
            let status = if failing {
                c.status
            } else if rng.chance(0.006) {
                *rng.pick(&[400, 404, 404, 409])
            } else {
                200
            };
            let pods = svc.pods_at(at);
            reqs.push(Req {
                at,
                route,
                path: fill_path(rng, route.path),
                pod: rng.pick(pods).clone(),
                trace_id: rng.hex(32),
                status,
                ms: if failing && c.fail_ms > 0.0 {
                    c.fail_ms * rng.range(1.0, 1.01)
                } else {
                    rng.lognormal(svc.p50_ms * c.latency, 0.45)
                },
            });
        }
        reqs.sort_by_key(|r| r.at);
        for r in reqs {
            if r.status >= 500 {
                recs.extend(on_fail(rng, &r));
            }
            // The access line is written when the response goes out.
            #[expect(clippy::cast_possible_truncation, reason = "ms of a request")]
            let done = r.at + Duration::milliseconds(r.ms.round() as i64);
            let mut line = access_record(svc, rng, &r);
            line.at = done;
            line.fields[0].1 = J::from(ts(done));
            recs.push(line);
        }
    }
    logs.add(svc.name, recs);
}

/// Latency buckets of `http_request_duration_seconds`.
pub const BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The standard normal CDF (Abramowitz-Stegun 7.1.26 for erf).
fn phi(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-z * z).exp();
    let erf = if z >= 0.0 { y } else { -y };
    0.5 * (1.0 + erf)
}

/// The RED metrics of `svc` (`http_requests_total`,
/// `http_request_duration_seconds`) and its CPU, scraped over `span`.
/// Counters start from an uptime's worth of traffic, as a live process's do.
pub fn red_metrics(
    svc: &Service,
    span: &Span,
    rng: &mut Rng,
    cond: &dyn Fn(DateTime<Utc>, &Route) -> Cond,
    statuses: &[u16],
    m: &mut Metrics,
) {
    m.family(
        "http_requests_total",
        "counter",
        "HTTP requests served, by status code",
    );
    m.family(
        "http_request_duration_seconds",
        "histogram",
        "HTTP request latency",
    );
    m.family(
        "container_cpu_usage_seconds_total",
        "counter",
        "cumulative CPU time consumed (cores*s)",
    );
    let uptime = rng.range(2.0 * 86_400.0, 6.0 * 86_400.0);
    let mut ok = (svc.rps * uptime).round();
    let mut client = (ok * 0.006).round();
    let mut errs: Vec<f64> = statuses.iter().map(|_| (ok * 0.0002).round()).collect();
    let mut buckets: Vec<f64> = BUCKETS.iter().map(|_| 0.0).collect();
    let mut inf = 0.0;
    let mut sum = 0.0;
    let mut cpu = svc.cpu_cores * uptime;
    let step = span.step.num_seconds();
    #[expect(clippy::cast_precision_loss, reason = "seconds of a step")]
    let step_f = step as f64;
    let total_weight: f64 = svc.routes.iter().map(|r| r.weight).sum();
    let first = span.scrapes().first().copied();
    for t in span.scrapes() {
        if Some(t) != first {
            // What happened during the step that ended at t, route by route.
            let mut lat = 0.0;
            let mut load = 0.0;
            let mut cpu_mult = 0.0;
            for r in &svc.routes {
                let c = cond(t, r);
                let w = r.weight / total_weight;
                lat += c.latency * w;
                load += c.load * w;
                cpu_mult += c.cpu * w;
            }
            let n = svc.rps * load * step_f * rng.range(0.93, 1.07);
            let mut failed = 0.0;
            for r in &svc.routes {
                let c = cond(t, r);
                let f = (n * r.weight / total_weight * c.err).round();
                failed += f;
                if let Some(i) = statuses.iter().position(|s| *s == c.status) {
                    errs[i] += f;
                }
            }
            let cl = (n * 0.006 * rng.range(0.7, 1.3)).round();
            ok += (n - failed - cl).max(0.0).round();
            client += cl;
            for e in &mut errs {
                // Rare unrelated 5xx, so error series are never flat zero.
                if rng.chance(0.08) {
                    *e += 1.0;
                }
            }
            let median = svc.p50_ms * lat / 1000.0;
            let sigma = 0.45;
            for (i, le) in BUCKETS.iter().enumerate() {
                let frac = phi((le / median).ln() / sigma);
                buckets[i] += (n * frac).round();
            }
            inf += n.round();
            sum += n * median * (sigma * sigma / 2.0).exp();
            cpu += svc.cpu_cores * cpu_mult * load.sqrt() * step_f * rng.range(0.9, 1.1);
        }
        let s = t.timestamp();
        m.push(
            "http_requests_total",
            "http_requests_total",
            &[("service", svc.name), ("code", "200")],
            s,
            ok,
        );
        m.push(
            "http_requests_total",
            "http_requests_total",
            &[("service", svc.name), ("code", "404")],
            s,
            client,
        );
        for (i, st) in statuses.iter().enumerate() {
            let code = st.to_string();
            m.push(
                "http_requests_total",
                "http_requests_total",
                &[("service", svc.name), ("code", &code)],
                s,
                errs[i],
            );
        }
        for (i, le) in BUCKETS.iter().enumerate() {
            let le = format!("{le}");
            m.push(
                "http_request_duration_seconds",
                "http_request_duration_seconds_bucket",
                &[("service", svc.name), ("le", &le)],
                s,
                buckets[i],
            );
        }
        m.push(
            "http_request_duration_seconds",
            "http_request_duration_seconds_bucket",
            &[("service", svc.name), ("le", "+Inf")],
            s,
            inf,
        );
        m.push(
            "http_request_duration_seconds",
            "http_request_duration_seconds_sum",
            &[("service", svc.name)],
            s,
            (sum * 1000.0).round() / 1000.0,
        );
        m.push(
            "http_request_duration_seconds",
            "http_request_duration_seconds_count",
            &[("service", svc.name)],
            s,
            inf,
        );
        m.push(
            "container_cpu_usage_seconds_total",
            "container_cpu_usage_seconds_total",
            &[("service", svc.name)],
            s,
            (cpu * 100.0).round() / 100.0,
        );
    }
}

/// What an outbound dependency did during a scrape step.
#[derive(Debug, Clone, Copy)]
pub struct CallCond {
    /// Latency multiplier over the normal latency.
    pub latency: f64,
    /// Fraction of calls that timed out.
    pub timeouts: f64,
    /// Calls relative to normal.
    pub load: f64,
}

/// `http_client_requests_total{service,peer,outcome}` and
/// `http_client_request_duration_seconds{service,peer}` of the calls
/// `service` makes to `peer` (an external API, another service).
#[expect(
    clippy::too_many_arguments,
    reason = "one call per dependency, all needed"
)]
pub fn client_metrics(
    service: &str,
    peer: &str,
    calls_per_s: f64,
    p50_ms: f64,
    span: &Span,
    rng: &mut Rng,
    cond: &dyn Fn(DateTime<Utc>) -> CallCond,
    m: &mut Metrics,
) {
    m.family(
        "http_client_requests_total",
        "counter",
        "outbound HTTP calls, by outcome",
    );
    m.family(
        "http_client_request_duration_seconds",
        "histogram",
        "outbound HTTP call latency",
    );
    let uptime = rng.range(86_400.0, 3.0 * 86_400.0);
    let mut ok = (calls_per_s * uptime).round();
    let mut timeouts = (ok * 0.0001).round();
    let mut buckets: Vec<f64> = BUCKETS.iter().map(|_| 0.0).collect();
    let (mut inf, mut sum) = (0.0, 0.0);
    #[expect(clippy::cast_precision_loss, reason = "seconds of a step")]
    let step_f = span.step.num_seconds() as f64;
    let first = span.scrapes().first().copied();
    for t in span.scrapes() {
        if Some(t) != first {
            let c = cond(t);
            let n = calls_per_s * c.load * step_f * rng.range(0.93, 1.07);
            let to = (n * c.timeouts).round();
            ok += (n - to).round();
            timeouts += to;
            let median = p50_ms * c.latency / 1000.0;
            for (i, le) in BUCKETS.iter().enumerate() {
                buckets[i] += ((n - to) * phi((le / median).ln() / 0.5)).round();
            }
            inf += n.round();
            sum += (n - to) * median * 1.13 + to * 5.0;
        }
        let s = t.timestamp();
        for (outcome, v) in [("ok", ok), ("timeout", timeouts)] {
            m.push(
                "http_client_requests_total",
                "http_client_requests_total",
                &[("service", service), ("peer", peer), ("outcome", outcome)],
                s,
                v,
            );
        }
        for (i, le) in BUCKETS.iter().enumerate() {
            let le = format!("{le}");
            m.push(
                "http_client_request_duration_seconds",
                "http_client_request_duration_seconds_bucket",
                &[("service", service), ("peer", peer), ("le", &le)],
                s,
                buckets[i],
            );
        }
        m.push(
            "http_client_request_duration_seconds",
            "http_client_request_duration_seconds_bucket",
            &[("service", service), ("peer", peer), ("le", "+Inf")],
            s,
            inf,
        );
        m.push(
            "http_client_request_duration_seconds",
            "http_client_request_duration_seconds_sum",
            &[("service", service), ("peer", peer)],
            s,
            (sum * 1000.0).round() / 1000.0,
        );
        m.push(
            "http_client_request_duration_seconds",
            "http_client_request_duration_seconds_count",
            &[("service", service), ("peer", peer)],
            s,
            inf,
        );
    }
}

/// A pod's memory and restarts at a scrape, as a story decides them.
#[derive(Debug, Clone, Copy)]
pub struct PodState {
    /// Working set, MiB.
    pub mem_mib: f64,
    /// Restarts so far (counter).
    pub restarts: u32,
}

/// `container_memory_working_set_bytes`, `container_spec_memory_limit_bytes`
/// and `kube_pod_container_status_restarts_total` of each pod of `svc`
/// (`None` from `state`: the pod did not exist at that scrape).
pub fn pod_metrics(
    svc: &Service,
    span: &Span,
    limit_mib: f64,
    state: &mut dyn FnMut(DateTime<Utc>, &str) -> Option<PodState>,
    m: &mut Metrics,
) {
    m.family(
        "container_memory_working_set_bytes",
        "gauge",
        "working set memory of the container",
    );
    m.family(
        "container_spec_memory_limit_bytes",
        "gauge",
        "memory limit of the container",
    );
    m.family(
        "kube_pod_container_status_restarts_total",
        "counter",
        "container restarts",
    );
    const MIB: f64 = 1024.0 * 1024.0;
    // The limit is the Deployment's, the same for every pod.
    for t in span.scrapes() {
        m.push(
            "container_spec_memory_limit_bytes",
            "container_spec_memory_limit_bytes",
            &[("service", svc.name)],
            t.timestamp(),
            limit_mib * MIB,
        );
    }
    for pod in svc.all_pods() {
        for t in span.scrapes() {
            let Some(st) = state(t, pod) else { continue };
            let labels = [("service", svc.name), ("pod", pod)];
            let s = t.timestamp();
            m.push(
                "container_memory_working_set_bytes",
                "container_memory_working_set_bytes",
                &labels,
                s,
                (st.mem_mib * MIB).round(),
            );
            m.push(
                "kube_pod_container_status_restarts_total",
                "kube_pod_container_status_restarts_total",
                &labels,
                s,
                f64::from(st.restarts),
            );
        }
    }
}

/// Steady memory around `mib` for pods that are up at `t`: the default
/// for services whose memory is not part of the story.
pub fn steady_pods(
    svc: &Service,
    rng: &mut Rng,
) -> impl FnMut(DateTime<Utc>, &str) -> Option<PodState> {
    let svc = svc.clone();
    let mut rng = rng.fork(svc.name);
    move |t, pod| {
        if !svc.pods_at(t).iter().any(|p| p == pod) {
            return None;
        }
        Some(PodState {
            mem_mib: svc.mem_mib * rng.range(0.97, 1.03),
            restarts: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_cdf_is_close_to_its_table() {
        assert!((phi(0.0) - 0.5).abs() < 1e-6);
        assert!((phi(1.96) - 0.975).abs() < 1e-3);
        assert!((phi(-1.0) - 0.158_7).abs() < 1e-3);
    }

    #[test]
    fn paths_get_their_identifiers_filled() {
        let mut rng = Rng::new(1);
        let p = fill_path(&mut rng, "/v1/flights/{flight}/seats");
        assert!(
            p.starts_with("/v1/flights/") && p.ends_with("/seats"),
            "{p}"
        );
        assert!(!p.contains('{'), "{p}");
    }
}
