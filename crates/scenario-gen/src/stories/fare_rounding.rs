//! Story `fare-rounding-deploy` (bad_deploy): fare-engine v5.3.0 rounds each
//! fare leg with `RoundingMode.UNNECESSARY`; quotes in currencies without
//! minor units (JPY, KRW, ISK) throw `ArithmeticException`, fare-engine
//! answers 500, booking-api turns it into 502 and the edge alerts. A seat-map
//! release, a mailer config change and a loyalty flag flip fall in the same
//! hour and are innocent.

use chrono::{DateTime, Duration, Utc};

use super::common::{
    PEOPLE, Periodic, RUNBOOK_ROLLBACK, at, change, expected, incident, java_trace, load, past,
    periodic, ramp,
};
use crate::error::GenError;
use crate::files::BundleFiles;
use crate::metrics::Metrics;
use crate::repo::{RepoBuilder, short};
use crate::rng::Rng;
use crate::sim::{
    Cond, Logs, Rec, Req, Route, Service, Span, Style, pod_metrics, pod_names, red_metrics, serve,
    steady_pods,
};

/// The story's directory name under `examples/`.
pub const NAME: &str = "fare-rounding-deploy";
const SEED: u64 = 0x5eed_0001;

const ZERO_DECIMAL: &[&str] = &["JPY", "KRW", "ISK"];
const OTHER_CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "CHF", "SEK"];

struct Times {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    deploy: DateTime<Utc>,
    /// When the new pods took traffic.
    onset: DateTime<Utc>,
    window: (DateTime<Utc>, DateTime<Utc>),
}

