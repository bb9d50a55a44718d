//! The HTTP server every service runs: `/healthz`, `/readyz`, `/metrics`,
//! plus whatever routes the service adds, with request metrics.
//!
//! [`HttpService::bind`] binds the listener before anything runs, so the real
//! port is known when `service.port` is 0. [`HttpService::run_until_stopped`]
//! serves until the [`Shutdown`] triggers, then stops accepting, lets
//! in-flight requests finish (at most `shutdown.grace_secs`), and drains the
//! tracked background tasks.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::error::ServiceError;
use crate::health::{Readiness, Status};
use crate::settings::Settings;
use crate::shutdown::Shutdown;
use crate::telemetry::{self, names};

/// What the ops endpoints need, shared by every worker.
#[derive(Debug, Clone)]
struct Ops {
    service: String,
    readiness: Readiness,
    metrics: PrometheusHandle,
}

/// A bound, not yet running, HTTP server.
pub struct HttpService {
    server: Server,
    addr: SocketAddr,
    service: String,
    grace: Duration,
}

impl std::fmt::Debug for HttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpService")
            .field("addr", &self.addr)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl HttpService {
    /// Binds `service.host:service.port` and wires the ops endpoints plus
    /// `routes` (called once per worker thread).
    ///
    /// # Errors
    /// [`ServiceError::Bind`] when the address is unavailable,
    /// [`ServiceError::Telemetry`] when the metrics recorder cannot be installed.
    pub fn bind<F>(
        settings: &Settings,
        readiness: Readiness,
        routes: F,
    ) -> Result<Self, ServiceError>
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let listener = settings.service.listener()?;
        let addr = listener.local_addr().map_err(|source| ServiceError::Bind {
            addr: format!("{}:{}", settings.service.host, settings.service.port),
            source,
        })?;
        let metrics = telemetry::metrics()?;
        metrics::gauge!(
            names::BUILD_INFO,
            "service" => settings.service.name.clone(),
            "version" => env!("CARGO_PKG_VERSION"),
        )
        .set(1.0);
        let ops = Ops {
            service: settings.service.name.clone(),
            readiness,
            metrics,
        };
        let grace = settings.shutdown.grace();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(ops.clone()))
                .wrap(from_fn(record_request))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics_text))
                .configure(routes.clone())
        })
        .workers(settings.service.workers)
        // Signals are ours (one token per service), not actix's.
        .disable_signals()
        .shutdown_timeout(grace.as_secs())
        .listen(listener)
        .map_err(|source| ServiceError::Bind {
            addr: addr.to_string(),
            source,
        })?
        .run();
        tracing::info!(
            service = %settings.service.name,
            addr = %addr,
            port = addr.port(),
            "http server listening"
        );
        Ok(Self {
            server,
            addr,
            service: settings.service.name.clone(),
            grace,
        })
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port (the real one when 0 was asked for).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves until `shutdown` triggers, then stops accepting, finishes
    /// in-flight requests and drains background tasks.
    ///
    /// # Errors
    /// [`ServiceError::Server`] when the server fails,
    /// [`ServiceError::DrainTimeout`] when tasks outlive the grace period.
    pub async fn run_until_stopped(self, shutdown: &Shutdown) -> Result<(), ServiceError> {
        let handle = self.server.handle();
        let mut running = tokio::spawn(self.server);
        tokio::select! {
            ended = &mut running => {
                // The server stopped without being asked: that is a failure.
                let err = match ended {
                    Ok(Ok(())) => std::io::Error::other("the server stopped unexpectedly"),
                    Ok(Err(e)) => e,
                    Err(join) => std::io::Error::other(join),
                };
                shutdown.trigger();
                return Err(ServiceError::Server(err));
            }
            () = shutdown.triggered() => {}
        }
        tracing::info!(
            service = %self.service,
            "shutdown phase 2/4: HTTP server stops accepting; finishing in-flight requests"
        );
        handle.stop(true).await;
        match running.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ServiceError::Server(e)),
            Err(join) => return Err(ServiceError::Server(std::io::Error::other(join))),
        }
        shutdown.drain(self.grace).await
    }
}

/// Counts and times every request by route pattern (never the raw path, so
/// label values stay a small fixed set).
async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16().to_string();
    metrics::counter!(
        names::HTTP_REQUESTS,
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status,
    )
    .increment(1);
    metrics::histogram!(names::HTTP_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    Ok(res)
}

/// Liveness: the process serves HTTP. Deliberately checks nothing else, so
/// a dependency outage never makes the orchestrator restart healthy pods.
async fn healthz(ops: web::Data<Ops>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "alive",
        "service": ops.service,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Readiness: 200 when every dependency answers, else 503 naming them.
async fn readyz(ops: web::Data<Ops>) -> HttpResponse {
    let report = ops.readiness.report().await;
    let mut res = match report.status {
        Status::Ready => HttpResponse::Ok(),
        Status::Unavailable => HttpResponse::ServiceUnavailable(),
    };
    let mut body = json!({
        "service": ops.service,
        "status": report.status,
        "failing": report.failing,
        "checks": report.checks,
    });
    if let (Some(details), Some(obj)) = (report.details, body.as_object_mut()) {
        obj.insert("details".to_owned(), details);
    }
    res.json(body)
}

/// Prometheus text exposition.
async fn metrics_text(ops: web::Data<Ops>) -> HttpResponse {
    // Upkeep drains histogram buckets; doing it on scrape keeps one less
    // background task per service.
    ops.metrics.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(ops.metrics.render())
}
