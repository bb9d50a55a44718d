//! `elasticsearch_search` against a local server replaying documented
//! Elasticsearch 8 and OpenSearch `_search` responses, errors included.

use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use rootcause_tools::logs::{ElasticsearchConfig, ElasticsearchLogs, HttpAuth, LogSearchTool};
use rootcause_tools::{ToolError, ToolRegistry};

use crate::ctx;

const INDEX_PATH: &str = "/logs-acme-*/_search";

fn hit(i: usize, ts_ms: i64, service: &str, level: &str, message: &str) -> Value {
    let ts = chrono::DateTime::from_timestamp_millis(ts_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "_index": "logs-acme-2026.03.02",
        "_id": format!("doc{i}"),
        "_score": null,
        "_source": {
            "@timestamp": ts,
            "service.name": service,
            "log.level": level,
            "host.name": "checkout-7d9f-abc12",
            "message": message
        },
        "sort": [ts_ms, i]
    })
}

fn es8_response(hits: Vec<Value>, total: u64, relation: &str) -> Value {
    json!({
        "took": 7,
        "timed_out": false,
        "_shards": {"total": 3, "successful": 3, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": total, "relation": relation}, "max_score": null, "hits": hits}
    })
}

const T0: i64 = 1_772_460_000_000; // 2026-03-02T14:00:00Z

fn registry(server: &MockServer, auth: HttpAuth) -> ToolRegistry {
    let mut config = ElasticsearchConfig::new(server.uri().parse().unwrap(), "logs-{tenant}-*");
    config.auth = auth;
    let mut r = ToolRegistry::default();
    r.register(LogSearchTool::new(ElasticsearchLogs::new(config).unwrap()))
        .unwrap();
    r
}

fn window() -> rootcause_tools::ToolContext {
    ctx("acme", "2026-03-02T14:00:00Z", "2026-03-02T14:30:00Z")
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r: &Request| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn es8_query_dsl_filters_auth_and_records() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INDEX_PATH))
        .and(header("authorization", "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="))
        .respond_with(ResponseTemplate::new(200).set_body_json(es8_response(
            vec![
                hit(
                    1,
                    T0 + 191_204,
                    "checkout",
                    "ERROR",
                    "payment authorization failed: timeout after 10000ms",
                ),
                hit(
                    2,
                    T0 + 195_000,
                    "checkout",
                    "ERROR",
                    "payment authorization failed: timeout after 10001ms",
                ),
            ],
            2,
            "eq",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let r = registry(
        &server,
        HttpAuth::Basic {
            username: "elastic".to_owned(),
            password: SecretString::from("changeme"),
        },
    );
    let out = r
        .call(
            &window(),
            "elasticsearch_search",
            json!({"service": "checkout", "level": "error", "text": "payment timeout", "limit": 10}),
        )
        .await
        .unwrap();
    assert_eq!(out.source, "elasticsearch");
    assert_eq!(out.content["total"], 2);
    assert_eq!(out.content["records"][0]["service"], "checkout");
    assert_eq!(
        out.content["records"][0]["@timestamp"],
        "2026-03-02T14:03:11.204Z"
    );
    assert!(out.content.get("next_cursor").is_none());
    assert!(
        out.content.get("templates").is_none(),
        "all matches shown: no summary"
    );
    assert!(!out.partial);

    let body = &bodies(&server).await[0];
    assert!(
        out.query.starts_with("POST /logs-acme-*/_search\n"),
        "{}",
        out.query
    );
    let shown: Value = serde_json::from_str(out.query.split_once('\n').unwrap().1).unwrap();
    assert_eq!(
        &shown, body,
        "the reproducing query is exactly what was sent"
    );
    assert_eq!(body["size"], 10);
    let filter = body["query"]["bool"]["filter"].as_array().unwrap();
    assert_eq!(
        filter[0]["range"]["@timestamp"]["gte"],
        "2026-03-02T14:00:00.000Z"
    );
    assert_eq!(
        filter[0]["range"]["@timestamp"]["lt"],
        "2026-03-02T14:30:00.000Z"
    );
    assert_eq!(filter[1]["term"]["service.name"], "checkout");
    assert_eq!(
        filter[2]["terms"]["log.level"],
        json!(["error", "ERROR", "Error"])
    );
    let sqs = &body["query"]["bool"]["must"][0]["simple_query_string"];
    assert_eq!(sqs["query"], "payment timeout");
    assert_eq!(sqs["default_operator"], "and");
    assert_eq!(body["sort"][0]["@timestamp"]["order"], "asc");
}

#[tokio::test]
async fn api_key_auth_and_opensearch_nested_sources() {
    let server = MockServer::start().await;
    // OpenSearch 2.x answers with the same envelope; this index stores ECS
    // fields nested rather than flattened.
    let body = json!({
        "took": 3, "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 1, "relation": "eq"}, "max_score": null, "hits": [{
            "_index": "logs-acme-000001", "_id": "a1", "_score": null,
            "_source": {"@timestamp": "2026-03-02T14:05:00.000Z", "service": {"name": "inventory"},
                        "log": {"level": "warn"}, "message": "slow query 2300ms"},
            "sort": [T0 + 300_000, 0]
        }]}
    });
    Mock::given(method("POST"))
        .and(path(INDEX_PATH))
        .and(header(
            "authorization",
            "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(&server)
        .await;
    let r = registry(
        &server,
        HttpAuth::ApiKey(SecretString::from(
            "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
        )),
    );
    let out = r
        .call(&window(), "elasticsearch_search", json!({}))
        .await
        .unwrap();
    assert_eq!(out.content["records"][0]["service"], "inventory");
    assert_eq!(out.content["records"][0]["level"], "warn");
}

#[tokio::test]
async fn search_after_pages_and_template_summaries_for_large_results() {
    let server = MockServer::start().await;
    // 120 matches: 80 "timeout" lines then 40 "refused" lines, one per second.
    let all: Vec<Value> = (0..120)
        .map(|i| {
            let msg = if i < 80 {
                format!("upstream timed out after {}ms calling payments", 1000 + i)
            } else {
                format!("connection refused by 10.0.3.{} port 8080", i % 7)
            };
            hit(i, T0 + 1000 * i as i64, "checkout", "ERROR", &msg)
        })
        .collect();
    let all_for_mock = all.clone();
    Mock::given(method("POST"))
        .and(path(INDEX_PATH))
        .respond_with(move |req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let size = body["size"].as_u64().unwrap() as usize;
            let start = match body.get("search_after") {
                None => 0,
                Some(after) => {
                    all_for_mock
                        .iter()
                        .position(|h| &h["sort"] == after)
                        .unwrap()
                        + 1
                }
            };
            let page: Vec<Value> = all_for_mock
                .iter()
                .skip(start)
                .take(size)
                .cloned()
                .collect();
            ResponseTemplate::new(200).set_body_json(es8_response(page, 120, "eq"))
        })
        .mount(&server)
        .await;
    let r = registry(&server, HttpAuth::None);
    let out = r
        .call(&window(), "elasticsearch_search", json!({"limit": 50}))
        .await
        .unwrap();
    assert_eq!(out.content["returned"], 50);
    assert_eq!(out.content["total"], 120);
    let cursor = out.content["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&cursor).unwrap(),
        all[49]["sort"]
    );

    // Summaries cover all 120 matches, not just the page.
    let summary = &out.content["templates"];
    assert_eq!(out.content["templates_over"]["records"], 120);
    assert_eq!(out.content["templates_over"]["all_matches"], true);
    let templates = summary["templates"].as_array().unwrap();
    assert_eq!(templates.len(), 2, "{templates:#?}");
    assert_eq!(templates[0]["count"], 80);
    assert!(
        templates[0]["template"]
            .as_str()
            .unwrap()
            .contains("timed out after")
    );
    assert_eq!(templates[1]["count"], 40);
    assert_eq!(templates[1]["first_seen"], "2026-03-02T14:01:20.000Z");
    let sent = bodies(&server).await;
    assert_eq!(sent.len(), 2, "one page plus one scan request");
    assert_eq!(sent[1]["search_after"], all[49]["sort"]);

    // The next page starts after the cursor.
    let next = r
        .call(
            &window(),
            "elasticsearch_search",
            json!({"limit": 50, "cursor": cursor}),
        )
        .await
        .unwrap();
    assert_eq!(
        next.content["records"][0]["message"],
        all[50]["_source"]["message"]
    );
    assert!(next.query.contains("search_after"));

    let bad = r
        .call(
            &window(),
            "elasticsearch_search",
            json!({"cursor": "not json"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, ToolError::InvalidArguments { .. }), "{bad:?}");
}

#[tokio::test]
async fn index_not_found_is_reported_as_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "error": {
                "root_cause": [{"type": "index_not_found_exception", "reason": "no such index [logs-acme-*]",
                                "resource.type": "index_or_alias", "resource.id": "logs-acme-*",
                                "index_uuid": "_na_", "index": "logs-acme-*"}],
                "type": "index_not_found_exception", "reason": "no such index [logs-acme-*]",
                "resource.type": "index_or_alias", "resource.id": "logs-acme-*",
                "index_uuid": "_na_", "index": "logs-acme-*"
            },
            "status": 404
        })))
        .mount(&server)
        .await;
    let err = registry(&server, HttpAuth::None)
        .call(&window(), "elasticsearch_search", json!({}))
        .await
        .unwrap_err();
    match &err {
        ToolError::NotFound { what, value } => {
            assert_eq!(what, "index");
            assert!(
                value.contains("logs-acme-*") && value.contains("no such index"),
                "{value}"
            );
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn too_many_requests_is_retryable_with_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .set_body_json(json!({
                    "error": {
                        "root_cause": [{"type": "es_rejected_execution_exception",
                                        "reason": "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=0]"}],
                        "type": "es_rejected_execution_exception",
                        "reason": "rejected execution of coordinating operation"
                    },
                    "status": 429
                })),
        )
        .mount(&server)
        .await;
    let err = registry(&server, HttpAuth::None)
        .call(&window(), "elasticsearch_search", json!({}))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("429")
            && msg.contains("after 30s")
            && msg.contains("es_rejected_execution_exception"),
        "{msg}"
    );
}

