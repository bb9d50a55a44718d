//! Story `seat-map-oom-night` (resource_exhaustion): no release for a week,
//! but since the summer timetable went live the nightly schedule import
//! fills seat-map's in-memory hold cache (no size bound, no TTL) with three
//! times as many flights. Each pod's memory climbs to its 1 GiB limit and
//! the kernel kills it (OOMKilled); while a pod restarts and while memory is
//! near the limit (GC thrash), seat selections fail at the edge and at
//! booking-api. A loyalty release and booking-api's nightly downscale fall
//! in the same hour and are innocent.

use chrono::{DateTime, Duration, Utc};

use super::common::{
    PEOPLE, Periodic, at, change, expected, incident, java_trace, load, past, periodic,
};
use crate::error::GenError;
use crate::files::BundleFiles;
use crate::metrics::Metrics;
use crate::repo::{RepoBuilder, short};
use crate::rng::Rng;
use crate::sim::{
    Cond, Logs, PodState, Rec, Req, Route, Service, Span, Style, count, pod_metrics, pod_names,
    red_metrics, serve, steady_pods, within_minute,
};

/// The story's directory name under `examples/`.
pub const NAME: &str = "seat-map-oom-night";
const SEED: u64 = 0x5eed_0002;

const LIMIT_MIB: f64 = 1024.0;
/// Working-set growth of each seat-map pod while the import runs, MiB/min.
const GROWTH: f64 = 3.5;
/// Memory of a freshly started seat-map container, MiB.
const FRESH: f64 = 190.0;
/// A killed container is back in service after this long.
const RESTART_S: i64 = 75;

/// One seat-map pod: its memory at the start of the data, and when the
/// kernel kills it (computed from growth and limit).
#[derive(Debug, Clone)]
struct Pod {
    name: String,
    mem0: f64,
    start: DateTime<Utc>,
}

impl Pod {
    fn oom(&self) -> DateTime<Utc> {
        #[expect(clippy::cast_possible_truncation, reason = "seconds of an hour")]
        let secs = ((LIMIT_MIB - self.mem0) / GROWTH * 60.0).round() as i64;
        self.start + Duration::seconds(secs)
    }

    fn down(&self, t: DateTime<Utc>) -> bool {
        let oom = self.oom();
        t >= oom && t < oom + Duration::seconds(RESTART_S)
    }

    /// Working set at `t`, MiB.
    fn mem(&self, t: DateTime<Utc>) -> f64 {
        let oom = self.oom();
        #[expect(clippy::cast_precision_loss, reason = "seconds of hours")]
        let minutes = |from: DateTime<Utc>| (t - from).num_seconds() as f64 / 60.0;
        if t < oom {
            self.mem0 + GROWTH * minutes(self.start)
        } else {
            FRESH + GROWTH * 0.8 * minutes(oom + Duration::seconds(RESTART_S)).max(0.0)
        }
    }

    /// 0 well below the limit, 1 at it: how hard the Go GC is working.
    fn pressure(&self, t: DateTime<Utc>) -> f64 {
        ((self.mem(t) / LIMIT_MIB - 0.85) / 0.15).clamp(0.0, 1.0)
    }
}

