//! Graceful shutdown: one [`CancellationToken`] and one [`TaskTracker`] per
//! service.
//!
//! Order on SIGTERM or ctrl-c (each phase is logged):
//! 1. the signal listener cancels the token;
//! 2. whoever accepts work stops accepting (the HTTP server stops listening and
//!    finishes in-flight requests; later, consumers cancel);
//! 3. [`Shutdown::drain`] closes the tracker and waits, up to the grace period,
//!    for the tasks spawned through it;
//! 4. the service drops its pools and `main` returns 0.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ServiceError;

/// The stop signal and the work to wait for, shared by everything in a
/// service (cloning shares both).
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh, untriggered shutdown.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The token loops `select!` on.
    #[must_use]
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The tracker background work is spawned through, so shutdown can wait for it.
    #[must_use]
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Asks everything to stop.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether stopping has begun.
    #[must_use]
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once stopping has begun.
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// Spawns a task that triggers shutdown on SIGTERM or ctrl-c (SIGINT).
    /// The task ends when the token is cancelled by anyone.
    pub fn listen_for_signals(&self) -> tokio::task::JoinHandle<()> {
        let token = self.token.clone();
        tokio::spawn(async move {
            tokio::select! {
                signal = wait_for_signal() => {
                    tracing::info!(signal, "shutdown phase 1/4: signal received, stopping");
                    token.cancel();
                }
                () = token.cancelled() => {}
            }
        })
    }

    /// Closes the tracker and waits for tracked tasks, at most `grace`.
    ///
    /// # Errors
    /// [`ServiceError::DrainTimeout`] with the number of tasks still running.
    pub async fn drain(&self, grace: Duration) -> Result<(), ServiceError> {
        self.tracker.close();
        tracing::info!(
            pending = self.tracker.len(),
            grace_secs = grace.as_secs(),
            "shutdown phase 3/4: waiting for background tasks"
        );
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            return Err(ServiceError::DrainTimeout {
                pending: self.tracker.len(),
                grace_secs: grace.as_secs(),
            });
        }
        Ok(())
    }
}

/// Waits for SIGTERM or SIGINT and returns its name. If a handler cannot be
/// installed (no signal support), that branch never fires rather than
/// stopping the service at once.
async fn wait_for_signal() -> &'static str {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for ctrl-c");
                std::future::pending().await
            }
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
                "SIGTERM"
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<&'static str>();
    tokio::select! {
        name = ctrl_c => name,
        name = term => name,
    }
}