/// Builds the bundle.
///
/// # Errors
/// [`GenError`] when the repository cannot be built.
pub fn build() -> Result<BundleFiles, GenError> {
    let t = |s: &str| at(NAME, s);
    let times = Times {
        start: t("2026-04-14T08:30:00Z")?,
        end: t("2026-04-14T10:30:00Z")?,
        deploy: t("2026-04-14T09:41:20Z")?,
        onset: t("2026-04-14T09:42:05Z")?,
        window: (t("2026-04-14T09:48:00Z")?, t("2026-04-14T10:15:00Z")?),
    };
    let root = Rng::new(SEED);
    let mut files = BundleFiles::default();

    let h = repo(&t)?;
    files.put("repo.bundle", h.bundle.clone());

    let mut prng = root.fork("pods");
    let reference = times.window.0;
    let span = Span {
        start: times.start,
        end: times.end,
        step: Duration::seconds(60),
    };
    let fare = Service {
        name: "fare-engine",
        style: Style::Spring {
            package: "com.voyagio.fares",
        },
        pods: pod_names(&mut prng, "fare-engine", 3),
        rollout: Some((times.onset, pod_names(&mut prng, "fare-engine", 3))),
        routes: vec![
            Route::new("POST", "/v1/quotes").weight(4.0),
            Route::new("GET", "/v1/fare-rules/{id}"),
        ],
        rps: 95.0,
        p50_ms: 38.0,
        logs_per_min: 8.0,
        cpu_cores: 1.4,
        mem_mib: 900.0,
    };
    let booking = Service {
        name: "booking-api",
        style: Style::Spring {
            package: "com.voyagio.booking",
        },
        pods: pod_names(&mut prng, "booking-api", 4),
        rollout: None,
        routes: vec![
            Route::new("POST", "/v2/quotes").weight(3.0),
            Route::new("GET", "/v2/bookings/{pnr}").weight(2.0),
            Route::new("POST", "/v2/bookings"),
        ],
        rps: 140.0,
        p50_ms: 65.0,
        logs_per_min: 8.0,
        cpu_cores: 2.1,
        mem_mib: 1300.0,
    };
    let seat = Service {
        name: "seat-map",
        style: Style::Go,
        pods: pod_names(&mut prng, "seat-map", 3),
        rollout: Some((
            t("2026-04-14T09:12:40Z")?,
            pod_names(&mut prng, "seat-map", 3),
        )),
        routes: vec![
            Route::new("GET", "/v1/flights/{flight}/seats").weight(3.0),
            Route::new("POST", "/v1/flights/{flight}/holds"),
        ],
        rps: 60.0,
        p50_ms: 14.0,
        logs_per_min: 4.0,
        cpu_cores: 0.6,
        mem_mib: 420.0,
    };
    let loyalty = Service {
        name: "loyalty",
        style: Style::Python,
        pods: pod_names(&mut prng, "loyalty", 2),
        rollout: None,
        routes: vec![Route::new("GET", "/v1/members/{member}/points")],
        rps: 22.0,
        p50_ms: 45.0,
        logs_per_min: 2.0,
        cpu_cores: 0.3,
        mem_mib: 310.0,
    };
    let edge = Service {
        name: "edge-proxy",
        style: Style::Envoy,
        pods: pod_names(&mut prng, "edge-proxy", 2),
        rollout: None,
        routes: vec![
            Route::new("POST", "/api/v2/quotes")
                .weight(3.0)
                .to("booking-api"),
            Route::new("GET", "/api/v2/bookings/{pnr}")
                .weight(2.0)
                .to("booking-api"),
            Route::new("POST", "/api/v2/bookings").to("booking-api"),
            Route::new("GET", "/api/v2/flights/{flight}/seats")
                .weight(2.5)
                .to("seat-map"),
            Route::new("GET", "/api/v2/loyalty/{member}/points").to("loyalty"),
        ],
        rps: 260.0,
        p50_ms: 70.0,
        logs_per_min: 6.0,
        cpu_cores: 0.8,
        mem_mib: 180.0,
    };

    // The share of quotes in a currency without minor units.
    let broken = 0.21;
    let quote_fault = move |t: DateTime<Utc>| ramp(t, times.onset, Duration::seconds(90)) * broken;
    let l = move |t| load(t, reference);
    let fare_cond = move |t: DateTime<Utc>, r: &Route| Cond {
        err: if r.path == "/v1/quotes" {
            0.0015 + quote_fault(t)
        } else {
            0.0005
        },
        load: l(t),
        ..Cond::default()
    };
    let booking_cond = move |t: DateTime<Utc>, r: &Route| {
        let f = if r.path == "/v2/quotes" {
            quote_fault(t)
        } else {
            0.0
        };
        Cond {
            err: 0.001 + f,
            status: if f > 0.0 { 502 } else { 500 },
            load: l(t),
            ..Cond::default()
        }
    };
    let edge_cond = move |t: DateTime<Utc>, r: &Route| {
        let f = if r.path == "/api/v2/quotes" {
            quote_fault(t)
        } else {
            0.0
        };
        Cond {
            err: 0.0008 + f,
            status: 502,
            load: l(t),
            ..Cond::default()
        }
    };
    let plain = move |t: DateTime<Utc>, _: &Route| Cond {
        err: 0.0008,
        load: l(t),
        ..Cond::default()
    };

    // Logs.
    let mut logs = Logs::default();
    let onset = times.onset;
    serve(
        &fare,
        &span,
        &mut root.fork("serve/fare"),
        &fare_cond,
        &mut |rng: &mut Rng, r: &Req| fare_failure(rng, r, r.at >= onset),
        &mut logs,
    );
    serve(
        &booking,
        &span,
        &mut root.fork("serve/booking"),
        &booking_cond,
        &mut |rng: &mut Rng, r: &Req| {
            if r.status == 502 {
                vec![
                    Rec::new(
                        r.at + Duration::milliseconds(40),
                        "booking-api",
                        &r.pod,
                        "WARN",
                        &format!(
                            "fare-engine answered 500 Internal Server Error to POST /v1/quotes (itinerary={}); returning 502 to the client",
                            rng.hex(12)
                        ),
                    )
                    .with("log.logger", "com.voyagio.booking.quote.FareClient")
                    .with("trace.id", r.trace_id.clone()),
                ]
            } else {
                vec![
                    Rec::new(
                        r.at,
                        "booking-api",
                        &r.pod,
                        "ERROR",
                        &java_trace(
                            "Request processing failed",
                            "org.springframework.dao.QueryTimeoutException: PreparedStatementCallback; SQL [select * from booking where pnr = ?]; canceling statement due to user request",
                            &[
                                "org.springframework.jdbc.core.JdbcTemplate.translateException(JdbcTemplate.java:1542)",
                                "com.voyagio.booking.store.BookingRepository.findByPnr(BookingRepository.java:77)",
                                "com.voyagio.booking.web.BookingController.get(BookingController.java:41)",
                            ],
                        ),
                    )
                    .with("log.logger", "com.voyagio.booking.web.ErrorHandler")
                    .with("trace.id", r.trace_id.clone()),
                ]
            }
        },
        &mut logs,
    );
    serve(
        &seat,
        &span,
        &mut root.fork("serve/seat"),
        &plain,
        &mut |_: &mut Rng, r: &Req| {
            vec![
                Rec::new(
                    r.at,
                    "seat-map",
                    &r.pod,
                    "ERROR",
                    "layout lookup failed: aircraft config not found for equipment code 32Q",
                )
                .with("log.logger", "layout")
                .with("trace.id", r.trace_id.clone()),
            ]
        },
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
                    "points lookup failed: redis.exceptions.TimeoutError: Timeout reading from socket",
                )
                .with("log.logger", "loyalty.points"),
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

    // Background messages.
    let bg = periodic(
        &fare,
        &span,
        &mut root.fork("periodic/fare"),
        &[
            Periodic {
                per_hour: 12.0,
                level: "INFO",
                logger: "com.voyagio.fares.cache.QuoteCache",
                message: "quote cache stats: size={n}k hitRatio=0.8{n} evictions={n}",
            },
            Periodic {
                per_hour: 4.0,
                level: "WARN",
                logger: "com.voyagio.fares.rules.RuleLoader",
                message: "fare rule {id} has an expired sale date; skipped",
            },
        ],
    );
    logs.add("fare-engine", bg);
    let bg = periodic(
        &booking,
        &span,
        &mut root.fork("periodic/booking"),
        &[Periodic {
            per_hour: 6.0,
            level: "WARN",
            logger: "com.zaxxer.hikari.pool.HikariPool",
            message: "HikariPool-1 - Thread starvation or clock leap detected (housekeeper delta=1m{n}ms).",
        }],
    );
    logs.add("booking-api", bg);
    let bg = periodic(
        &loyalty,
        &span,
        &mut root.fork("periodic/loyalty"),
        &[Periodic {
            per_hour: 6.0,
            level: "INFO",
            logger: "loyalty.flags",
            message: "feature flags refreshed (14 flags, points_preview=on)",
        }],
    );
    logs.add("loyalty", bg);
    logs.add("fare-engine", startup(&fare, times.deploy, &h.release));
    logs.add("mailer", mailer_logs(&span, &mut root.fork("mailer"), &t)?);
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
        &fare,
        &span,
        &mut root.fork("metrics/fare"),
        &fare_cond,
        &[500],
        &mut m,
    );
    red_metrics(
        &seat,
        &span,
        &mut root.fork("metrics/seat"),
        &plain,
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
    for (svc, limit) in [(&fare, 1536.0), (&booking, 2048.0), (&seat, 768.0)] {
        let mut state = steady_pods(svc, &mut mrng);
        pod_metrics(svc, &span, limit, &mut state, &mut m);
    }
    files.put("metrics.om", m.render());

    files.put_json(
        "incident.json",
        &incident(
            "booking-api: quote error ratio above 5% for 5m",
            "Alertmanager: 5xx ratio of POST /v2/quotes at booking-api is 19.7% (threshold 5%). Support reports customers in Japan and Korea cannot get a price for flights.",
            "critical",
            &["booking-api"],
            times.window,
            &[("alertname", "BookingQuoteErrors"), ("team", "booking")],
        ),
    );
    files.put_jsonl(
        "changes.jsonl",
        &[
            change(
                t("2026-04-09T13:20:00Z")?,
                "booking-api",
                "deploy",
                Some("v7.3.2"),
                None,
                "deploy booking-api v7.3.2",
            ),
            change(
                t("2026-04-14T08:55:10Z")?,
                "loyalty",
                "flag",
                None,
                None,
                "points_preview: off -> on for 100% of members",
            ),
            change(
                t("2026-04-14T09:12:31Z")?,
                "seat-map",
                "deploy",
                Some("v2.8.1"),
                Some(&h.seat_release),
                "deploy seat-map v2.8.1",
            ),
            change(
                t("2026-04-14T09:30:02Z")?,
                "mailer",
                "config",
                None,
                None,
                "SMTP_RELAY_TIMEOUT 10s -> 20s (configmap mailer-env)",
            ),
            change(
                times.deploy,
                "fare-engine",
                "deploy",
                Some("v5.3.0"),
                Some(&h.release),
                "deploy fare-engine v5.3.0",
            ),
        ],
    );
    files.put("runbooks/deploy-rollback.md", RUNBOOK_ROLLBACK);
    files.put("runbooks/edge-5xx.md", RUNBOOK_EDGE);
    files.put("runbooks/fare-engine.md", RUNBOOK_FARES);
    files.put_jsonl(
        "past_incidents.jsonl",
        &[
            past(
                "INC-2207",
                "booking-api: quotes failing after fare rules import",
                "booking-api 502 on /v2/quotes for one carrier; fare-engine FareNotFiledException",
                "the nightly ATPCO import skipped a carrier's fare file; quotes for it had no fares",
                "dependency_failure",
                "re-ran the import; the import job now alerts on a missing carrier file",
            ),
            past(
                "INC-2241",
                "edge-proxy: 5xx on seat maps after seat-map release",
                "edge 503 on /api/v2/flights/*/seats; seat-map pods crashlooping",
                "seat-map v2.6.0 read a new env var that was missing in production",
                "bad_deploy",
                "rolled back; config now validated at startup",
            ),
            past(
                "INC-2290",
                "mailer: confirmation e-mails delayed",
                "mailer queue depth growing; SMTP relay timeouts",
                "the SMTP relay provider throttled our account after a marketing send",
                "dependency_failure",
                "moved marketing sends to a separate relay account",
            ),
            past(
                "INC-2318",
                "fare-engine: wrong totals in CHF",
                "customers charged 0.05 CHF more than the quote",
                "totals were rounded half-up instead of to the 0.05 cash rounding rule",
                "bad_deploy",
                "fixed in CurrencyRounding.total; added a property test over every currency",
            ),
        ],
    );
    files.put_json(
        "expected.json",
        &expected(
            "fare-engine",
            "bad_deploy",
            Some(&h.culprit),
            "fare-engine v5.3.0 (FARE-912, per-leg rounding) calls BigDecimal.setScale with RoundingMode.UNNECESSARY in CurrencyRounding.forLeg; converted leg prices in currencies without minor units (JPY, KRW, ISK) have decimals, so the quote throws ArithmeticException: Rounding necessary, fare-engine answers 500 and booking-api 502",
            &["CurrencyRounding", "v5.3.0", "ArithmeticException"],
            &[],
        ),
    );
    Ok(files)
}

