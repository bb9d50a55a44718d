//! Configuration: layering, precedence, and errors that name the key.

use std::collections::HashMap;

use rootcause_runtime::settings::{KEYS, LogFormat, env_var_for};
use rootcause_runtime::{ConfigError, ServiceDefaults, Settings, Sources};
use secrecy::ExposeSecret;

use crate::{TEST_SERVICE, repo_root, settings_with};

fn load_err(sources: &Sources) -> ConfigError {
    match Settings::load_from(sources) {
        Ok(s) => panic!("expected a configuration error, got {s:?}"),
        Err(e) => e,
    }
}

fn single_problem(e: &ConfigError) -> (String, String) {
    let problems = e.problems();
    assert_eq!(problems.len(), 1, "expected one problem, got: {e}");
    (problems[0].key.clone(), problems[0].to_string())
}

#[test]
fn defaults_load_and_the_binary_names_itself() {
    let s = Settings::load_from(&Sources::new(ServiceDefaults::new("gateway", 8080)))
        .expect("defaults are valid");
    assert_eq!(s.service.name, "gateway");
    assert_eq!(s.service.port, 8080);
    assert_eq!(s.service.host, "127.0.0.1");
    assert_eq!(s.database.pool_size, 10);
    assert!(!s.database.migrate_on_start);
    assert_eq!(s.bus.prefetch, 16);
    assert_eq!(s.telemetry.log_format, LogFormat::Json);
    assert_eq!(s.telemetry.otlp_endpoint(), None);
    assert_eq!(s.shutdown.grace().as_secs(), 20);
    assert_eq!(s.health.check_timeout().as_millis(), 2000);
}

#[test]
fn environment_file_overrides_defaults_and_variables_override_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("staging.toml"),
        "[database]\npool_size = 33\n[bus]\nprefetch = 7\n",
    )
    .expect("write env file");
    let vars: HashMap<String, String> = [
        ("ROOTCAUSE_ENV", "staging"),
        (
            "ROOTCAUSE_CONFIG_DIR",
            dir.path().to_str().expect("utf-8 path"),
        ),
        ("ROOTCAUSE__BUS__PREFETCH", "9"),
        ("ROOTCAUSE__SERVICE__PORT", "0"),
        ("UNRELATED", "x"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let s = Settings::load_from(&Sources::from_vars(TEST_SERVICE, &vars).expect("sources"))
        .expect("valid");
    assert_eq!(s.database.pool_size, 33, "file beats default");
    assert_eq!(s.bus.prefetch, 9, "variable beats file");
    assert_eq!(s.service.port, 0, "port 0 is allowed");
    assert_eq!(s.redis.pool_size, 10, "untouched keys keep their default");
}

#[test]
fn rootcause_config_names_a_file_applied_after_the_environment_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = dir.path().join("extra.toml");
    std::fs::write(&extra, "[health]\ncheck_timeout_ms = 750\n").expect("write");
    let vars: HashMap<String, String> =
        [("ROOTCAUSE_CONFIG".to_owned(), extra.display().to_string())].into();
    let s = Settings::load_from(&Sources::from_vars(TEST_SERVICE, &vars).expect("sources"))
        .expect("valid");
    assert_eq!(s.health.check_timeout_ms, 750);
}

#[test]
fn a_named_environment_without_its_file_is_an_error_naming_the_variable() {
    let vars: HashMap<String, String> = [
        ("ROOTCAUSE_ENV".to_owned(), "nope".to_owned()),
        (
            "ROOTCAUSE_CONFIG_DIR".to_owned(),
            "/nonexistent-dir".to_owned(),
        ),
    ]
    .into();
    let err = Sources::from_vars(TEST_SERVICE, &vars).expect_err("missing file");
    let msg = err.to_string();
    assert!(msg.contains("ROOTCAUSE_ENV"), "{msg}");
    assert!(msg.contains("/nonexistent-dir/nope.toml"), "{msg}");
}

#[test]
fn a_bad_amqp_url_names_the_key_the_variable_and_the_expected_form() {
    let err = load_err(&Sources::new(TEST_SERVICE).with_env("ROOTCAUSE__BUS__URL", "amqp://"));
    let (key, msg) = single_problem(&err);
    assert_eq!(key, "bus.url");
    assert!(msg.contains("ROOTCAUSE__BUS__URL"), "{msg}");
    assert!(msg.contains("not a valid AMQP URL (no host)"), "{msg}");
    assert!(
        msg.contains("expected amqp://user:pass@host:5672/vhost"),
        "{msg}"
    );
}

#[test]
fn a_bad_url_message_never_echoes_the_password() {
    let err = load_err(
        &Sources::new(TEST_SERVICE)
            .with_env("ROOTCAUSE__DATABASE__URL", "mysql://root:hunter2@db:3306/x"),
    );
    let (key, msg) = single_problem(&err);
    assert_eq!(key, "database.url");
    assert!(msg.contains("scheme \"mysql\""), "{msg}");
    assert!(!msg.contains("hunter2"), "password leaked: {msg}");
}