#[tokio::test]
async fn shard_failures_inside_a_200_make_the_answer_partial() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "took": 41, "timed_out": false,
            "_shards": {"total": 5, "successful": 4, "skipped": 0, "failed": 1, "failures": [{
                "shard": 2, "index": "logs-acme-2026.03.02", "node": "zAkd2zP0Q2e8Qb4Lq3kR8w",
                "reason": {"type": "illegal_argument_exception",
                           "reason": "Text fields are not optimised for operations that require per-document field data"}
            }]},
            "hits": {"total": {"value": 1, "relation": "eq"}, "max_score": null,
                     "hits": [hit(1, T0 + 5_000, "checkout", "ERROR", "boom")]}
        })))
        .mount(&server)
        .await;
    let out = registry(&server, HttpAuth::None)
        .call(&window(), "elasticsearch_search", json!({}))
        .await
        .unwrap();
    assert!(out.partial, "shard failures must not look complete");
    let w = out.warnings.join("\n");
    assert!(
        w.contains("1 of 5 shards failed")
            && w.contains("logs-acme-2026.03.02 shard 2")
            && w.contains("Text fields"),
        "{w}"
    );
    assert_eq!(out.content["total"], 1);
}

#[tokio::test]
async fn a_bad_query_is_refused_with_the_cluster_reason() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {
                "root_cause": [{"type": "parse_exception", "reason": "failed to parse date field [yesterday]"}],
                "type": "search_phase_execution_exception", "reason": "all shards failed", "phase": "query"
            },
            "status": 400
        })))
        .mount(&server)
        .await;
    let err = registry(&server, HttpAuth::None)
        .call(&window(), "elasticsearch_search", json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::QueryRefused { reason } if reason.contains("failed to parse date field")),
        "{err:?}"
    );
}