fn fare_failure(rng: &mut Rng, r: &Req, after_deploy: bool) -> Vec<Rec> {
    let itinerary = rng.hex(12);
    if after_deploy && r.route.path == "/v1/quotes" && r.status == 500 && !rng.chance(0.01) {
        let currency = *rng.pick(ZERO_DECIMAL);
        let msg = java_trace(
            &format!(
                "Quote calculation failed for itinerary {itinerary} (currency={currency}, legs={})",
                1 + rng.below(3)
            ),
            "java.lang.ArithmeticException: Rounding necessary",
            &[
                "java.base/java.math.BigDecimal.commonNeedIncrement(BigDecimal.java:4628)",
                "java.base/java.math.BigDecimal.needIncrement(BigDecimal.java:4835)",
                "java.base/java.math.BigDecimal.divideAndRound(BigDecimal.java:4810)",
                "java.base/java.math.BigDecimal.setScale(BigDecimal.java:2951)",
                "com.voyagio.fares.pricing.CurrencyRounding.forLeg(CurrencyRounding.java:31)",
                "com.voyagio.fares.pricing.FareCalculator.priceLeg(FareCalculator.java:58)",
                "com.voyagio.fares.pricing.FareCalculator.quote(FareCalculator.java:37)",
                "com.voyagio.fares.web.QuoteController.create(QuoteController.java:29)",
                "java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)",
                "org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)",
            ],
        );
        return vec![
            Rec::new(
                r.at + Duration::milliseconds(12),
                "fare-engine",
                &r.pod,
                "ERROR",
                &msg,
            )
            .with("log.logger", "com.voyagio.fares.web.QuoteController")
            .with("error.type", "java.lang.ArithmeticException")
            .with("trace.id", r.trace_id.clone()),
        ];
    }
    let currency = *rng.pick(OTHER_CURRENCIES);
    vec![
        Rec::new(
            r.at + Duration::milliseconds(9),
            "fare-engine",
            &r.pod,
            "ERROR",
            &java_trace(
                &format!("Quote calculation failed for itinerary {itinerary} (currency={currency})"),
                &format!(
                    "com.voyagio.fares.rules.FareNotFiledException: no fare filed for carrier {} on market {}",
                    rng.pick(&["LX", "OS", "SK", "TP"]),
                    rng.pick(&["ZRH-LIS", "VIE-ARN", "CPH-OPO", "GVA-HEL"])
                ),
                &[
                    "com.voyagio.fares.rules.FareRuleStore.lookup(FareRuleStore.java:112)",
                    "com.voyagio.fares.pricing.FareCalculator.priceLeg(FareCalculator.java:51)",
                    "com.voyagio.fares.pricing.FareCalculator.quote(FareCalculator.java:37)",
                ],
            ),
        )
        .with("log.logger", "com.voyagio.fares.web.QuoteController")
        .with("error.type", "com.voyagio.fares.rules.FareNotFiledException")
        .with("trace.id", r.trace_id.clone()),
    ]
}