#[test]
fn a_database_url_without_a_database_name_is_rejected() {
    let err = load_err(
        &Sources::new(TEST_SERVICE).with_env("ROOTCAUSE__DATABASE__URL", "postgres://pg:5432"),
    );
    let (key, msg) = single_problem(&err);
    assert_eq!(key, "database.url");
    assert!(msg.contains("no database name"), "{msg}");
}

#[test]
fn a_missing_key_is_named_with_its_variable() {
    // Every section present, bus.url absent, no compiled-in defaults.
    let toml = rootcause_runtime::settings::DEFAULT_TOML
        .replace("url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"", "");
    let err = load_err(
        &Sources::new(TEST_SERVICE)
            .without_defaults()
            .with_toml(toml),
    );
    let (key, msg) = single_problem(&err);
    assert_eq!(key, "bus.url");
    assert!(msg.contains("ROOTCAUSE__BUS__URL"), "{msg}");
    assert!(msg.contains("is missing"), "{msg}");
    assert!(msg.contains("expected amqp://"), "{msg}");
}

#[test]
fn a_missing_section_is_named() {
    let start = rootcause_runtime::settings::DEFAULT_TOML
        .find("[redis]")
        .expect("redis section");
    let end = rootcause_runtime::settings::DEFAULT_TOML
        .find("[bus]")
        .expect("bus section");
    let mut toml = rootcause_runtime::settings::DEFAULT_TOML.to_owned();
    toml.replace_range(start..end, "");
    let err = load_err(
        &Sources::new(TEST_SERVICE)
            .without_defaults()
            .with_toml(toml),
    );
    let (key, msg) = single_problem(&err);
    assert_eq!(key, "redis", "{msg}");
    assert!(msg.contains("section is absent"), "{msg}");
}

#[test]
fn a_wrong_type_names_the_key_and_the_expected_form() {
    let err =
        load_err(&Sources::new(TEST_SERVICE).with_env("ROOTCAUSE__DATABASE__POOL_SIZE", "ten"));
    let (key, msg) = single_problem(&err);
    assert_eq!(key, "database.pool_size");
    assert!(msg.contains("ROOTCAUSE__DATABASE__POOL_SIZE"), "{msg}");
    assert!(msg.contains("ten"), "the bad value is shown: {msg}");
    assert!(msg.contains("expected an integer 1-1000"), "{msg}");
}

#[test]
fn a_wrong_bool_and_a_wrong_enum_name_their_keys() {
    let err = load_err(
        &Sources::new(TEST_SERVICE).with_env("ROOTCAUSE__DATABASE__MIGRATE_ON_START", "maybe"),
    );
    assert_eq!(single_problem(&err).0, "database.migrate_on_start");
    let err =
        load_err(&Sources::new(TEST_SERVICE).with_env("ROOTCAUSE__TELEMETRY__LOG_FORMAT", "xml"));
    let (key, msg) = single_problem(&err);
    assert_eq!(key, "telemetry.log_format");
    assert!(msg.contains("json or pretty"), "{msg}");
}

#[test]
fn a_port_out_of_range_names_the_key() {
    let err = load_err(&Sources::new(TEST_SERVICE).with_env("ROOTCAUSE__SERVICE__PORT", "70000"));
    assert_eq!(single_problem(&err).0, "service.port");
}

#[test]
fn an_unknown_key_in_a_section_the_runtime_owns_is_reported_as_a_typo() {
    let err =
        load_err(&Sources::new(TEST_SERVICE).with_env("ROOTCAUSE__SHUTDOWN__GRACE_SECONDS", "5"));
    let (key, msg) = single_problem(&err);
    assert_eq!(key, "shutdown.grace_seconds");
    assert!(msg.contains("ROOTCAUSE__SHUTDOWN__GRACE_SECONDS"), "{msg}");
    assert!(
        msg.contains("known keys of [shutdown]: grace_secs"),
        "{msg}"
    );
}

#[test]
fn shared_sections_accept_the_keys_other_crates_read_from_them() {
    #[derive(Debug, serde::Deserialize)]
    struct RedisExtension {
        url: secrecy::SecretString,
        key_prefix: String,
        subscriber: Subscriber,
    }
    #[derive(Debug, serde::Deserialize)]
    struct Subscriber {
        ping_interval_ms: u64,
    }
    let s = Settings::load_from(
        &Sources::new(TEST_SERVICE)
            .with_env("ROOTCAUSE__REDIS__KEY_PREFIX", "rc:")
            .with_env("ROOTCAUSE__REDIS__SUBSCRIBER__PING_INTERVAL_MS", "250")
            .with_env("ROOTCAUSE__BUS__MAX_ATTEMPTS", "7"),
    )
    .expect("extension keys load");
    let redis: RedisExtension = s.section("redis").expect("redis section");
    assert_eq!(redis.key_prefix, "rc:");
    assert_eq!(redis.subscriber.ping_interval_ms, 250);
    assert_eq!(redis.url.expose_secret(), s.redis.url.expose_secret());
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let err = load_err(
        &Sources::new(TEST_SERVICE)
            .with_env("ROOTCAUSE__DATABASE__POOL_SIZE", "0")
            .with_env("ROOTCAUSE__BUS__PREFETCH", "0")
            .with_env("ROOTCAUSE__SHUTDOWN__GRACE_SECS", "0")
            .with_env("ROOTCAUSE__TELEMETRY__FILTER", "info,[bad")
            .with_env("ROOTCAUSE__TELEMETRY__OTLP_ENDPOINT", "grpc://collector")
            .with_env("ROOTCAUSE__SERVICE__HOST", "not-an-ip")
            .with_env("ROOTCAUSE__REDIS__URL", "http://cache:6379"),
    );
    let mut keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bus.prefetch",
            "database.pool_size",
            "redis.url",
            "service.host",
            "shutdown.grace_secs",
            "telemetry.filter",
            "telemetry.otlp_endpoint",
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains(
            "bus.prefetch (ROOTCAUSE__BUS__PREFETCH) must be > 0; expected an integer 1-65535"
        ),
        "{text}"
    );
}

