#![doc = include_str!("../README.md")]
//!
//! Layout:
//! - [`Deps`], [`Dep`]: the real dependencies a test points a service at;
//! - [`ServiceProcess`]: a service binary running as a child process;
//! - [`contract`]: the checks every service binary passes.

pub mod contract;
pub mod proxy;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rootcause_test_db::TestDatabase;

/// Why a test helper failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// The test database could not be made.
    #[error(transparent)]
    Database(#[from] rootcause_test_db::TestDbError),
    /// The binary could not be started.
    #[error("cannot start {bin}: {source}")]
    Spawn {
        /// Path of the binary.
        bin: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process exited, or stayed silent, before reporting its port.
    #[error("{bin} did not report a listening port within {waited:?}; stderr:\n{stderr}")]
    NoPort {
        /// Path of the binary.
        bin: String,
        /// How long we waited.
        waited: Duration,
        /// What it printed on stderr.
        stderr: String,
    },
    /// An HTTP request to the service failed.
    #[error("request to {url} failed: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The client error.
        source: reqwest::Error,
    },
    /// Signalling or waiting for the process failed.
    #[error("process control failed: {0}")]
    Process(#[from] std::io::Error),
}

/// A dependency a service may check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dep {
    /// PostgreSQL.
    Postgres,
    /// Redis.
    Redis,
    /// RabbitMQ.
    RabbitMq,
}

impl Dep {
    /// The name `/readyz` reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::RabbitMq => "rabbitmq",
        }
    }

    /// The variable holding its URL.
    #[must_use]
    pub fn var(self) -> &'static str {
        match self {
            Self::Postgres => "ROOTCAUSE__DATABASE__URL",
            Self::Redis => "ROOTCAUSE__REDIS__URL",
            Self::RabbitMq => "ROOTCAUSE__BUS__URL",
        }
    }

    /// A well-formed URL for it on a port nothing listens on.
    #[must_use]
    pub fn closed_url(self) -> String {
        let port = closed_port();
        match self {
            Self::Postgres => format!("postgres://postgres@127.0.0.1:{port}/rootcause"),
            Self::Redis => format!("redis://127.0.0.1:{port}/0"),
            Self::RabbitMq => format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        }
    }
}

/// The path of another package's binary in the same target directory as
/// the running test (`cargo test --workspace` and `cargo nextest run
/// --workspace` build every package's binaries), for tests that run several
/// services as processes.
///
/// # Errors
/// [`TestkitError::Spawn`] naming the missing file and the command that
/// builds it.
pub fn workspace_bin(name: &str) -> Result<std::path::PathBuf, TestkitError> {
    let missing = |detail: String| TestkitError::Spawn {
        bin: name.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, detail),
    };
    let exe = std::env::current_exe().map_err(|e| missing(e.to_string()))?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .ok_or_else(|| missing(format!("{} has no profile directory", exe.display())))?;
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(missing(format!(
            "{} does not exist; build it with `cargo build -p {name}` (or run the tests with --workspace)",
            path.display()
        )))
    }
}

/// A local port that was free a moment ago: bound on 127.0.0.1:0, then
/// released. Nothing listens on it afterwards (barring a race with another
/// process picking the same ephemeral port, which the OS makes unlikely).
#[must_use]
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(1, |a| a.port())
}

/// Real dependencies for one test: its own migrated database (dropped with
/// this value) and the machine's Redis and RabbitMQ.
pub struct Deps {
    /// The test's database.
    pub db: TestDatabase,
    /// Redis URL (`ROOTCAUSE_TEST_REDIS_URL`, default local).
    pub redis_url: String,
    /// RabbitMQ URL (`ROOTCAUSE_TEST_BUS_URL`, default local guest).
    pub bus_url: String,
}