fn startup(fare: &Service, deploy: DateTime<Utc>, release: &str) -> Vec<Rec> {
    let Some((ready, pods)) = &fare.rollout else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let t0 = deploy + Duration::seconds(8 + 11 * i64::try_from(i).unwrap_or(0));
        out.push(
            Rec::new(
                t0,
                fare.name,
                pod,
                "INFO",
                &format!("Starting FareEngineApplication v5.3.0 (commit {release}) using Java 21.0.3 with PID 1"),
            )
            .with("log.logger", "com.voyagio.fares.FareEngineApplication"),
        );
        out.push(
            Rec::new(
                t0 + Duration::milliseconds(8_430),
                fare.name,
                pod,
                "INFO",
                "Loaded 48213 fare rules for 37 carriers in 5112 ms",
            )
            .with("log.logger", "com.voyagio.fares.rules.RuleLoader"),
        );
        out.push(
            Rec::new(
                (*ready).max(t0 + Duration::milliseconds(9_900)),
                fare.name,
                pod,
                "INFO",
                "Started FareEngineApplication in 9.87 seconds (process running for 10.4)",
            )
            .with("log.logger", "com.voyagio.fares.FareEngineApplication"),
        );
    }
    out
}

fn mailer_logs(
    span: &Span,
    rng: &mut Rng,
    t: &dyn Fn(&str) -> Result<DateTime<Utc>, GenError>,
) -> Result<Vec<Rec>, GenError> {
    let pods = pod_names(rng, "mailer", 2);
    let reload = t("2026-04-14T09:30:09Z")?;
    let mut out = Vec::new();
    for minute in span.minutes() {
        for _ in 0..crate::sim::count(rng, 2.0) {
            let at = crate::sim::within_minute(rng, minute);
            let pod = rng.pick(&pods).clone();
            let (level, msg) = if rng.chance(0.01) {
                (
                    "WARNING",
                    "SMTP relay answered 451 4.7.1 try again later; message requeued".to_owned(),
                )
            } else {
                (
                    "INFO",
                    format!(
                        "sent booking confirmation to {}***@{} (template=confirmation_v4, {} ms)",
                        rng.pick(&["a", "j", "m", "s", "t"]),
                        rng.pick(&["gmail.com", "outlook.com", "web.de", "yahoo.co.jp"]),
                        200 + rng.below(900)
                    ),
                )
            };
            out.push(Rec::new(at, "mailer", &pod, level, &msg).with("log.logger", "mailer.smtp"));
        }
    }
    for pod in &pods {
        out.push(
            Rec::new(
                reload,
                "mailer",
                pod,
                "INFO",
                "configuration reloaded: SMTP_RELAY_TIMEOUT=20s",
            )
            .with("log.logger", "mailer.settings"),
        );
    }
    Ok(out)
}

