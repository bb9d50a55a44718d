//! The bus's Prometheus metrics, declared once with description and unit.
//!
//! Label values come from small fixed sets: logical queue and exchange names
//! (the prefix is stripped, so test prefixes never become labels) and the
//! outcome names below.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Messages taken off a queue, by `queue` and `outcome` (`done`,
/// `duplicate`, `retry`, `dead`, `malformed`, `expired`, `requeued`,
/// `settle_failed`, and `panicked` in addition to the outcome a panic became).
pub const CONSUMED: &str = "rootcause_bus_messages_consumed_total";
/// Publishes, by `exchange` and `outcome` (`confirmed`, `nacked`,
/// `timeout`, `unroutable`, `error`).
pub const PUBLISHED: &str = "rootcause_bus_messages_published_total";
/// Handler run time, by `queue`.
pub const HANDLE_DURATION: &str = "rootcause_bus_handle_duration_seconds";
/// Publish-to-confirm time, by `exchange`.
pub const PUBLISH_DURATION: &str = "rootcause_bus_publish_duration_seconds";
/// Connections (re)established to the broker.
pub const CONNECTS: &str = "rootcause_bus_connections_total";
/// Outbox rows confirmed by the broker and marked sent.
pub const OUTBOX_SENT: &str = "rootcause_bus_outbox_sent_total";
/// Outbox rows whose publish failed (they stay unsent and are retried).
pub const OUTBOX_FAILED: &str = "rootcause_bus_outbox_failed_total";
/// Outbox rows parked after their last allowed attempt.
pub const OUTBOX_PARKED: &str = "rootcause_bus_outbox_parked_total";
/// Outbox rows parked now (waiting for `rootcause outbox retry`); alert on > 0.
pub const OUTBOX_PARKED_ROWS: &str = "rootcause_bus_outbox_parked_rows";

/// Registers descriptions with the installed recorder. Call once at start,
/// after installing the exporter; calling it again is harmless.
pub fn describe() {
    describe_counter!(
        CONSUMED,
        Unit::Count,
        "Messages taken off a queue, by outcome."
    );
    describe_counter!(
        PUBLISHED,
        Unit::Count,
        "Messages published, by confirm outcome."
    );
    describe_histogram!(
        HANDLE_DURATION,
        Unit::Seconds,
        "Time a handler took for one message."
    );
    describe_histogram!(
        PUBLISH_DURATION,
        Unit::Seconds,
        "Time from publish to broker confirm."
    );
    describe_counter!(
        CONNECTS,
        Unit::Count,
        "Connections established to RabbitMQ."
    );
    describe_counter!(
        OUTBOX_SENT,
        Unit::Count,
        "Outbox rows published and marked sent."
    );
    describe_counter!(
        OUTBOX_FAILED,
        Unit::Count,
        "Outbox rows whose publish failed."
    );
    describe_counter!(
        OUTBOX_PARKED,
        Unit::Count,
        "Outbox rows parked after their last allowed attempt."
    );
    describe_gauge!(
        OUTBOX_PARKED_ROWS,
        Unit::Count,
        "Outbox rows parked now, waiting for an operator."
    );
}
