//! Recording a diagnosis, replaying it without a network, and re-running it
//! against another model.

use rootcause_diagnosis::{AgentKind, SessionId, Usage};
use rootcause_llm::record::{Outcome, compare};
use rootcause_llm::{
    ChatRequest, ErrorClass, Llm, Message, Recorder, Recording, RedactionSettings,
};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fallback::settings;
use crate::support::*;

fn secret_question(n: u32) -> ChatRequest {
    ChatRequest::new(vec![
        Message::system("You are an SRE assistant."),
        Message::user(format!(
            "Step {n}: the log says password=Pg-s3cr3t-2024 failed for db"
        )),
    ])
    .with_max_tokens(128)
}

#[tokio::test]
async fn record_to_file_then_replay_without_network_and_compare() {
    let live = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_text("answer one", 40, 5, 0)))
        .up_to_n_times(1)
        .mount(&live)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_text("answer two", 50, 6, 0)))
        .mount(&live)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let llm_settings = settings(json!({
        "providers": {"openai": {"kind": "openai", "model": "gpt-4o", "api_key": OPENAI_KEY, "base_url": format!("{}/v1", live.uri())}},
        "recording": {"directory": dir.path()}
    }));
    let session = SessionId::new();
    let diagnosis = Llm::from_settings(&llm_settings)
        .expect("settings")
        .diagnosis(session, Usage::default());
    let log = diagnosis.agent(AgentKind::Log).online().expect("online");
    let coordinator = diagnosis
        .agent(AgentKind::Coordinator)
        .online()
        .expect("online");
    let first = log.chat(secret_question(1)).await.expect("first");
    let second = coordinator.chat(secret_question(2)).await.expect("second");

    // The file holds both exchanges, redacted.
    let path = dir.path().join(format!("{session}.jsonl"));
    let text = std::fs::read_to_string(&path).expect("recording file");
    assert_eq!(text.lines().count(), 2);
    assert!(
        !text.contains("Pg-s3cr3t-2024"),
        "the recording must be redacted"
    );
    let recording = Recording::read(&path).await.expect("parse");
    assert_eq!(recording.session_id(), Some(session));
    assert_eq!(recording.exchanges[0].agent, "log");
    assert_eq!(recording.exchanges[1].agent, "coordinator");
    assert_eq!(recording.usage().total_tokens(), 40 + 5 + 50 + 6);
    assert_eq!(
        recording,
        diagnosis.recorder().expect("recorder").recording()
    );

    // Replay: the live server is gone; the same run gets the same answers.
    drop(live);
    let replay = Llm::replay(&recording, &RedactionSettings::default()).expect("replay");
    let replayed = replay.diagnosis(session, Usage::default());
    let r1 = replayed
        .agent(AgentKind::Log)
        .online()
        .expect("online")
        .chat(secret_question(1))
        .await
        .expect("replayed 1");
    let r2 = replayed
        .agent(AgentKind::Coordinator)
        .online()
        .expect("online")
        .chat(secret_question(2))
        .await
        .expect("replayed 2");
    assert_eq!(r1, first);
    assert_eq!(r2, second);
    // An agent that was never recorded is offline in the replay.
    assert!(replayed.agent(AgentKind::Metric).is_offline());
    // A request the recording does not contain is an error, not a guess.
    let err = replay
        .diagnosis(session, Usage::default())
        .agent(AgentKind::Log)
        .online()
        .expect("online")
        .chat(secret_question(3))
        .await
        .expect_err("diverged");
    assert!(err.to_string().contains("no recorded exchange"), "{err}");

    // Compare: the recorded requests against another model.
    let other = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(anthropic_text(
            "claude's view",
            45,
            9,
            0,
        )))
        .mount(&other)
        .await;
    let comparisons = compare(&recording, &anthropic(&other)).await;
    assert_eq!(comparisons.len(), 2);
    assert_eq!(comparisons[0].agent, "log");
    let Outcome::Response { response } = &comparisons[0].rerun else {
        panic!("{:?}", comparisons[0].rerun)
    };
    assert_eq!(response.content.as_deref(), Some("claude's view"));
    assert_eq!(response.provider, "anthropic");
    // The other model saw exactly the recorded (redacted) text.
    let sent = body(&other.received_requests().await.expect("requests")[0]);
    let recorded_user = match &recording.exchanges[0].request.messages[1] {
        Message::User { content } => content.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        sent["messages"][0]["content"][0]["text"],
        json!(recorded_user)
    );
}

#[tokio::test]
async fn failures_are_recorded_and_replayed_as_their_class() {
    let dead = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(openai_error(
            "Incorrect API key provided",
            "invalid_request_error",
            Some("invalid_api_key"),
        )))
        .mount(&dead)
        .await;
    let session = SessionId::new();
    let recorder = Recorder::in_memory(session);
    let diagnosis = Llm::from_settings(&settings(json!({
        "providers": {"openai": {"kind": "openai", "model": "gpt-4o", "api_key": OPENAI_KEY, "base_url": format!("{}/v1", dead.uri())}}
    })))
    .expect("settings")
    .diagnosis(session, Usage::default())
    .with_recorder(recorder.clone());
    diagnosis
        .agent(AgentKind::Log)
        .online()
        .expect("online")
        .chat(secret_question(1))
        .await
        .expect_err("401");
    let recording =
        Recording::from_jsonl(&recorder.recording().to_jsonl(), "mem").expect("round trip");
    assert!(matches!(
        recording.exchanges[0].outcome,
        Outcome::Error {
            class: ErrorClass::AllProvidersFailed,
            ..
        }
    ));

    let replay = Llm::replay(&recording, &RedactionSettings::default()).expect("replay");
    let err = replay
        .diagnosis(session, Usage::default())
        .agent(AgentKind::Log)
        .online()
        .expect("online")
        .chat(secret_question(1))
        .await
        .expect_err("replayed failure");
    let rootcause_llm::LlmError::AllProvidersFailed { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(failures[0].error.class(), ErrorClass::AllProvidersFailed);
    assert!(failures[0].error.to_string().contains("Incorrect API key"));
}
