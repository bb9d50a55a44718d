//! Service settings: where they come from, what they mean, and the rules
//! they must follow before a service starts.
//!
//! Each section is its own struct so a later section (`llm`, `tools`) is a
//! new struct read with [`Settings::section`], without touching these. A
//! section nobody reads is ignored.
//!
//! An unknown key inside a section this crate alone owns (`service`,
//! `telemetry`, `shutdown`, `health`) is an error: it is almost always a typo
//! that would otherwise be silently ignored. The `database`, `redis` and
//! `bus` sections are shared: the crates that use them read more keys from
//! the same section (`rootcause-realtime` reads `redis.key_prefix`,
//! `rootcause-bus` reads `bus.retry_tiers`, ...) through [`Settings::section`]
//! and reject their own unknown keys.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{ConfigError, Problem, ServiceError};

/// `config/default.toml`, compiled in so a binary starts without its files.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Prefix of the environment variables that set keys.
pub const ENV_PREFIX: &str = "ROOTCAUSE";
/// Separator between prefix, section and key in environment variables.
pub const ENV_SEPARATOR: &str = "__";
/// Names an environment (`production`) whose `config/{name}.toml` is loaded.
pub const ENV_NAME_VAR: &str = "ROOTCAUSE_ENV";
/// Names one extra configuration file by path.
pub const CONFIG_FILE_VAR: &str = "ROOTCAUSE_CONFIG";
/// Directory holding `{ROOTCAUSE_ENV}.toml` (default `config`).
pub const CONFIG_DIR_VAR: &str = "ROOTCAUSE_CONFIG_DIR";

/// The environment variable that sets a dotted key:
/// `bus.url` → `ROOTCAUSE__BUS__URL`.
#[must_use]
pub fn env_var_for(key: &str) -> String {
    let mut out = String::from(ENV_PREFIX);
    for part in key.split('.') {
        out.push_str(ENV_SEPARATOR);
        out.push_str(&part.to_ascii_uppercase());
    }
    out
}

/// What each binary decides for itself: its name and its default port, so
/// four services on one machine do not collide without any configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceDefaults {
    /// Service name, the default of `service.name`.
    pub name: &'static str,
    /// Default of `service.port`.
    pub port: u16,
}

impl ServiceDefaults {
    /// Defaults for a binary called `name` listening on `port`.
    #[must_use]
    pub const fn new(name: &'static str, port: u16) -> Self {
        Self { name, port }
    }
}

/// The layers settings are read from.
///
/// Precedence, lowest first (a later layer overrides an earlier one key by key):
/// 1. the binary's [`ServiceDefaults`] (`service.name`, `service.port`);
/// 2. `config/default.toml` (compiled into the binary);
/// 3. the environment file: `{ROOTCAUSE_CONFIG_DIR:-config}/{ROOTCAUSE_ENV}.toml`
///    when `ROOTCAUSE_ENV` is set, then the file at `ROOTCAUSE_CONFIG` when set
///    (a named file that does not exist is an error);
/// 4. `ROOTCAUSE__SECTION__KEY` environment variables.
///
/// Tests build one with [`Sources::new`] and the `with_*` methods instead of
/// touching the process environment.
#[derive(Debug, Clone)]
pub struct Sources {
    service: ServiceDefaults,
    defaults: Option<&'static str>,
    files: Vec<PathBuf>,
    inline: Vec<String>,
    env: HashMap<String, String>,
}

impl Sources {
    /// The compiled-in defaults only: no file, no environment.
    #[must_use]
    pub fn new(service: ServiceDefaults) -> Self {
        Self {
            service,
            defaults: Some(DEFAULT_TOML),
            files: Vec::new(),
            inline: Vec::new(),
            env: HashMap::new(),
        }
    }