#[test]
fn unknown_sections_load_and_later_sections_read_with_named_errors() {
    #[derive(Debug, serde::Deserialize)]
    struct Llm {
        provider: String,
        max_tokens: u32,
    }
    let s = Settings::load_from(
        &Sources::new(TEST_SERVICE)
            .with_toml("[llm]\nprovider = \"openai\"\n")
            .with_env("ROOTCAUSE__LLM__MAX_TOKENS", "512")
            .with_env("ROOTCAUSE__TOOLS__WHATEVER", "1"),
    )
    .expect("unknown sections do not break loading");
    let llm: Llm = s.section("llm").expect("llm section");
    assert_eq!(llm.provider, "openai");
    assert_eq!(llm.max_tokens, 512);

    let s = settings_with(&[("ROOTCAUSE__LLM__MAX_TOKENS", "lots")]);
    let err = s.section::<Llm>("llm").expect_err("wrong type");
    assert_eq!(err.problems()[0].key, "llm.max_tokens");
    assert!(err.to_string().contains("ROOTCAUSE__LLM__MAX_TOKENS"));
    let err = settings_with(&[])
        .section::<Llm>("llm")
        .expect_err("absent");
    assert_eq!(err.problems()[0].key, "llm");
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let s = settings_with(&[("ROOTCAUSE__BUS__URL", "amqp://u:topsecret@h:5672/v")]);
    assert_eq!(s.bus.url.expose_secret(), "amqp://u:topsecret@h:5672/v");
    let debug = format!("{s:?}");
    assert!(!debug.contains("topsecret"), "{debug}");
}

#[test]
fn an_empty_otlp_endpoint_means_export_off() {
    let s = settings_with(&[("ROOTCAUSE__TELEMETRY__OTLP_ENDPOINT", "  ")]);
    assert_eq!(s.telemetry.otlp_endpoint(), None);
    let s = settings_with(&[("ROOTCAUSE__TELEMETRY__OTLP_ENDPOINT", "http://otel:4318")]);
    assert_eq!(s.telemetry.otlp_endpoint(), Some("http://otel:4318"));
}

#[test]
fn every_example_file_in_config_is_valid() {
    let dir = repo_root().join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("config dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = Settings::load_from(&Sources::new(TEST_SERVICE).with_file(&path)) {
                panic!("{} is not valid: {e}", path.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "default.toml and at least one example: {checked}"
    );
}

#[test]
fn every_key_is_documented_with_its_variable_and_every_default_key_is_known() {
    let docs = std::fs::read_to_string(repo_root().join("docs/configuration.md"))
        .expect("docs/configuration.md");
    for k in KEYS {
        // The key within its section, as the section's table shows it.
        let leaf = k.key.split_once('.').expect("section.key").1;
        assert!(
            docs.contains(&format!("`{leaf}`")),
            "{} undocumented",
            k.key
        );
        assert!(
            docs.contains(&env_var_for(k.key)),
            "{} variable undocumented",
            k.key
        );
    }
    // Every key in default.toml is a known key (no orphan defaults).
    let tree = config::Config::builder()
        .add_source(config::File::from_str(
            rootcause_runtime::settings::DEFAULT_TOML,
            config::FileFormat::Toml,
        ))
        .build()
        .expect("default.toml parses");
    let table: HashMap<String, config::Value> = tree.try_deserialize().expect("table");
    for (section, value) in table {
        let keys = value.into_table().expect("section table");
        for key in keys.keys() {
            let dotted = format!("{section}.{key}");
            assert!(
                KEYS.iter().any(|k| k.key == dotted),
                "{dotted} is not in KEYS"
            );
        }
    }
}

#[test]
fn a_list_is_read_comma_separated_from_the_environment() {
    let s = Settings::load_from(
        &Sources::new(TEST_SERVICE).with_env("ROOTCAUSE__BUS__RETRY_TIERS", "200,1000,4000"),
    )
    .expect("valid settings");
    assert_eq!(
        s.bus.retry_tiers,
        [
            std::time::Duration::from_millis(200),
            std::time::Duration::from_millis(1000),
            std::time::Duration::from_millis(4000)
        ]
    );
}
