//! No secret of a real-looking corpus reaches the wire (checked at the server).

use rootcause_diagnosis::{AgentKind, SessionId, Usage};
use rootcause_llm::{ChatRequest, Llm, Message, ToolCall};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fallback::settings;
use crate::support::*;

/// Secrets as they show up in logs, configs and stack traces.
const CORPUS: &[(&str, &str)] = &[
    (
        "openai key",
        "sk-proj-Xk2mP9qLw3vR8tYb5nC7dF1gH4jK6lZ0aS2dF5gH8jK1lQ3w",
    ),
    (
        "openai legacy key",
        "sk-4fQ9bX2mL7pR1tW8yZ3cV6nB0aS5dF2gH9jK4lQ7",
    ),
    (
        "anthropic key",
        "sk-ant-api03-Zr8Kq2Lm9Xw4Pt7Yb1Nc5Vd3Fg6Hj0Ks2Ld8Qw4Ee7Rr1Tt9Yy-AbCdEfGh",
    ),
    ("aws access key", "AKIAIOSFODNN7EXAMPLE"),
    ("aws secret", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("github token", "ghp_1A2b3C4d5E6f7G8h9I0j1K2l3M4n5O6p7Q8r"),
    (
        "github fine-grained",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ",
    ),
    ("gitlab token", "glpat-xY9zA8bC7dE6fG5hI4jK"),
    ("slack bot token", "xoxb-2048-4096-aBcDeFgHiJkLmNoPqRsTuVwX"),
    (
        "slack webhook",
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    ),
    ("google api key", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    ("stripe key", "sk_live_51HqLyjWDarjtT1zdp7dcXyZ9"),
    (
        "sendgrid key",
        "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",
    ),
    ("huggingface token", "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"),
    (
        "vault token",
        "hvs.CAESIJ1x2y3z4A5b6C7d8E9f0G1h2I3j4K5l6M7n8O9p",
    ),
    ("bearer token", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg"),
    ("basic auth", "YWRtaW46c3VwZXJzZWNyZXQxMjM="),
    (
        "jwt",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ),
    ("postgres password", "Pg-s3cr3t-2024"),
    ("redis password", "r3d1s-pa55"),
    ("mongodb password", "m0ng0Pa55w0rd"),
    ("sql server password", "Sql!Server#2024"),
    ("connection string password", "hunter2hunter2"),
    (
        "azure storage key",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    ),
    (
        "private key body",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
    ),
    ("email", "jane.doe@example.com"),
];

fn log_excerpt() -> String {
    format!(
        r#"2024-05-01T10:02:11Z ERROR payment-client: call failed with OPENAI_API_KEY={openai}
  config: {{"anthropic_api_key": "{anthropic}", "legacy": "{legacy}"}}
  aws_access_key_id={aws_id} aws_secret_access_key={aws_secret}
  git remote https://x-access-token:{gh}@github.com/acme/shop.git  token {ghfg}  GITLAB={gitlab}
  slack: {slack} webhook {webhook}
  maps key={google} stripe={stripe} sendgrid={sendgrid} hf={hf} vault={vault}
  curl -H "Authorization: Bearer {bearer}" -H "Authorization: Basic {basic}"
  session cookie jwt={jwt}
  DATABASE_URL=postgres://orders:{pg}@db.internal:5432/orders
  REDIS_URL=redis://:{redis}@cache:6379/0
  mongodb+srv://app:{mongo}@cluster0.mongodb.net/test
  Server=sql01;Database=shop;User Id=sa;Password={mssql};
  DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={azure};EndpointSuffix=core.windows.net
  conn: host=db user=app password={connpw} sslmode=require
  -----BEGIN RSA PRIVATE KEY-----
  {pem}
  MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj
  -----END RSA PRIVATE KEY-----
  reported by {email}"#,
        openai = CORPUS[0].1,
        legacy = CORPUS[1].1,
        anthropic = CORPUS[2].1,
        aws_id = CORPUS[3].1,
        aws_secret = CORPUS[4].1,
        gh = CORPUS[5].1,
        ghfg = CORPUS[6].1,
        gitlab = CORPUS[7].1,
        slack = CORPUS[8].1,
        webhook = CORPUS[9].1,
        google = CORPUS[10].1,
        stripe = CORPUS[11].1,
        sendgrid = CORPUS[12].1,
        hf = CORPUS[13].1,
        vault = CORPUS[14].1,
        bearer = CORPUS[15].1,
        basic = CORPUS[16].1,
        jwt = CORPUS[17].1,
        pg = CORPUS[18].1,
        redis = CORPUS[19].1,
        mongo = CORPUS[20].1,
        mssql = CORPUS[21].1,
        connpw = CORPUS[22].1,
        azure = CORPUS[23].1,
        pem = CORPUS[24].1,
        email = CORPUS[25].1,
    )
}

#[tokio::test]
async fn no_secret_of_the_corpus_reaches_the_wire() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_text("noted", 10, 3, 0)))
        .mount(&server)
        .await;
    let llm = Llm::from_settings(&settings(json!({
        "providers": {"openai": {"kind": "openai", "model": "gpt-4o", "api_key": OPENAI_KEY, "base_url": format!("{}/v1", server.uri())}}
    })))
    .expect("settings");
    let model = llm
        .diagnosis(SessionId::new(), Usage::default())
        .agent(AgentKind::Log)
        .online()
        .expect("online");
    let excerpt = log_excerpt();
    // The secrets travel in every kind of message: system, user, a tool
    // call's arguments and a tool result.
    let request = ChatRequest::new(vec![
        Message::system(format!("Incident context:\n{excerpt}")),
        Message::user(excerpt.clone()),
        Message::Assistant {
            content: None,
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "elasticsearch_search".into(),
                arguments: json!({"query": format!("password={}", CORPUS[22].1), "token": CORPUS[5].1}),
            }],
        },
        Message::tool_result("call_1", excerpt.clone()),
    ]);
    model.chat(request.clone()).await.expect("answer");
    model.chat(request).await.expect("answer");

    let requests = server.received_requests().await.expect("requests");
    assert_eq!(requests.len(), 2);
    let wire = String::from_utf8(requests[0].body.clone()).expect("utf8");
    let leaked: Vec<&str> = CORPUS
        .iter()
        .filter(|(_, secret)| wire.contains(secret) || wire.contains(&secret.replace('/', "\\/")))
        .map(|(name, _)| *name)
        .collect();
    assert!(
        leaked.is_empty(),
        "leaked to the provider: {leaked:?}\n{wire}"
    );
    // The text around the secrets survives, so the model can still read the log.
    assert!(wire.contains("payment-client: call failed"));
    assert!(wire.contains("db.internal:5432/orders"));
    // Same secret, same placeholder, across messages and across calls.
    let second = String::from_utf8(requests[1].body.clone()).expect("utf8");
    assert_eq!(wire, second);
    let sent = body(&requests[0]);
    let system = sent["messages"][0]["content"].as_str().expect("system");
    let user = sent["messages"][1]["content"].as_str().expect("user");
    assert!(
        system.ends_with(user),
        "placeholders differ between messages"
    );
}