    /// The layers a running service uses: defaults, the environment file(s)
    /// named by `ROOTCAUSE_ENV` / `ROOTCAUSE_CONFIG`, and every
    /// `ROOTCAUSE__*` variable of this process.
    ///
    /// # Errors
    /// [`ConfigError::FileMissing`] when a named file does not exist.
    pub fn from_env(service: ServiceDefaults) -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(service, &vars)
    }

    /// As [`Sources::from_env`], reading variables from `vars` instead of the
    /// process (tests, and tools that assemble an environment).
    ///
    /// # Errors
    /// [`ConfigError::FileMissing`] when a named file does not exist.
    pub fn from_vars(
        service: ServiceDefaults,
        vars: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut sources = Self::new(service);
        let non_empty = |name: &str| vars.get(name).filter(|v| !v.trim().is_empty());
        if let Some(env_name) = non_empty(ENV_NAME_VAR) {
            let dir = non_empty(CONFIG_DIR_VAR).map_or("config", String::as_str);
            let path = Path::new(dir).join(format!("{}.toml", env_name.trim()));
            if !path.is_file() {
                return Err(ConfigError::FileMissing {
                    path,
                    named_by: ENV_NAME_VAR,
                });
            }
            sources.files.push(path);
        }
        if let Some(file) = non_empty(CONFIG_FILE_VAR) {
            let path = PathBuf::from(file);
            if !path.is_file() {
                return Err(ConfigError::FileMissing {
                    path,
                    named_by: CONFIG_FILE_VAR,
                });
            }
            sources.files.push(path);
        }
        let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
        sources.env = vars
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(sources)
    }

    /// Drops the compiled-in defaults (to test what happens when a key is
    /// missing).
    #[must_use]
    pub fn without_defaults(mut self) -> Self {
        self.defaults = None;
        self
    }

    /// Adds a TOML file above the defaults.
    #[must_use]
    pub fn with_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push(path.into());
        self
    }

    /// Adds TOML text above the files (tests).
    #[must_use]
    pub fn with_toml(mut self, toml: impl Into<String>) -> Self {
        self.inline.push(toml.into());
        self
    }

    /// Sets an environment variable for this load only, e.g.
    /// `with_env("ROOTCAUSE__BUS__URL", "amqp://…")`.
    #[must_use]
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Merges the layers into one tree of values.
    fn build(&self) -> Result<config::Config, ConfigError> {
        use config::{Environment, File, FileFormat};
        let mut builder = config::Config::builder()
            .set_default("service.name", self.service.name)
            .and_then(|b| b.set_default("service.port", u64::from(self.service.port)))
            .map_err(|e| ConfigError::Source(e.to_string()))?;
        if let Some(defaults) = self.defaults {
            builder = builder.add_source(File::from_str(defaults, FileFormat::Toml));
        }
        for path in &self.files {
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
        }
        for text in &self.inline {
            builder = builder.add_source(File::from_str(text, FileFormat::Toml));
        }
        builder = builder.add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                // Lists come comma-separated: ROOTCAUSE__BUS__RETRY_TIERS=1000,5000.
                .list_separator(",")
                .with_list_parse_key("bus.retry_tiers")
                .with_list_parse_key("agents.bundle_roots")
                .with_list_parse_key("worker.agents")
                .with_list_parse_key("workflow.complex_severities")
                .with_list_parse_key("workflow.investigators")
                .try_parsing(true)
                .source(Some(self.env.clone().into_iter().collect())),
        );
        builder
            .build()
            .map_err(|e| ConfigError::Source(e.to_string()))
    }
}

/// Everything a service is configured with. Services read their sections
/// from here and pass the section, not the whole, to what they build.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Identity and HTTP listener.
    pub service: ServiceSettings,
    /// PostgreSQL.
    pub database: DatabaseSettings,
    /// Redis: the realtime crate's own section, so the pool `/readyz` checks
    /// is built from the same values as the pool the service uses.
    pub redis: rootcause_realtime::RedisSettings,
    /// RabbitMQ: the bus crate's own section (see `rootcause_bus::BusConfig`).
    pub bus: rootcause_bus::BusConfig,
    /// Logs, traces, metrics.
    pub telemetry: TelemetrySettings,
    /// Stopping.
    pub shutdown: ShutdownSettings,
    /// `/readyz`.
    pub health: HealthSettings,
    /// The merged values, kept so later sections can be read with the same
    /// precedence and error reporting ([`Settings::section`]).
    #[serde(skip)]
    raw: Raw,
}