/// Builds the bundle.
///
/// # Errors
/// [`GenError`] when the repository cannot be built.
pub fn build() -> Result<BundleFiles, GenError> {
    let t = |s: &str| at(NAME, s);
    let start = t("2026-05-06T01:00:00Z")?;
    let end = t("2026-05-06T03:00:00Z")?;
    let window = (t("2026-05-06T01:58:00Z")?, t("2026-05-06T02:40:00Z")?);
    let root = Rng::new(SEED);
    let mut files = BundleFiles::default();
    let h = repo(&t)?;
    files.put("repo.bundle", h.bundle.clone());

    let mut prng = root.fork("pods");
    let span = Span {
        start,
        end,
        step: Duration::seconds(60),
    };
    let seat = Service {
        name: "seat-map",
        style: Style::Go,
        pods: pod_names(&mut prng, "seat-map", 3),
        rollout: None,
        routes: vec![
            Route::new("GET", "/v1/flights/{flight}/seats").weight(3.0),
            Route::new("POST", "/v1/flights/{flight}/holds"),
        ],
        rps: 70.0,
        p50_ms: 16.0,
        logs_per_min: 8.0,
        cpu_cores: 0.7,
        mem_mib: 500.0,
    };
    let pods: Vec<Pod> = seat
        .pods
        .iter()
        .zip([838.0, 781.0, 736.0])
        .map(|(name, mem0)| Pod {
            name: name.clone(),
            mem0,
            start,
        })
        .collect();
    let booking = Service {
        name: "booking-api",
        style: Style::Spring {
            package: "com.voyagio.booking",
        },
        pods: pod_names(&mut prng, "booking-api", 4),
        rollout: None,
        routes: vec![
            Route::new("POST", "/v2/bookings/{pnr}/seats").weight(2.0),
            Route::new("GET", "/v2/bookings/{pnr}").weight(2.0),
            Route::new("POST", "/v2/quotes").weight(2.0),
        ],
        rps: 120.0,
        p50_ms: 60.0,
        logs_per_min: 8.0,
        cpu_cores: 1.9,
        mem_mib: 1250.0,
    };
    let loyalty = Service {
        name: "loyalty",
        style: Style::Python,
        pods: pod_names(&mut prng, "loyalty", 2),
        rollout: Some((
            t("2026-05-06T01:41:50Z")?,
            pod_names(&mut prng, "loyalty", 2),
        )),
        routes: vec![Route::new("GET", "/v1/members/{member}/points")],
        rps: 20.0,
        p50_ms: 40.0,
        logs_per_min: 3.0,
        cpu_cores: 0.3,
        mem_mib: 300.0,
    };
    let edge = Service {
        name: "edge-proxy",
        style: Style::Envoy,
        pods: pod_names(&mut prng, "edge-proxy", 2),
        rollout: None,
        routes: vec![
            Route::new("GET", "/api/v2/flights/{flight}/seats")
                .weight(3.0)
                .to("seat-map"),
            Route::new("POST", "/api/v2/bookings/{pnr}/seats")
                .weight(1.5)
                .to("booking-api"),
            Route::new("GET", "/api/v2/bookings/{pnr}")
                .weight(1.5)
                .to("booking-api"),
            Route::new("POST", "/api/v2/quotes")
                .weight(1.5)
                .to("booking-api"),
            Route::new("GET", "/api/v2/loyalty/{member}/points").to("loyalty"),
        ],
        rps: 240.0,
        p50_ms: 65.0,
        logs_per_min: 9.0,
        cpu_cores: 0.7,
        mem_mib: 170.0,
    };

    let reference = window.0;
    let l = move |t| load(t, reference);
    let pods_r = &pods;
    // Share of seat-map capacity gone (a pod restarting) and GC pressure.
    let down = move |t: DateTime<Utc>| {
        #[expect(clippy::cast_precision_loss, reason = "three pods")]
        let n = pods_r.iter().filter(|p| p.down(t)).count() as f64;
        n / pods_r.len() as f64
    };
    let pressure = move |t: DateTime<Utc>| {
        #[expect(clippy::cast_precision_loss, reason = "three pods")]
        let n = pods_r.len() as f64;
        pods_r.iter().map(|p| p.pressure(t).powi(3)).sum::<f64>() / n
    };
    let seat_cond = move |t: DateTime<Utc>, _: &Route| Cond {
        err: 0.0006 + 0.03 * pressure(t),
        status: 500,
        latency: 1.0 + 25.0 * pressure(t),
        load: l(t),
        cpu: 1.0 + 2.5 * pressure(t),
        ..Cond::default()
    };
    let seat_route = |p: &str| p.contains("seats");
    let booking_cond = move |t: DateTime<Utc>, r: &Route| {
        let f = if seat_route(r.path) {
            0.85 * down(t) + 0.2 * pressure(t)
        } else {
            0.0
        };
        Cond {
            err: 0.0008 + f,
            status: if f > 0.0 { 502 } else { 500 },
            latency: if seat_route(r.path) {
                1.0 + 4.0 * pressure(t)
            } else {
                1.0
            },
            load: l(t),
            ..Cond::default()
        }
    };
    let edge_cond = move |t: DateTime<Utc>, r: &Route| {
        let direct = r.upstream == "seat-map";
        let f = if direct {
            0.9 * down(t) + 0.03 * pressure(t)
        } else if seat_route(r.path) {
            0.85 * down(t) + 0.2 * pressure(t)
        } else {
            0.0
        };
        Cond {
            err: 0.0007 + f,
            status: if direct && f > 0.0 { 503 } else { 502 },
            latency: if seat_route(r.path) {
                1.0 + 3.0 * pressure(t)
            } else {
                1.0
            },
            load: l(t),
            ..Cond::default()
        }
    };
    let plain = move |t: DateTime<Utc>, _: &Route| Cond {
        err: 0.0008,
        load: l(t),
        ..Cond::default()
    };

    let mut logs = Logs::default();
    let mut seat_rng = root.fork("serve/seat");
    // seat-map: requests only reach pods that are up.
    let up_seat = |t: DateTime<Utc>| Service {
        pods: pods
            .iter()
            .filter(|p| !p.down(t))
            .map(|p| p.name.clone())
            .collect(),
        ..seat.clone()
    };
    {
        let mut recs = Logs::default();
        for minute in span.minutes() {
            let svc = up_seat(minute + Duration::seconds(30));
            if svc.pods.is_empty() {
                continue;
            }
            let one = Span {
                start: minute,
                end: minute + Duration::minutes(1),
                step: span.step,
            };
            serve(
                &svc,
                &one,
                &mut seat_rng,
                &seat_cond,
                &mut |_: &mut Rng, r: &Req| {
                    vec![
                        Rec::new(
                            r.at,
                            "seat-map",
                            &r.pod,
                            "ERROR",
                            "hold create failed: context deadline exceeded (redis SETNX hold:seat)",
                        )
                        .with("log.logger", "holds")
                        .with("trace.id", r.trace_id.clone()),
                    ]
                },
                &mut recs,
            );
        }
        let mut all = Vec::new();
        recs.drain_into("seat-map", &mut all);
        logs.add("seat-map", all);
    }
    serve(
        &booking,
        &span,
        &mut root.fork("serve/booking"),
        &booking_cond,
        &mut |rng: &mut Rng, r: &Req| booking_failure(rng, r),
        &mut logs,
    );
    serve(
        &edge,
        &span,
        &mut root.fork("serve/edge"),
        &edge_cond,
        &mut |_: &mut Rng, _: &Req| Vec::new(),
        &mut logs,
    );
    serve(
        &loyalty,
        &span,
        &mut root.fork("serve/loyalty"),
        &plain,
        &mut |_: &mut Rng, r: &Req| {
            vec![
                Rec::new(
                    r.at,
                    "loyalty",
                    &r.pod,
                    "ERROR",
                    "points lookup failed: psycopg.errors.QueryCanceled: canceling statement due to statement timeout",
                )
                .with("log.logger", "loyalty.points"),
            ]
        },
        &mut logs,
    );
    let bg = periodic(
        &booking,
        &span,
        &mut root.fork("periodic/booking"),
        &[Periodic {
            per_hour: 4.0,
            level: "INFO",
            logger: "com.voyagio.booking.jobs.ExpireUnpaid",
            message: "expired {n} unpaid bookings older than 30 minutes",
        }],
    );
    logs.add("booking-api", bg);
    logs.add(
        "seat-map",
        seat_map_story_logs(&span, &pods, &mut root.fork("seat-map"), &h.seat_release),
    );
    logs.add(
        "kubernetes-events",
        kube_events(&pods, &mut root.fork("kube")),
    );
    logs.add("loyalty", loyalty_rollout(&loyalty));
    logs.write(&mut files);

    // Metrics.
    let mut m = Metrics::default();
    let mut mrng = root.fork("metrics");
    red_metrics(
        &edge,
        &span,
        &mut root.fork("metrics/edge"),
        &edge_cond,
        &[502, 503, 504],
        &mut m,
    );
    red_metrics(
        &booking,
        &span,
        &mut root.fork("metrics/booking"),
        &booking_cond,
        &[500, 502],
        &mut m,
    );
    red_metrics(
        &seat,
        &span,
        &mut root.fork("metrics/seat"),
        &seat_cond,
        &[500],
        &mut m,
    );
    red_metrics(
        &loyalty,
        &span,
        &mut root.fork("metrics/loyalty"),
        &plain,
        &[500],
        &mut m,
    );
    let mut noise = mrng.fork("seat-mem");
    let pods_m = pods.clone();
    let mut seat_state = move |t: DateTime<Utc>, pod: &str| {
        let p = pods_m.iter().find(|p| p.name == pod)?;
        Some(PodState {
            mem_mib: p.mem(t).min(LIMIT_MIB - 1.0) * noise.range(0.995, 1.005),
            restarts: u32::from(t >= p.oom()),
        })
    };
    pod_metrics(&seat, &span, LIMIT_MIB, &mut seat_state, &mut m);
    for (svc, limit) in [(&booking, 2048.0), (&loyalty, 512.0)] {
        let mut state = steady_pods(svc, &mut mrng);
        pod_metrics(svc, &span, limit, &mut state, &mut m);
    }
    m.family(
        "seatmap_hold_cache_entries",
        "gauge",
        "entries in the seat-hold cache",
    );
    for p in &pods {
        for t in span.scrapes() {
            m.push(
                "seatmap_hold_cache_entries",
                "seatmap_hold_cache_entries",
                &[("service", "seat-map"), ("pod", &p.name)],
                t.timestamp(),
                entries(p.mem(t)),
            );
        }
    }
    files.put("metrics.om", m.render());

    files.put_json(
        "incident.json",
        &incident(
            "edge-proxy: seat selection 5xx above 2% for 2m",
            "Alertmanager: 5xx ratio of /api/v2/flights/*/seats and seat assignment at the edge is 6.1% (threshold 2%). The on-call sees errors come and go in bursts; nothing was released tonight.",
            "high",
            &["edge-proxy", "booking-api"],
            window,
            &[("alertname", "SeatSelectionErrors"), ("team", "booking")],
        ),
    );
    files.put_jsonl(
        "changes.jsonl",
        &[
            change(
                t("2026-04-28T10:05:00Z")?,
                "seat-map",
                "deploy",
                Some("v2.8.2"),
                Some(&h.seat_release),
                "deploy seat-map v2.8.2",
            ),
            change(
                t("2026-05-01T00:00:00Z")?,
                "schedule-import",
                "config",
                None,
                None,
                "summer timetable active: SCHEDULE_SEASON=S26 (flights per night 6.1k -> 18.4k)",
            ),
            change(
                t("2026-05-06T01:10:00Z")?,
                "booking-api",
                "scale",
                None,
                None,
                "nightly downscale booking-api 6 -> 4 replicas",
            ),
            change(
                t("2026-05-06T01:41:30Z")?,
                "loyalty",
                "deploy",
                Some("v3.1.0"),
                Some(&h.loyalty_release),
                "deploy loyalty v3.1.0",
            ),
        ],
    );
    files.put("runbooks/oomkilled.md", RUNBOOK_OOM);
    files.put("runbooks/seat-map.md", RUNBOOK_SEAT);
    files.put(
        "runbooks/deploy-rollback.md",
        super::common::RUNBOOK_ROLLBACK,
    );
    files.put_jsonl(
        "past_incidents.jsonl",
        &[
            past(
                "INC-2241",
                "edge-proxy: 5xx on seat maps after seat-map release",
                "edge 503 on /api/v2/flights/*/seats; seat-map pods crashlooping",
                "seat-map v2.6.0 read a new env var that was missing in production",
                "bad_deploy",
                "rolled back; config now validated at startup",
            ),
            past(
                "INC-2266",
                "booking-api: OOMKilled during Black Friday",
                "booking-api pods restarting, 502 at edge, JVM heap at max",
                "heap sized for normal traffic; a 4x surge kept more sessions in memory",
                "capacity",
                "raised replicas and heap; HPA on memory",
            ),
            past(
                "INC-2302",
                "seat-map: holds lost after redis failover",
                "customers lose selected seats; seat-map redis errors",
                "redis primary failover took 40 s; holds written meanwhile were lost",
                "dependency_failure",
                "holds now written with WAIT 1; failover alerts",
            ),
        ],
    );
    files.put_json(
        "expected.json",
        &expected(
            "seat-map",
            "resource_exhaustion",
            None,
            "seat-map's in-memory hold cache has no size bound or TTL; since the summer timetable the nightly schedule import fills it with three times as many flights, each pod's working set climbs to the 1 GiB memory limit and the container is OOMKilled (exit 137), one pod after another; restarts and GC thrash near the limit fail seat selections at edge-proxy and booking-api",
            &["OOMKilled", "memory limit", "hold cache"],
            &[],
        ),
    );
    Ok(files)
}

