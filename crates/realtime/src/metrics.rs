//! Every metric of the crate, declared once with its description and unit.
//!
//! Names follow `rootcause_realtime_<name>_<unit>`; label values come from
//! small fixed sets (operation names, outcomes, gap reasons), never a session
//! id. The `metrics` facade is a no-op until a recorder is installed, so the
//! crate records unconditionally; a service calls [`describe`] once after
//! installing its Prometheus recorder.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Commands sent through the pool, by `operation` and `outcome` (`ok`, `error`).
pub const COMMANDS_TOTAL: &str = "rootcause_realtime_commands_total";
/// Round-trip time of pooled commands, retries included, by `operation`.
pub const COMMAND_DURATION_SECONDS: &str = "rootcause_realtime_command_duration_seconds";
/// Retries of pooled commands after transient failures, by `operation`.
pub const COMMAND_RETRIES_TOTAL: &str = "rootcause_realtime_command_retries_total";
/// Diagnosis events published on Pub/Sub, by `outcome` (`ok`, `error`).
pub const EVENTS_PUBLISHED_TOTAL: &str = "rootcause_realtime_events_published_total";
/// Diagnosis events the subscriber received from Redis (before fan-out).
pub const EVENTS_RECEIVED_TOTAL: &str = "rootcause_realtime_events_received_total";
/// Messages not delivered to a watcher, by `reason` (`malformed`, `lagged`, `duplicate`).
pub const MESSAGES_DROPPED_TOTAL: &str = "rootcause_realtime_messages_dropped_total";
/// Gaps reported to watchers, by `reason` (`seq_jump`, `reconnected`, `lagged`).
pub const GAPS_TOTAL: &str = "rootcause_realtime_gaps_total";
/// Pub/Sub reconnections that succeeded after the connection was lost.
pub const RECONNECTS_TOTAL: &str = "rootcause_realtime_subscriber_reconnects_total";
/// 1 while the subscriber's Pub/Sub connection is up, 0 while it reconnects.
pub const SUBSCRIBER_CONNECTED: &str = "rootcause_realtime_subscriber_connected";
/// Channels the subscriber is subscribed to (sessions with at least one watcher).
pub const SUBSCRIBED_CHANNELS: &str = "rootcause_realtime_subscribed_channels";
/// Watchers (open subscriptions) across all channels.
pub const WATCHERS: &str = "rootcause_realtime_watchers";

/// Registers descriptions and units with the installed recorder.
///
/// Call once at start, after the recorder is installed, so `/metrics` shows
/// `# HELP` lines even before the first sample.
pub fn describe() {
    describe_counter!(
        COMMANDS_TOTAL,
        "Redis commands sent through the pool, by operation and outcome"
    );
    describe_histogram!(
        COMMAND_DURATION_SECONDS,
        Unit::Seconds,
        "Redis command time including retries, by operation"
    );
    describe_counter!(
        COMMAND_RETRIES_TOTAL,
        "Redis command retries after transient failures, by operation"
    );
    describe_counter!(
        EVENTS_PUBLISHED_TOTAL,
        "Diagnosis events published on Redis Pub/Sub, by outcome"
    );
    describe_counter!(
        EVENTS_RECEIVED_TOTAL,
        "Diagnosis events received from Redis Pub/Sub before fan-out"
    );
    describe_counter!(
        MESSAGES_DROPPED_TOTAL,
        "Pub/Sub messages not delivered to a watcher, by reason"
    );
    describe_counter!(GAPS_TOTAL, "Gaps reported to watchers, by reason");
    describe_counter!(
        RECONNECTS_TOTAL,
        "Successful Pub/Sub reconnections after a lost connection"
    );
    describe_gauge!(
        SUBSCRIBER_CONNECTED,
        "1 while the Pub/Sub connection is up, 0 while reconnecting"
    );
    describe_gauge!(
        SUBSCRIBED_CHANNELS,
        "Redis channels currently subscribed (sessions being watched)"
    );
    describe_gauge!(WATCHERS, "Open subscriptions across all channels");
}