/// The story's repository and the commits the other files quote.
struct History {
    bundle: Vec<u8>,
    /// FARE-912.
    culprit: String,
    /// fare-engine's release commit (what its deploy record names).
    release: String,
    /// seat-map's release commit.
    seat_release: String,
}

/// The code history: the culprit (FARE-912) among ordinary commits of
/// several services.
fn repo(t: &dyn Fn(&str) -> Result<DateTime<Utc>, GenError>) -> Result<History, GenError> {
    let [ines, dmitri, aisha, jonas, priya, mateo] = [0, 1, 2, 3, 4, 5].map(|i| PEOPLE[i]);
    let mut r = RepoBuilder::new(NAME)?;
    r.write("README.md", "# voyagio-platform\n\nServices of the Voyagio booking platform. Each service lives under `services/<name>`\nand is released by tagging `<name>-v<version>`.\n");
    r.write("services/fare-engine/VERSION", "5.2.4\n");
    r.write(
        "services/fare-engine/src/main/java/com/voyagio/fares/pricing/CurrencyRounding.java",
        FARE_ROUNDING_BEFORE,
    );
    r.write(
        "services/fare-engine/src/main/java/com/voyagio/fares/pricing/FareCalculator.java",
        FARE_CALC_BEFORE,
    );
    r.write(
        "services/fare-engine/src/main/java/com/voyagio/fares/web/QuoteController.java",
        QUOTE_CONTROLLER,
    );
    r.write("services/fare-engine/build.gradle.kts", FARE_GRADLE);
    r.write("services/seat-map/VERSION", "2.8.0\n");
    r.write("services/seat-map/internal/layout/cache.go", SEAT_CACHE);
    r.write("services/booking-api/VERSION", "7.3.2\n");
    r.write(
        "services/booking-api/src/main/java/com/voyagio/booking/quote/FareClient.java",
        BOOKING_FARE_CLIENT,
    );
    r.write("services/mailer/mailer/settings.py", MAILER_SETTINGS);
    r.write(
        "deploy/k8s/fare-engine/deployment.yaml",
        &deployment("fare-engine", "5.2.4", "1536Mi"),
    );
    r.write(
        "deploy/k8s/seat-map/deployment.yaml",
        &deployment("seat-map", "2.8.0", "768Mi"),
    );
    r.commit(
        mateo,
        t("2026-04-02T10:14:00Z")?,
        "platform: import services into the monorepo",
    )?;
    r.tag("fare-engine-v5.2.4")?;

    r.edit(
        "services/booking-api/src/main/java/com/voyagio/booking/quote/FareClient.java",
        "Duration.ofSeconds(3)",
        "Duration.ofMillis(2500)",
    )?;
    r.commit(
        priya,
        t("2026-04-08T15:02:11Z")?,
        "booking-api: lower the fare-engine read timeout to 2.5s (BOOK-771)",
    )?;

    r.edit(
        "services/fare-engine/build.gradle.kts",
        "jackson-databind:2.17.0",
        "jackson-databind:2.17.1",
    )?;
    r.commit(
        dmitri,
        t("2026-04-10T09:40:37Z")?,
        "fare-engine: bump jackson-databind to 2.17.1",
    )?;

    r.edit(
        "services/seat-map/internal/layout/cache.go",
        "ttl: 10 * time.Minute",
        "ttl: 15 * time.Minute",
    )?;
    r.commit(
        jonas,
        t("2026-04-13T11:25:48Z")?,
        "seat-map: keep layouts cached for 15 minutes (SEAT-340)",
    )?;
    r.write("services/seat-map/VERSION", "2.8.1\n");
    r.write(
        "deploy/k8s/seat-map/deployment.yaml",
        &deployment("seat-map", "2.8.1", "768Mi"),
    );
    let seat_release = r.commit(
        jonas,
        t("2026-04-13T16:02:00Z")?,
        "seat-map: release v2.8.1",
    )?;
    r.tag("seat-map-v2.8.1")?;

    r.write(
        "services/fare-engine/src/main/java/com/voyagio/fares/pricing/CurrencyRounding.java",
        FARE_ROUNDING_AFTER,
    );
    r.edit(
        "services/fare-engine/src/main/java/com/voyagio/fares/pricing/FareCalculator.java",
        "        return leg.baseFare().add(leg.taxes()).multiply(rate);",
        "        // FARE-912: round every leg so the legs printed on the ticket add up to the total.\n        return CurrencyRounding.forLeg(leg.baseFare().add(leg.taxes()).multiply(rate), currency);",
    )?;
    let culprit = r.commit(
        ines,
        t("2026-04-13T17:48:19Z")?,
        "fare-engine: round each leg to the currency's minor unit (FARE-912)\n\nTicket receipts showed leg prices that did not add up to the total\nbecause only the total was rounded. Legs are now rounded one by one.\n",
    )?;
    r.edit(
        "services/fare-engine/src/main/java/com/voyagio/fares/web/QuoteController.java",
        "log.debug(\"quote {}\", id);",
        "log.debug(\"quote {} ({} legs)\", id, request.legs().size());",
    )?;
    r.commit(
        aisha,
        t("2026-04-14T07:58:02Z")?,
        "fare-engine: log the number of legs of a quote at debug",
    )?;
    r.write("services/fare-engine/VERSION", "5.3.0\n");
    r.write(
        "deploy/k8s/fare-engine/deployment.yaml",
        &deployment("fare-engine", "5.3.0", "1536Mi"),
    );
    let release = r.commit(
        ines,
        t("2026-04-14T08:51:30Z")?,
        "fare-engine: release v5.3.0",
    )?;
    r.tag("fare-engine-v5.3.0")?;

    r.edit(
        "services/mailer/mailer/settings.py",
        "SMTP_RELAY_TIMEOUT = env.int(\"SMTP_RELAY_TIMEOUT\", 10)",
        "SMTP_RELAY_TIMEOUT = env.int(\"SMTP_RELAY_TIMEOUT\", 20)",
    )?;
    r.commit(
        mateo,
        t("2026-04-14T09:27:44Z")?,
        "mailer: default SMTP relay timeout 20s (the relay is slow at peak)",
    )?;

    Ok(History {
        bundle: r.bundle()?,
        culprit: short(culprit),
        release: short(release),
        seat_release: short(seat_release),
    })
}