/// Hold-cache entries of a pod with `mem` MiB (about 2 KiB per entry).
fn entries(mem: f64) -> f64 {
    ((mem - FRESH + 40.0).max(0.0) * 512.0).round()
}

fn booking_failure(rng: &mut Rng, r: &Req) -> Vec<Rec> {
    if r.status != 502 {
        return vec![
            Rec::new(
                r.at,
                "booking-api",
                &r.pod,
                "ERROR",
                "Request processing failed: org.springframework.dao.CannotAcquireLockException: could not obtain lock on row in relation \"booking\"",
            )
            .with("log.logger", "com.voyagio.booking.web.ErrorHandler")
            .with("trace.id", r.trace_id.clone()),
        ];
    }
    let flight = format!(
        "{}{}",
        rng.pick(&["LX", "OS", "SK", "TP"]),
        100 + rng.below(8900)
    );
    let cause = if rng.chance(0.5) {
        "Connection reset"
    } else {
        "Read timed out"
    };
    vec![
        Rec::new(
            r.at + Duration::milliseconds(30),
            "booking-api",
            &r.pod,
            "ERROR",
            &java_trace(
                &format!("seat assignment failed for {}", r.path),
                &format!(
                    "org.springframework.web.client.ResourceAccessException: I/O error on POST request for \"http://seat-map.prod.svc:8080/v1/flights/{flight}/holds\": {cause}"
                ),
                &[
                    "org.springframework.web.client.DefaultRestClient$DefaultRequestBodyUriSpec.createResourceAccessException(DefaultRestClient.java:534)",
                    "com.voyagio.booking.seats.SeatMapClient.hold(SeatMapClient.java:64)",
                    "com.voyagio.booking.seats.SeatAssignmentService.assign(SeatAssignmentService.java:41)",
                    "com.voyagio.booking.web.SeatController.assign(SeatController.java:33)",
                ],
            ),
        )
        .with("log.logger", "com.voyagio.booking.seats.SeatMapClient")
        .with("error.type", "org.springframework.web.client.ResourceAccessException")
        .with("trace.id", r.trace_id.clone()),
    ]
}