/// The merged configuration tree. Its `Debug` is elided because it holds
/// secrets in clear.
#[derive(Clone, Default)]
struct Raw(Arc<config::Config>);

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Raw(..)")
    }
}

/// `[service]`: who this process is and where its HTTP server listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// Name in logs, traces and metrics.
    pub name: String,
    /// Address to listen on; an IP address.
    pub host: String,
    /// TCP port; 0 asks the OS for a free one (tests).
    pub port: u16,
    /// HTTP worker threads.
    pub workers: usize,
}

/// `[database]`: PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://user:pass@host:5432/db`.
    pub url: SecretString,
    /// Most open connections.
    pub pool_size: usize,
    /// Apply pending migrations at start (development).
    pub migrate_on_start: bool,
}

/// `[telemetry]`: logs, traces, metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Log line format.
    pub log_format: LogFormat,
    /// `tracing` EnvFilter directives.
    pub filter: String,
    /// OTLP/HTTP collector base URL; empty or absent disables trace export.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Fraction of root traces sampled when exporting.
    pub sample_ratio: f64,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Multi-line human-readable output, for a terminal.
    Pretty,
}

/// `[shutdown]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// Seconds to wait for in-flight work after SIGTERM.
    pub grace_secs: u64,
}

/// `[health]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    /// Milliseconds one dependency check may take.
    pub check_timeout_ms: u64,
}

/// A key, what it expects, and whether it is secret. The list is the
/// source of the "expected …" half of error messages, and a test checks
/// that `docs/configuration.md` documents every entry.
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    /// Dotted key.
    pub key: &'static str,
    /// The expected form, as shown to an operator.
    pub expected: &'static str,
}

