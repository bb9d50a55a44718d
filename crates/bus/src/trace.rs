//! W3C trace context across the bus, so one diagnosis is one trace across
//! gateway, orchestrator and workers.
//!
//! On publish, the current span's OpenTelemetry context (through
//! `tracing-opentelemetry` when its layer is installed, else the ambient
//! OpenTelemetry context) is written as a `traceparent` AMQP header and into
//! the envelope. On consume, the consumer's span takes that context as its
//! parent before the handler runs. Without an installed tracer there is no
//! valid span context and nothing is injected, which is correct: there is no
//! trace to join.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header name, used as AMQP header and envelope field.
pub const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current span, if it belongs to a sampled or
/// unsampled but valid trace.
#[must_use]
pub fn current_traceparent() -> Option<String> {
    let mut cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        cx = opentelemetry::Context::current();
    }
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The remote context a `traceparent` describes; an empty context when it is
/// absent or malformed (a bad header must not fail the message).
#[must_use]
pub fn context_from(traceparent: Option<&str>) -> opentelemetry::Context {
    let mut carrier = HashMap::new();
    if let Some(tp) = traceparent {
        carrier.insert(TRACEPARENT.to_owned(), tp.to_owned());
    }
    TraceContextPropagator::new().extract(&carrier)
}

/// Makes `span` a child of the remote context in `traceparent`, when valid.
pub fn join(span: &tracing::Span, traceparent: Option<&str>) {
    let cx = context_from(traceparent);
    if cx.span().span_context().is_valid() {
        // Only fails when the span is disabled; then there is nothing to join.
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_valid_traceparent() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = context_from(Some(tp));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid());
        assert!(sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn ignores_garbage() {
        assert!(
            !context_from(Some("not-a-trace"))
                .span()
                .span_context()
                .is_valid()
        );
        assert!(!context_from(None).span().span_context().is_valid());
    }

    #[test]
    fn no_tracer_means_no_traceparent() {
        assert_eq!(current_traceparent(), None);
    }
}