/// The import's progress, the hold cache's stats, and each restart.
fn seat_map_story_logs(span: &Span, pods: &[Pod], rng: &mut Rng, release: &str) -> Vec<Rec> {
    let mut out = Vec::new();
    let total = 18_412u64;
    for (i, minute) in span.minutes().into_iter().enumerate() {
        for p in pods {
            if p.down(minute) {
                continue;
            }
            if i % 5 == 0 {
                let mem = p.mem(minute);
                out.push(
                    Rec::new(
                        within_minute(rng, minute),
                        "seat-map",
                        &p.name,
                        "INFO",
                        &format!(
                            "hold cache stats entries={} approx_bytes={:.0}MiB evictions=0 max_entries=unbounded",
                            entries(mem),
                            (mem - FRESH + 40.0).max(0.0)
                        ),
                    )
                    .with("log.logger", "holds.cache"),
                );
            }
            if i % 3 == 0 && minute < span.start + Duration::minutes(110) {
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "a positive count"
                )]
                let done = (9_200.0 + 77.0 * i as f64) as u64;
                out.push(
                    Rec::new(
                        within_minute(rng, minute),
                        "seat-map",
                        &p.name,
                        "INFO",
                        &format!(
                            "schedule import: warmed holds for {}/{total} flights (season S26, batch {})",
                            done.min(total),
                            1 + i / 3
                        ),
                    )
                    .with("log.logger", "schedule.import"),
                );
            }
        }
    }
    for p in pods {
        let oom = p.oom();
        let up = oom + Duration::seconds(3);
        out.push(
            Rec::new(
                up,
                "seat-map",
                &p.name,
                "INFO",
                &format!(
                    "starting seat-map version=2.8.2 commit={release} GOMAXPROCS=2 GOMEMLIMIT=unset"
                ),
            )
            .with("log.logger", "main"),
        );
        out.push(
            Rec::new(
                up + Duration::seconds(58),
                "seat-map",
                &p.name,
                "INFO",
                "loaded 214 aircraft layouts from s3://voyagio-seatmaps/layouts in 57.6s",
            )
            .with("log.logger", "layout"),
        );
        out.push(
            Rec::new(
                oom + Duration::seconds(RESTART_S - 1),
                "seat-map",
                &p.name,
                "INFO",
                "listening on :8080",
            )
            .with("log.logger", "main"),
        );
        for _ in 0..count(rng, 2.0) {
            out.push(
                Rec::new(
                    up + Duration::seconds(60)
                        + Duration::milliseconds(i64::try_from(rng.below(9000)).unwrap_or(0)),
                    "seat-map",
                    &p.name,
                    "WARN",
                    "schedule import: resuming after restart from checkpoint",
                )
                .with("log.logger", "schedule.import"),
            );
        }
    }
    out
}