/// Every key of [`Settings`].
pub const KEYS: &[KeyDoc] = &[
    KeyDoc {
        key: "service.name",
        expected: "a name of lowercase letters, digits and '-', e.g. gateway",
    },
    KeyDoc {
        key: "service.host",
        expected: "an IP address, e.g. 0.0.0.0 or 127.0.0.1",
    },
    KeyDoc {
        key: "service.port",
        expected: "a TCP port 0-65535 (0 = any free port)",
    },
    KeyDoc {
        key: "service.workers",
        expected: "an integer 1-256",
    },
    KeyDoc {
        key: "database.url",
        expected: "postgres://user:pass@host:5432/database",
    },
    KeyDoc {
        key: "database.pool_size",
        expected: "an integer 1-1000",
    },
    KeyDoc {
        key: "database.migrate_on_start",
        expected: "true or false",
    },
    KeyDoc {
        key: "redis.url",
        expected: "redis://[:pass@]host:6379/0 (or rediss:// for TLS)",
    },
    KeyDoc {
        key: "redis.key_prefix",
        expected: "a prefix without whitespace, e.g. rootcause:",
    },
    KeyDoc {
        key: "redis.pool_size",
        expected: "an integer 1-1000",
    },
    KeyDoc {
        key: "redis.connect_timeout_ms",
        expected: "milliseconds > 0",
    },
    KeyDoc {
        key: "redis.response_timeout_ms",
        expected: "milliseconds > 0",
    },
    KeyDoc {
        key: "redis.wait_timeout_ms",
        expected: "milliseconds > 0",
    },
    KeyDoc {
        key: "redis.retry_attempts",
        expected: "an integer >= 0",
    },
    KeyDoc {
        key: "redis.retry_min_delay_ms",
        expected: "milliseconds > 0",
    },
    KeyDoc {
        key: "redis.retry_max_delay_ms",
        expected: "milliseconds >= redis.retry_min_delay_ms",
    },
    KeyDoc {
        key: "redis.session_ttl_secs",
        expected: "seconds > 0",
    },
    KeyDoc {
        key: "redis.subscriber.reconnect_min_delay_ms",
        expected: "milliseconds > 0",
    },
    KeyDoc {
        key: "redis.subscriber.reconnect_max_delay_ms",
        expected: "milliseconds >= redis.subscriber.reconnect_min_delay_ms",
    },
    KeyDoc {
        key: "redis.subscriber.ping_interval_ms",
        expected: "milliseconds > 0",
    },
    KeyDoc {
        key: "redis.subscriber.watcher_buffer",
        expected: "an integer > 0 (events buffered per watcher)",
    },
    KeyDoc {
        key: "bus.url",
        expected: "amqp://user:pass@host:5672/vhost (or amqps:// for TLS)",
    },
    KeyDoc {
        key: "bus.prefix",
        expected: "a prefix for exchange and queue names, under 100 bytes (empty in production)",
    },
    KeyDoc {
        key: "bus.prefetch",
        expected: "an integer 1-65535",
    },
    KeyDoc {
        key: "bus.retry_tiers",
        expected: "a strictly growing list of milliseconds, e.g. [1000, 5000, 30000, 120000]",
    },
    KeyDoc {
        key: "bus.max_attempts",
        expected: "an integer >= 1",
    },
    KeyDoc {
        key: "bus.delivery_limit",
        expected: "an integer >= 1",
    },
    KeyDoc {
        key: "bus.confirm_timeout",
        expected: "milliseconds > 0",
    },
    KeyDoc {
        key: "bus.reconnect_min",
        expected: "milliseconds > 0, <= bus.reconnect_max",
    },
    KeyDoc {
        key: "bus.reconnect_max",
        expected: "milliseconds >= bus.reconnect_min",
    },
    KeyDoc {
        key: "bus.shutdown_grace",
        expected: "milliseconds",
    },
    KeyDoc {
        key: "telemetry.log_format",
        expected: "json or pretty",
    },
    KeyDoc {
        key: "telemetry.filter",
        expected: "tracing filter directives, e.g. info,rootcause=debug",
    },
    KeyDoc {
        key: "telemetry.otlp_endpoint",
        expected: "empty, or an http(s) URL such as http://otel-collector:4318",
    },
    KeyDoc {
        key: "telemetry.sample_ratio",
        expected: "a number from 0.0 to 1.0",
    },
    KeyDoc {
        key: "shutdown.grace_secs",
        expected: "an integer 1-3600 (seconds)",
    },
    KeyDoc {
        key: "health.check_timeout_ms",
        expected: "an integer 1-60000 (milliseconds)",
    },
];

/// The expected form of `key`, when it is one of [`KEYS`].
#[must_use]
pub fn expected_form(key: &str) -> Option<&'static str> {
    KEYS.iter().find(|k| k.key == key).map(|k| k.expected)
}

impl Settings {
    /// Loads and validates the settings of a running service from the
    /// process environment (see [`Sources`] for the precedence).
    ///
    /// # Errors
    /// [`ConfigError`] naming every missing, malformed or invalid key.
    pub fn load(service: ServiceDefaults) -> Result<Self, ConfigError> {
        Self::load_from(&Sources::from_env(service)?)
    }

