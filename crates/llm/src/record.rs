//! Recording every request/response pair of a diagnosis (already redacted),
//! replaying them without a network, and re-running them against another
//! model for comparison.
//!
//! A recording is JSON Lines, one [`Exchange`] per line, appended as calls
//! finish, so a crash loses at most the line being written and the file can
//! be read with `jq`. [`Replay`] answers each request with the recorded
//! answer to the identical request (matched by a fingerprint of the redacted
//! request), so a diagnosis replays deterministically; a request the
//! recording does not contain is an error, not a guess.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rootcause_diagnosis::{SessionId, Usage};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::chat::{ChatModel, ChatRequest, ChatResponse};
use crate::error::{ErrorClass, LlmError};

/// What came back for one recorded request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// An answer.
    Response {
        /// The answer.
        response: ChatResponse,
    },
    /// A failure (after retries and fallbacks).
    Error {
        /// Its class.
        class: ErrorClass,
        /// Its message.
        message: String,
    },
}

impl Outcome {
    fn of(result: &Result<ChatResponse, LlmError>) -> Self {
        match result {
            Ok(response) => Self::Response {
                response: response.clone(),
            },
            Err(e) => Self::Error {
                class: e.class(),
                message: e.to_string(),
            },
        }
    }

    /// The usage of the answer, zero for a failure.
    #[must_use]
    pub fn usage(&self) -> Usage {
        match self {
            Self::Response { response } => response.usage,
            Self::Error { .. } => Usage::default(),
        }
    }
}

/// One request and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// The diagnosis.
    pub session_id: SessionId,
    /// Order within the recording, from 1.
    pub seq: u64,
    /// The agent that asked.
    pub agent: String,
    /// [`fingerprint`] of the request.
    pub fingerprint: String,
    /// The request as sent (redacted).
    pub request: ChatRequest,
    /// What came back.
    pub outcome: Outcome,
    /// When it finished.
    pub at: DateTime<Utc>,
    /// How long it took, retries and fallbacks included.
    pub duration_ms: u64,
}

/// Identifies a request by content: SHA-256 of its JSON without the timeout
/// (which changes nothing the model sees), first 16 hex digits.
#[must_use]
pub fn fingerprint(request: &ChatRequest) -> String {
    let mut request = request.clone();
    request.timeout = None;
    // Serializing our own plain data types cannot fail.
    let json = serde_json::to_vec(&request).unwrap_or_default();
    Sha256::digest(&json)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A diagnosis' exchanges, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recording {
    /// The exchanges.
    pub exchanges: Vec<Exchange>,
}

impl Recording {
    /// The diagnosis recorded (of its first exchange).
    #[must_use]
    pub fn session_id(&self) -> Option<SessionId> {
        self.exchanges.first().map(|e| e.session_id)
    }

    /// Total usage of the recorded answers.
    #[must_use]
    pub fn usage(&self) -> Usage {
        let mut total = Usage::default();
        for e in &self.exchanges {
            total.add(&e.outcome.usage());
        }
        total
    }

    /// The recording as JSON Lines.
    #[must_use]
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for e in &self.exchanges {
            // Plain data: serialization cannot fail.
            out.push_str(&serde_json::to_string(e).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// Parses JSON Lines (blank lines are skipped).
    ///
    /// # Errors
    /// [`LlmError::Recording`] naming the first line that does not parse.
    pub fn from_jsonl(text: &str, path: &str) -> Result<Self, LlmError> {
        let mut exchanges = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            exchanges.push(serde_json::from_str(line).map_err(|e| LlmError::Recording {
                path: path.to_owned(),
                message: format!("line {}: {e}", i + 1),
            })?);
        }
        Ok(Self { exchanges })
    }

    /// Reads a JSON Lines file.
    ///
    /// # Errors
    /// [`LlmError::Recording`] when the file cannot be read or parsed.
    pub async fn read(path: &Path) -> Result<Self, LlmError> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| LlmError::Recording {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        Self::from_jsonl(&text, &path.display().to_string())
    }

    /// Writes a JSON Lines file (replacing it).
    ///
    /// # Errors
    /// [`LlmError::Recording`] when the file cannot be written.
    pub async fn write(&self, path: &Path) -> Result<(), LlmError> {
        tokio::fs::write(path, self.to_jsonl())
            .await
            .map_err(|e| LlmError::Recording {
                path: path.display().to_string(),
                message: e.to_string(),
            })
    }
}

/// Collects a diagnosis' exchanges in memory and, when given a file,
/// appends each one as a line as soon as it finishes.
#[derive(Debug)]
pub struct Recorder {
    session_id: SessionId,
    file: Option<PathBuf>,
    // Held only to push or clone, never across an await.
    exchanges: Mutex<Vec<Exchange>>,
    // Serializes appends so lines never interleave.
    append: tokio::sync::Mutex<()>,
}

impl Recorder {
    /// A recorder that keeps exchanges in memory.
    #[must_use]
    pub fn in_memory(session_id: SessionId) -> Arc<Self> {
        Arc::new(Self {
            session_id,
            file: None,
            exchanges: Mutex::new(Vec::new()),
            append: tokio::sync::Mutex::new(()),
        })
    }