fn kube_events(pods: &[Pod], rng: &mut Rng) -> Vec<Rec> {
    let mut out = Vec::new();
    for p in pods {
        let oom = p.oom();
        let node = format!(
            "ip-10-42-{}-{}.eu-central-1.compute.internal",
            rng.below(8),
            10 + rng.below(200)
        );
        let ev = |t: DateTime<Utc>, level: &str, reason: &str, msg: String| {
            Rec::new(t, "kubernetes-events", &node, level, &msg)
                .with("log.logger", "kubelet")
                .with("event.reason", reason)
                .with("kubernetes.namespace", "prod")
                .with("kubernetes.pod.name", p.name.clone())
        };
        out.push(ev(
            oom,
            "WARN",
            "OOMKilling",
            "Memory cgroup out of memory: Killed process 1 (seat-map) total-vm:1893412kB, anon-rss:1047088kB, file-rss:0kB, shmem-rss:0kB, UID:65532 pgtables:2384kB oom_score_adj:999".to_owned(),
        ));
        out.push(ev(
            oom + Duration::milliseconds(850),
            "WARN",
            "Killing",
            format!("Container seat-map in pod prod/{} terminated: OOMKilled (exit code 137), restart count 1", p.name),
        ));
        out.push(ev(
            oom + Duration::seconds(2),
            "INFO",
            "Pulled",
            "Container image \"registry.voyagio.example/seat-map:2.8.2\" already present on machine".to_owned(),
        ));
        out.push(ev(
            oom + Duration::seconds(3),
            "INFO",
            "Started",
            "Started container seat-map".to_owned(),
        ));
        out.push(ev(
            oom + Duration::seconds(20),
            "WARN",
            "Unhealthy",
            "Readiness probe failed: Get \"http://10.42.3.17:8080/readyz\": dial tcp 10.42.3.17:8080: connect: connection refused".to_owned(),
        ));
    }
    out
}