fn deployment(name: &str, version: &str, memory: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: prod\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n        - name: {name}\n          image: registry.voyagio.example/{name}:{version}\n          resources:\n            requests: {{cpu: 500m, memory: {memory}}}\n            limits: {{memory: {memory}}}\n"
    )
}

const FARE_ROUNDING_BEFORE: &str = "package com.voyagio.fares.pricing;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.Currency;

/** Rounding rules of fare amounts. */
public final class CurrencyRounding {
    private CurrencyRounding() {}

    /** Rounds a fare total to the currency's minor unit, half-even as the fare rules require. */
    public static BigDecimal total(BigDecimal amount, Currency currency) {
        return amount.setScale(currency.getDefaultFractionDigits(), RoundingMode.HALF_EVEN);
    }
}
";

const FARE_ROUNDING_AFTER: &str = "package com.voyagio.fares.pricing;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.Currency;

/** Rounding rules of fare amounts. */
public final class CurrencyRounding {
    private CurrencyRounding() {}

    /** Rounds a fare total to the currency's minor unit, half-even as the fare rules require. */
    public static BigDecimal total(BigDecimal amount, Currency currency) {
        return amount.setScale(currency.getDefaultFractionDigits(), RoundingMode.HALF_EVEN);
    }

    /**
     * Rounds one leg to the currency's minor unit (FARE-912). Filed leg
     * amounts are already in minor units, so no rounding should be needed.
     */
    public static BigDecimal forLeg(BigDecimal legAmount, Currency currency) {
        return legAmount.setScale(currency.getDefaultFractionDigits(), RoundingMode.UNNECESSARY);
    }
}
";