    /// A recorder that also appends to `path` (created when missing).
    #[must_use]
    pub fn to_file(session_id: SessionId, path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            session_id,
            file: Some(path),
            exchanges: Mutex::new(Vec::new()),
            append: tokio::sync::Mutex::new(()),
        })
    }

    /// The file appended to, if any.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Exchange>> {
        self.exchanges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Everything recorded so far.
    #[must_use]
    pub fn recording(&self) -> Recording {
        Recording {
            exchanges: self.lock().clone(),
        }
    }

    /// Records one exchange. A file that cannot be written is logged, not
    /// returned: losing a recording must not fail a diagnosis.
    pub(crate) async fn record(
        &self,
        agent: &str,
        request: &ChatRequest,
        result: &Result<ChatResponse, LlmError>,
        duration: Duration,
    ) {
        let exchange = {
            let mut exchanges = self.lock();
            let exchange = Exchange {
                session_id: self.session_id,
                seq: exchanges.len() as u64 + 1,
                agent: agent.to_owned(),
                fingerprint: fingerprint(request),
                request: request.clone(),
                outcome: Outcome::of(result),
                at: Utc::now(),
                duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            };
            exchanges.push(exchange.clone());
            exchange
        };
        if let Some(path) = &self.file
            && let Err(e) = self.append_line(path, &exchange).await
        {
            tracing::error!(path = %path.display(), error = %e, "cannot append to the LLM recording");
        }
    }

    async fn append_line(&self, path: &Path, exchange: &Exchange) -> std::io::Result<()> {
        let _guard = self.append.lock().await;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut line = serde_json::to_vec(exchange).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        file.write_all(&line).await?;
        file.flush().await
    }
}

#[derive(Debug, Default)]
struct ReplayState {
    by_fingerprint: BTreeMap<String, VecDeque<Exchange>>,
}

/// A provider that answers from a recording, without a network. Identical
/// requests are answered in recorded order.
#[derive(Debug, Clone)]
pub struct Replay {
    agent: String,
    // Shared by the replay handles of every agent; held only to pop.
    state: Arc<Mutex<ReplayState>>,
}

impl Replay {
    /// One replay handle per agent name in the recording, sharing state.
    #[must_use]
    pub fn for_agents(recording: &Recording) -> BTreeMap<String, Self> {
        let mut state = ReplayState::default();
        for e in &recording.exchanges {
            state
                .by_fingerprint
                .entry(e.fingerprint.clone())
                .or_default()
                .push_back(e.clone());
        }
        let state = Arc::new(Mutex::new(state));
        recording
            .exchanges
            .iter()
            .map(|e| {
                (
                    e.agent.clone(),
                    Self {
                        agent: e.agent.clone(),
                        state: Arc::clone(&state),
                    },
                )
            })
            .collect()
    }

    /// Recorded exchanges not yet replayed.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_fingerprint
            .values()
            .map(VecDeque::len)
            .sum()
    }
}

#[async_trait]
impl ChatModel for Replay {
    fn provider(&self) -> &str {
        "replay"
    }

    fn model(&self) -> &str {
        "replay"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let fp = fingerprint(request);
        let exchange = {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state
                .by_fingerprint
                .get_mut(&fp)
                .and_then(VecDeque::pop_front)
        };
        let Some(exchange) = exchange else {
            return Err(LlmError::ReplayMiss {
                agent: self.agent.clone(),
                fingerprint: fp,
            });
        };
        match exchange.outcome {
            Outcome::Response { response } => Ok(response),
            Outcome::Error { class, message } => Err(LlmError::replayed("replay", class, message)),
        }
    }
}

/// One recorded exchange next to another model's answer to the same request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The exchange's seq.
    pub seq: u64,
    /// The agent.
    pub agent: String,
    /// What was recorded.
    pub recorded: Outcome,
    /// What the other model answered.
    pub rerun: Outcome,
}

/// Sends every recorded request to `model` and pairs the answers with the
/// recorded ones, in order, for side-by-side review of quality and cost.
pub async fn compare(recording: &Recording, model: &dyn ChatModel) -> Vec<Comparison> {
    let mut out = Vec::with_capacity(recording.exchanges.len());
    for e in &recording.exchanges {
        let result = model.chat(&e.request).await;
        out.push(Comparison {
            seq: e.seq,
            agent: e.agent.clone(),
            recorded: e.outcome.clone(),
            rerun: Outcome::of(&result),
        });
    }
    out
}
