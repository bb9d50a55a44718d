//! The TOML examples of docs/LLM_PROVIDERS.md parse and validate (so the
//! documentation cannot drift from the code), and validation names keys.

use rootcause_diagnosis::AgentKind;
use rootcause_llm::{Llm, LlmSettings};
use serde::Deserialize;

#[derive(Deserialize)]
struct Root {
    llm: LlmSettings,
}

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/LLM_PROVIDERS.md");
    std::fs::read_to_string(path).expect("docs/LLM_PROVIDERS.md")
}

/// The ```toml blocks of the doc, with the line after the fence (a comment
/// naming the example).
fn toml_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some(String::new()),
            (Some(block), l) if l.starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_toml_example_in_the_doc_is_valid_configuration() {
    let doc = doc();
    let blocks = toml_blocks(&doc);
    assert!(
        blocks.len() >= 5,
        "expected the provider, fallback, budget, price and redaction examples"
    );
    for block in blocks {
        let root: Root = toml::from_str(&block).unwrap_or_else(|e| panic!("{e}\nin:\n{block}"));
        let llm = Llm::from_settings(&root.llm).unwrap_or_else(|e| panic!("{e}\nin:\n{block}"));
        // Every example that configures a provider serves the coordinator.
        if !root.llm.providers.is_empty() {
            assert!(llm.chain(AgentKind::Coordinator).is_some(), "{block}");
        }
    }
}

#[test]
fn a_missing_key_stops_start_with_the_key_named() {
    let root: Root = toml::from_str(
        r#"
        [llm.providers.openai]
        kind = "openai"
        model = "gpt-4.1"

        [llm.providers.local]
        kind = "openai_compatible"
        model = "qwen2.5:7b"
        base_url = "not a url"

        [llm.agents]
        default = ["openai", "local"]
        "#,
    )
    .expect("toml");
    let err = Llm::from_settings(&root.llm).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("llm.providers.openai.api_key"), "{text}");
    assert!(text.contains("llm.providers.local.base_url"), "{text}");
    assert!(text.contains("llm.prices.\"qwen2.5:7b\""), "{text}");
}

#[test]
fn no_providers_means_offline_not_a_fake_model() {
    let root: Root = toml::from_str("[llm]\n").expect("toml");
    let llm = Llm::from_settings(&root.llm).expect("valid");
    assert!(llm.is_offline());
    let diagnosis = llm.diagnosis(
        rootcause_diagnosis::SessionId::new(),
        rootcause_diagnosis::Usage::default(),
    );
    for agent in AgentKind::ALL {
        assert!(matches!(
            diagnosis.agent(agent),
            rootcause_llm::LlmAvailability::Offline {
                reason: rootcause_llm::OfflineReason::NoProviders,
                ..
            }
        ));
    }
}