fn loyalty_rollout(loyalty: &Service) -> Vec<Rec> {
    let Some((at, pods)) = &loyalty.rollout else {
        return Vec::new();
    };
    pods.iter()
        .map(|p| {
            Rec::new(
                *at,
                loyalty.name,
                p,
                "INFO",
                "Booting worker with pid: 7 (loyalty 3.1.0)",
            )
            .with("log.logger", "gunicorn.error")
        })
        .collect()
}

struct History {
    bundle: Vec<u8>,
    seat_release: String,
    loyalty_release: String,
}

fn repo(t: &dyn Fn(&str) -> Result<DateTime<Utc>, GenError>) -> Result<History, GenError> {
    let [ines, dmitri, _aisha, jonas, priya, mateo] = [0, 1, 2, 3, 4, 5].map(|i| PEOPLE[i]);
    let mut r = RepoBuilder::new(NAME)?;
    r.write("README.md", "# voyagio-platform\n\nServices of the Voyagio booking platform. Each service lives under `services/<name>`\nand is released by tagging `<name>-v<version>`.\n");
    r.write("services/seat-map/VERSION", "2.8.1\n");
    r.write("services/seat-map/internal/holds/cache.go", HOLD_CACHE);
    r.write("services/seat-map/internal/schedule/import.go", IMPORT);
    r.write("services/seat-map/cmd/seat-map/main.go", SEAT_MAIN);
    r.write("deploy/k8s/seat-map/deployment.yaml", SEAT_DEPLOY);
    r.write("services/loyalty/VERSION", "3.0.4\n");
    r.write("services/loyalty/loyalty/points.py", POINTS);
    r.commit(
        mateo,
        t("2026-04-20T09:00:00Z")?,
        "platform: import services into the monorepo",
    )?;

    r.edit(
        "services/seat-map/cmd/seat-map/main.go",
        "srv.ReadTimeout = 5 * time.Second",
        "srv.ReadTimeout = 5 * time.Second\n\tsrv.IdleTimeout = 90 * time.Second",
    )?;
    r.commit(
        jonas,
        t("2026-04-27T14:12:09Z")?,
        "seat-map: close idle keep-alive connections after 90s (SEAT-362)",
    )?;
    r.write("services/seat-map/VERSION", "2.8.2\n");
    r.edit(
        "deploy/k8s/seat-map/deployment.yaml",
        "seat-map:2.8.1",
        "seat-map:2.8.2",
    )?;
    let seat_release = r.commit(
        jonas,
        t("2026-04-28T09:40:00Z")?,
        "seat-map: release v2.8.2",
    )?;
    r.tag("seat-map-v2.8.2")?;

    r.edit(
        "services/loyalty/loyalty/points.py",
        "def balance(member_id):",
        "def balance(member_id, *, include_pending=False):",
    )?;
    r.commit(
        priya,
        t("2026-05-04T16:20:41Z")?,
        "loyalty: optionally include pending points in the balance (LOY-190)",
    )?;
    r.edit(
        "services/loyalty/loyalty/points.py",
        "STATEMENT_TIMEOUT_MS = 800",
        "STATEMENT_TIMEOUT_MS = 1200",
    )?;
    r.commit(
        dmitri,
        t("2026-05-05T11:03:15Z")?,
        "loyalty: statement timeout 1.2s for the balance query",
    )?;
    r.write("services/loyalty/VERSION", "3.1.0\n");
    let loyalty_release = r.commit(ines, t("2026-05-05T17:30:00Z")?, "loyalty: release v3.1.0")?;
    r.tag("loyalty-v3.1.0")?;
    Ok(History {
        bundle: r.bundle()?,
        seat_release: short(seat_release),
        loyalty_release: short(loyalty_release),
    })
}