    /// Loads and validates settings from explicit sources.
    ///
    /// # Errors
    /// [`ConfigError`] naming every missing, malformed or invalid key.
    pub fn load_from(sources: &Sources) -> Result<Self, ConfigError> {
        let raw = Arc::new(sources.build()?);
        let missing: Vec<Problem> = REQUIRED
            .iter()
            .filter(|key| raw.get::<config::Value>(key).is_err())
            .map(|key| {
                let section = key.split('.').next().unwrap_or(key);
                if raw.get::<config::Value>(section).is_err() {
                    Problem::new(section, "is missing: the whole section is absent")
                } else {
                    invalid(key, "is missing")
                }
            })
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::Invalid { problems: missing });
        }
        let mut settings: Self = deserialize_tree(&*raw, "")?;
        settings.raw = Raw(raw);
        settings.validate()?;
        Ok(settings)
    }

    /// Reads a section this crate does not know (a later `[llm]`, `[tools]`)
    /// with the same layers and the same key-naming errors.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key that is missing or malformed.
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T, ConfigError> {
        let value: config::Value = self.raw.0.get(name).map_err(|_| ConfigError::Invalid {
            problems: vec![Problem::new(name, "is missing: the section is required")],
        })?;
        deserialize_tree(&value, name)
    }

    /// As [`Settings::section`], for a section a service may run without
    /// (`Ok(None)` when it is absent; a present but malformed section is
    /// still an error naming the key).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key that is malformed.
    pub fn optional_section<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.raw.0.get::<config::Value>(name) {
            Ok(value) => deserialize_tree(&value, name).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Checks every rule and reports every broken one, so an operator fixes
    /// a deployment in one pass instead of one restart per mistake.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with one [`Problem`] per broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        let s = &self.service;
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            p.push(invalid("service.name", &format!("is {:?}", s.name)));
        }
        if s.host.parse::<IpAddr>().is_err() {
            p.push(invalid(
                "service.host",
                &format!("is {:?}, not an IP address", s.host),
            ));
        }
        range(&mut p, "service.workers", s.workers as u64, 1, 256);
        check_url(
            &mut p,
            "database.url",
            &self.database.url,
            &["postgres", "postgresql"],
            "PostgreSQL",
            true,
        );
        range(
            &mut p,
            "database.pool_size",
            self.database.pool_size as u64,
            1,
            1000,
        );
        check_url(
            &mut p,
            "redis.url",
            &self.redis.url,
            &["redis", "rediss"],
            "Redis",
            false,
        );
        range(
            &mut p,
            "redis.pool_size",
            self.redis.pool_size as u64,
            1,
            1000,
        );
        check_url(
            &mut p,
            "bus.url",
            &self.bus.url,
            &["amqp", "amqps"],
            "AMQP",
            false,
        );
        // The rest of [redis] and [bus] is checked by the crates that own
        // them, so a rule lives in one place.
        if let Err(rootcause_realtime::RealtimeError::InvalidSettings { problems }) =
            self.redis.validate()
        {
            owned_problems(&mut p, problems);
        }
        if let Err(rootcause_bus::BusError::InvalidConfig { problems }) = self.bus.validate() {
            owned_problems(&mut p, problems);
        }
        let t = &self.telemetry;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&t.filter) {
            p.push(invalid(
                "telemetry.filter",
                &format!("{:?} does not parse ({e})", t.filter),
            ));
        }
        if let Some(endpoint) = t.otlp_endpoint() {
            match url::Url::parse(endpoint) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some_and(|h| !h.is_empty()) => {}
                Ok(u) => p.push(invalid(
                    "telemetry.otlp_endpoint",
                    &format!(
                        "{endpoint:?} is not an http(s) URL with a host (scheme {})",
                        u.scheme()
                    ),
                )),
                Err(e) => p.push(invalid(
                    "telemetry.otlp_endpoint",
                    &format!("{endpoint:?} is not a valid URL ({e})"),
                )),
            }
        }
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            p.push(invalid(
                "telemetry.sample_ratio",
                &format!("is {}", t.sample_ratio),
            ));
        }
        range(
            &mut p,
            "shutdown.grace_secs",
            self.shutdown.grace_secs,
            1,
            3600,
        );
        range(
            &mut p,
            "health.check_timeout_ms",
            self.health.check_timeout_ms,
            1,
            60_000,
        );
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems: p })
        }
    }
}

