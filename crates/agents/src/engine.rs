//! The agents' dispatch: which agent runs a task and how (LLM or offline),
//! on which data. Internal to the crate; callers use [`crate::Agents`].
//!
//! A task's data is a bundle directory (refused outside
//! `agents.bundle_roots`) or the worker's configured `[tools]` (its
//! `bundle_dir`, when set). A bundle is loaded and its shared
//! [`BundleContext`] computed once, on the blocking pool, and cached per
//! path: every agent of a diagnosis reads the same bundle.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Duration;
use rootcause_diagnosis::{
    AgentArm, AgentKind, AgentReport, AgentTask, DataSource, EventId, Phase,
};
use tokio::sync::OnceCell;

use crate::offline::coordinate::{self, Coordination};
use crate::offline::derive::{assign_evidence_ids, diagnosis_key};
use crate::offline::evidence::{BundleContext, DbCall};
use crate::offline::inputs::Inputs;
use crate::offline::investigate::{self, Findings};
use crate::runner::{AgentError, AgentOutput, ProgressSink};
use crate::settings::AgentsSettings;

/// Bundles kept loaded at once: a worker serves a few diagnoses at a time,
/// and a bundle's logs can take tens of MB.
pub(crate) const CACHED_BUNDLES: usize = 4;

type Slot = Arc<OnceCell<Arc<BundleContext>>>;

/// Loaded bundles by canonical path and the time its files last changed
/// (a bundle exported again at the same path is loaded again), oldest
/// first for eviction.
#[derive(Default)]
struct Cache {
    slots: HashMap<(PathBuf, String), Slot>,
    order: VecDeque<(PathBuf, String)>,
}

/// When the bundle at `path` last changed, as far as a cheap look tells:
/// the directory's and `incident.json`'s modification times.
fn stamp(path: &Path) -> String {
    let modified = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    };
    format!(
        "{}/{}",
        modified(path),
        modified(&path.join("incident.json"))
    )
}

/// Long-lived state shared by every task of a process.
pub(crate) struct Engine {
    settings: AgentsSettings,
    tools: rootcause_tools::settings::ToolsSettings,
    llm: Option<Arc<rootcause_llm::Llm>>,
    lead: Duration,
    cache: Mutex<Cache>,
}