const HOLD_CACHE: &str = "package holds

import \"sync\"

// Cache keeps seat holds in memory so a seat map can be drawn without a
// Redis round trip per seat. Entries are replaced when a hold changes.
type Cache struct {
\tmu    sync.RWMutex
\titems map[string]Hold // key: flight/date/seat
}

// New returns an empty cache.
func New() *Cache { return &Cache{items: make(map[string]Hold)} }

// Put stores or replaces a hold.
func (c *Cache) Put(key string, h Hold) {
\tc.mu.Lock()
\tc.items[key] = h
\tc.mu.Unlock()
}

// Len is the number of entries (exported as seatmap_hold_cache_entries).
func (c *Cache) Len() int {
\tc.mu.RLock()
\tdefer c.mu.RUnlock()
\treturn len(c.items)
}
";

const IMPORT: &str = "package schedule

// Import warms the hold cache with every seat of every flight of the night's
// schedule, so the first seat-map request of the day is fast.
func Import(s Schedule, c Cache) error {
\tfor _, f := range s.Flights() {
\t\tfor _, seat := range f.Layout().Seats() {
\t\t\tc.Put(f.Key(seat), Hold{Free: true})
\t\t}
\t}
\treturn nil
}
";

const SEAT_MAIN: &str = "package main

import (
\t\"net/http\"
\t\"time\"
)