/// Adds a section owner's problems (`"redis.pool_size must be > 0"`) as
/// keyed [`Problem`]s, skipping keys already reported here (the URLs).
fn owned_problems(p: &mut Vec<Problem>, problems: Vec<String>) {
    for text in problems {
        let (key, message) = text
            .split_once(' ')
            .unwrap_or((text.as_str(), "is invalid"));
        let key = key.split('[').next().unwrap_or(key);
        if key.ends_with(".url") || p.iter().any(|known| known.key == key) {
            continue;
        }
        p.push(invalid(key, message));
    }
}

/// Keys that must be set explicitly (in `config/default.toml` or the
/// environment): the sections' own defaults point at a local server, which
/// in production would be a silent misconfiguration.
const REQUIRED: &[&str] = &["database.url", "redis.url", "bus.url"];

/// `key {what}; expected {form}`.
fn invalid(key: &str, what: &str) -> Problem {
    match expected_form(key) {
        Some(form) => Problem::new(key, format!("{what}; expected {form}")),
        None => Problem::new(key, what.to_owned()),
    }
}

fn range(p: &mut Vec<Problem>, key: &str, value: u64, min: u64, max: u64) {
    if value < min || value > max {
        p.push(invalid(key, &format!("is {value}, out of range")));
    }
}

/// Checks a connection URL without echoing it (it may hold a password).
fn check_url(
    p: &mut Vec<Problem>,
    key: &str,
    url: &SecretString,
    schemes: &[&str],
    what: &str,
    needs_path: bool,
) {
    let reason = match url::Url::parse(url.expose_secret()) {
        Err(e) => Some(e.to_string()),
        Ok(u) if !schemes.contains(&u.scheme()) => Some(format!("scheme {:?}", u.scheme())),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some("no host".to_owned()),
        Ok(u) if needs_path && u.path().trim_matches('/').is_empty() => {
            Some("no database name".to_owned())
        }
        Ok(_) => None,
    };
    if let Some(reason) = reason {
        p.push(invalid(
            key,
            &format!("is not a valid {what} URL ({reason})"),
        ));
    }
}

/// Deserializes `tree` (the whole configuration, or the section at
/// `prefix`), turning the first error into a [`Problem`] that names the full
/// dotted key.
fn deserialize_tree<'de, D, T>(tree: &D, prefix: &str) -> Result<T, ConfigError>
where
    D: Clone + serde::Deserializer<'de, Error = config::ConfigError>,
    T: DeserializeOwned,
{
    serde_path_to_error::deserialize(tree.clone()).map_err(|e| {
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        let base = match (prefix.is_empty(), path.is_empty()) {
            (true, _) => path,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}.{path}"),
        };
        ConfigError::Invalid {
            problems: vec![describe(&base, &e.into_inner().to_string())],
        }
    })
}

/// Turns a serde message at `base` into a problem about the precise key.
fn describe(base: &str, message: &str) -> Problem {
    let join = |field: &str| {
        if base.is_empty() || base == field || base.ends_with(&format!(".{field}")) {
            // serde_path_to_error already put the field on the path.
            if base.is_empty() {
                field.to_owned()
            } else {
                base.to_owned()
            }
        } else {
            format!("{base}.{field}")
        }
    };
    // serde's wording, and the config crate's (which gives the full key).
    let missing = backticked(message, "missing field `", '`')
        .map(join)
        .or_else(|| {
            backticked(message, "missing configuration field \"", '"').map(|key| {
                match base.split('.').next() {
                    Some(section) if !section.is_empty() && !key.starts_with(section) => {
                        format!("{base}.{key}")
                    }
                    _ => key.to_owned(),
                }
            })
        });
    if let Some(key) = missing {
        if !key.contains('.') {
            return Problem::new(key, "is missing: the whole section is absent");
        }
        return invalid(&key, "is missing");
    }
    if let Some(field) = backticked(message, "unknown field `", '`') {
        let key = join(field);
        let section = key.rsplit_once('.').map_or("", |(s, _)| s);
        let known: Vec<&str> = KEYS
            .iter()
            .filter_map(|k| {
                k.key
                    .strip_prefix(section)
                    .and_then(|r| r.strip_prefix('.'))
            })
            .collect();
        let hint = if known.is_empty() {
            String::new()
        } else {
            format!("; known keys of [{section}]: {}", known.join(", "))
        };
        return Problem::new(key, format!("is not a known key (a typo?){hint}"));
    }
    invalid(base, &format!("is invalid ({})", clean(message)))
}

