//! Story `gds-latency-confirmations` (dependency_failure): the airline
//! partner's GDS web service (`ws.gds-partner.example`) slows from ~150 ms
//! to several seconds. pnr-sync, the service that calls it, times out after
//! 5 s and answers 504; booking-api's booking confirmations wait on
//! pnr-sync and fail; the edge alerts on confirmations. A booking-api
//! release eleven minutes before and a fare-engine flag ramp are innocent,
//! and the booking database is healthy (snapshots in `db/`).

use chrono::{DateTime, Duration, Utc};

use super::common::{
    PEOPLE, Periodic, RUNBOOK_ROLLBACK, at, change, expected, incident, java_trace, load, past,
    periodic, ramp,
};
use crate::error::GenError;
use crate::files::BundleFiles;
use crate::json::{J, obj};
use crate::metrics::Metrics;
use crate::repo::{RepoBuilder, short};
use crate::rng::Rng;
use crate::sim::{
    CallCond, Cond, Logs, Rec, Req, Route, Service, Span, Style, client_metrics, count,
    pod_metrics, pod_names, red_metrics, serve, steady_pods, ts, within_minute,
};

/// The story's directory name under `examples/`.
pub const NAME: &str = "gds-latency-confirmations";
const SEED: u64 = 0x5eed_0003;
const GDS: &str = "ws.gds-partner.example";