const FARE_CALC_BEFORE: &str = "package com.voyagio.fares.pricing;

import java.math.BigDecimal;
import java.util.Currency;
import java.util.List;

import com.voyagio.fares.rules.FareRuleStore;

/** Prices an itinerary leg by leg in the customer's currency. */
public final class FareCalculator {
    private final FareRuleStore rules;
    private final ExchangeRates rates;

    public FareCalculator(FareRuleStore rules, ExchangeRates rates) {
        this.rules = rules;
        this.rates = rates;
    }

    public Quote quote(Itinerary itinerary, Currency currency) {
        BigDecimal total = BigDecimal.ZERO;
        List<Leg> legs = itinerary.legs();
        for (Leg leg : legs) {
            total = total.add(priceLeg(leg, currency));
        }
        return new Quote(itinerary.id(), CurrencyRounding.total(total, currency), currency);
    }

    BigDecimal priceLeg(Leg leg, Currency currency) {
        rules.lookup(leg.carrier(), leg.market());
        BigDecimal rate = rates.rate(leg.filingCurrency(), currency);
        return leg.baseFare().add(leg.taxes()).multiply(rate);
    }
}
";

const QUOTE_CONTROLLER: &str = "package com.voyagio.fares.web;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.web.bind.annotation.*;

import com.voyagio.fares.pricing.FareCalculator;
import com.voyagio.fares.pricing.Quote;