/// The text between `start` and the next `end`.
fn backticked<'a>(message: &'a str, start: &str, end: char) -> Option<&'a str> {
    let rest = &message[message.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// Drops the config crate's own key/origin suffix (we name the key
/// ourselves, with its environment variable).
fn clean(message: &str) -> &str {
    message.split(" for key `").next().unwrap_or(message)
}

impl ServiceSettings {
    /// The address to bind.
    ///
    /// # Errors
    /// [`ServiceError::Bind`] when `host` is not an IP address (validation
    /// reports this first).
    pub fn addr(&self) -> Result<SocketAddr, ServiceError> {
        let ip: IpAddr = self.host.parse().map_err(|e| ServiceError::Bind {
            addr: format!("{}:{}", self.host, self.port),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        Ok(SocketAddr::new(ip, self.port))
    }

    /// Binds the HTTP listener. Binding here, before the server starts,
    /// gives the real port when 0 was asked for.
    ///
    /// # Errors
    /// [`ServiceError::Bind`] when the address is taken or not local.
    pub fn listener(&self) -> Result<std::net::TcpListener, ServiceError> {
        let addr = self.addr()?;
        std::net::TcpListener::bind(addr).map_err(|source| ServiceError::Bind {
            addr: addr.to_string(),
            source,
        })
    }
}

impl DatabaseSettings {
    /// The PostgreSQL pool these settings describe. Connections open lazily.
    ///
    /// # Errors
    /// [`ServiceError::Pool`] when the pool cannot be built.
    pub fn pool(&self) -> Result<rootcause_diagnosis::db::PgPool, ServiceError> {
        rootcause_diagnosis::db::pool(self.url.expose_secret(), self.pool_size).map_err(|e| {
            ServiceError::Pool {
                dependency: "postgres",
                message: e.to_string(),
            }
        })
    }

    /// Applies pending migrations when `migrate_on_start` is set; returns
    /// the versions applied (empty when off or up to date).
    ///
    /// # Errors
    /// [`ServiceError::Migration`] when the database is unreachable or a
    /// migration fails.
    pub async fn migrate_if_enabled(&self) -> Result<Vec<String>, ServiceError> {
        if !self.migrate_on_start {
            return Ok(Vec::new());
        }
        tracing::info!("database.migrate_on_start is set: applying pending migrations");
        rootcause_diagnosis::migrations::run_pending(self.url.expose_secret())
            .await
            .map_err(ServiceError::Migration)
    }
}

impl TelemetrySettings {
    /// The OTLP endpoint, `None` when unset or empty (export off).
    #[must_use]
    pub fn otlp_endpoint(&self) -> Option<&str> {
        self.otlp_endpoint
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

impl ShutdownSettings {
    /// The grace period.
    #[must_use]
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }
}

impl HealthSettings {
    /// How long one dependency check may take.
    #[must_use]
    pub fn check_timeout(&self) -> Duration {
        Duration::from_millis(self.check_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_follow_the_separator_rule() {
        assert_eq!(env_var_for("bus.url"), "ROOTCAUSE__BUS__URL");
        assert_eq!(
            env_var_for("database.pool_size"),
            "ROOTCAUSE__DATABASE__POOL_SIZE"
        );
    }

    #[test]
    fn config_suffix_is_removed_from_messages() {
        assert_eq!(
            clean(
                "invalid type: string \"x\", expected an integer for key `a.b` in the environment"
            ),
            "invalid type: string \"x\", expected an integer"
        );
    }
}