/// Builds the bundle.
///
/// # Errors
/// [`GenError`] when the repository cannot be built.
pub fn build() -> Result<BundleFiles, GenError> {
    let t = |s: &str| at(NAME, s);
    let start = t("2026-06-19T15:00:00Z")?;
    let end = t("2026-06-19T17:00:00Z")?;
    let onset = t("2026-06-19T16:02:40Z")?;
    let window = (t("2026-06-19T16:08:00Z")?, t("2026-06-19T16:40:00Z")?);
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
    let booking_release = t("2026-06-19T15:51:12Z")?;
    let pnr = Service {
        name: "pnr-sync",
        style: Style::Python,
        pods: pod_names(&mut prng, "pnr-sync", 3),
        rollout: None,
        routes: vec![
            Route::new("POST", "/v1/pnr/{pnr}/sync").weight(3.0),
            Route::new("GET", "/v1/pnr/{pnr}").weight(2.0),
        ],
        rps: 35.0,
        p50_ms: 190.0,
        logs_per_min: 6.0,
        cpu_cores: 0.5,
        mem_mib: 380.0,
    };
    let booking = Service {
        name: "booking-api",
        style: Style::Spring {
            package: "com.voyagio.booking",
        },
        pods: pod_names(&mut prng, "booking-api", 4),
        rollout: Some((
            booking_release + Duration::seconds(50),
            pod_names(&mut prng, "booking-api", 4),
        )),
        routes: vec![
            Route::new("POST", "/v2/bookings/{pnr}/confirm").weight(2.0),
            Route::new("GET", "/v2/bookings/{pnr}").weight(2.0),
            Route::new("POST", "/v2/quotes").weight(3.0),
        ],
        rps: 150.0,
        p50_ms: 70.0,
        logs_per_min: 7.0,
        cpu_cores: 2.2,
        mem_mib: 1300.0,
    };
    let fare = Service {
        name: "fare-engine",
        style: Style::Spring {
            package: "com.voyagio.fares",
        },
        pods: pod_names(&mut prng, "fare-engine", 3),
        rollout: None,
        routes: vec![Route::new("POST", "/v1/quotes")],
        rps: 90.0,
        p50_ms: 36.0,
        logs_per_min: 4.0,
        cpu_cores: 1.3,
        mem_mib: 880.0,
    };
    let edge = Service {
        name: "edge-proxy",
        style: Style::Envoy,
        pods: pod_names(&mut prng, "edge-proxy", 2),
        rollout: None,
        routes: vec![
            Route::new("POST", "/api/v2/bookings/{pnr}/confirm")
                .weight(2.0)
                .to("booking-api"),
            Route::new("GET", "/api/v2/bookings/{pnr}")
                .weight(2.0)
                .to("booking-api"),
            Route::new("POST", "/api/v2/quotes")
                .weight(3.0)
                .to("booking-api"),
            Route::new("GET", "/api/v2/flights/{flight}/seats")
                .weight(2.0)
                .to("seat-map"),
        ],
        rps: 280.0,
        p50_ms: 75.0,
        logs_per_min: 6.0,
        cpu_cores: 0.8,
        mem_mib: 180.0,
    };

    let reference = window.0;
    let l = move |t| load(t, reference);
    // How far the GDS slowdown has gone (0 before, 1 at full effect).
    let slow = move |t: DateTime<Utc>| ramp(t, onset, Duration::seconds(150));
    let gds = move |t: DateTime<Utc>| CallCond {
        latency: 1.0 + 26.0 * slow(t),
        timeouts: 0.0002 + 0.31 * slow(t),
        load: l(t) * (1.0 + 0.4 * slow(t)),
    };
    let pnr_cond = move |t: DateTime<Utc>, _: &Route| Cond {
        err: 0.0008 + 0.30 * slow(t),
        status: if slow(t) > 0.0 { 504 } else { 500 },
        fail_ms: if slow(t) > 0.0 { 10_050.0 } else { 0.0 },
        latency: 1.0 + 22.0 * slow(t),
        load: l(t),
        ..Cond::default()
    };
    let confirm = |p: &str| p.contains("confirm");
    let booking_cond = move |t: DateTime<Utc>, r: &Route| {
        let f = if confirm(r.path) { 0.42 * slow(t) } else { 0.0 };
        Cond {
            err: 0.0008 + f,
            status: if f > 0.0 { 504 } else { 500 },
            fail_ms: if f > 0.0 { 8_020.0 } else { 0.0 },
            latency: if confirm(r.path) {
                1.0 + 60.0 * slow(t)
            } else {
                1.0
            },
            load: l(t),
            ..Cond::default()
        }
    };
    let edge_cond = move |t: DateTime<Utc>, r: &Route| {
        let f = if confirm(r.path) { 0.42 * slow(t) } else { 0.0 };
        Cond {
            err: 0.0006 + f,
            status: 504,
            fail_ms: if f > 0.0 { 8_040.0 } else { 0.0 },
            latency: if confirm(r.path) {
                1.0 + 55.0 * slow(t)
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
    serve(
        &pnr,
        &span,
        &mut root.fork("serve/pnr"),
        &pnr_cond,
        &mut |rng: &mut Rng, r: &Req| pnr_failure(rng, r),
        &mut logs,
    );
    serve(
        &booking,
        &span,
        &mut root.fork("serve/booking"),
        &booking_cond,
        &mut |_: &mut Rng, r: &Req| booking_failure(r),
        &mut logs,
    );
    serve(
        &fare,
        &span,
        &mut root.fork("serve/fare"),
        &plain,
        &mut |rng: &mut Rng, r: &Req| {
            vec![
                Rec::new(
                    r.at,
                    "fare-engine",
                    &r.pod,
                    "ERROR",
                    &format!(
                        "Quote calculation failed for itinerary {}: com.voyagio.fares.rules.FareNotFiledException: no fare filed for carrier SK on market CPH-OPO",
                        rng.hex(12)
                    ),
                )
                .with("log.logger", "com.voyagio.fares.web.QuoteController")
                .with("trace.id", r.trace_id.clone()),
            ]
        },
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
    logs.add(
        "pnr-sync",
        pnr_story_logs(&pnr, &span, onset, &slow, &mut root.fork("pnr")),
    );
    let bg = periodic(
        &fare,
        &span,
        &mut root.fork("periodic/fare"),
        &[Periodic {
            per_hour: 12.0,
            level: "INFO",
            logger: "com.voyagio.fares.cache.QuoteCache",
            message: "quote cache stats: size={n}k hitRatio=0.8{n} evictions={n} (fare_cache_v2 on 25%)",
        }],
    );
    logs.add("fare-engine", bg);
    logs.add("booking-api", booking_startup(&booking, booking_release));
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
        &[500, 504],
        &mut m,
    );
    red_metrics(
        &pnr,
        &span,
        &mut root.fork("metrics/pnr"),
        &pnr_cond,
        &[500, 504],
        &mut m,
    );
    red_metrics(
        &fare,
        &span,
        &mut root.fork("metrics/fare"),
        &plain,
        &[500],
        &mut m,
    );
    client_metrics(
        "pnr-sync",
        GDS,
        52.0,
        150.0,
        &span,
        &mut root.fork("client/pnr-sync"),
        &gds,
        &mut m,
    );
    client_metrics(
        "booking-api",
        "pnr-sync",
        14.0,
        200.0,
        &span,
        &mut root.fork("client/booking-api"),
        &move |t| CallCond {
            latency: 1.0 + 20.0 * slow(t),
            timeouts: 0.0001 + 0.4 * slow(t),
            load: l(t),
        },
        &mut m,
    );
    for (svc, limit) in [(&pnr, 768.0), (&booking, 2048.0)] {
        let mut state = steady_pods(svc, &mut mrng);
        pod_metrics(svc, &span, limit, &mut state, &mut m);
    }
    files.put("metrics.om", m.render());

    let (activity, locks) = db_snapshot(t("2026-06-19T16:21:30Z")?, &mut root.fork("db"));
    files.put_jsonl("db/pg_stat_activity.jsonl", &activity);
    files.put_jsonl("db/pg_locks.jsonl", &locks);

    files.put_json(
        "incident.json",
        &incident(
            "edge-proxy: booking confirmation 5xx above 10% for 5m",
            "Alertmanager: 5xx ratio of POST /api/v2/bookings/*/confirm at the edge is 38% (threshold 10%); p99 latency 11.8 s. Customers see 'We could not confirm your booking, please try again'. booking-api was released at 15:51.",
            "critical",
            &["edge-proxy", "booking-api"],
            window,
            &[("alertname", "BookingConfirmErrors"), ("team", "booking")],
        ),
    );
    files.put_jsonl(
        "changes.jsonl",
        &[
            change(
                t("2026-06-17T09:12:00Z")?,
                "pnr-sync",
                "deploy",
                Some("v1.14.0"),
                Some(&h.pnr_release),
                "deploy pnr-sync v1.14.0",
            ),
            change(
                t("2026-06-19T15:30:05Z")?,
                "fare-engine",
                "flag",
                None,
                None,
                "fare_cache_v2: 5% -> 25% of quotes",
            ),
            change(
                booking_release,
                "booking-api",
                "deploy",
                Some("v7.5.0"),
                Some(&h.booking_release),
                "deploy booking-api v7.5.0",
            ),
        ],
    );
    files.put("runbooks/deploy-rollback.md", RUNBOOK_ROLLBACK);
    files.put("runbooks/external-dependency.md", RUNBOOK_EXTERNAL);
    files.put("runbooks/pnr-sync.md", RUNBOOK_PNR);
    files.put_jsonl(
        "past_incidents.jsonl",
        &[
            past(
                "INC-2150",
                "pnr-sync: confirmations failing during partner maintenance",
                "pnr-sync 504s, booking confirmations failing, GDS answering 503",
                "unannounced maintenance window of the partner GDS",
                "dependency_failure",
                "partner status page subscribed; confirmations queued for retry while the GDS is down",
            ),
            past(
                "INC-2199",
                "booking-api: confirmations slow after release",
                "booking-api p99 up 5x on /confirm after v7.1.0",
                "v7.1.0 added a synchronous loyalty call inside the confirmation transaction",
                "bad_deploy",
                "rolled back; the loyalty call moved after commit",
            ),
            past(
                "INC-2231",
                "booking-db: confirmations blocked by a migration",
                "booking-api timeouts on confirm; pg_locks full of waiting UPDATEs",
                "a migration took an ACCESS EXCLUSIVE lock on booking during peak",
                "database",
                "migrations now run with lock_timeout and outside peak",
            ),
        ],
    );
    files.put_json(
        "expected.json",
        &expected(
            "pnr-sync",
            "dependency_failure",
            None,
            "the partner GDS web service ws.gds-partner.example slowed from ~150 ms to several seconds; pnr-sync's calls to it hit the 5 s read timeout (ReadTimeout) and pnr-sync answers 504, so booking-api's confirmations (8 s timeout on pnr-sync) fail and the edge alerts; the booking-api release and the fare-engine flag are unrelated",
            &["gds-partner", "timeout", "pnr-sync"],
            &[],
        ),
    );
    Ok(files)
}

fn pnr_failure(rng: &mut Rng, r: &Req) -> Vec<Rec> {
    if r.status != 504 {
        return vec![
            Rec::new(
                r.at,
                "pnr-sync",
                &r.pod,
                "ERROR",
                "PNR sync failed: GDS answered 409 SEGMENT_STATUS_CONFLICT (segment already ticketed)",
            )
            .with("log.logger", "pnr_sync.gds"),
        ];
    }
    let op = *rng.pick(&["PNR_Retrieve", "PNR_AddMultiElements", "PNR_Retrieve"]);
    let head = format!(
        "GDS call failed op={op} pnr={} attempt=2/2 elapsed=5.0{}s",
        r.path.split('/').nth(3).unwrap_or("-"),
        rng.below(10)
    );
    let msg = if rng.chance(0.3) {
        format!(
            "{head}\nTraceback (most recent call last):\n  File \"/app/pnr_sync/gds.py\", line 88, in call\n    resp = self.session.post(self.url, data=envelope, timeout=(2.0, 5.0))\n  File \"/usr/local/lib/python3.12/site-packages/requests/adapters.py\", line 713, in send\n    raise ReadTimeout(e, request=request)\nrequests.exceptions.ReadTimeout: HTTPSConnectionPool(host='{GDS}', port=443): Read timed out. (read timeout=5.0)"
        )
    } else {
        format!(
            "{head}: requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='{GDS}', port=443): Read timed out. (read timeout=5.0)"
        )
    };
    vec![
        Rec::new(
            r.at + Duration::milliseconds(10_040),
            "pnr-sync",
            &r.pod,
            "ERROR",
            &msg,
        )
        .with("log.logger", "pnr_sync.gds")
        .with("error.type", "requests.exceptions.ReadTimeout")
        .with("url.domain", GDS)
        .with("trace.id", r.trace_id.clone()),
    ]
}

fn booking_failure(r: &Req) -> Vec<Rec> {
    if r.status != 504 {
        return vec![
            Rec::new(
                r.at,
                "booking-api",
                &r.pod,
                "ERROR",
                "Request processing failed: org.springframework.web.bind.MethodArgumentNotValidException: passengers[0].dateOfBirth must be in the past",
            )
            .with("log.logger", "com.voyagio.booking.web.ErrorHandler")
            .with("trace.id", r.trace_id.clone()),
        ];
    }
    let pnr = r.path.split('/').nth(3).unwrap_or("-").to_owned();
    vec![
        Rec::new(
            r.at + Duration::milliseconds(8_010),
            "booking-api",
            &r.pod,
            "ERROR",
            &java_trace(
                &format!("Booking confirmation failed for {pnr}: pnr-sync did not answer within 8000 ms"),
                &format!(
                    "org.springframework.web.client.ResourceAccessException: I/O error on POST request for \"http://pnr-sync.prod.svc:8000/v1/pnr/{pnr}/sync\": Read timed out"
                ),
                &[
                    "org.springframework.web.client.DefaultRestClient$DefaultRequestBodyUriSpec.createResourceAccessException(DefaultRestClient.java:534)",
                    "com.voyagio.booking.pnr.PnrSyncClient.sync(PnrSyncClient.java:52)",
                    "com.voyagio.booking.confirm.ConfirmationService.confirm(ConfirmationService.java:77)",
                    "com.voyagio.booking.web.BookingController.confirm(BookingController.java:64)",
                ],
            ),
        )
        .with("log.logger", "com.voyagio.booking.pnr.PnrSyncClient")
        .with("error.type", "org.springframework.web.client.ResourceAccessException")
        .with("trace.id", r.trace_id.clone()),
    ]
}

/// Slow-call warnings, the circuit breaker and the GDS health probe.
fn pnr_story_logs(
    pnr: &Service,
    span: &Span,
    onset: DateTime<Utc>,
    slow: &dyn Fn(DateTime<Utc>) -> f64,
    rng: &mut Rng,
) -> Vec<Rec> {
    let mut out = Vec::new();
    for minute in span.minutes() {
        let s = slow(minute);
        for _ in 0..count(rng, 0.3 + 6.0 * s) {
            let at = within_minute(rng, minute);
            let took = if s > 0.0 {
                rng.range(2.0, 4.9)
            } else {
                rng.range(1.0, 1.6)
            };
            out.push(
                Rec::new(
                    at,
                    "pnr-sync",
                    rng.pick(&pnr.pods).as_str(),
                    "WARNING",
                    &format!(
                        "GDS call slow op={} took={took:.2}s host={GDS}",
                        rng.pick(&["PNR_Retrieve", "PNR_AddMultiElements"])
                    ),
                )
                .with("log.logger", "pnr_sync.gds"),
            );
        }
        if minute.timestamp() % 300 == 0 {
            let ms = if s > 0.0 {
                rng.range(3200.0, 4800.0)
            } else {
                rng.range(110.0, 190.0)
            };
            out.push(
                Rec::new(
                    minute + Duration::seconds(1),
                    "pnr-sync",
                    &pnr.pods[0],
                    "INFO",
                    &format!("gds health probe Ping ok in {ms:.0} ms"),
                )
                .with("log.logger", "pnr_sync.health"),
            );
        }
    }
    for (i, pod) in pnr.pods.iter().enumerate() {
        let i = i64::try_from(i).unwrap_or(0);
        let open = onset
            + Duration::seconds(140 + 17 * i)
            + Duration::milliseconds(i64::try_from(rng.below(1000)).unwrap_or(0));
        out.push(
            Rec::new(
                open,
                "pnr-sync",
                pod,
                "WARNING",
                &format!("circuit breaker gds OPEN: 21 of the last 40 calls to {GDS} failed (threshold 50%)"),
            )
            .with("log.logger", "pnr_sync.breaker"),
        );
        let mut at = open;
        for _ in 0..6 {
            at += Duration::seconds(30);
            out.push(
                Rec::new(
                    at,
                    "pnr-sync",
                    pod,
                    "INFO",
                    "circuit breaker gds HALF_OPEN: letting a trial call through",
                )
                .with("log.logger", "pnr_sync.breaker"),
            );
            at += Duration::seconds(5);
            out.push(
                Rec::new(
                    at,
                    "pnr-sync",
                    pod,
                    "WARNING",
                    &format!(
                        "circuit breaker gds OPEN again: trial call to {GDS} timed out after 5.0s"
                    ),
                )
                .with("log.logger", "pnr_sync.breaker"),
            );
            at += Duration::seconds(300);
        }
    }
    out
}

fn booking_startup(booking: &Service, release: DateTime<Utc>) -> Vec<Rec> {
    let Some((ready, pods)) = &booking.rollout else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pod in pods {
        out.push(
            Rec::new(
                release + Duration::seconds(9),
                booking.name,
                pod,
                "INFO",
                "Starting BookingApiApplication v7.5.0 using Java 21.0.3 with PID 1",
            )
            .with("log.logger", "com.voyagio.booking.BookingApiApplication"),
        );
        out.push(
            Rec::new(
                *ready,
                booking.name,
                pod,
                "INFO",
                "Started BookingApiApplication in 38.2 seconds (process running for 39.0)",
            )
            .with("log.logger", "com.voyagio.booking.BookingApiApplication"),
        );
    }
    out
}

/// A healthy booking-db at the time of the snapshot: short queries, idle
/// pool connections, no lock waits.
fn db_snapshot(at: DateTime<Utc>, rng: &mut Rng) -> (Vec<J>, Vec<J>) {
    let queries = [
        (
            "booking-api",
            "active",
            "SELECT b.id, b.pnr, b.status FROM booking b WHERE b.pnr = $1",
        ),
        ("booking-api", "idle", "COMMIT"),
        (
            "booking-api",
            "active",
            "UPDATE booking SET status = $1, updated_at = now() WHERE id = $2",
        ),
        ("booking-api", "idle", "SELECT 1"),
        ("booking-api", "idle", "COMMIT"),
        (
            "booking-api",
            "active",
            "INSERT INTO booking_event (booking_id, kind, payload) VALUES ($1, $2, $3)",
        ),
        (
            "pnr-sync",
            "idle",
            "SELECT payload FROM pnr_cache WHERE pnr = $1",
        ),
        ("pnr-sync", "idle", "COMMIT"),
        (
            "reporting",
            "active",
            "SELECT date_trunc('hour', created_at), count(*) FROM booking WHERE created_at > now() - interval '1 day' GROUP BY 1",
        ),
        ("booking-api", "idle", "COMMIT"),
    ];
    let mut activity = Vec::new();
    let mut locks = Vec::new();
    for (user, state, query) in &queries {
        let pid = 41_000 + i64::try_from(rng.below(9000)).unwrap_or(0);
        #[expect(clippy::cast_possible_wrap, reason = "below 900")]
        let age = Duration::milliseconds(if *state == "active" {
            2 + rng.below(40) as i64
        } else {
            20 + rng.below(900) as i64
        });
        let started = at - age;
        activity.push(obj([
            ("snapshot_at", ts(at).into()),
            ("pid", pid.into()),
            ("usename", (*user).into()),
            ("application_name", (*user).into()),
            (
                "client_addr",
                format!("10.44.{}.{}", rng.below(8), 2 + rng.below(250)).into(),
            ),
            ("state", (*state).into()),
            (
                "wait_event_type",
                if *state == "idle" {
                    J::from("Client")
                } else {
                    J::Null
                },
            ),
            (
                "wait_event",
                if *state == "idle" {
                    J::from("ClientRead")
                } else {
                    J::Null
                },
            ),
            (
                "xact_start",
                if *state == "active" {
                    J::from(ts(started))
                } else {
                    J::Null
                },
            ),
            ("query_start", ts(started).into()),
            ("state_change", ts(started).into()),
            ("blocked_by", J::Arr(Vec::new())),
            ("query", (*query).into()),
        ]));
        if *state == "active" {
            locks.push(obj([
                ("snapshot_at", ts(at).into()),
                ("pid", pid.into()),
                ("locktype", "relation".into()),
                (
                    "relation",
                    if query.contains("booking_event") {
                        "booking_event"
                    } else {
                        "booking"
                    }
                    .into(),
                ),
                (
                    "mode",
                    if query.starts_with("SELECT") {
                        "AccessShareLock"
                    } else {
                        "RowExclusiveLock"
                    }
                    .into(),
                ),
                ("granted", true.into()),
            ]));
        }
    }
    (activity, locks)
}

struct History {
    bundle: Vec<u8>,
    pnr_release: String,
    booking_release: String,
}

fn repo(t: &dyn Fn(&str) -> Result<DateTime<Utc>, GenError>) -> Result<History, GenError> {
    let [ines, dmitri, aisha, _jonas, priya, mateo] = [0, 1, 2, 3, 4, 5].map(|i| PEOPLE[i]);
    let mut r = RepoBuilder::new(NAME)?;
    r.write("README.md", "# voyagio-platform\n\nServices of the Voyagio booking platform. Each service lives under `services/<name>`\nand is released by tagging `<name>-v<version>`.\n");
    r.write("services/pnr-sync/VERSION", "1.13.2\n");
    r.write("services/pnr-sync/pnr_sync/gds.py", GDS_PY);
    r.write("services/booking-api/VERSION", "7.4.1\n");
    r.write(
        "services/booking-api/src/main/java/com/voyagio/booking/pnr/PnrSyncClient.java",
        PNR_CLIENT,
    );
    r.write(
        "services/booking-api/src/main/resources/templates/confirmation.html",
        "<h1>Your trip is booked</h1>\n<p>Booking reference: {{pnr}}</p>\n",
    );
    r.write(
        "services/booking-api/build.gradle.kts",
        "plugins {\n    id(\"org.springframework.boot\") version \"3.2.5\"\n    java\n}\n",
    );
    r.commit(
        mateo,
        t("2026-06-01T08:00:00Z")?,
        "platform: import services into the monorepo",
    )?;

    r.edit(
        "services/pnr-sync/pnr_sync/gds.py",
        "MAX_ATTEMPTS = 3",
        "MAX_ATTEMPTS = 2",
    )?;
    r.commit(aisha, t("2026-06-15T13:44:10Z")?, "pnr-sync: two attempts per GDS call, not three (PNR-88)\n\nThree attempts of 5 s each exceeded booking-api's 8 s budget anyway.\n")?;
    r.write("services/pnr-sync/VERSION", "1.14.0\n");
    let pnr_release = r.commit(
        aisha,
        t("2026-06-16T16:00:00Z")?,
        "pnr-sync: release v1.14.0",
    )?;
    r.tag("pnr-sync-v1.14.0")?;

    r.write(
        "services/booking-api/src/main/resources/templates/confirmation.html",
        "<h1>You're all set</h1>\n<p>Your booking reference is <strong>{{pnr}}</strong>. We sent the details to {{email}}.</p>\n",
    );
    r.commit(
        priya,
        t("2026-06-18T10:21:33Z")?,
        "booking-api: new confirmation e-mail copy (BOOK-802)",
    )?;
    r.edit(
        "services/booking-api/build.gradle.kts",
        "version \"3.2.5\"",
        "version \"3.2.6\"",
    )?;
    r.commit(
        dmitri,
        t("2026-06-18T15:02:47Z")?,
        "booking-api: bump spring-boot to 3.2.6",
    )?;
    r.write("services/booking-api/VERSION", "7.5.0\n");
    let booking_release = r.commit(
        ines,
        t("2026-06-19T14:40:00Z")?,
        "booking-api: release v7.5.0",
    )?;
    r.tag("booking-api-v7.5.0")?;
    Ok(History {
        bundle: r.bundle()?,
        pnr_release: short(pnr_release),
        booking_release: short(booking_release),
    })
}

const GDS_PY: &str = "\"\"\"Calls to the partner GDS (SOAP over HTTPS).\"\"\"

import requests

GDS_URL = \"https://ws.gds-partner.example/1ASIWVOY\"
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
MAX_ATTEMPTS = 3


class GdsClient:
    def __init__(self, session: requests.Session):
        self.session = session
        self.url = GDS_URL

    def call(self, envelope: bytes) -> bytes:
        resp = self.session.post(self.url, data=envelope, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        resp.raise_for_status()
        return resp.content
";

const PNR_CLIENT: &str = "package com.voyagio.booking.pnr;

import java.time.Duration;

import org.springframework.web.client.RestClient;

/** Confirms a booking's PNR with the airline through pnr-sync. */
public class PnrSyncClient {
    private final RestClient http;

    public PnrSyncClient(RestClient.Builder builder) {
        this.http = builder
            .baseUrl(\"http://pnr-sync.prod.svc:8000\")
            .requestFactory(Timeouts.factory(Duration.ofSeconds(8)))
            .build();
    }
}
";

const RUNBOOK_EXTERNAL: &str = "# An external dependency is slow or failing

Partner APIs (GDS, payment providers) fail outside our control.

1. Look at the outbound metrics of the calling service:
   `http_client_request_duration_seconds` and `http_client_requests_total{outcome=\"timeout\"}`
   by `peer`.
2. If one peer's latency rose while our own services' CPU and memory are
   flat, it is the dependency: check the partner's status page and open a
   ticket with them, quoting request ids and times.
3. Contain: the circuit breaker should open; queue work that can be retried
   later (confirmations) instead of failing it.
";

const RUNBOOK_PNR: &str = "# pnr-sync

pnr-sync creates and reads PNRs at the airline partner's GDS
(`ws.gds-partner.example`) for booking-api.

- Timeouts: connect 2 s, read 5 s, two attempts.
- booking-api gives pnr-sync 8 s per confirmation.
- The breaker `gds` opens at 50% failures over 40 calls and tries again
  every 30 s.
";
