//! Azure OpenAI: deployment URL, api-version, api-key header, content filter.

use std::time::Duration;

use rootcause_llm::{ChatModel, ErrorClass, LlmError};
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

const PATH: &str = "/openai/deployments/gpt4o-prod/chat/completions";

async fn serve(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(query_param("api-version", "2024-10-21"))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn request_goes_to_the_deployment_with_api_key_and_no_model() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(200).set_body_json(openai_text("ok", 10, 2, 0)),
    )
    .await;
    let answer = azure(&server).chat(&question()).await.expect("answer");
    assert_eq!(answer.content.as_deref(), Some("ok"));
    assert_eq!(answer.provider, "azure");

    let request = only_request(&server).await;
    assert_eq!(request.url.path(), PATH);
    assert_eq!(request.url.query(), Some("api-version=2024-10-21"));
    assert_eq!(header(&request, "api-key"), Some(AZURE_KEY));
    assert_eq!(header(&request, "authorization"), None);
    let sent = body(&request);
    assert!(
        sent.get("model").is_none(),
        "the deployment picks the model"
    );
    assert_eq!(sent["max_tokens"], 256);
    assert!(sent.get("max_completion_tokens").is_none());
}

#[tokio::test]
async fn content_filter_error_and_throttling() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
            "type": null, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation",
                           "content_filter_result": {"hate": {"filtered": true, "severity": "high"}}}
        }})),
    )
    .await;
    let err = azure(&server)
        .chat(&question())
        .await
        .expect_err("filtered");
    assert_eq!(err.class(), ErrorClass::ContentFiltered, "{err:?}");

    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "6")
            .insert_header("retry-after-ms", "5500")
            .set_body_json(json!({"error": {"code": "429", "message":
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."}})),
    )
    .await;
    let err = azure(&server)
        .chat(&question())
        .await
        .expect_err("throttled");
    assert!(
        matches!(err, LlmError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_millis(5500)),
        "{err:?}"
    );
}

#[tokio::test]
async fn deployment_not_found_is_invalid_request() {
    let server = MockServer::start().await;
    serve(
        &server,
        ResponseTemplate::new(404).set_body_json(json!({"error": {"code": "DeploymentNotFound",
            "message": "The API deployment for this resource does not exist."}})),
    )
    .await;
    let err = azure(&server).chat(&question()).await.expect_err("404");
    assert!(
        matches!(&err, LlmError::InvalidRequest { status: 404, message, .. } if message.contains("DeploymentNotFound")),
        "{err:?}"
    );
}