@RestController
@RequestMapping(\"/v1/quotes\")
public class QuoteController {
    private static final Logger log = LoggerFactory.getLogger(QuoteController.class);
    private final FareCalculator calculator;

    public QuoteController(FareCalculator calculator) {
        this.calculator = calculator;
    }

    @PostMapping
    public Quote create(@RequestBody QuoteRequest request) {
        String id = request.itinerary().id();
        log.debug(\"quote {}\", id);
        return calculator.quote(request.itinerary(), request.currency());
    }
}
";

const FARE_GRADLE: &str = "plugins {
    id(\"org.springframework.boot\") version \"3.2.5\"
    java
}

dependencies {
    implementation(\"org.springframework.boot:spring-boot-starter-web\")
    implementation(\"com.fasterxml.jackson.core:jackson-databind:2.17.0\")
    testImplementation(\"org.springframework.boot:spring-boot-starter-test\")
}
";

const SEAT_CACHE: &str = "package layout

import (
\t\"sync\"
\t\"time\"
)

// Cache keeps seat layouts per aircraft configuration.
type Cache struct {
\tmu    sync.Mutex
\tttl   time.Duration
\titems map[string]entry
}

type entry struct {
\tlayout  *Layout
\texpires time.Time
}

// NewCache returns an empty cache.
func NewCache() *Cache {
\treturn &Cache{items: map[string]entry{}, ttl: 10 * time.Minute}
}
";

const BOOKING_FARE_CLIENT: &str = "package com.voyagio.booking.quote;

import java.time.Duration;

import org.springframework.web.client.RestClient;

/** Calls fare-engine for quotes; a fare-engine 5xx becomes a 502 for our caller. */
public class FareClient {
    private final RestClient http;

    public FareClient(RestClient.Builder builder) {
        this.http = builder
            .baseUrl(\"http://fare-engine.prod.svc:8080\")
            .requestFactory(Timeouts.factory(Duration.ofSeconds(3)))
            .build();
    }
}
";

const MAILER_SETTINGS: &str = "import environs

env = environs.Env()

SMTP_HOST = env.str(\"SMTP_HOST\", \"relay.mailprovider.example\")
SMTP_RELAY_TIMEOUT = env.int(\"SMTP_RELAY_TIMEOUT\", 10)
TEMPLATE = env.str(\"TEMPLATE\", \"confirmation_v4\")
";

const RUNBOOK_EDGE: &str = "# 5xx at the edge (edge-proxy)

The edge only forwards: a 5xx ratio alert at edge-proxy or at a public API
means some upstream failed.

1. Split the 5xx by route and upstream cluster (the envoy access log's last
   quoted field, or `http_requests_total{service=~\".+\",code=~\"5..\"}`).
2. Response flags: `UT` upstream timeout, `UF` upstream connection failure,
   `-` the upstream itself answered 5xx.
3. Follow the failing upstream: its own logs say whether it failed or one of
   its dependencies did.
";

const RUNBOOK_FARES: &str = "# fare-engine

fare-engine prices itineraries (POST /v1/quotes) for booking-api.

- `FareNotFiledException` at a low rate is normal: some markets have no fare.
- A sudden rise of quote errors for one currency or one carrier usually
  points at a fare-rule import or at a release; check `deploy_history`.
- Rollback: `kubectl -n prod rollout undo deploy/fare-engine`.
";