#[tokio::test]
async fn connection_errors_and_debug_do_not_print_the_url_token() {
    // Nothing listens on port 9 (discard) locally: the request fails and
    // reqwest's message quotes the URL.
    let url: url::Url = "http://elastic:Tok3n-s3cret@127.0.0.1:9/".parse().unwrap();
    let config = ElasticsearchConfig::new(url, "logs-{tenant}-*");
    assert!(
        !format!("{config:?}").contains("Tok3n-s3cret"),
        "{config:?}"
    );
    let backend = ElasticsearchLogs::new(config).unwrap();
    assert!(!format!("{backend:?}").contains("Tok3n-s3cret"));
    let mut r = ToolRegistry::default();
    r.register(LogSearchTool::new(backend)).unwrap();
    let err = r
        .call(&window(), "elasticsearch_search", json!({}))
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?} {}", err.to_model_json());
    assert!(!shown.contains("Tok3n-s3cret"), "{shown}");
    assert!(
        shown.contains("127.0.0.1:9"),
        "the error still says which server: {shown}"
    );
}

#[test]
fn prometheus_config_debug_masks_the_url_password() {
    let url: url::Url = "https://user:Pr0m-s3cret@mimir.internal/prometheus"
        .parse()
        .unwrap();
    let config = rootcause_tools::prometheus::PrometheusConfig::new(url);
    let shown = format!("{config:?}");
    assert!(!shown.contains("Pr0m-s3cret"), "{shown}");
    assert!(shown.contains("mimir.internal"), "{shown}");
}