impl Engine {
    pub(crate) fn new(
        settings: AgentsSettings,
        tools: rootcause_tools::settings::ToolsSettings,
        llm: Option<Arc<rootcause_llm::Llm>>,
    ) -> Self {
        Self {
            settings,
            tools,
            llm,
            lead: Duration::minutes(30),
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Sets how long before the window start the incident side begins.
    pub(crate) fn set_lead(&mut self, lead: Duration) {
        self.lead = lead;
    }

    /// The canonical bundle path of a `BundleDir` task, refused unless it
    /// lies under one of `agents.bundle_roots`.
    pub(crate) fn allowed_bundle(&self, path: &str) -> Result<PathBuf, AgentError> {
        let given = Path::new(path);
        let canonical =
            given
                .canonicalize()
                .map_err(|_| crate::offline::InputError::BundleNotFound {
                    path: given.to_owned(),
                })?;
        let allowed = self
            .settings
            .bundle_roots
            .iter()
            .filter_map(|r| r.canonicalize().ok())
            .any(|root| canonical.starts_with(root));
        if allowed {
            Ok(canonical)
        } else {
            Err(AgentError::BundleNotAllowed {
                path: path.to_owned(),
            })
        }
    }

    /// The shared view of the bundle at `path` (canonical), loading it on
    /// the blocking pool the first time; concurrent callers wait for the
    /// same load.
    pub(crate) async fn context(&self, path: &Path) -> Result<Arc<BundleContext>, AgentError> {
        let key = (path.to_owned(), stamp(path));
        let slot = {
            let mut cache = self
                .cache
                .lock()
                .map_err(|_| AgentError::Transient("the bundle cache lock is poisoned".into()))?;
            match cache.slots.get(&key) {
                Some(slot) => slot.clone(),
                None => {
                    while cache.order.len() >= CACHED_BUNDLES {
                        if let Some(old) = cache.order.pop_front() {
                            cache.slots.remove(&old);
                        }
                    }
                    let slot = Slot::default();
                    cache.slots.insert(key.clone(), slot.clone());
                    cache.order.push_back(key.clone());
                    slot
                }
            }
        };
        let result = slot
            .get_or_try_init(|| async {
                let dir = path.to_owned();
                let git_cache = self.tools.git_cache();
                let lead = self.lead;
                tokio::task::spawn_blocking(move || {
                    let inputs = Inputs::load(&dir, &git_cache)?;
                    Ok::<_, AgentError>(Arc::new(BundleContext::new(Arc::new(inputs), lead)))
                })
                .await
                .map_err(|e| died("the bundle loader", &e))?
            })
            .await
            .cloned();
        if result.is_err() {
            // A failed load is not cached: the bundle may be fixed.
            if let Ok(mut cache) = self.cache.lock() {
                cache.slots.remove(&key);
                cache.order.retain(|k| *k != key);
            }
        }
        result
    }

    /// The bundle a task reads: its own (checked against the roots), or the
    /// worker's configured `tools.bundle_dir`; `None` when it has none.
    async fn source(&self, task: &AgentTask) -> Result<Option<Arc<BundleContext>>, AgentError> {
        match &task.data {
            DataSource::BundleDir { path } => {
                let canonical = self.allowed_bundle(path)?;
                Ok(Some(self.context(&canonical).await?))
            }
            DataSource::Configured => match &self.tools.bundle_dir {
                Some(dir) => {
                    let canonical = dir.canonicalize().map_err(|_| {
                        crate::offline::InputError::BundleNotFound { path: dir.clone() }
                    })?;
                    Ok(Some(self.context(&canonical).await?))
                }
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    pub(crate) async fn run(
        &self,
        task: &AgentTask,
        _worker: &str,
        sink: Arc<dyn ProgressSink>,
    ) -> Result<AgentOutput, AgentError> {
        if task.arm != AgentArm::Llm {
            return self.run_offline(task, sink).await;
        }
        let why = match self.run_llm(task, sink.clone()).await {
            LlmAttempt::Done(result) => return *result,
            LlmAttempt::Unavailable(why) => why,
        };
        tracing::info!(agent = %task.agent, task = %task.task_id, reason = %why, "LLM unavailable; running the analyzers");
        let mut output = self.run_offline(task, sink).await?;
        output.summary = format!(
            "{} (LLM unavailable: {why}; ran the analyzers offline)",
            output.summary
        );
        Ok(output)
    }

    /// The task with a model: its provider chain, the tools of its data
    /// source, the limits of `[agents]` and its budget. A provider outage
    /// (every provider of the chain failed, breaker open) or a missing
    /// provider is [`LlmAttempt::Unavailable`], so the caller runs the
    /// analyzers instead; any other failure is the task's.
    async fn run_llm(&self, task: &AgentTask, sink: Arc<dyn ProgressSink>) -> LlmAttempt {
        let Some(llm) = &self.llm else {
            return LlmAttempt::Unavailable("no [llm] provider is configured".to_owned());
        };
        let diagnosis = llm.diagnosis(task.session_id, rootcause_diagnosis::Usage::default());
        let model = match diagnosis.agent(task.agent) {
            rootcause_llm::LlmAvailability::Online(model) => model,
            rootcause_llm::LlmAvailability::Offline { reason, .. } => {
                return LlmAttempt::Unavailable(format!("{reason:?}"));
            }
        };
        let registry = match self.registry_for(task) {
            Ok(r) => r,
            Err(e) => return LlmAttempt::Done(Box::new(Err(e))),
        };
        let access = rootcause_tools::access::AgentToolAccess::defaults();
        let tools = crate::llm::AgentTools {
            registry: &registry,
            access: &access,
            session_id: Some(task.session_id),
        };
        let limits = crate::llm::LlmLimits::for_task(&self.settings, task);
        match crate::llm::run_task(task, task.session_id, &model, tools, limits, sink.as_ref())
            .await
        {
            Err(e) if e.is_provider_failure() => LlmAttempt::Unavailable(e.to_string()),
            result => LlmAttempt::Done(Box::new(result.map_err(AgentError::from))),
        }
    }

    /// The tool registry over the task's data: its bundle (checked against
    /// the roots) or the worker's `[tools]` connectors.
    fn registry_for(
        &self,
        task: &AgentTask,
    ) -> Result<rootcause_tools::registry::ToolRegistry, AgentError> {
        let mut tools = self.tools.clone();
        if let DataSource::BundleDir { path } = &task.data {
            tools.bundle_dir = Some(self.allowed_bundle(path)?);
        }
        tools
            .registry(rootcause_tools::registry::CallLimits::default())
            .map_err(|e| AgentError::Permanent(format!("the tools cannot be opened: {e}")))
    }

    /// The task with the analyzers only.
    async fn run_offline(
        &self,
        task: &AgentTask,
        sink: Arc<dyn ProgressSink>,
    ) -> Result<AgentOutput, AgentError> {
        let ctx = self.source(task).await?;
        let key = diagnosis_key(task);
        let output = match task.agent {
            AgentKind::Coordinator => {
                let c = coordinate_task(ctx, task, &key).await?;
                AgentOutput {
                    key_evidence: c
                        .hypotheses
                        .first()
                        .map(|h| h.supporting.clone())
                        .unwrap_or_default(),
                    summary: c.summary,
                    evidence: c.evidence,
                    plan: c.plan,
                    hypotheses: c.hypotheses,
                    ..AgentOutput::default()
                }
            }
            agent => match ctx {
                Some(ctx) => {
                    let mut found = investigate_task(ctx, task, sink).await?;
                    for e in &mut found.evidence {
                        e.agent = agent;
                    }
                    assign_evidence_ids(&key, &mut found.evidence);
                    AgentOutput {
                        key_evidence: found
                            .evidence
                            .iter()
                            .filter(|e| e.kind != rootcause_diagnosis::EvidenceKind::Absence)
                            .map(|e| e.id)
                            .collect(),
                        summary: found.summary,
                        evidence: found.evidence,
                        ..AgentOutput::default()
                    }
                }
                None => AgentOutput {
                    summary: format!(
                        "no data: the task names no bundle and this worker's [tools] section sets no bundle_dir; live connectors for the {agent} agent are not configured (set tools.bundle_dir or start the diagnosis with a bundle)"
                    ),
                    ..AgentOutput::default()
                },
            },
        };
        Ok(output)
    }
}

/// What trying the model gave.
enum LlmAttempt {
    /// The model ran the task (well or not).
    Done(Box<Result<AgentOutput, AgentError>>),
    /// No model could be reached; why, for the summary.
    Unavailable(String),
}

/// Runs the coordinator's phase on the blocking pool.
async fn coordinate_task(
    ctx: Option<Arc<BundleContext>>,
    task: &AgentTask,
    key: &[u8; 16],
) -> Result<Coordination, AgentError> {
    let task = task.clone();
    let key = *key;
    tokio::task::spawn_blocking(move || match task.phase {
        Phase::Planning | Phase::Intake => coordinate::plan(ctx.as_deref(), &task, &key),
        _ => coordinate::weigh(ctx.as_deref(), &task, &key),
    })
    .await
    .map_err(|e| died("the coordinator", &e))
}

/// Runs an investigator on the blocking pool, reporting its progress and
/// tool calls to `sink` as it goes.
async fn investigate_task(
    ctx: Arc<BundleContext>,
    task: &AgentTask,
    sink: Arc<dyn ProgressSink>,
) -> Result<Findings, AgentError> {
    let task = task.clone();
    let agent = task.agent;
    tokio::task::spawn_blocking(move || {
        let task_id = task.task_id;
        let progress_sink = sink.clone();
        let mut progress = move |message: String| {
            progress_sink.report(AgentReport::Progress { task_id, message });
        };
        match task.agent {
            AgentKind::Log => investigate::log(&ctx, &mut progress),
            AgentKind::Metric => investigate::metric(&ctx, &mut progress),
            AgentKind::Code => investigate::code(&ctx, &task.evidence, &mut progress),
            AgentKind::Knowledge => investigate::knowledge(&ctx, &mut progress),
            AgentKind::Database => {
                let mut open: HashMap<String, EventId> = HashMap::new();
                let mut on_call = |call: DbCall| match call {
                    DbCall::Calling {
                        diagnostic,
                        arguments,
                    } => {
                        let call_id = EventId::new();
                        open.insert(diagnostic, call_id);
                        sink.report(AgentReport::ToolCalled {
                            task_id,
                            call_id,
                            tool: "sql_diagnostics".to_owned(),
                            arguments,
                        });
                        Some(call_id)
                    }
                    DbCall::Returned {
                        diagnostic,
                        ok,
                        summary,
                    } => {
                        if let Some(call_id) = open.remove(&diagnostic) {
                            sink.report(AgentReport::ToolResult {
                                task_id,
                                call_id,
                                ok,
                                summary,
                                truncated: false,
                            });
                        }
                        None
                    }
                };
                investigate::database(&ctx, &mut on_call, &mut progress)
            }
            AgentKind::Coordinator => Findings::default(),
        }
    })
    .await
    .map_err(|e| died(&format!("the {agent} agent"), &e))
}

/// A blocking-pool thread that did not return: an analyzer that panicked
/// panics again on the same data (not worth a retry); a thread cancelled
/// by a shutdown may work on another worker.
fn died(what: &str, e: &tokio::task::JoinError) -> AgentError {
    if e.is_panic() {
        AgentError::Permanent(format!("{what} panicked on this data: {e}"))
    } else {
        AgentError::Transient(format!("{what} was stopped before it finished: {e}"))
    }
}