impl Deps {
    /// Makes a database and reads the other URLs.
    ///
    /// # Errors
    /// [`TestkitError::Database`] when PostgreSQL is not reachable.
    pub async fn up() -> Result<Self, TestkitError> {
        Ok(Self {
            db: TestDatabase::new().await?,
            redis_url: std::env::var("ROOTCAUSE_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned()),
            bus_url: std::env::var("ROOTCAUSE_TEST_BUS_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()),
        })
    }

    /// The environment of a service pointed at these dependencies, on a
    /// random local port with JSON logs, then `overrides`.
    #[must_use]
    pub fn env(&self, overrides: &[(&str, String)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("ROOTCAUSE__DATABASE__URL", self.db.url().to_owned()),
            ("ROOTCAUSE__REDIS__URL", self.redis_url.clone()),
            ("ROOTCAUSE__BUS__URL", self.bus_url.clone()),
            ("ROOTCAUSE__SERVICE__HOST", "127.0.0.1".to_owned()),
            ("ROOTCAUSE__SERVICE__PORT", "0".to_owned()),
            ("ROOTCAUSE__SERVICE__WORKERS", "1".to_owned()),
            ("ROOTCAUSE__DATABASE__POOL_SIZE", "2".to_owned()),
            ("ROOTCAUSE__REDIS__POOL_SIZE", "2".to_owned()),
            ("ROOTCAUSE__TELEMETRY__LOG_FORMAT", "json".to_owned()),
            ("ROOTCAUSE__TELEMETRY__FILTER", "info".to_owned()),
            ("ROOTCAUSE__SHUTDOWN__GRACE_SECS", "3".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in overrides {
            env.retain(|(name, _)| name != k);
            env.push(((*k).to_owned(), v.clone()));
        }
        env
    }
}

/// A service binary running as a child process.
pub struct ServiceProcess {
    bin: String,
    child: Child,
    port: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    client: reqwest::Client,
}

/// What a process that ran to its end left behind.
#[derive(Debug)]
pub struct Exited {
    /// Its exit status (`None` if it had to be killed after the timeout).
    pub status: Option<ExitStatus>,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

fn command(bin: &str, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    // Only what the test says: drop inherited Rootcause settings.
    for (k, _) in std::env::vars() {
        if k.starts_with("ROOTCAUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Copies a pipe into `into` line by line (echoing with `TEST_LOG`), and
/// sends each line on `tx`. Keeps draining after the receiver is gone so the
/// child never blocks on a full pipe.
fn pump(
    pipe: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<String>>,
    tx: Option<mpsc::Sender<String>>,
) {
    let echo = std::env::var_os("TEST_LOG").is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("[svc] {line}");
            }
            {
                let mut buf = into.lock().unwrap_or_else(PoisonError::into_inner);
                buf.push_str(&line);
                buf.push('\n');
            }
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    });
}

/// The port in a JSON log line `{"fields":{"message":"http server listening","port":N}}`.
fn listening_port(line: &str) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    if fields.get("message")?.as_str()? != "http server listening" {
        return None;
    }
    u16::try_from(fields.get("port")?.as_u64()?).ok()
}

impl ServiceProcess {
    /// Starts `bin` with exactly `env` as its Rootcause settings and waits
    /// (up to 30 s) until it logs the port it listens on.
    ///
    /// # Errors
    /// [`TestkitError::Spawn`] when it cannot start, [`TestkitError::NoPort`]
    /// when it exits or stays silent.
    pub fn spawn(bin: &str, env: &[(String, String)]) -> Result<Self, TestkitError> {
        let mut child = command(bin, env)
            .spawn()
            .map_err(|source| TestkitError::Spawn {
                bin: bin.to_owned(),
                source,
            })?;
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            pump(out, stdout.clone(), Some(tx));
        }
        if let Some(err) = child.stderr.take() {
            pump(err, stderr.clone(), None);
        }
        let waited = Duration::from_secs(30);
        let deadline = Instant::now() + waited;
        let mut port = None;
        while port.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => port = listening_port(&line),
                Err(_) => break,
            }
        }
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(50));
            return Err(TestkitError::NoPort {
                bin: bin.to_owned(),
                waited,
                stderr: stderr
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            });
        };
        Ok(Self {
            bin: bin.to_owned(),
            child,
            port,
            stdout,
            stderr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        })
    }

    /// Runs `bin` with `env` until it exits (or `timeout`, then kills it),
    /// for failures at start such as a bad configuration.
    ///
    /// # Errors
    /// [`TestkitError::Spawn`] when it cannot start.
    pub fn run_to_exit(
        bin: &str,
        env: &[(String, String)],
        timeout: Duration,
    ) -> Result<Exited, TestkitError> {
        let mut child = command(bin, env)
            .spawn()
            .map_err(|source| TestkitError::Spawn {
                bin: bin.to_owned(),
                source,
            })?;
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            pump(out, stdout.clone(), None);
        }
        if let Some(err) = child.stderr.take() {
            pump(err, stderr.clone(), None);
        }
        let status = wait_until(&mut child, timeout)?;
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Let the pump threads see end-of-file.
        std::thread::sleep(Duration::from_millis(100));
        let read =
            |b: &Arc<Mutex<String>>| b.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Ok(Exited {
            status,
            stdout: read(&stdout),
            stderr: read(&stderr),
        })
    }

    /// The port it listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:{port}{path}`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GETs `path`; the body as JSON, or as a JSON string when it is not JSON.
    ///
    /// # Errors
    /// [`TestkitError::Http`] when the request fails.
    pub async fn get(&self, path: &str) -> Result<(u16, serde_json::Value), TestkitError> {
        let (status, text) = self.get_text(path).await?;
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Ok((status, body))
    }

    /// GETs `path` and returns the status and body text.
    ///
    /// # Errors
    /// [`TestkitError::Http`] when the request fails.
    pub async fn get_text(&self, path: &str) -> Result<(u16, String), TestkitError> {
        let url = self.url(path);
        let http = |source| TestkitError::Http {
            url: url.clone(),
            source,
        };
        let res = self.client.get(&url).send().await.map_err(http)?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(http)?;
        Ok((status, text))
    }

    /// Sends SIGTERM, as Kubernetes and `docker stop` do.
    ///
    /// # Errors
    /// [`TestkitError::Process`] when `kill` cannot be run or fails.
    pub fn terminate(&self) -> Result<(), TestkitError> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(TestkitError::Process(std::io::Error::other(format!(
                "kill -TERM {} failed: {status}",
                self.child.id()
            ))))
        }
    }

    /// Sends SIGKILL: the process dies at once, holding whatever it held,
    /// as when a node fails or the OOM killer strikes.
    ///
    /// # Errors
    /// [`TestkitError::Process`] when the signal cannot be sent.
    pub fn kill(&mut self) -> Result<(), TestkitError> {
        self.child.kill()?;
        let _ = self.child.wait();
        Ok(())
    }

    /// The OS process id (for reading its memory use from `/proc`).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the process to exit.
    ///
    /// # Errors
    /// [`TestkitError::Process`] when waiting fails.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, TestkitError> {
        wait_until(&mut self.child, timeout)
    }

    /// Everything it wrote to stdout so far.
    #[must_use]
    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Everything it wrote to stderr so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The binary's path.
    #[must_use]
    pub fn bin(&self) -> &str {
        &self.bin
    }
}

fn wait_until(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>, TestkitError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