/// The error of `elasticsearch_search` against a server that answers `response`.
async fn search_error(response: ResponseTemplate) -> ToolError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    registry(&server, HttpAuth::None)
        .call(&window(), "elasticsearch_search", json!({}))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_malformed_body_is_an_error_not_null() {
    let err = search_error(
        ResponseTemplate::new(200).set_body_raw(r#"{"took": 7, "hits": {"#, "application/json"),
    )
    .await;
    match &err {
        ToolError::Parse { message, .. } => {
            assert!(
                message.contains("not JSON") && message.contains("took"),
                "{message}"
            );
        }
        other => panic!("expected Parse, got {other:?}"),
    }
}

#[tokio::test]
async fn a_non_json_error_page_keeps_its_text_not_null() {
    let err = search_error(ResponseTemplate::new(502).set_body_raw(
        "<html><body>502 Bad Gateway: upstream es-0 down</body></html>",
        "text/html",
    ))
    .await;
    let msg = err.to_string();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        msg.contains("upstream es-0 down") && !msg.contains("null"),
        "{msg}"
    );
}

/// A tenant id is placed into the index pattern (`logs-{tenant}-*`): one
/// holding `,` or `*` would widen the search to other tenants' indices. The
/// registry refuses it before any request leaves.
#[tokio::test]
async fn a_tenant_that_would_widen_the_index_pattern_is_refused_before_any_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(es8_response(vec![], 0, "eq")))
        .mount(&server)
        .await;
    let r = registry(&server, HttpAuth::None);
    for tenant in ["acme,*", "*", "acme|other", "Acme", ""] {
        let err = r
            .call(
                &ctx(tenant, "2026-03-02T14:00:00Z", "2026-03-02T14:30:00Z"),
                "elasticsearch_search",
                json!({}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_tenant", "{tenant:?}: {err}");
    }
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "no request may reach the cluster"
    );
    // A valid tenant still searches its own pattern.
    r.call(&window(), "elasticsearch_search", json!({}))
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests[0].url.path().starts_with("/logs-acme-*"),
        "{}",
        requests[0].url
    );
}