func main() {
\tsrv := &http.Server{Addr: \":8080\", Handler: routes()}
\tsrv.ReadTimeout = 5 * time.Second
\t_ = srv.ListenAndServe()
}
";

const SEAT_DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: seat-map
  namespace: prod
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: seat-map
          image: registry.voyagio.example/seat-map:2.8.1
          resources:
            requests: {cpu: 500m, memory: 1Gi}
            limits: {memory: 1Gi}
";

const POINTS: &str = "STATEMENT_TIMEOUT_MS = 800


def balance(member_id):
    with db.connection(statement_timeout=STATEMENT_TIMEOUT_MS) as conn:
        return conn.execute(BALANCE_SQL, (member_id,)).scalar_one()
";

const RUNBOOK_OOM: &str = "# OOMKilled containers

A container that exceeds its memory limit is killed by the kernel (exit code
137, reason `OOMKilled`) and restarted in place; the pod keeps its name.

1. Confirm: `kube_pod_container_status_restarts_total` rises and
   `container_memory_working_set_bytes` reaches `container_spec_memory_limit_bytes`
   just before; the node's events say `Memory cgroup out of memory`.
2. Growth that is steady over hours is a leak or an unbounded cache; a jump
   with traffic is load. Look at what grows (cache sizes, queue depths).
3. Short term: raise the limit or restart the pods one by one before they hit
   it. Then bound whatever grows.
";

const RUNBOOK_SEAT: &str = "# seat-map

seat-map draws seat maps and takes seat holds (Go, 3 replicas, 1 GiB each).

- The nightly schedule import (00:45 UTC) warms the hold cache for the next
  day's flights.
- Holds are stored in Redis; the in-memory cache only speeds up reads.
- booking-api calls `POST /v1/flights/{flight}/holds` with a 2 s timeout.
";
